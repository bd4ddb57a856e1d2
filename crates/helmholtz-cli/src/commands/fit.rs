//! `helmholtz fit` and `helmholtz eval --entropy`: the models of the ELBO = entropy-sum identity
//! and the decomposition of any run's ELBO.

use std::path::Path;

use anyhow::{Context, Result, bail};
use helmholtz::run::fit::{FitConfig, is_fit_run, open_fit, resume_fit, run_fit_until};
use helmholtz::run::{Run, Split};

use super::{ExitCode, RunArgs};
use crate::out;
use crate::signals::Stop;

/// `helmholtz fit CONFIG` or `helmholtz fit --resume RUN`.
pub fn run(args: &RunArgs) -> Result<()> {
    let quiet = args.quiet;
    let progress = |line: &str| {
        if !quiet {
            crate::err!("{line}");
        }
    };
    let (new, dir) = args.new_or_resume("fit", FitConfig::load, |c| &c.name)?;
    if let Some(config) = &new {
        for note in helmholtz::run::fit::header_notes(config) {
            progress(&note);
        }
    }
    let stop = Stop::install(dir.clone())?;
    let (_, summary) = match &new {
        Some(config) => run_fit_until(config, &dir, progress, &stop.flag)
            .with_context(|| format!("fit {}", config.name))?,
        None => resume_fit(&dir, &args.overrides, progress, &stop.flag)
            .with_context(|| format!("resuming {}", dir.display()))?,
    };
    out!(
        "{} on {} points of dimension {}: {} steps ({}), {:.1} s",
        summary.kind,
        summary.points,
        summary.dim,
        summary.steps,
        summary.stopped,
        summary.fit_s
    );
    if stop.flag.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ExitCode(stop.exit_code()).into());
    }
    crate::out_part!("{}", summary.decomposition.table());
    out!("wrote {}", dir.display());
    Ok(())
}

/// Prints the ELBO of a run and its entropy decomposition: fit runs on their training points,
/// Helmholtz machines on `split` by Monte Carlo with `samples` q draws per point.
pub fn entropy(dir: &Path, split: Split, samples: usize, points: Option<usize>) -> Result<()> {
    if is_fit_run(dir) {
        let (config, model, x) = open_fit(dir)?;
        let decomposition = model.decompose(x.as_ref(), &config)?;
        crate::out!(
            "{} ({}), {} training points:",
            config.name,
            helmholtz::run::fit::kind_name(config.model.kind),
            x.ncols()
        );
        crate::out_part!("{}", decomposition.table());
        return Ok(());
    }
    if dir.join("checkpoints").exists() {
        let run = Run::open(dir)?;
        let sum = run.entropy_sum(split, samples, points)?;
        crate::out!(
            "{} ({} split, {} q samples per point): ELBO {:.4}",
            run.config.name,
            split.name(),
            samples,
            sum.elbo
        );
        crate::out!(
            "  mean entropy of q                 {:>12.4}",
            sum.posterior
        );
        crate::out!("  − prior entropy H[p(h_L)]         {:>12.4}", -sum.prior);
        for (l, h) in sum.intermediate.iter().enumerate() {
            crate::out!(
                "  − E_q H[p(h_{} | h_{})]             {:>12.4}",
                l + 1,
                l + 2,
                -h
            );
        }
        crate::out!(
            "  − E_q H[p(x | h_1)]               {:>12.4}",
            -sum.observable
        );
        match run.conditions().violation() {
            Some(notice) => crate::out!("  {notice}"),
            None => crate::out!(
                "  entropy sum {:.4}, gap {:.4} ({:.3e} of |ELBO|)",
                sum.entropy_sum(),
                sum.gap(),
                sum.relative_gap()
            ),
        }
        return Ok(());
    }
    bail!(
        "{} is neither a `helmholtz fit` nor a `helmholtz train` run (sparse-coding runs log their entropy terms in metrics.jsonl)",
        dir.display()
    )
}
