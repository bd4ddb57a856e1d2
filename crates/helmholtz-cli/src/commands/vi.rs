//! `helmholtz vi`: variational inference for Bayesian logistic regression on the user's data,
//! and `helmholtz sample` of a vi run's posterior.

use std::path::Path;

use anyhow::{Context, Result, bail};
use helmholtz::run::vi::{ViConfig, resume_vi, run_vi, sample_run};

use super::{ExitCode, RunArgs};
use crate::signals::Stop;
use crate::{out, out_part, plots};

/// `helmholtz vi CONFIG` or `helmholtz vi --resume RUN`.
pub fn run(args: &RunArgs) -> Result<()> {
    let quiet = args.quiet;
    let progress = |line: &str| {
        if !quiet {
            crate::err!("{line}");
        }
    };
    let (new, dir) = args.new_or_resume("vi", ViConfig::load, |c| &c.name)?;
    let stop = Stop::install(dir.clone())?;
    let outcome = match &new {
        Some(config) => run_vi(config, &dir, progress, &stop.flag)
            .with_context(|| format!("vi {}", config.name))?,
        None => resume_vi(&dir, &args.overrides, progress, &stop.flag)
            .with_context(|| format!("resuming {}", dir.display()))?,
    };
    plot_elbo(&dir)?;
    if outcome.interrupted {
        crate::err!("{}", outcome.summary.ended);
        return Err(ExitCode(stop.exit_code()).into());
    }
    if !quiet {
        out_part!("{}", outcome.text);
        out!("wrote {}", dir.display());
    }
    Ok(())
}

/// The negative ELBO against steps and against training seconds, as PNGs in the run.
fn plot_elbo(dir: &Path) -> Result<()> {
    let records = helmholtz::run::read_metrics(&dir.join(helmholtz::run::METRICS_FILE))
        .with_context(|| format!("reading the metrics of {}", dir.display()))?;
    for (x_key, x_label, file) in [
        ("step", "step", "elbo_steps.png"),
        ("seconds", "training seconds", "elbo_seconds.png"),
    ] {
        let series = [plots::Series {
            label: "negative ELBO".into(),
            points: plots::metric_series(&records, "train", "negative_elbo", x_key),
        }];
        plots::line_chart(
            &series,
            "negative ELBO",
            x_label,
            "negative ELBO (nats)",
            &dir.join(file),
        )?;
    }
    Ok(())
}

/// `n` draws of the vi run's posterior into the CSV `output` (one column per feature), which
/// must end in `.csv` and must not exist unless `force`.
pub fn sample(dir: &Path, n: usize, seed: u64, output: &Path, force: bool) -> Result<()> {
    let is_csv = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        bail!(
            "{}: sample writes the posterior draws of a vi run as CSV; name the output FILE.csv",
            output.display()
        );
    }
    super::sample::refuse_existing(output, force)?;
    let (draws, features) = sample_run(dir, n, seed)?;
    helmholtz::data::table::write_csv(output, &features, draws.as_ref(), force)?;
    out!("wrote {n} posterior draws to {}", output.display());
    Ok(())
}
