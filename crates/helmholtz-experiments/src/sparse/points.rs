//! Sparse coding of the user's own points (`data.source = "points"`): full-batch L-BFGS
//! (`train.method = "lbfgs"`, the bars fit without a ground truth), or EM and Adam as on
//! patches; and the same runs on in-memory points, stored in the run so that the directory is
//! the one `helmholtz sparse` makes (the Python estimator's).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use faer::MatRef;
use helmholtz::models::sparse_coding::SparseCoding;
use helmholtz::run::{RunDir, SUMMARY_FILE};
use helmholtz::{Error, Result};
use serde::Serialize;

use super::bars::{FullBatch, fit_full_batch, write_metrics};
use super::files::{create_run_dir, write_config, write_model};
use super::patches::{load_patches, start_patches};
use super::{SparseConfig, SparseMethod};

/// The outcome of a full-batch fit of points.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointsOutcome {
    /// The seed of the initialisation.
    pub seed: u64,
    /// Training points.
    pub points: usize,
    /// L^H per point at the end.
    pub objective: f64,
    /// L-BFGS iterations.
    pub iterations: u64,
    /// Objective evaluations (each with its gradient).
    pub evaluations: u64,
    /// Why L-BFGS stopped.
    pub stopped: String,
    /// Wall-clock seconds of the fit.
    pub fit_s: f64,
    /// Mean posterior entropy, prior entropy and noise entropy at the end.
    pub entropies: [f64; 3],
    /// The closed-form λ at the end.
    pub lambda: Vec<f64>,
    /// The closed-form σ² at the end.
    pub sigma2: f64,
}

/// Fits the points of `config` (`data.source = "points"`, `train.method = "lbfgs"`) by
/// full-batch L-BFGS from the model drawn with `seed`, and writes the run into `dir`.
/// `progress(iteration, objective)` follows the fit.
pub fn run_points(
    config: &SparseConfig,
    seed: u64,
    dir: &Path,
    progress: impl FnMut(u64, f64),
) -> Result<(SparseCoding, PointsOutcome)> {
    check_points(config)?;
    if config.train.method != SparseMethod::Lbfgs {
        return Err(Error::Config(
            "run_points fits by full-batch L-BFGS; EM and Adam runs go through run_patches".into(),
        ));
    }
    let patches = load_patches(&config.data, seed)?;
    let run = create_run_dir(config, seed, dir)?;
    fit_points(config, seed, &run, patches.train.as_ref(), progress)
}

fn check_points(config: &SparseConfig) -> Result<()> {
    if config.data.source != "points" {
        return Err(Error::Config(format!(
            "data.source = {:?}: expected \"points\"",
            config.data.source
        )));
    }
    Ok(())
}

/// The full-batch fit in the created `run`, with its metrics, model and summary.
fn fit_points(
    config: &SparseConfig,
    seed: u64,
    run: &RunDir,
    x: MatRef<'_, f64>,
    progress: impl FnMut(u64, f64),
) -> Result<(SparseCoding, PointsOutcome)> {
    let FullBatch {
        model,
        report,
        trace,
        fit_s,
    } = fit_full_batch(config, seed, x, progress)?;
    let terms = &report.terms;
    let outcome = PointsOutcome {
        seed,
        points: x.ncols(),
        objective: terms.objective(1.0),
        iterations: report.iterations,
        evaluations: report.evaluations,
        stopped: report.stopped.clone(),
        fit_s,
        entropies: [terms.posterior, terms.prior, terms.noise],
        lambda: terms.lambda.clone(),
        sigma2: terms.sigma2,
    };
    write_metrics(run.path(), &trace)?;
    write_model(run.path(), &model, terms)?;
    let summary =
        serde_json::to_string_pretty(&outcome).map_err(|e| Error::Config(e.to_string()))?;
    run.write_file(SUMMARY_FILE, summary.as_bytes())?;
    Ok((model, outcome))
}

/// The file of the training points that [`run_points_with_array`] stores in its run.
pub use helmholtz::run::fit::ARRAY_TRAIN_FILE;

/// A sparse-coding run of `config` (any method; `seed` from the config) on the in-memory points
/// `x` (D × N, one point per column), in the new or empty directory `dir`: the points are
/// written into the run as `data/train.npy` (float64, N × D) and the config's data section
/// becomes `source = "points"` with that file (stored relative to the run, so the directory may
/// move), `n` = N, no held-out table (EM and Adam runs evaluate the training points each
/// epoch), and `whiten` as `config` says. The run is the one `helmholtz sparse` makes from that
/// config: it resumes (EM, Adam), opens ([`super::model::SparseRunModel`]) and denoises the
/// same way. `progress(line)` follows the fit; `stop` ends EM and Adam runs after the current
/// batch (checkpointed; an L-BFGS fit is one solve and finishes). A run refused before it
/// starts leaves `dir` as it found it.
pub fn run_points_with_array(
    config: &SparseConfig,
    dir: &Path,
    x: MatRef<'_, f64>,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<()> {
    let mut config = config.clone();
    let absolute = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
    let data = &mut config.data;
    data.source = "points".into();
    data.train = Some(absolute.join(ARRAY_TRAIN_FILE));
    data.test = None;
    data.n = x.ncols();
    data.header = None;
    data.label = None;
    config.validate()?;
    helmholtz::data::check_points(x)?;
    let existed = dir.exists();
    let run = RunDir::create(dir)?;
    let loaded = (|| {
        run.store_array("train", x.transpose())?;
        load_patches(&config.data, config.seed)
    })();
    let patches = match loaded {
        Ok(patches) => patches,
        Err(e) => {
            // The directory was new or empty (RunDir::create refuses others): empty it again.
            run.abandon(existed);
            return Err(e);
        }
    };
    let mut stored = config.clone();
    stored.data.train = Some(PathBuf::from(ARRAY_TRAIN_FILE));
    let seed = config.seed;
    write_config(&run, &stored, seed)?;
    match config.train.method {
        SparseMethod::Lbfgs => {
            fit_points(&config, seed, &run, patches.train.as_ref(), |i, f| {
                if i % 50 == 0 {
                    progress(&format!("iteration {i}: objective {f:.6}"));
                }
            })?;
        }
        SparseMethod::Em | SparseMethod::Adam => {
            start_patches(
                &config,
                seed,
                run,
                &patches,
                |epoch, batch, f| {
                    if batch == 0 {
                        progress(&format!("epoch {epoch}: objective {f:.6}"));
                    }
                },
                stop,
            )?;
        }
    }
    Ok(())
}
