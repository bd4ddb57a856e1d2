//! The SNGD experiments' tables: each sweep runs every method on its task with the paper's
//! settings and returns the markdown table with the traces to draw. `sngd-nb` (SNGD with the
//! Gamma surrogate against BFGS, natural gradient with a Monte Carlo Fisher and GD over random
//! starts), `sngd-nb-mixture` (a Gamma-mixture surrogate against BFGS and GD), `sngd-skew-normal`
//! and `sngd-skew-t` (the Gaussian surrogate against Adam in two square-root parametrisations
//! and several learning rates), `sngd-copula` (the same on a Student-t copula) and `sngd-vi`
//! (skew-normal, mixture or skew-t VI on Bayesian logistic regression; the same against Adam and
//! the MCEF natural gradient).

use std::fmt::Write as _;

use helmholtz::error::{Error, Result};
use helmholtz::memory::{bytes_of, check_allocation};

use crate::sngd::copula::{copula_task, run_copula};
use crate::sngd::nb::{
    NbMethod, NbTrace, iterations_to, nb_data, nb_inits, nb_mixture_data, nb_mixture_inits,
    nb_optimum, run_nb, run_nb_mixture,
};
use crate::sngd::skew::{SkewMethod, run_skew_normal, run_skew_t, skew_normal_task, skew_t_task};
use crate::sngd::vi::{
    EVAL_DRAWS, TRAIN_DRAWS, logistic_task, run_mixture_vi, run_skew_t_vi, run_skew_vi,
};
use crate::sngd::{Progress, SkewSettings, SkewTrace};

/// Where progress lines go (the CLI prints them on stderr).
pub type Log<'a> = &'a mut dyn FnMut(&str);

/// Refuses, before any data is drawn, a task of `points` points of dimension `dim` whose data
/// (and a working copy), the 16 d × d matrices of a run (parameters, gradients, optimizer
/// moments, factors) and the per-iteration trace would not fit in memory.
fn check_task_memory(what: &str, dim: usize, points: usize, iterations: usize) -> Result<()> {
    let bytes = bytes_of(&[2, points, dim.max(1)], 8)
        .saturating_add(bytes_of(&[16, dim, dim], 8))
        .saturating_add(bytes_of(&[4, iterations], 8));
    check_allocation(what, bytes)
}

/// A formatting failure as a library error.
fn fmt_error(e: std::fmt::Error) -> Error {
    Error::Config(format!("formatting a table: {e}"))
}

/// The median (the upper one of an even count); NaN when empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        f64::NAN
    } else {
        values[values.len() / 2]
    }
}

/// Settings of `sngd-nb`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NbExperiment {
    /// Number of counts.
    pub n: usize,
    /// Random starting points.
    pub inits: usize,
    /// Iterations per run.
    pub iterations: usize,
    /// Seed of the data and the starts.
    pub seed: u64,
}

/// The table of an NB experiment and the traces of its first start (one per method), with the
/// NLL the plots measure against.
pub struct NbReport {
    /// The markdown table.
    pub table: String,
    /// The first start's traces.
    pub first: Vec<NbTrace>,
    /// The reference NLL of the plots (the optimum; for the mixture, just below the best found).
    pub reference: Option<f64>,
}

const METHODS: [NbMethod; 4] = [
    NbMethod::Sngd,
    NbMethod::Bfgs,
    NbMethod::NgdMonteCarlo,
    NbMethod::Gd,
];
const TOL: f64 = 1e-6;
/// Runs stop once this close to the optimum (well inside the reported tolerance).
const STOP: f64 = 1e-10;

