//! `helmholtz mle`: fit a distribution to a data file (negative binomial, NB mixture,
//! skew-normal, skew-t, t copula) by SNGD or a baseline; `helmholtz eval RUN --data FILE` and
//! `helmholtz sample RUN` on such a run.

use std::path::Path;

use anyhow::{Context, Result, bail};
use helmholtz::run::mle::{MleConfig, eval_file, resume_mle, run_mle, sample_run};
use helmholtz::run::{METRICS_FILE, read_metrics};

use super::{ExitCode, RunArgs};
use crate::plots::{Series, line_chart};
use crate::signals::Stop;
use crate::{err, out, out_part};

/// `helmholtz mle CONFIG` or `helmholtz mle --resume RUN`.
pub fn run(args: &RunArgs) -> Result<()> {
    let quiet = args.quiet;
    let progress = |line: &str| {
        if !quiet {
            err!("{line}");
        }
    };
    let (new, dir) = args.new_or_resume("mle", MleConfig::load, |c| &c.name)?;
    let stop = Stop::install(dir.clone())?;
    let outcome = match &new {
        Some(config) => run_mle(config, &dir, progress, &stop.flag)
            .with_context(|| format!("mle {}", config.name))?,
        None => resume_mle(&dir, &args.overrides, progress, &stop.flag)
            .with_context(|| format!("resuming {}", dir.display()))?,
    };
    plots(&dir)?;
    if outcome.interrupted {
        out!("{}", outcome.summary.ended);
        return Err(ExitCode(stop.exit_code()).into());
    }
    if !quiet {
        out_part!("{}", outcome.text);
        out!("wrote {}", dir.display());
    }
    Ok(())
}

/// The NLLs of `metrics.jsonl` against steps and against training seconds.
fn plots(dir: &Path) -> Result<()> {
    let records = read_metrics(&dir.join(METRICS_FILE))?;
    for (x_key, x_label, file) in [
        ("step", "step", "nll-by-step.png"),
        ("seconds", "training seconds", "nll-by-seconds.png"),
    ] {
        let series: Vec<Series> = [("train_nll", "train NLL"), ("test_nll", "test NLL")]
            .iter()
            .map(|(key, label)| Series {
                label: label.to_string(),
                points: records
                    .iter()
                    .filter_map(|r| Some((r.get(x_key)?.as_f64()?, r.get(*key)?.as_f64()?)))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        line_chart(
            &series,
            "mean NLL per row",
            x_label,
            "nats",
            &dir.join(file),
        )?;
    }
    Ok(())
}

/// `helmholtz eval RUN --data FILE` on an mle run: the mean and total NLL of the file's rows.
pub fn eval(dir: &Path, file: &Path) -> Result<()> {
    let nll = eval_file(dir, file)?;
    for note in &nll.notes {
        err!("{note}");
    }
    out!(
        "{}: {} rows, NLL {:.6} nats per row (total {:.4} nats)",
        file.display(),
        nll.rows,
        nll.mean,
        nll.total
    );
    Ok(())
}

/// `helmholtz sample RUN --n N -o FILE` on an mle run: draws as CSV or NPY, never over an
/// existing file unless `force`.
pub fn sample(dir: &Path, n: usize, seed: u64, output: &Path, force: bool) -> Result<()> {
    let extension = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let npy = match extension.as_deref() {
        Some("csv") => false,
        Some("npy") => true,
        _ => bail!(
            "{}: sample writes the draws of an mle run as .csv or .npy; name the output FILE.csv or FILE.npy",
            output.display()
        ),
    };
    super::sample::refuse_existing(output, force)?;
    let (draws, columns) = sample_run(dir, n, seed)?;
    if npy {
        helmholtz::data::npy::write_npy(output, draws.as_ref(), force)?;
    } else {
        helmholtz::data::table::write_csv(output, &columns, draws.as_ref(), force)?;
    }
    out!("wrote {} draws to {}", n, output.display());
    Ok(())
}
