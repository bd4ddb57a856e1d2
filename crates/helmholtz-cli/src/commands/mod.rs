//! One file per command: parse what is left of the arguments, call the library, print.

pub mod bench;
pub mod bench_sparse;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod fisher_rao;
pub mod fit;
pub mod mle;
pub mod plot;
pub mod sample;
pub mod sngd;
pub mod sparse;
pub mod train;
pub mod vi;

use std::path::{Path, PathBuf};

/// The arguments every command that makes a run shares.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The config (TOML; see configs/).
    pub config: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Override a config value, e.g. --set train.epochs=5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Run directory (default: runs/NAME); it must not exist or be empty.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

impl RunArgs {
    /// The config file, or an error naming the command that needs it.
    pub fn config(&self, command: &str) -> anyhow::Result<&Path> {
        self.config.as_deref().ok_or_else(|| {
            anyhow::anyhow!("helmholtz {command} needs a config file (see configs/)")
        })
    }

    /// For `helmholtz COMMAND CONFIG | --resume RUN`: the new run's config (read by `load` with
    /// the `--set` overrides; None when resuming) and the run directory (`--resume`'s, or
    /// `--out`, or runs/NAME with the config's `name`).
    pub fn new_or_resume<C, E>(
        &self,
        command: &str,
        load: impl FnOnce(&Path, &[String]) -> Result<C, E>,
        name: impl FnOnce(&C) -> &str,
    ) -> anyhow::Result<(Option<C>, PathBuf)>
    where
        anyhow::Error: From<E>,
    {
        if let Some(dir) = &self.resume {
            return Ok((None, dir.clone()));
        }
        let config = load(self.config(command)?, &self.overrides)?;
        let dir = self.out_dir(name(&config));
        Ok((Some(config), dir))
    }

    /// The run directory: `--out`, or runs/NAME.
    pub fn out_dir(&self, name: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(name))
    }
}

/// Makes the output directory of an experiment: it must not exist or be empty (nothing in a
/// used directory is touched).
pub fn output_dir(path: &Path) -> anyhow::Result<()> {
    helmholtz::run::rundir::refuse_used(path)?;
    std::fs::create_dir_all(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))
}

/// The value parser of every count flag (`--iterations`, `--inits`, `--points`, `--samples`,
/// `--seeds`, `--epochs`, `--k`, `--n`, …): a whole number of at least 1, since 0 would make
/// an empty table, or one of NaN.
pub fn count<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    match text.trim().parse::<T>() {
        Ok(value) if value >= T::from(1) => Ok(value),
        Ok(_) => Err(format!(
            "{text} is not accepted: give a count of at least 1 (0 would leave nothing to run or report)"
        )),
        Err(_) => Err(format!(
            "{text:?} is not accepted: give a whole number of at least 1"
        )),
    }
}

/// A command's request to exit with a code other than 0 or 1 (a run stopped by a signal).
#[derive(Debug)]
pub struct ExitCode(pub i32);

impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for ExitCode {}
