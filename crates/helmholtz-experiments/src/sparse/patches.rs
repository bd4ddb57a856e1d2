//! Natural-image patches (entropy.md §2.4–3.1): the whitened patches of a config, and the
//! patches run on the Trainer — EM with per-point posteriors or Adam with an amortized encoder,
//! with the configured annealing — that checkpoints, resumes bit-for-bit and reports every
//! epoch.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use faer::Mat;
use helmholtz::models::encoder::{AmortizedSparseCoding, GaussianEncoder};
use helmholtz::models::sparse_coding::SparseCoding;
use helmholtz::objectives::sparse_coding::EntropyTerms;
use helmholtz::run::{
    CHECKPOINT_STATE, CONFIG_FILE, METRICS_FILE, RunDir, SUMMARY_FILE, checkpoint,
};
use helmholtz::train::amortized::AmortizedStep;
use helmholtz::train::sparse_coding::{EpochStats, SparseEmStep};
use helmholtz::train::trainer::{Outcome, Slot, TrainState, Trainer};
use helmholtz::{Error, Result};
use serde::{Deserialize, Serialize};

use super::config::{OLSHAUSEN_FIELD_BORDER, SparseConfig, SparseDataConfig, WhitenKind};
use super::files::create_run_dir;
use super::store::{PatchesState, PatchesStore, THETA_FILE, read_f64s};
use super::watch::PatchesWatch;

/// The loop's settings of a patches run.
fn patches_trainer(config: &SparseConfig, seed: u64, batch_size: usize) -> Trainer {
    Trainer {
        seed,
        epochs: config.train.epochs,
        batch_size,
        checkpoint_every: 1,
        objective_name: "objective",
        ..Trainer::default()
    }
}

/// One epoch of a patches run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchesEpoch {
    /// Epoch, counted from 1.
    pub epoch: usize,
    /// Training averages over the epoch's batches (after each E-step, before the M-step).
    pub train: EpochStats,
    /// L^H per held-out patch with the dictionary after the epoch: EM, posteriors fitted from
    /// scratch; Adam, the encoder's posteriors.
    pub test: EpochStats,
    /// Adam, every `train.refine_every` epochs: L^H per held-out patch after the encoder's
    /// posteriors are refined by the E-step (the amortization gap is `test_refined − test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_refined: Option<EpochStats>,
    /// Gini coefficient of |z| over posterior samples of the first 1000 held-out patches (mean,
    /// sd): EM, the fitted posteriors; Adam, the encoder's.
    pub gini: (f64, f64),
    /// Quartiles (25 %, 50 %, 75 %) of the atoms' spatial spread in pixels
    /// ([`helmholtz::eval::sparseness::spatial_spread`]; 6.5 for a flat 16×16 atom); none for
    /// points that are not square images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atom_spread: Option<[f64; 3]>,
    /// Seconds of training (the held-out evaluation not included).
    pub epoch_s: f64,
}

/// The data of a patches or points run: whitened training and held-out patches (or points) and
/// the whitening filter.
pub struct Patches {
    /// Training patches, D × n, whitened.
    pub train: Mat<f64>,
    /// Held-out patches, D × test_n, whitened with the training filter.
    pub test: Mat<f64>,
    /// The ZCA filter fitted on the training patches (none when the images were filtered, or
    /// for points used as given).
    pub whitening: Option<helmholtz::data::patches::Whitening>,
}

