//! Fitting: EM and VAE fits on the Trainer with checkpoints and resume, the exact SBN by
//! L-BFGS, the summary.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::data::batches::IndicesOnly;
use crate::data::table::{Transform, TransformKind};
use crate::dist::GapCriterion;
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::models::linear_gaussian::{LinearGaussian, Noise};
use crate::models::mixture::Mixture;
use crate::models::sbn_exact::ExactSbn;
use crate::models::vae::{GaussianVae, VaeKind};
use crate::optim::quasi_newton::LbfgsConfig;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::run::checkpoint::{read_tensors, write_tensors};
use crate::run::{CHECKPOINT_STATE, CONFIG_FILE, RunDir, SUMMARY_FILE};
use crate::train::em::Em;
use crate::train::lbfgs::solve;
use crate::train::trainer::{
    CheckpointStore, Control, DivergenceGuard, EpochRecord, Observer, Outcome, Slot, TrainState,
    Trainer,
};
use crate::train::vae::VaeStep;

/// The model file of non-VAE fits (f64 JSON, so the stored stationary point is exact).
use super::*;

/// The outcome of a fit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitSummary {
    /// The model kind.
    pub kind: &'static str,
    /// Training points.
    pub points: usize,
    /// Data dimension.
    pub dim: usize,
    /// EM steps, L-BFGS iterations or epochs.
    pub steps: usize,
    /// Why training stopped.
    pub stopped: String,
    /// Seconds of training.
    pub fit_s: f64,
    /// The final decomposition on the training points.
    pub decomposition: Decomposition,
}

/// Fits the model of `config` and writes the run into `dir` (which must not exist or be
/// empty). `progress(line)` receives one line per step (EM step, L-BFGS iteration every 50,
/// VAE evaluation). EM and VAE fits run on the [`Trainer`] and stop early when `stop` is raised
/// (then a checkpoint is written and [`resume_fit`] continues bit-for-bit).
pub fn run_fit(
    config: &FitConfig,
    dir: &Path,
    progress: impl FnMut(&str),
) -> Result<(FittedModel, FitSummary)> {
    run_fit_until(config, dir, progress, &AtomicBool::new(false))
}

