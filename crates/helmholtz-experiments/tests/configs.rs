//! Every sparse-coding config shipped in configs/ (those with `model.n_latents`) parses as a
//! `SparseConfig` and passes validation.

use std::path::Path;

use helmholtz_experiments::sparse::SparseConfig;

#[test]
fn every_shipped_sparse_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        if table
            .get("model")
            .and_then(|m| m.get("n_latents"))
            .is_none()
        {
            continue;
        }
        let config =
            SparseConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            Some(config.name.as_str()),
            path.file_stem().and_then(|s| s.to_str()),
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(
        seen >= 4,
        "only {seen} sparse configs found in {}",
        dir.display()
    );
}
