//! The bars experiment (entropy.md §2.6, §3): a full-batch L-BFGS fit of the entropy objective
//! on bars, the ground-truth reference (the generating fields with re-optimised posteriors)
//! and the recovery score.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use faer::Mat;
use helmholtz::data::synthetic::{Bars, bars, match_fields};
use helmholtz::models::sparse_coding::SparseCoding;
use helmholtz::objectives::sparse_coding::EntropyTerms;
use helmholtz::run::{METRICS_FILE, SUMMARY_FILE};
use helmholtz::train::sparse_coding::{FitReport, Target, fit_lbfgs, fit_lbfgs_scaled};
use helmholtz::{Error, Result};
use serde::Serialize;

use super::SparseConfig;
use super::files::{create_run_dir, io_error, write_model};

/// The outcome of one bars run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BarsOutcome {
    /// The seed of data and initialisation.
    pub seed: u64,
    /// L^H per data point at the end.
    pub objective: f64,
    /// L^H with the generating fields as dictionary and the posteriors re-optimised.
    pub ground_truth: f64,
    /// Best |cosine| of each generating field with a distinct learned field.
    pub scores: Vec<f64>,
    /// Whether every field is matched with |cosine| ≥ 0.95.
    pub recovered: bool,
    /// L-BFGS iterations and objective evaluations.
    pub iterations: u64,
    /// Objective evaluations (each with its gradient).
    pub evaluations: u64,
    /// Why L-BFGS stopped.
    pub stopped: String,
    /// Wall-clock seconds of the fit (the ground-truth reference not included).
    pub fit_s: f64,
    /// Mean posterior entropy, prior entropy and noise entropy at the end.
    pub entropies: [f64; 3],
    /// The closed-form λ and σ² at the end.
    pub lambda: Vec<f64>,
    /// σ².
    pub sigma2: f64,
}

impl BarsOutcome {
    /// The generating fields recovered (|cosine| ≥ [`RECOVERY_COSINE`]).
    pub fn matched(&self) -> usize {
        self.scores
            .iter()
            .filter(|&&s| s >= RECOVERY_COSINE)
            .count()
    }

    /// The smallest |cosine| of a generating field with its learned field.
    pub fn min_cosine(&self) -> f64 {
        self.scores.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// Cosine at or above which a generating field counts as recovered.
pub const RECOVERY_COSINE: f64 = 0.95;

/// Trains on bars drawn with `seed` (data and initialisation), computes the ground-truth
/// reference and writes the run directory `dir`. `progress(iteration, objective)` follows the fit.
pub fn run_bars(
    config: &SparseConfig,
    seed: u64,
    dir: &Path,
    progress: impl FnMut(u64, f64),
) -> Result<(SparseCoding, Bars, BarsOutcome)> {
    let io = io_error;
    let data = bars(config.data.side, config.data.n, config.data.noise, seed);
    let _run = create_run_dir(config, seed, dir)?;
    let (d, n) = (data.x.nrows(), data.x.ncols());
    let FullBatch {
        model,
        report,
        trace,
        fit_s,
    } = fit_full_batch(config, seed, data.x.as_ref(), progress)?;

    let mut truth = model.clone();
    let mut fields = Mat::zeros(d, config.model.n_latents);
    for c in 0..data.fields.ncols().min(config.model.n_latents) {
        for r in 0..d {
            fields[(r, c)] = data.fields[(r, c)];
        }
    }
    truth.set_dictionary(&fields)?;
    // The posteriors restart from the unit Gaussians at zero, as in the authors' reference.
    let offset = d * config.model.n_latents;
    let fresh = SparseCoding::new(
        d,
        config.model.n_latents,
        n,
        config.model.posterior.per_point(),
        seed,
    )?
    .with_scale_param(config.model.scale_param);
    truth.theta[offset..].copy_from_slice(&fresh.theta[offset..]);
    let reference = fit_lbfgs(
        &mut truth,
        data.x.as_ref(),
        1.0,
        Target::Posteriors,
        &config.train.lbfgs(),
        |_, _| {},
    )?;

    let scores = match_fields(model.dictionary().as_ref(), data.fields.as_ref());
    let outcome = outcome(
        seed,
        &report.terms,
        reference.terms.objective(1.0),
        scores,
        fit_s,
        &report,
    );
    write_metrics(dir, &trace)?;
    write_model(dir, &model, &report.terms)?;
    let summary =
        serde_json::to_string_pretty(&outcome).map_err(|e| Error::Config(e.to_string()))?;
    let summary_path = dir.join(SUMMARY_FILE);
    std::fs::write(&summary_path, summary).map_err(io(&summary_path))?;
    Ok((model, data, outcome))
}

fn outcome(
    seed: u64,
    terms: &EntropyTerms,
    ground_truth: f64,
    scores: Vec<f64>,
    fit_s: f64,
    report: &FitReport,
) -> BarsOutcome {
    BarsOutcome {
        seed,
        objective: terms.objective(1.0),
        ground_truth,
        recovered: scores.iter().all(|&s| s >= RECOVERY_COSINE),
        scores,
        iterations: report.iterations,
        evaluations: report.evaluations,
        stopped: report.stopped.clone(),
        fit_s,
        entropies: [terms.posterior, terms.prior, terms.noise],
        lambda: terms.lambda.clone(),
        sigma2: terms.sigma2,
    }
}

/// A full-batch L-BFGS fit of the entropy objective: the model, the report, the objective per
/// iteration and the seconds it took.
pub(super) struct FullBatch {
    pub(super) model: SparseCoding,
    pub(super) report: FitReport,
    pub(super) trace: Vec<(u64, f64)>,
    pub(super) fit_s: f64,
}

/// Maximises the entropy objective over the dictionary and every posterior of the columns of
/// `x` by full-batch L-BFGS, from the model of `config` drawn with `seed` (the bars fit, and the
/// points runs of `train.method = "lbfgs"`).
pub(super) fn fit_full_batch(
    config: &SparseConfig,
    seed: u64,
    x: faer::MatRef<'_, f64>,
    mut progress: impl FnMut(u64, f64),
) -> Result<FullBatch> {
    let (d, n) = (x.nrows(), x.ncols());
    let mut model = SparseCoding::new(
        d,
        config.model.n_latents,
        n,
        config.model.posterior.per_point(),
        seed,
    )?
    .with_scale_param(config.model.scale_param);
    model.scale_floor = config.model.scale_floor;
    let mut trace = Vec::new();
    let start = Instant::now();
    let report = fit_lbfgs_scaled(
        &mut model,
        x,
        1.0,
        Target::All,
        &config.train.lbfgs(),
        config.train.posterior_scale,
        |i, f| {
            trace.push((i, f));
            progress(i, f);
        },
    )?;
    let fit_s = start.elapsed().as_secs_f64();
    Ok(FullBatch {
        model,
        report,
        trace,
        fit_s,
    })
}

/// The objective per iteration of a full-batch fit as `metrics.jsonl`.
pub(super) fn write_metrics(dir: &Path, trace: &[(u64, f64)]) -> Result<()> {
    let path = dir.join(METRICS_FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    for &(iteration, objective) in trace {
        let record =
            serde_json::json!({ "split": "train", "iteration": iteration, "objective": objective });
        writeln!(file, "{record}").map_err(io)?;
    }
    file.flush().map_err(io)
}
