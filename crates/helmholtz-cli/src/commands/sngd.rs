//! The SNGD experiments' commands: `helmholtz experiment sngd-nb`, `sngd-nb-mixture`,
//! `sngd-skew-normal`, `sngd-skew-t`, `sngd-copula` and `sngd-vi`. Each parses its arguments,
//! runs the sweep of `helmholtz_experiments::sngd::tables`, and writes the markdown table and
//! plots of the objective against steps and time.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use helmholtz_experiments::sngd::nb::NbTrace;
use helmholtz_experiments::sngd::tables::{
    NbExperiment, NbMixtureExperiment, NbReport, SkewExperiment, SkewReport, copula_experiment,
    nb_experiment, nb_mixture_experiment, skew_experiment, vi_experiment,
};

use crate::plots::{Series, line_chart};

/// Settings of `helmholtz experiment sngd-nb`.
#[derive(clap::Args)]
pub struct NbSettings {
    /// Output directory.
    #[arg(long, default_value = "runs/sngd-nb")]
    pub out: PathBuf,
    /// Number of counts.
    #[arg(long, default_value_t = 1000, value_parser = super::count::<usize>)]
    pub n: usize,
    /// Random starting points.
    #[arg(long, default_value_t = 20, value_parser = super::count::<usize>)]
    pub inits: usize,
    /// Iterations per run.
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub iterations: usize,
    /// Seed of the data and the starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run_nb_experiment(settings: NbSettings) -> Result<()> {
    super::output_dir(&settings.out)?;
    let report = nb_experiment(&NbExperiment {
        n: settings.n,
        inits: settings.inits,
        iterations: settings.iterations,
        seed: settings.seed,
    })?;
    write_nb_outputs(&settings.out, &report, "negative binomial MLE, first start")
}

/// NLL − `reference` (log10) against iterations and against seconds, one series per trace.
fn nb_plots(out: &Path, traces: &[NbTrace], title: &str, reference: f64) -> Result<()> {
    let gap = |v: f64| (v - reference).max(1e-16).log10();
    for (x_label, file, by_time) in [
        ("iteration", "nll-by-iteration.png", false),
        ("seconds", "nll-by-time.png", true),
    ] {
        let series: Vec<Series> = traces
            .iter()
            .map(|trace| Series {
                label: trace.method.name().into(),
                points: trace
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (if by_time { trace.seconds[i] } else { i as f64 }, gap(v)))
                    .collect(),
            })
            .collect();
        line_chart(
            &series,
            title,
            x_label,
            &format!("log10(NLL − {reference:.6})"),
            &out.join(file),
        )?;
    }
    Ok(())
}

/// The plots of the first start (when there is one), then summary.md; the table is printed.
fn write_nb_outputs(out: &Path, report: &NbReport, title: &str) -> Result<()> {
    if let Some(reference) = report.reference {
        nb_plots(out, &report.first, title, reference)?;
    }
    let path = out.join("summary.md");
    std::fs::write(&path, &report.table).with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{}", report.table);
    crate::out!("wrote {}", out.display());
    Ok(())
}

/// Settings of `helmholtz experiment sngd-nb-mixture`.
#[derive(clap::Args)]
pub struct NbMixtureSettings {
    /// Output directory.
    #[arg(long, default_value = "runs/sngd-nb-mixture")]
    pub out: PathBuf,
    /// Mixture components.
    #[arg(long, default_value_t = 10, value_parser = super::count::<usize>)]
    pub k: usize,
    /// Number of counts.
    #[arg(long, default_value_t = 1000, value_parser = super::count::<usize>)]
    pub n: usize,
    /// Random starting points.
    #[arg(long, default_value_t = 5, value_parser = super::count::<usize>)]
    pub inits: usize,
    /// Iterations per run.
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub iterations: usize,
    /// Seed of the data and the starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run_nb_mixture_experiment(settings: NbMixtureSettings) -> Result<()> {
    super::output_dir(&settings.out)?;
    let report = nb_mixture_experiment(
        &NbMixtureExperiment {
            k: settings.k,
            n: settings.n,
            inits: settings.inits,
            iterations: settings.iterations,
            seed: settings.seed,
        },
        &mut |line| crate::err!("{line}"),
    )?;
    write_nb_outputs(
        &settings.out,
        &report,
        "negative-binomial mixture MLE, first start",
    )
}