/// [`run_fit`] with a stop flag.
pub fn run_fit_until(
    config: &FitConfig,
    dir: &Path,
    progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<(FittedModel, FitSummary)> {
    config.validate()?;
    let (x, transform) = load_transformed(config)?;
    check_fit_data(x.as_ref(), config)?;
    check_fit_memory(config, x.nrows(), x.ncols())?;
    let run = RunDir::create(dir)?;
    start_fit(config, config, run, x, transform, progress, stop)
}

/// The file of the training points that [`run_fit_with_array`] stores in its run.
pub const ARRAY_TRAIN_FILE: &str = "data/train.npy";

/// [`run_fit_until`] on in-memory points `x` (D × N, one point per column): they are written
/// into the run as `data/train.npy` (float64, N × D) and the config's data section points at
/// that file (source `npy`, scale 1, no header, label or subset; stored relative to the run,
/// so the directory may move), so that `helmholtz fit --resume`, `helmholtz eval` and
/// [`open_fit`] read the run exactly as one made from a file. `data.binarize`, `dequantize` and
/// `transform` apply as for a file. A run that fails before it starts (the data or config is
/// refused) leaves `dir` as it found it.
pub fn run_fit_with_array(
    config: &FitConfig,
    dir: &Path,
    x: MatRef<'_, f64>,
    progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<(FittedModel, FitSummary)> {
    let mut config = config.clone();
    let absolute = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
    let data = &mut config.data;
    data.source = DataSource::Npy;
    data.train = Some(absolute.join(ARRAY_TRAIN_FILE));
    data.dir = None;
    data.scale = 1.0;
    data.header = None;
    data.delimiter = None;
    data.label = None;
    data.points = None;
    config.validate()?;
    crate::data::check_points(x)?;
    let existed = dir.exists();
    let run = RunDir::create(dir)?;
    let mut stored = config.clone();
    stored.data.train = Some(PathBuf::from(ARRAY_TRAIN_FILE));
    let loaded = (|| {
        run.store_array("train", x.transpose())?;
        let (x, transform) = load_transformed(&config)?;
        check_fit_data(x.as_ref(), &config)?;
        check_fit_memory(&config, x.nrows(), x.ncols())?;
        Ok((x, transform))
    })();
    match loaded {
        Ok((x, transform)) => start_fit(&config, &stored, run, x, transform, progress, stop),
        Err(e) => {
            // The directory was new or empty (RunDir::create refuses others): empty it again.
            run.abandon(existed);
            Err(e)
        }
    }
}

/// A new fit in the created `run` on the loaded points `x`: writes the resolved config
/// (`stored`, the config as the run's files name its data), then fits.
#[allow(clippy::too_many_arguments)]
fn start_fit(
    config: &FitConfig,
    stored: &FitConfig,
    run: RunDir,
    x: Mat<f64>,
    transform: Transform,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<(FittedModel, FitSummary)> {
    let text = toml::to_string(stored).map_err(|e| Error::Config(e.to_string()))?;
    run.write_file(CONFIG_FILE, text.as_bytes())?;
    if transform.kind != TransformKind::None {
        let json =
            serde_json::to_string_pretty(&transform).map_err(|e| Error::Config(e.to_string()))?;
        run.write_file(TRANSFORM_FILE, json.as_bytes())?;
        progress(&format!(
            "data.transform = \"{}\" fitted on the {} training points (stored in {TRANSFORM_FILE}); the ELBO and entropies are in the transformed units (add {:.6} per point, Σ ln scale, for the data's own units)",
            transform.kind.name(),
            x.ncols(),
            transform.log_scale()
        ));
    }
    let (m, t) = (&config.model, &config.train);
    let d = x.nrows();
    let started = Instant::now();
    let fitted = match m.kind {
        ModelKind::Ppca | ModelKind::FactorAnalysis => {
            let diagonal = m.kind == ModelKind::FactorAnalysis;
            let mut model = if t.method == FitMethod::ClosedForm {
                LinearGaussian::ppca_ml(x.as_ref(), m.latents)?
            } else {
                LinearGaussian::random(x.as_ref(), m.latents, diagonal, config.seed)?
            };
            if let Some(v) = m.fixed_noise {
                model.noise = if diagonal {
                    Noise::Diagonal(vec![v; d])
                } else {
                    Noise::Isotropic(v)
                };
                model.learn_noise = false;
            }
            FittedModel::Linear(model)
        }
        ModelKind::GmmDiagonal | ModelKind::GmmFull | ModelKind::BernoulliMixture => {
            let family = m.kind.mixture().expect("a mixture");
            FittedModel::Mixture(Mixture::init(x.as_ref(), m.latents, family, config.seed)?)
        }
        ModelKind::SbnExact => {
            let (fitted, steps, stopped) = fit_sbn(config, x.as_ref(), &run, &mut progress)?;
            return finish(config, &run, x.as_ref(), fitted, steps, stopped, started);
        }
        ModelKind::Vae1 | ModelKind::Vae2 | ModelKind::Vae3 => {
            let kind = m.kind.vae().expect("a VAE");
            let mut model =
                GaussianVae::new(kind, d, &m.hidden, m.latents, m.activation, config.seed)?;
            if kind != VaeKind::Vae3 {
                // σ² (and α²) start at their optima for the first points, not at 1.
                let first = x.ncols().min(VAE_EVAL_BATCH);
                let eps = model.noise(first, config.seed, u64::MAX);
                model.set_optimal_variances(x.subcols(0, first), eps.as_ref())?;
            }
            FittedModel::Vae(model)
        }
    };
    let optimizer = vae_optimizer(config, &fitted)?;
    train_fit(
        config,
        run,
        x,
        fitted,
        optimizer,
        TrainState::default(),
        progress,
        stop,
    )
}

/// Continues the fit run in `dir` from its last checkpoint (EM and VAE fits); `overrides` may
/// raise `train.epochs` or `train.max_steps`. Overrides are recorded; a change of the model is
/// refused.
pub fn resume_fit(
    dir: &Path,
    overrides: &[String],
    progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<(FittedModel, FitSummary)> {
    let run = RunDir::open(dir)?;
    let stored = FitConfig::load(&run.join(CONFIG_FILE), &[])?;
    let config = FitConfig::load(&run.join(CONFIG_FILE), overrides)?;
    let changes = crate::run::config_changes(&stored, &config)?;
    let x = load_data(&config)?;
    let ckpt = run.checkpoint(Slot::Last);
    let fitted = FittedModel::load(&ckpt, &config, x.nrows())?;
    let mut optimizer = vae_optimizer(&config, &fitted)?;
    let path = ckpt.join(CHECKPOINT_STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let stored_state: FitState =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))?;
    if let Some(optimizer) = optimizer.as_mut() {
        let moments = read_tensors(&ckpt.join(OPTIMIZER_TENSORS), &optimizer.moments())?;
        optimizer.restore_moments(stored_state.optimizer_step, moments)?;
    }
    let mut state = stored_state.state;
    if !overrides.is_empty() {
        run.record_resume(overrides, &changes)?;
        let text = toml::to_string(&config).map_err(|e| Error::Config(e.to_string()))?;
        run.rewrite_config(&text)?;
    }
    let limit = match fitted {
        FittedModel::Vae(_) => config.train.epochs,
        _ => config.train.max_steps,
    };
    if state.finished && !state.stopped_early && state.epoch < limit {
        state.finished = false;
    }
    run.truncate_metrics_after(state.step)?;
    train_fit(&config, run, x, fitted, optimizer, state, progress, stop)
}

/// Adam for a VAE fit (none for the others).
fn vae_optimizer(config: &FitConfig, fitted: &FittedModel) -> Result<Option<Optimizer>> {
    let FittedModel::Vae(model) = fitted else {
        return Ok(None);
    };
    let adam = OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    Optimizer::new(
        adam,
        config.train.lr,
        config.train.schedule.clone(),
        &model.params,
    )
    .map(Some)
}

/// What a fit checkpoint's state.json holds besides the tensors.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FitState {
    version: String,
    state: TrainState,
    #[serde(default)]
    optimizer_step: u64,
}

/// The optimizer's moments in a fit checkpoint.
const OPTIMIZER_TENSORS: &str = "optimizer.safetensors";

/// EM or VAE training of `fitted` on the trainer, then the summary.
#[allow(clippy::too_many_arguments)]
fn train_fit(
    config: &FitConfig,
    run: RunDir,
    x: Mat<f64>,
    fitted: FittedModel,
    optimizer: Option<Optimizer>,
    mut state: TrainState,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<(FittedModel, FitSummary)> {
    let t = &config.train;
    let started = Instant::now();
    let mut watch = FitWatch::new(config, x.as_ref(), &run, &mut progress, &state);
    let mut guard = DivergenceGuard::default();
    let (fitted, outcome) = match (fitted, optimizer) {
        (FittedModel::Vae(mut model), Some(optimizer)) => {
            let trainer = Trainer {
                seed: config.seed,
                epochs: t.epochs,
                batch_size: t.batch_size,
                checkpoint_every: 1,
                objective_name: "train_elbo",
                ..Trainer::default()
            };
            let mut algorithm = VaeStep::new(optimizer, t.optimal_variances, &model);
            let outcome = trainer.fit(
                &mut model,
                &mut algorithm,
                &x.as_ref(),
                &mut state,
                &mut [&mut guard, &mut watch],
                &mut FitStore(&run),
                stop,
            )?;
            (FittedModel::Vae(model), outcome)
        }
        (mut fitted, _) => {
            if state.step == 0 && state.epoch == 0 {
                watch.log_em_step(&fitted, &mut state)?;
                if t.method == FitMethod::ClosedForm {
                    let stopped = "closed form".to_string();
                    return finish(config, &run, x.as_ref(), fitted, 0, stopped, started);
                }
            }
            let trainer = Trainer {
                seed: config.seed,
                epochs: t.max_steps,
                batch_size: x.ncols().max(1),
                checkpoint_every: EM_CHECKPOINT_EVERY,
                objective_name: "log_likelihood",
                ..Trainer::default()
            };
            let mut em = Em { x: x.clone() };
            let outcome = trainer.fit(
                &mut fitted,
                &mut em,
                &IndicesOnly {
                    n_points: x.ncols(),
                },
                &mut state,
                &mut [&mut watch],
                &mut FitStore(&run),
                stop,
            )?;
            (fitted, outcome)
        }
    };
    let stopped = match &outcome {
        Outcome::Completed if matches!(fitted, FittedModel::Vae(_)) => "epochs".to_string(),
        Outcome::Completed => "max_steps".to_string(),
        Outcome::EarlyStopped => watch.stopped.clone().unwrap_or_else(|| "stopped".into()),
        Outcome::Interrupted => format!(
            "interrupted; continue with helmholtz fit --resume {}",
            run.path().display()
        ),
        Outcome::Diverged(message) => {
            return Err(Error::Diverged(message.clone()));
        }
    };
    let steps = match fitted {
        FittedModel::Vae(_) => state.epoch,
        _ => state.step as usize,
    };
    finish(config, &run, x.as_ref(), fitted, steps, stopped, started)
}

/// Writes the model and the summary of a fit.
#[allow(clippy::too_many_arguments)]
fn finish(
    config: &FitConfig,
    run: &RunDir,
    x: MatRef<'_, f64>,
    model: FittedModel,
    steps: usize,
    stopped: String,
    started: Instant,
) -> Result<(FittedModel, FitSummary)> {
    let fit_s = started.elapsed().as_secs_f64();
    model.save(run.path())?;
    let decomposition = model.decompose(x, config)?;
    let summary = FitSummary {
        kind: kind_name(config.model.kind),
        points: x.ncols(),
        dim: x.nrows(),
        steps,
        stopped,
        fit_s,
        decomposition,
    };
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Config(e.to_string()))?;
    run.write_file(SUMMARY_FILE, text.as_bytes())?;
    Ok((model, summary))
}

/// `last` checkpoints of EM fits every this many steps (and at the end and on a stop).
const EM_CHECKPOINT_EVERY: usize = 100;

/// Logs the decomposition after each EM step or VAE epoch, and stops on the EM tolerance or the
/// VAE's gap criterion; its counters travel in the checkpoint's `extra`.
struct FitWatch<'a, P: FnMut(&str)> {
    config: &'a FitConfig,
    x: MatRef<'a, f64>,
    run: &'a RunDir,
    progress: &'a mut P,
    previous_ll: f64,
    criterion: Option<GapCriterion>,
    stopped: Option<String>,
}

impl<'a, P: FnMut(&str)> FitWatch<'a, P> {
    fn new(
        config: &'a FitConfig,
        x: MatRef<'a, f64>,
        run: &'a RunDir,
        progress: &'a mut P,
        state: &TrainState,
    ) -> Self {
        let t = &config.train;
        let criterion = match state.extra.get("gap_criterion") {
            Some(value) => serde_json::from_value(value.clone()).ok(),
            None => t
                .gap_tolerance
                .map(|tol| GapCriterion::new(tol, t.gap_window)),
        };
        FitWatch {
            config,
            x,
            run,
            progress,
            previous_ll: state
                .extra
                .get("previous_ll")
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NEG_INFINITY),
            criterion,
            stopped: None,
        }
    }

    /// Logs the decomposition after EM step `state.step`; remembers its log-likelihood.
    fn log_em_step(
        &mut self,
        fitted: &FittedModel,
        state: &mut TrainState,
    ) -> Result<Decomposition> {
        let step = state.step as usize;
        let dec = fitted.decompose(self.x, self.config)?;
        self.run.log(&dec.record("step", step))?;
        (self.progress)(&step_line("step", step, &dec));
        if let Some(ll) = dec.log_likelihood {
            state.extra.insert("previous_ll".into(), ll.into());
        }
        Ok(dec)
    }
}