/// `sngd-nb`: every method from every start, iterations to within 1e-6 of the optimum.
pub fn nb_experiment(settings: &NbExperiment) -> Result<NbReport> {
    check_task_memory(
        &format!("sngd-nb with n = {}", settings.n),
        1,
        settings.n,
        settings.iterations,
    )?;
    let counts = nb_data(settings.n, settings.seed)?;
    let optimum = nb_optimum(&counts)?;
    let (mean, var) = counts.moments();
    let inits = nb_inits(settings.inits, settings.seed);
    let mut table = format!(
        "# SNGD on the negative-binomial MLE task\n\n{} counts from NB(5, 1/11) (sample mean {mean:.3}, variance {var:.2}), optimal mean NLL {optimum:.10}, {} random starts, {} iterations, 1000-point grid line search for every method; a run stops once within 1e-10 of the optimum.\n\n| method | iterations to within 1e-6: median | worst | not reached | median seconds to reach | runs ended by an invalid step |\n|---|---|---|---|---|---|\n",
        settings.n, settings.inits, settings.iterations
    );
    let mut first = Vec::new();
    for method in METHODS {
        let mut reached = Vec::new();
        let mut times = Vec::new();
        let mut missed = 0;
        let mut ended = 0;
        for (k, &init) in inits.iter().enumerate() {
            let trace = run_nb(
                &counts,
                method,
                init,
                settings.iterations,
                Some(optimum + STOP),
            )?;
            ended += usize::from(trace.stopped.is_some());
            match iterations_to(&trace, optimum, TOL) {
                Some(i) => {
                    reached.push(i as f64);
                    times.push(trace.seconds[i]);
                }
                None => missed += 1,
            }
            if k == 0 {
                first.push(trace);
            }
        }
        let worst = reached.iter().copied().fold(f64::NAN, f64::max);
        writeln!(
            table,
            "| {} | {} | {} | {missed}/{} | {:.4} | {ended}/{} |",
            method.name(),
            median(&mut reached.clone()),
            worst,
            settings.inits,
            median(&mut times),
            settings.inits
        )
        .map_err(fmt_error)?;
    }
    Ok(NbReport {
        table,
        first,
        reference: Some(optimum),
    })
}

/// Settings of `sngd-nb-mixture`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NbMixtureExperiment {
    /// Mixture components.
    pub k: usize,
    /// Number of counts.
    pub n: usize,
    /// Random starting points.
    pub inits: usize,
    /// Iterations per run.
    pub iterations: usize,
    /// Seed of the data and the starts.
    pub seed: u64,
}

/// Within this of the lowest NLL any method found from the same start counts as reached.
const MIXTURE_TOL: f64 = 1e-3;