/// Settings of `helmholtz experiment sngd-skew-normal`.
#[derive(clap::Args)]
pub struct SkewSettingsArgs {
    /// Output directory (default runs/sngd-skew-normal or runs/sngd-skew-t).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Dimension d (the paper: 1000).
    #[arg(long, default_value_t = 200, value_parser = super::count::<usize>)]
    pub dim: usize,
    /// Training points.
    #[arg(long, default_value_t = 9000, value_parser = super::count::<usize>)]
    pub train: usize,
    /// Held-out points.
    #[arg(long, default_value_t = 1000, value_parser = super::count::<usize>)]
    pub test: usize,
    /// Optimisation steps per method.
    #[arg(long, default_value_t = 1000, value_parser = super::count::<usize>)]
    pub iterations: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub batch: usize,
    /// Steps between held-out evaluations.
    #[arg(long, default_value_t = 10, value_parser = super::count::<usize>)]
    pub eval_every: usize,
    /// SNGD's step sizes in the surrogate's mean parameters (one run each).
    #[arg(long, value_delimiter = ',', default_values_t = [0.1, 0.03, 0.01])]
    pub lr_theta: Vec<f64>,
    /// SNGD's Adam learning rate for the auxiliary λ = η.
    #[arg(long, default_value_t = 0.01)]
    pub lr_lambda: f64,
    /// Learning rates of the Adam baselines (each parametrisation runs with each; the best run
    /// is the one SNGD is held against).
    #[arg(long, value_delimiter = ',', default_values_t = [0.001, 0.003, 0.01, 0.03])]
    pub lr_adam: Vec<f64>,
    /// Seed of the data, the start and the minibatches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Plots of the objective (log10, less the report's reference when it has one) against steps
/// and against training seconds, the traces as JSON and the table as summary.md.
fn write_skew_outputs(out: &Path, report: &SkewReport) -> Result<()> {
    let transform = |v: f64| match report.reference {
        Some(reference) => (v - reference).max(1e-3).log10(),
        None => v.log10(),
    };
    for (x_label, file, by_time) in [
        ("step", "objective-by-iteration.png", false),
        ("training seconds", "objective-by-time.png", true),
    ] {
        let series: Vec<Series> = report
            .traces
            .iter()
            .map(|(name, trace)| Series {
                label: name.clone(),
                points: trace
                    .iterations
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| {
                        let x = if by_time { trace.seconds[k] } else { i as f64 };
                        (x, transform(trace.objective[k]))
                    })
                    .collect(),
            })
            .collect();
        line_chart(
            &series,
            &report.title,
            x_label,
            &report.y_label,
            &out.join(file),
        )?;
    }
    let json = serde_json::to_string(
        &report
            .traces
            .iter()
            .map(|(name, trace)| serde_json::json!({ "label": name, "trace": trace }))
            .collect::<Vec<_>>(),
    )?;
    std::fs::write(out.join("traces.json"), json)?;
    let path = out.join("summary.md");
    std::fs::write(&path, &report.table).with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{}", report.table);
    crate::out!("wrote {}", out.display());
    Ok(())
}

/// `sngd-skew-normal`, or `sngd-skew-t` when `skew_t`.
pub fn run_skew_experiment(args: SkewSettingsArgs, skew_t: bool) -> Result<()> {
    let kind = if skew_t {
        "sngd-skew-t"
    } else {
        "sngd-skew-normal"
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(kind));
    super::output_dir(&out)?;
    let report = skew_experiment(
        &SkewExperiment {
            dim: args.dim,
            train: args.train,
            test: args.test,
            iterations: args.iterations,
            batch: args.batch,
            eval_every: args.eval_every,
            lr_theta: args.lr_theta,
            lr_lambda: args.lr_lambda,
            lr_adam: args.lr_adam,
            lr_mcef: Vec::new(),
            seed: args.seed,
        },
        skew_t,
        &mut |line| crate::err!("{line}"),
    )?;
    write_skew_outputs(&out, &report)
}