impl<P: FnMut(&str)> Observer<FittedModel> for FitWatch<'_, P> {
    fn on_epoch(
        &mut self,
        model: &FittedModel,
        _: &mut EpochRecord,
        state: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let dec = self.log_em_step(model, state)?;
        let ll = dec
            .log_likelihood
            .ok_or_else(|| Error::Config("EM needs the exact log-likelihood".into()))?;
        let tol = self.config.train.tol;
        let converged = (ll - self.previous_ll).abs() < tol;
        self.previous_ll = ll;
        if converged {
            self.stopped = Some(format!("log-likelihood change below {tol:e}"));
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }
}

impl<P: FnMut(&str)> Observer<GaussianVae> for FitWatch<'_, P> {
    fn on_epoch(
        &mut self,
        model: &GaussianVae,
        record: &mut EpochRecord,
        state: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let t = &self.config.train;
        let epoch = state.epoch;
        let train_elbo = record.number("train_elbo").unwrap_or(f64::NAN);
        if !epoch.is_multiple_of(t.eval_every) && epoch != t.epochs {
            self.run.log(
                &serde_json::json!({ "epoch": epoch, "step": state.step, "train_elbo": train_elbo }),
            )?;
            return Ok(Control::Continue);
        }
        let dec = FittedModel::Vae(model.clone()).decompose(self.x, self.config)?;
        let mut line = dec.record("epoch", epoch);
        line["train_elbo"] = train_elbo.into();
        line["step"] = state.step.into();
        self.run.log(&line)?;
        (self.progress)(&step_line("epoch", epoch, &dec));
        if let Some(c) = &mut self.criterion {
            let done = c.observe(&dec.sum, &dec.conditions);
            state.extra.insert(
                "gap_criterion".into(),
                serde_json::to_value(&*c).unwrap_or_default(),
            );
            if done {
                self.stopped = Some(format!(
                    "|gap| / |ELBO| below {} for {} evaluations",
                    c.tolerance, c.window
                ));
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }
}

/// Checkpoints of fit runs: the model (as the run's model file), the optimizer's moments and
/// the counters.
struct FitStore<'a>(&'a RunDir);