/// `sngd-nb-mixture`: SNGD, BFGS and GD from every start; progress lines go to `log`.
pub fn nb_mixture_experiment(settings: &NbMixtureExperiment, log: Log<'_>) -> Result<NbReport> {
    check_task_memory(
        &format!(
            "sngd-nb-mixture with k = {} and n = {}",
            settings.k, settings.n
        ),
        settings.k.saturating_mul(3),
        settings.n,
        settings.iterations,
    )?;
    let (counts, truth) = nb_mixture_data(settings.k, settings.n, settings.seed)?;
    let truth_nll = counts.mixture_nll(&truth.weights, &truth.r, &truth.s)?.0;
    let inits = nb_mixture_inits(&counts, settings.k, settings.inits, settings.seed);
    let methods = [NbMethod::Sngd, NbMethod::Bfgs, NbMethod::Gd];
    // traces[start][method]
    let mut traces = Vec::new();
    for (i, init) in inits.iter().enumerate() {
        let mut row = Vec::new();
        for method in methods {
            let trace = run_nb_mixture(&counts, method, init, settings.iterations)?;
            log(&format!(
                "start {i}, {}: NLL {:.6} after {} iterations ({:.1} s){}",
                method.name(),
                trace.values.last().copied().unwrap_or(f64::NAN),
                trace.values.len() - 1,
                trace.seconds.last().copied().unwrap_or(0.0),
                trace
                    .stopped
                    .as_deref()
                    .map(|why| format!(", stopped: {why}"))
                    .unwrap_or_default()
            ));
            row.push(trace);
        }
        traces.push(row);
    }
    let mut table = format!(
        "# SNGD on the negative-binomial mixture MLE task\n\n{} counts from a mixture of {} negative binomials (means U(5, 5000), variance 9 × mean, weights softmax(0.5 N(0, 1)); seed {}), NLL of the generating mixture {truth_nll:.6}; {} starts (equal weights, means U(0.1, 0.9) × max count, s ~ U(0.001, 0.02)), {} iterations, the 1000-point grid line search for every method. SNGD steps the mean parameters of a Gamma-mixture surrogate (a joint exponential family over component and count); BFGS and GD work in (w, ln r, logit s) with p = softmax(w). Columns: the median NLL over starts after 1, 10 and all iterations; iterations to the generating mixture's NLL; iterations to within {MIXTURE_TOL} of the lowest NLL any method found from the same start (runs may settle in different local optima).\n\n| method | NLL after 1 | after 10 | after {} | median iterations to the generating NLL | starts reaching it | median iterations to the start's best | starts reaching it | median seconds per iteration | runs ended early |\n|---|---|---|---|---|---|---|---|---|---|\n",
        settings.n,
        settings.k,
        settings.seed,
        settings.inits,
        settings.iterations,
        settings.iterations
    );
    for (m, method) in methods.iter().enumerate() {
        let at = |i: usize| -> f64 {
            let mut values: Vec<f64> = traces
                .iter()
                .map(|row| {
                    let v = &row[m].values;
                    v[i.min(v.len() - 1)]
                })
                .collect();
            median(&mut values)
        };
        let mut reached = Vec::new();
        let mut to_truth = Vec::new();
        let mut per_iteration = Vec::new();
        let mut ended = 0;
        for row in &traces {
            let best = row
                .iter()
                .flat_map(|t| t.values.iter().copied())
                .fold(f64::INFINITY, f64::min);
            let trace = &row[m];
            if let Some(i) = trace.values.iter().position(|&v| v <= best + MIXTURE_TOL) {
                reached.push(i as f64);
            }
            if let Some(i) = trace.values.iter().position(|&v| v <= truth_nll) {
                to_truth.push(i as f64);
            }
            per_iteration.push(
                trace.seconds.last().copied().unwrap_or(0.0)
                    / (trace.values.len() - 1).max(1) as f64,
            );
            ended += usize::from(trace.stopped.is_some());
        }
        let summary = |values: &mut Vec<f64>| {
            let count = values.len();
            let middle = if values.is_empty() {
                "—".to_string()
            } else {
                median(values).to_string()
            };
            format!("{middle} | {count}/{}", settings.inits)
        };
        writeln!(
            table,
            "| {} | {:.6} | {:.6} | {:.6} | {} | {} | {:.4} | {ended}/{} |",
            method.name(),
            at(1),
            at(10),
            at(settings.iterations),
            summary(&mut to_truth),
            summary(&mut reached),
            median(&mut per_iteration),
            settings.inits
        )
        .map_err(fmt_error)?;
    }
    let reference = traces.first().map(|first| {
        first
            .iter()
            .flat_map(|t| t.values.iter().copied())
            .fold(f64::INFINITY, f64::min)
            - 1e-6
    });
    Ok(NbReport {
        table,
        first: traces.into_iter().next().unwrap_or_default(),
        reference,
    })
}

/// Settings of the minibatch and VI sweeps: the task's size, the run length and the learning
/// rates each method is run with.
#[derive(Clone, Debug, PartialEq)]
pub struct SkewExperiment {
    /// Dimension d.
    pub dim: usize,
    /// Training points (VI: data points).
    pub train: usize,
    /// Held-out points (unused by VI).
    pub test: usize,
    /// Optimisation steps per method.
    pub iterations: usize,
    /// Minibatch size (unused by VI).
    pub batch: usize,
    /// Steps between evaluations.
    pub eval_every: usize,
    /// SNGD's step sizes (one run each).
    pub lr_theta: Vec<f64>,
    /// SNGD's Adam learning rate for λ.
    pub lr_lambda: f64,
    /// Learning rates of the Adam baselines (each parametrisation runs with each).
    pub lr_adam: Vec<f64>,
    /// Step sizes of the MCEF baseline (VI with a single skew-normal only).
    pub lr_mcef: Vec<f64>,
    /// Seed of the data, the start and the minibatches or draws.
    pub seed: u64,
}