/// Settings of `helmholtz experiment sngd-vi`.
#[derive(clap::Args)]
pub struct ViSettingsArgs {
    /// Output directory.
    #[arg(long, default_value = "runs/sngd-vi")]
    pub out: PathBuf,
    /// Dimension d of the regression weights (the authors: 100).
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub dim: usize,
    /// Data points (the authors: 100).
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub n: usize,
    /// Optimisation steps per method (the authors: 1000).
    #[arg(long, default_value_t = 1000, value_parser = super::count::<usize>)]
    pub iterations: usize,
    /// Steps between evaluations of the negative ELBO (100 draws).
    #[arg(long, default_value_t = 10, value_parser = super::count::<usize>)]
    pub eval_every: usize,
    /// SNGD's step sizes in the surrogate's natural parameters (one run each).
    #[arg(long, value_delimiter = ',', default_values_t = [0.1, 0.03, 0.01])]
    pub lr_theta: Vec<f64>,
    /// SNGD's Adam learning rate for the auxiliary λ = η.
    #[arg(long, default_value_t = 0.01)]
    pub lr_lambda: f64,
    /// Learning rates of the Adam baselines (each parametrisation runs with each).
    #[arg(long, value_delimiter = ',', default_values_t = [0.001, 0.003, 0.01, 0.03])]
    pub lr_adam: Vec<f64>,
    /// Step sizes of the MCEF natural-gradient baseline (one run each).
    #[arg(long, value_delimiter = ',', default_values_t = [0.1, 0.03, 0.01])]
    pub lr_mcef: Vec<f64>,
    /// Components of the variational family: 1 is a single skew-normal (baselines Adam and
    /// MCEF); more is a skew-normal mixture (SNGD through a mixture of Gaussians as one joint
    /// exponential family, baseline Adam).
    #[arg(long, default_value_t = 1, value_parser = super::count::<usize>)]
    pub components: usize,
    /// Use a skew-t variational family (ν fitted from 50 by Adam; baseline Adam).
    #[arg(long, conflicts_with = "components")]
    pub skew_t: bool,
    /// Seed of the data, the start and the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run_vi_experiment(args: ViSettingsArgs) -> Result<()> {
    if args.components == 0 {
        anyhow::bail!("--components must be at least 1");
    }
    super::output_dir(&args.out)?;
    let report = vi_experiment(
        &SkewExperiment {
            dim: args.dim,
            train: args.n,
            test: 0,
            iterations: args.iterations,
            batch: 0,
            eval_every: args.eval_every,
            lr_theta: args.lr_theta,
            lr_lambda: args.lr_lambda,
            lr_adam: args.lr_adam,
            lr_mcef: args.lr_mcef,
            seed: args.seed,
        },
        args.components,
        args.skew_t,
        &mut |line| crate::err!("{line}"),
    )?;
    write_skew_outputs(&args.out, &report)
}

/// Settings of `helmholtz experiment sngd-copula`.
#[derive(clap::Args)]
pub struct CopulaSettingsArgs {
    /// Output directory.
    #[arg(long, default_value = "runs/sngd-copula")]
    pub out: PathBuf,
    /// Dimension d (the authors: 100).
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub dim: usize,
    /// Training points (the authors: 900).
    #[arg(long, default_value_t = 900, value_parser = super::count::<usize>)]
    pub train: usize,
    /// Held-out points (the authors: 100).
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub test: usize,
    /// Optimisation steps per method.
    #[arg(long, default_value_t = 1000, value_parser = super::count::<usize>)]
    pub iterations: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub batch: usize,
    /// Steps between held-out evaluations.
    #[arg(long, default_value_t = 10, value_parser = super::count::<usize>)]
    pub eval_every: usize,
    /// SNGD's step sizes in the surrogate's mean parameter Σ (one run each).
    #[arg(long, value_delimiter = ',', default_values_t = [0.1, 0.03])]
    pub lr_theta: Vec<f64>,
    /// SNGD's Adam learning rate for λ = ln(ν − 2).
    #[arg(long, default_value_t = 0.03)]
    pub lr_lambda: f64,
    /// Learning rates of the Adam baselines (each parametrisation runs with each).
    #[arg(long, value_delimiter = ',', default_values_t = [0.003, 0.01, 0.03])]
    pub lr_adam: Vec<f64>,
    /// Seed of the data, the start and the minibatches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run_copula_experiment(args: CopulaSettingsArgs) -> Result<()> {
    super::output_dir(&args.out)?;
    let report = copula_experiment(
        &SkewExperiment {
            dim: args.dim,
            train: args.train,
            test: args.test,
            iterations: args.iterations,
            batch: args.batch,
            eval_every: args.eval_every,
            lr_theta: args.lr_theta,
            lr_lambda: args.lr_lambda,
            lr_adam: args.lr_adam,
            lr_mcef: Vec::new(),
            seed: args.seed,
        },
        &mut |line| crate::err!("{line}"),
    )?;
    write_skew_outputs(&args.out, &report)
}