impl FitStore<'_> {
    fn save(
        &self,
        slot: Slot,
        model: &FittedModel,
        optimizer: Option<&Optimizer>,
        state: &TrainState,
    ) -> Result<()> {
        self.0.write_checkpoint(slot, |tmp| {
            model.save(tmp)?;
            if let Some(optimizer) = optimizer {
                write_tensors(&tmp.join(OPTIMIZER_TENSORS), &optimizer.moments())?;
            }
            let stored = FitState {
                version: env!("CARGO_PKG_VERSION").to_string(),
                state: state.clone(),
                optimizer_step: optimizer.map_or(0, |o| o.step()),
            };
            let text = serde_json::to_string_pretty(&stored)
                .map_err(|e| Error::Checkpoint(e.to_string()))?;
            let path = tmp.join(CHECKPOINT_STATE);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
        })
    }
}

impl CheckpointStore<FittedModel, Em> for FitStore<'_> {
    fn save(&mut self, slot: Slot, model: &FittedModel, _: &Em, state: &TrainState) -> Result<()> {
        FitStore::save(self, slot, model, None, state)
    }
}

impl CheckpointStore<GaussianVae, VaeStep> for FitStore<'_> {
    fn save(
        &mut self,
        slot: Slot,
        model: &GaussianVae,
        algorithm: &VaeStep,
        state: &TrainState,
    ) -> Result<()> {
        crate::run::checkpoint::check_finite(&model.params)?;
        let fitted = FittedModel::Vae(model.clone());
        FitStore::save(self, slot, &fitted, Some(&algorithm.optimizer), state)
    }
}
/// The one-layer SBN with exact posteriors, fitted by L-BFGS (one full-batch solve whose
/// iterations are logged as they happen).
fn fit_sbn(
    config: &FitConfig,
    x: MatRef<'_, f64>,
    run: &RunDir,
    progress: &mut dyn FnMut(&str),
) -> Result<(FittedModel, usize, String)> {
    let (m, t) = (&config.model, &config.train);
    let (d, h) = (x.nrows(), m.latents);
    let size = h + d * h + d;
    let mut rng = Stream::new(config.seed, &[ids::INIT]);
    let start: Vec<f64> = (0..size).map(|_| 0.1 * rng.normal()).collect();
    let lbfgs = LbfgsConfig {
        max_iters: t.max_steps as u64,
        tol_grad: t.tol_grad,
        tol_cost: 0.0,
        ..LbfgsConfig::default()
    };
    let negative = |theta: &[f64], grad: &mut [f64]| -> Result<f64> {
        let model = ExactSbn::new(d, h, theta.to_vec())?;
        grad.fill(0.0);
        let ll = model.log_likelihood(x, Some(grad))?;
        grad.iter_mut().for_each(|g| *g = -*g);
        Ok(-ll)
    };
    // One full-batch solve: the one-step case of the trainer; its iterations are logged as
    // they happen.
    let minimum = solve(negative, start, lbfgs, |i, value| {
        let ll = -value;
        run.log(&serde_json::json!({ "iteration": i, "log_likelihood": ll }))?;
        if i % 50 == 0 {
            progress(&format!("iteration {i}: log-likelihood {ll:.10}"));
        }
        Ok(())
    })?;
    let fitted = FittedModel::Sbn(ExactSbn::new(d, h, minimum.param)?);
    let dec = fitted.decompose(x, config)?;
    run.log(&dec.record("iteration", minimum.iterations as usize))?;
    Ok((fitted, minimum.iterations as usize, minimum.stopped))
}

/// Opens a fit run: its config, the model and the training points.
pub fn open_fit(dir: &Path) -> Result<(FitConfig, FittedModel, Mat<f64>)> {
    let config = FitConfig::load(&dir.join(CONFIG_FILE), &[])?;
    let x = load_data(&config)?;
    let model = FittedModel::load(dir, &config, x.nrows())?;
    Ok((config, model, x))
}

/// Whether `dir` holds a fit run (its config has a `model.kind`).
pub fn is_fit_run(dir: &Path) -> bool {
    crate::run::config::run_command(dir) == Some("fit")
}

fn step_line(name: &str, step: usize, dec: &Decomposition) -> String {
    match dec.conditions.violation() {
        Some(_) => format!(
            "{name} {step}: ELBO {:.8} (the identity does not apply)",
            dec.sum.elbo
        ),
        None => format!(
            "{name} {step}: ELBO {:.8}, entropy sum {:.8}, gap {:.3e}",
            dec.sum.elbo,
            dec.sum.entropy_sum(),
            dec.sum.gap()
        ),
    }
}