/// The table of a sweep, its traces (SNGD runs first) and how to draw them.
pub struct SkewReport {
    /// The markdown table.
    pub table: String,
    /// (run label, trace) per run.
    pub traces: Vec<(String, SkewTrace)>,
    /// The plots' title.
    pub title: String,
    /// The plots' y label.
    pub y_label: String,
    /// The plots draw log10(objective − reference) (floored at 1e-3) when there is a reference
    /// (the generating distribution's held-out NLL), log10(objective) otherwise.
    pub reference: Option<f64>,
}

impl SkewExperiment {
    fn base(&self, batch: usize) -> SkewSettings {
        SkewSettings {
            iterations: self.iterations,
            batch,
            eval_every: self.eval_every,
            lr_theta: 0.0,
            lr_lambda: self.lr_lambda,
            lr_adam: 0.0,
            seed: self.seed,
        }
    }
}

/// The runs of one sweep: SNGD with each step size, then each Adam parametrisation with each
/// learning rate, then (VI only) MCEF with each step size.
fn skew_runs(
    base: SkewSettings,
    lr_theta: &[f64],
    lr_adam: &[f64],
    lr_mcef: &[f64],
) -> Vec<(String, SkewMethod, SkewSettings)> {
    let mut runs: Vec<_> = lr_theta
        .iter()
        .map(|&lr_theta| {
            (
                format!(
                    "{}, β = {lr_theta}, λ lr {}",
                    SkewMethod::Sngd.name(),
                    base.lr_lambda
                ),
                SkewMethod::Sngd,
                SkewSettings { lr_theta, ..base },
            )
        })
        .collect();
    for method in [SkewMethod::AdamCovariance, SkewMethod::AdamPrecision] {
        for &lr_adam in lr_adam {
            let name = format!("{}, lr {lr_adam}", method.name());
            runs.push((name, method, SkewSettings { lr_adam, ..base }));
        }
    }
    for &lr_theta in lr_mcef {
        let name = format!("{}, β = {lr_theta}", SkewMethod::Mcef.name());
        runs.push((name, SkewMethod::Mcef, SkewSettings { lr_theta, ..base }));
    }
    runs
}

