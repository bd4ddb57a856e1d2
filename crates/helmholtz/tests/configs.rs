//! Every experiment config shipped in configs/ parses and passes validation: Helmholtz-machine
//! configs as `Config`, entropy-sum fits (those with `model.kind`) as `FitConfig`, variational
//! inference (`model.kind = "logistic-regression"`) as `ViConfig`, distribution fits (the other
//! configs with `model.family`) as `MleConfig`. Sparse-coding
//! configs (those with `model.n_latents`) belong to helmholtz-experiments, which checks them.

use std::path::Path;

use helmholtz::run::Config;
use helmholtz::run::fit::FitConfig;
use helmholtz::run::mle::MleConfig;
use helmholtz::run::vi::ViConfig;

#[test]
fn every_shipped_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let table: toml::Table = toml::from_str(&text).unwrap();
            let sparse = table
                .get("model")
                .and_then(|m| m.get("n_latents"))
                .is_some();
            let kind = table.get("model").and_then(|m| m.get("kind"));
            let vi = kind.and_then(|k| k.as_str()) == Some("logistic-regression");
            let mle = table.get("model").and_then(|m| m.get("family")).is_some();
            let name = if vi {
                ViConfig::load(&path, &[]).map(|c| c.name)
            } else if kind.is_some() {
                FitConfig::load(&path, &[]).map(|c| c.name)
            } else if mle {
                MleConfig::load(&path, &[]).map(|c| c.name)
            } else if sparse {
                continue;
            } else {
                Config::load(&path, &[]).map(|c| c.name)
            }
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                Some(name.as_str()),
                path.file_stem().and_then(|s| s.to_str()),
                "{}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} configs found in {}", dir.display());
}
