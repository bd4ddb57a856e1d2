//! Every experiment config shipped in configs/ parses and passes validation.

use std::path::Path;

use helmholtz::run::Config;

#[test]
fn every_shipped_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config =
                Config::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                Some(config.name.as_str()),
                path.file_stem().and_then(|s| s.to_str()),
                "{}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} configs found in {}", dir.display());
}