/// Cuts and whitens the patches of `config` (training positions from `seed`, held-out positions
/// from a second stream), or reads and whitens its points.
pub fn load_patches(config: &SparseDataConfig, seed: u64) -> Result<Patches> {
    use helmholtz::data::patches::{Whitening, olshausen_field, random_patches, read_images};
    if config.source == "points" {
        let (train, test) = own_points(config)?;
        if config.whitening() == WhitenKind::None {
            return Ok(Patches {
                train,
                test,
                whitening: None,
            });
        }
        let whitening = Whitening::fit(train.as_ref(), config.whiten_epsilon)?;
        return Ok(Patches {
            train: whitening.apply(train.as_ref()),
            test: whitening.apply(test.as_ref()),
            whitening: Some(whitening),
        });
    }
    if let Some(path) = &config.train {
        let (train, test) = own_patches(config, path)?;
        let whitening = Whitening::fit(train.as_ref(), config.whiten_epsilon)?;
        return Ok(Patches {
            train: whitening.apply(train.as_ref()),
            test: whitening.apply(test.as_ref()),
            whitening: Some(whitening),
        });
    }
    let dir = config
        .dir
        .clone()
        .unwrap_or_else(|| helmholtz::data::default_data_dir().join("natural"));
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "{} not found: fetch the natural images with `helmholtz data fetch natural`",
            dir.display()
        )));
    }
    let names: Vec<&str> = config.images.iter().map(String::as_str).collect();
    let mut images = read_images(&dir, &names)?;
    if config.whitening() == WhitenKind::OlshausenField {
        images = olshausen_field(&images, config.whiten_cutoff, OLSHAUSEN_FIELD_BORDER)?;
    }
    let train = random_patches(&images, config.size, config.n, seed)?;
    let test = random_patches(
        &images,
        config.size,
        config.test_n,
        seed.wrapping_add(1 << 32),
    )?;
    if config.whitening() == WhitenKind::OlshausenField {
        return Ok(Patches {
            train,
            test,
            whitening: None,
        });
    }
    let whitening = Whitening::fit(train.as_ref(), config.whiten_epsilon)?;
    Ok(Patches {
        train: whitening.apply(train.as_ref()),
        test: whitening.apply(test.as_ref()),
        whitening: Some(whitening),
    })
}

/// The user's patches (D × n training, D × m held-out, before whitening) from the table
/// `path` (one patch of `size`² pixels per row) and `config.test`, or its last `test_n` rows.
fn own_patches(config: &SparseDataConfig, path: &Path) -> Result<(Mat<f64>, Mat<f64>)> {
    use helmholtz::data::table::{TableOptions, read_table};
    let options = TableOptions {
        header: config.header,
        label: config.label.clone(),
        ..TableOptions::default()
    };
    let d = config.size * config.size;
    let read = |path: &Path| -> Result<Mat<f64>> {
        let table = read_table(path, &options)?;
        if table.values.ncols() != d {
            return Err(Error::Config(format!(
                "{} has rows of {} values; data.size = {} needs {d} (one {0}×{0} patch per row, row-major)",
                path.display(),
                table.values.ncols(),
                config.size
            )));
        }
        Ok(table.values.transpose().to_owned())
    };
    let all = read(path)?;
    let (train, test) = match &config.test {
        Some(test) => (all, read(test)?),
        None => {
            let rows = all.ncols();
            if rows < config.test_n + 2 {
                return Err(Error::Config(format!(
                    "{} has {rows} patches: holding out data.test_n = {} leaves fewer than 2 to train on (give data.test or lower data.test_n)",
                    path.display(),
                    config.test_n
                )));
            }
            let train = all.subcols(0, rows - config.test_n).to_owned();
            (
                train,
                all.subcols(rows - config.test_n, config.test_n).to_owned(),
            )
        }
    };
    let n = config.n.min(train.ncols());
    Ok((train.subcols(0, n).to_owned(), test))
}

/// The user's points (D × n training, D × m held-out) from the table `config.train` (its first
/// `n` rows, all when it has fewer) and `config.test`, or the training points when no test
/// table is given.
fn own_points(config: &SparseDataConfig) -> Result<(Mat<f64>, Mat<f64>)> {
    use helmholtz::data::table::{TableOptions, read_table};
    let options = TableOptions {
        header: config.header,
        label: config.label.clone(),
        ..TableOptions::default()
    };
    let read = |path: &Path| -> Result<Mat<f64>> {
        Ok(read_table(path, &options)?.values.transpose().to_owned())
    };
    let path = config
        .train
        .as_ref()
        .ok_or_else(|| Error::Config("data.train must name the table of points".into()))?;
    let all = read(path)?;
    let train = all.subcols(0, config.n.min(all.ncols())).to_owned();
    let test = match &config.test {
        Some(test) => read(test)?,
        None => train.clone(),
    };
    if test.nrows() != train.nrows() {
        return Err(Error::Dimension(format!(
            "the held-out points have {} values, the training points {}",
            test.nrows(),
            train.nrows()
        )));
    }
    Ok((train, test))
}

/// What a patches run trains: per-point posteriors by EM, or an amortized encoder by Adam.
enum PatchesLearner {
    Em(SparseCoding, SparseEmStep),
    Adam(AmortizedSparseCoding, AmortizedStep),
}