/// Runs every configuration with progress to `log` (every 20th evaluation).
fn run_all(
    runs: &[(String, SkewMethod, SkewSettings)],
    what: &str,
    log: Log<'_>,
    mut run: impl FnMut(SkewMethod, &SkewSettings, Progress<'_>) -> Result<SkewTrace>,
) -> Result<Vec<(String, SkewTrace)>> {
    let mut traces = Vec::new();
    for (name, method, settings) in runs {
        log(&format!("{name}:"));
        let every = settings.eval_every * 20;
        let trace = run(*method, settings, &mut |step, value| {
            if step % every == 0 {
                log(&format!("  step {step:>6}  {what} {value:.4}"));
            }
        })?;
        if let Some(why) = &trace.stopped {
            log(&format!("  stopped: {why}"));
        }
        traces.push((name.clone(), trace));
    }
    Ok(traces)
}

/// Training seconds at the evaluation after `steps` steps.
fn seconds_at(trace: &SkewTrace, steps: usize) -> f64 {
    let k = trace
        .iterations
        .iter()
        .position(|&i| i == steps)
        .unwrap_or(0);
    trace.seconds[k]
}

fn lowest(runs: &[(String, SkewTrace)]) -> Option<&(String, SkewTrace)> {
    runs.iter()
        .min_by(|a, b| a.1.best().1.total_cmp(&b.1.best().1))
}

/// The tables every skew-normal experiment writes: each run's best objective, then every SNGD
/// run against the best baseline run, then the best SNGD run against every baseline run. The
/// SNGD runs come first in `traces`.
fn skew_tables(
    table: &mut String,
    traces: &[(String, SkewTrace)],
    sngd_count: usize,
    what: &str,
) -> std::fmt::Result {
    writeln!(
        table,
        "| method | best {what} | steps to it | training seconds to it | seconds per step | stopped |\n|---|---|---|---|---|---|"
    )?;
    for (name, trace) in traces {
        let (steps, best) = trace.best();
        let total_steps = *trace.iterations.last().unwrap_or(&0);
        writeln!(
            table,
            "| {name} | {best:.4} | {steps} | {:.2} | {:.4} | {} |",
            seconds_at(trace, steps),
            trace.seconds.last().copied().unwrap_or(0.0) / total_steps.max(1) as f64,
            trace.stopped.as_deref().unwrap_or("no")
        )?;
    }
    let (sngd_runs, baselines) = traces.split_at(sngd_count);
    if let Some((base_name, base)) = lowest(baselines) {
        let (steps, best) = base.best();
        writeln!(
            table,
            "\nThe best baseline run, {base_name}, reaches {best:.4} at step {steps} ({:.2} training seconds).\n\n| SNGD run | steps to reach it | fraction of the baseline's steps | training seconds |\n|---|---|---|---|",
            seconds_at(base, steps)
        )?;
        for (name, sngd) in sngd_runs {
            match sngd.reaches(best) {
                Some((n, seconds)) => writeln!(
                    table,
                    "| {name} | {n} | {:.3} | {seconds:.2} |",
                    n as f64 / steps.max(1) as f64
                )?,
                None => writeln!(table, "| {name} | not reached | — | — |")?,
            }
        }
    }
    if let Some((sngd_name, sngd)) = lowest(sngd_runs) {
        writeln!(
            table,
            "\nThe best SNGD run, {sngd_name}, against each baseline run's best:\n\n| baseline run | its steps to its best | SNGD's steps | fraction | its training seconds | SNGD's |\n|---|---|---|---|---|---|"
        )?;
        for (name, other) in baselines {
            let (steps, best) = other.best();
            match sngd.reaches(best) {
                Some((n, seconds)) => writeln!(
                    table,
                    "| {name} | {steps} | {n} | {:.3} | {:.2} | {seconds:.2} |",
                    n as f64 / steps.max(1) as f64,
                    seconds_at(other, steps)
                )?,
                None => writeln!(
                    table,
                    "| {name} | {steps} | not reached | — | {:.2} | — |",
                    seconds_at(other, steps)
                )?,
            }
        }
    }
    Ok(())
}

/// `sngd-skew-normal`, or `sngd-skew-t` when `skew_t` (data with ν = 10, ν fitted from 50 as
/// λ = ln(ν − 2) by Adam beside η): SNGD with each step size, Adam in both roots with each
/// learning rate.
pub fn skew_experiment(args: &SkewExperiment, skew_t: bool, log: Log<'_>) -> Result<SkewReport> {
    check_task_memory(
        &format!(
            "the {} task with d = {}, {} training and {} held-out points",
            if skew_t { "skew-t" } else { "skew-normal" },
            args.dim,
            args.train,
            args.test
        ),
        args.dim,
        args.train.saturating_add(args.test),
        args.iterations,
    )?;
    let base = args.base(args.batch);
    let runs = skew_runs(base, &args.lr_theta, &args.lr_adam, &[]);
    let (traces, truth_nll, family) = if skew_t {
        let task = skew_t_task(args.dim, args.train, args.test, args.seed)?;
        let traces = run_all(&runs, "held-out NLL", log, |method, settings, progress| {
            run_skew_t(&task, method, settings, progress)
        })?;
        (traces, task.truth.nll(task.test.as_ref())?, "skew-t")
    } else {
        let task = skew_normal_task(args.dim, args.train, args.test, args.seed)?;
        let traces = run_all(&runs, "held-out NLL", log, |method, settings, progress| {
            run_skew_normal(&task, method, settings, progress)
        })?;
        (traces, task.truth.nll(task.test.as_ref())?, "skew-normal")
    };
    let (data, lambda) = if skew_t {
        (
            "ST(ξ, Ω, η, ν = 10)",
            "λ = (η, ln(ν − 2)) by Adam (ν starts at 50)",
        )
    } else {
        ("SN(ξ, Ω, η)", "λ = η by Adam")
    };
    let mut table = format!(
        "# SNGD on the multivariate {family} MLE task\n\nd = {}, {} training and {} held-out points from {data} with Ω = WᵀW/d + 1e-4 I (seed {}), minibatches of {} drawn with replacement, {} steps, held-out NLL every {} steps; start ξ, η ~ N(0, 0.01²), Ω = I. SNGD steps the MVN(ξ, Ω) surrogate's mean parameters with validity backtracking and {lambda}; the baselines are Adam on all parameters with Ω = WᵀW or Ω⁻¹ = WᵀW. Held-out NLL of the generating distribution: {truth_nll:.4}.\n\n",
        args.dim, args.train, args.test, args.seed, args.batch, args.iterations, args.eval_every
    );
    skew_tables(&mut table, &traces, args.lr_theta.len(), "held-out NLL").map_err(fmt_error)?;
    Ok(SkewReport {
        table,
        traces,
        title: format!("{family} MLE, d = {}", args.dim),
        y_label: format!("log10(held-out NLL − NLL of the generating {family})"),
        reference: Some(truth_nll),
    })
}

/// `sngd-vi`: SNGD, Adam in both roots and (one skew-normal only) MCEF with a skew-normal
/// family, a mixture of `components` skew-normals, or a skew-t when `skew_t`; `args.train` is
/// the number of data points.
pub fn vi_experiment(
    args: &SkewExperiment,
    components: usize,
    skew_t: bool,
    log: Log<'_>,
) -> Result<SkewReport> {
    if components == 0 {
        return Err(Error::Config("--components must be at least 1".into()));
    }
    check_task_memory(
        &format!(
            "VI with d = {}, n = {} and {components} components",
            args.dim, args.train
        ),
        args.dim,
        args.train
            .saturating_add(components.saturating_mul(args.dim))
            .saturating_add(TRAIN_DRAWS),
        args.iterations,
    )?;
    let mixture = components > 1;
    let model = logistic_task(args.dim, args.train, args.seed)?;
    let base = args.base(TRAIN_DRAWS);
    let mcef: &[f64] = if mixture || skew_t {
        &[]
    } else {
        &args.lr_mcef
    };
    let runs = skew_runs(base, &args.lr_theta, &args.lr_adam, mcef);
    let traces = run_all(&runs, "negative ELBO", log, |method, settings, progress| {
        if skew_t {
            run_skew_t_vi(&model, method, settings, progress)
        } else if mixture {
            run_mixture_vi(&model, method, components, settings, progress)
        } else {
            run_skew_vi(&model, method, settings, progress)
        }
    })?;
    let family = if skew_t {
        "a skew-t ST(ξ, Ω, η, ν) (SNGD: the MVN(ξ, Ω) surrogate's natural parameters stepped with ∇ in its mean parameters, λ = (η, ln(ν − 2)) by Adam, ν from 50; baselines Adam on (ξ, W, η, ln(ν − 2)) with Ω = WᵀW or Ω⁻¹ = WᵀW; draws ξ + Lε/√w with w a Gamma quantile, so ν has an implicit reparameterisation gradient; ln q and the prior at the draws)".to_string()
    } else if mixture {
        format!(
            "a mixture of {components} skew-normals (SNGD: the mixture of MVN(ξ_k, Ω_k) as one joint exponential family over (component, z), natural parameters stepped with the gradient in (p_k, p_k ξ_k, p_k(Ω_k + ξ_kξ_kᵀ)), weights clipped at 1e-3, λ = η_k by Adam; baseline Adam on (softmax logits, ξ_k, W_k, η_k); draws per component weighted by p_k, ln q at the draws; start p_k = 1/K)"
        )
    } else {
        "a single skew-normal (SNGD: the MVN(ξ, Ω) surrogate's natural parameters stepped with ∇ in its mean parameters, λ = η by Adam; baselines Adam on (ξ, W, η) with Ω = WᵀW or Ω⁻¹ = WᵀW, and the MCEF natural gradient of Lin, Khan and Schmidt's joint exponential family of (z, |w|); prior term and entropy in closed form)".to_string()
    };
    let mut table = format!(
        "# SNGD for skew-normal VI on Bayesian logistic regression\n\nd = {}, n = {} (x ~ N(0, I), y ~ Bernoulli(σ((2x − 1)ᵀz)), z ~ N(0, I), seed {}), prior N(0, I), {} steps with {TRAIN_DRAWS} reparameterised draws each, the negative ELBO with {EVAL_DRAWS} draws (the same for every method) every {} steps. Start ξ, η ~ N(0, 0.01²), Ω = 0.01 I; validity backtracking for SNGD. Variational family: {family}.\n\n",
        args.dim, args.train, args.seed, args.iterations, args.eval_every
    );
    skew_tables(&mut table, &traces, args.lr_theta.len(), "negative ELBO").map_err(fmt_error)?;
    let kind = if skew_t {
        "skew-t"
    } else if mixture {
        "skew-normal mixture"
    } else {
        "skew-normal"
    };
    Ok(SkewReport {
        table,
        traces,
        title: format!("{kind} VI, logistic regression, d = {}", args.dim),
        y_label: "log10(negative ELBO)".into(),
        reference: None,
    })
}

/// `sngd-copula`: SNGD with each step size and Adam in both roots with each learning rate on
/// the Student-t copula task.
pub fn copula_experiment(args: &SkewExperiment, log: Log<'_>) -> Result<SkewReport> {
    check_task_memory(
        &format!(
            "the copula task with d = {}, {} training and {} held-out points",
            args.dim, args.train, args.test
        ),
        args.dim,
        args.train.saturating_add(args.test),
        args.iterations,
    )?;
    let task = copula_task(args.dim, args.train, args.test, args.seed)?;
    let truth_nll = task.truth.nll(task.test.as_ref())?;
    let base = args.base(args.batch);
    let runs = skew_runs(base, &args.lr_theta, &args.lr_adam, &[]);
    let traces = run_all(&runs, "held-out NLL", log, |method, settings, progress| {
        run_copula(&task, method, settings, progress)
    })?;
    let mut table = format!(
        "# SNGD on the Student-t copula MLE task\n\nd = {}, {} training and {} held-out points from the t copula C(R, ν = 5) with R = cov2corr(WᵀW/d + 1e-4 I) (seed {}), minibatches of {} drawn with replacement, {} steps, held-out NLL every {} steps; start R = cov2corr(I + WᵀW) with W ~ N(0, 0.01²), ν = 50. SNGD steps the mean parameter Σ of a zero-mean MVN(0, Σ) surrogate with R = cov2corr(Σ) (validity backtracking) and λ = ln(ν − 2) by Adam; the baselines are Adam on (W, λ) with Σ = WᵀW or Σ⁻¹ = WᵀW. Held-out NLL of the generating copula: {truth_nll:.4}.\n\n",
        args.dim, args.train, args.test, args.seed, args.batch, args.iterations, args.eval_every
    );
    skew_tables(&mut table, &traces, args.lr_theta.len(), "held-out NLL").map_err(fmt_error)?;
    Ok(SkewReport {
        table,
        traces,
        title: format!("Student-t copula MLE, d = {}", args.dim),
        y_label: "log10(held-out NLL − NLL of the generating copula)".into(),
        reference: Some(truth_nll),
    })
}