/// Trains on natural-image patches by EM, or by Adam with an amortized encoder, with the
/// configured annealing, evaluating the held-out ELBO and the Gini sparseness after every epoch,
/// and writes the run directory. The model is written after every epoch, so a run that fails
/// keeps its last good epoch. Returns the dictionary (unit-norm columns), the epochs and the
/// held-out entropies after the last epoch. `progress(epoch, batch, objective)` follows the
/// batches.
pub fn run_patches(
    config: &SparseConfig,
    seed: u64,
    dir: &Path,
    progress: impl FnMut(usize, usize, f64),
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    run_patches_until(config, seed, dir, progress, &AtomicBool::new(false))
}

/// [`run_patches`] with a stop flag: when it is raised, the current batch finishes, a
/// checkpoint is written and [`resume_patches`] continues bit-for-bit.
pub fn run_patches_until(
    config: &SparseConfig,
    seed: u64,
    dir: &Path,
    progress: impl FnMut(usize, usize, f64),
    stop: &AtomicBool,
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    let patches = load_patches(&config.data, seed)?;
    let run = create_run_dir(config, seed, dir)?;
    start_patches(config, seed, run, &patches, progress, stop)
}

/// A new patches (or points) run by EM or Adam in the created `run` (its config written) on
/// `patches`.
pub(super) fn start_patches(
    config: &SparseConfig,
    seed: u64,
    run: RunDir,
    patches: &Patches,
    progress: impl FnMut(usize, usize, f64),
    stop: &AtomicBool,
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    use helmholtz::optim::Optimizer;
    let (d, n) = (patches.train.nrows(), patches.train.ncols());
    let h = config.model.n_latents;
    let anneal = config.train.anneal.clone();
    let learner = match &config.model.encoder {
        Some(_) => {
            let model = amortized_model(config, d, seed)?;
            let optimizer = Optimizer::adam(config.train.lr, &model.params)?;
            let step = AmortizedStep::new(optimizer, anneal, &model)?;
            PatchesLearner::Adam(model, step)
        }
        None => {
            let mut model = SparseCoding::new(d, h, n, config.model.posterior.per_point(), seed)?
                .with_scale_param(config.model.scale_param);
            model.scale_floor = config.model.scale_floor;
            // The raw dictionary starts with unit-norm columns (the authors' `normalize_W()`
            // before training), so the M-step's step size acts on W at its own scale.
            let unit = model.dictionary();
            model.set_dictionary(&unit)?;
            PatchesLearner::Em(model, SparseEmStep::new(config.train.em(), anneal)?)
        }
    };
    train_patches(
        config,
        seed,
        run,
        patches,
        learner,
        TrainState::default(),
        Vec::new(),
        progress,
        stop,
    )
}

/// Continues the patches run in `dir` (one seed's directory) from its last checkpoint.
pub fn resume_patches(
    dir: &Path,
    progress: impl FnMut(usize, usize, f64),
    stop: &AtomicBool,
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    use helmholtz::optim::Optimizer;
    let run = RunDir::open(dir)?;
    let config = SparseConfig::load(&run.join(CONFIG_FILE), &[])?;
    let full_batch =
        config.data.source == "points" && config.train.method == super::SparseMethod::Lbfgs;
    if config.data.source == "bars" || full_batch {
        return Err(Error::Config(format!(
            "{} is a {} run fitted by L-BFGS; only EM and Adam runs resume (a full-batch fit is one L-BFGS solve)",
            dir.display(),
            config.data.source
        )));
    }
    let seed = config.seed;
    let patches = load_patches(&config.data, seed)?;
    let ckpt = run.checkpoint(Slot::Last);
    let path = ckpt.join(CHECKPOINT_STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let stored: PatchesState =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))?;
    let anneal = config.train.anneal.clone();
    let d = patches.train.nrows();
    let learner = match &config.model.encoder {
        Some(_) => {
            let mut model = amortized_model(&config, d, seed)?;
            model.params =
                checkpoint::read_tensors(&ckpt.join("params.safetensors"), &model.params)?;
            let mut optimizer = Optimizer::adam(config.train.lr, &model.params)?;
            let moments = checkpoint::read_tensors(
                &ckpt.join("optimizer.safetensors"),
                &optimizer.moments(),
            )?;
            optimizer.restore_moments(stored.optimizer_step, moments)?;
            let mut step = AmortizedStep::new(optimizer, anneal, &model)?;
            step.stats = stored.stats;
            PatchesLearner::Adam(model, step)
        }
        None => {
            let n = patches.train.ncols();
            let h = config.model.n_latents;
            let mut model = SparseCoding::new(d, h, n, config.model.posterior.per_point(), seed)?
                .with_scale_param(config.model.scale_param);
            model.scale_floor = config.model.scale_floor;
            model.theta = read_f64s(&ckpt.join(THETA_FILE), model.theta.len())?;
            let mut step = SparseEmStep::new(config.train.em(), anneal)?;
            step.stats = stored.stats;
            PatchesLearner::Em(model, step)
        }
    };
    let mut state = stored.state;
    if state.finished {
        return Err(Error::Config(format!(
            "{} has finished its {} epochs",
            dir.display(),
            state.epoch
        )));
    }
    run.truncate_metrics_after_epoch(state.epoch)?;
    let epochs: Vec<PatchesEpoch> = helmholtz::run::read_metrics(&run.join(METRICS_FILE))
        .unwrap_or_default()
        .into_iter()
        .map(|record| {
            serde_json::from_value(record)
                .map_err(|e| Error::format(run.join(METRICS_FILE), e.to_string()))
        })
        .collect::<Result<_>>()?;
    state.finished = false;
    train_patches(
        &config, seed, run, &patches, learner, state, epochs, progress, stop,
    )
}

/// The amortized model of a patches config.
pub(super) fn amortized_model(
    config: &SparseConfig,
    d: usize,
    seed: u64,
) -> Result<AmortizedSparseCoding> {
    let encoder = config
        .model
        .encoder
        .as_ref()
        .ok_or_else(|| Error::Config("model.encoder is missing".into()))?;
    let encoder = GaussianEncoder::new(
        d,
        &encoder.hidden,
        config.model.n_latents,
        encoder.rank,
        encoder.activation,
        config.model.scale_floor,
    )?;
    AmortizedSparseCoding::new(d, encoder, seed)
}

/// The patches run on the Trainer, from `state`, with the `epochs` recorded so far.
#[allow(clippy::too_many_arguments)]
fn train_patches(
    config: &SparseConfig,
    seed: u64,
    run: RunDir,
    patches: &Patches,
    learner: PatchesLearner,
    mut state: TrainState,
    epochs: Vec<PatchesEpoch>,
    mut progress: impl FnMut(usize, usize, f64),
    stop: &AtomicBool,
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    let em = config.train.em();
    let mut watch = PatchesWatch {
        config,
        seed,
        test_x: patches.test.as_ref(),
        run: &run,
        em: &em,
        epochs,
        last: None,
        progress: &mut progress,
    };
    let train = patches.train.as_ref();
    let mut store = PatchesStore(&run);
    let outcome = match learner {
        PatchesLearner::Em(mut model, mut step) => {
            let trainer = patches_trainer(config, seed, em.batch_size);
            trainer.fit(
                &mut model,
                &mut step,
                &train,
                &mut state,
                &mut [&mut watch],
                &mut store,
                stop,
            )?
        }
        PatchesLearner::Adam(mut model, mut step) => {
            let trainer = patches_trainer(config, seed, config.train.batch_size);
            trainer.fit(
                &mut model,
                &mut step,
                &train,
                &mut state,
                &mut [&mut watch],
                &mut store,
                stop,
            )?
        }
    };
    match outcome {
        Outcome::Diverged(message) => return Err(Error::Diverged(message)),
        Outcome::Interrupted => {
            return Err(Error::Interrupted(format!(
                "{} stopped at epoch {}, batch {}; continue with helmholtz sparse --resume {}",
                run.path().display(),
                state.epoch + 1,
                state.batch,
                run.path().display()
            )));
        }
        Outcome::Completed | Outcome::EarlyStopped => {}
    }
    let (epochs, last) = (watch.epochs, watch.last);
    let (dictionary, terms) =
        last.ok_or_else(|| Error::Config("train.epochs must be at least 1".into()))?;
    let summary = serde_json::json!({
        "seed": seed,
        "anneal": config.train.anneal,
        "epochs": epochs,
        "lambda_test": terms.lambda,
        "sigma2_test": terms.sigma2,
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Config(e.to_string()))?;
    run.write_file(SUMMARY_FILE, text.as_bytes())?;
    Ok((dictionary, epochs, terms))
}
