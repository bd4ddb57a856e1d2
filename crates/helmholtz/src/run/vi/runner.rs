//! A vi run on the [`Trainer`]: each family × method started as the library's
//! [`SkewStart`] / [`MixtureStart`] build it, one step per batch on the step's draws
//! ((seed, TRAIN, step)), the negative ELBO with `eval_draws` draws ((seed, EVAL, step)) every
//! `eval_every` steps, checkpoints of the method's state, resume, and the final summaries.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::data::{ViData, design, load_arrays, load_data};
use super::posterior::{
    Posterior, PosteriorSummary, Predictive, positive_probabilities, predictive,
};
use super::{Family, POSTERIOR_FILE, SUMMARY_TEXT, ViConfig, method_name};
use crate::data::batches::IndicesOnly;
use crate::data::table::Transform;
use crate::dist::skew::{SkewNormal, SkewT};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::memory::{bytes_of, check_allocation};
use crate::models::logistic_regression::LogisticRegression;
use crate::objectives::targets::Target;
use crate::objectives::targets::logistic_vi::{
    GaussianElbo, Noise, SkewMixtureElbo, SkewNormalElbo, SkewTElbo,
};
use crate::optim::sngd::{LineSearch, Method, MethodState, MixtureStart, SkewMethod, SkewStart};
use crate::run::{
    CHECKPOINT_STATE, CONFIG_FILE, DATA_FOLDER, RunDir, SUMMARY_FILE, config_changes,
    relative_to_run,
};
use crate::train::sngd::MethodSteps;
use crate::train::trainer::{
    Batch, CheckpointStore, Control, EpochRecord, Observer, Outcome, Sampling, Slot, StepContext,
    TrainState, Trainer,
};

/// Ω = `START_VARIANCE`·I at the start of every family (ξ, η ~ N(0, 0.01²)).
const START_VARIANCE: f64 = 0.01;
/// ν at the start of a skew-t.
const START_NU: f64 = 50.0;
/// The smallest weight a mixture step may leave.
const MIN_WEIGHT: f64 = 1e-3;
/// Halvings of SNGD's and MCEF's first step size at most, to keep Ω positive definite.
const HALVINGS: usize = 20;
/// The stream id below [`ids::SAMPLE`] of the final draws (−ELBO, quantiles, predictive).
const FINAL_DRAWS_STREAM: u64 = 1;

/// The outcome of a vi run, as written to `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViSummary {
    /// Run name.
    pub name: String,
    /// The variational family.
    pub family: String,
    /// The optimiser.
    pub method: String,
    /// Training points.
    pub points: usize,
    /// Weights (features, intercept included).
    pub weights: usize,
    /// Steps taken.
    pub steps: u64,
    /// Seconds of training (evaluations excluded).
    pub train_s: f64,
    /// How the run ended: "completed", or "interrupted" with how to continue.
    pub ended: String,
    /// The negative ELBO of the final q by plain Monte Carlo over `final_draws` draws.
    pub negative_elbo: f64,
    /// Its Monte Carlo standard error.
    pub negative_elbo_se: f64,
    /// Draws of the final estimate.
    pub final_draws: usize,
    /// On the training points: log predictive density per point and accuracy.
    pub train: Predictive,
    /// On the held-out split, when there is one.
    pub test: Option<Predictive>,
}

impl ViSummary {
    /// The readable summary (`summary.txt`) with the posterior's table.
    pub fn text(&self, posterior: &PosteriorSummary) -> String {
        let mut out = format!(
            "{}: {} posterior by {} on {} points, {} weights\n{} steps in {:.1} s ({})\n\
             negative ELBO {:.4} ± {:.4} (Monte Carlo standard error, {} draws)\n\
             training: log predictive density {:.4} per point, accuracy {:.4}\n",
            self.name,
            self.family,
            self.method,
            self.points,
            self.weights,
            self.steps,
            self.train_s,
            self.ended,
            self.negative_elbo,
            self.negative_elbo_se,
            self.final_draws,
            self.train.log_predictive_per_point,
            self.train.accuracy,
        );
        if let Some(test) = &self.test {
            out.push_str(&format!(
                "held out ({} points): log predictive density {:.4} per point, accuracy {:.4}\n",
                test.points, test.log_predictive_per_point, test.accuracy
            ));
        }
        out.push_str(&format!("\nposterior ({}):\n", posterior.computed));
        out.push_str(&posterior.table());
        out
    }
}

/// What a vi run returns.
#[derive(Debug)]
pub struct ViOutcome {
    /// The summary.
    pub summary: ViSummary,
    /// The posterior summary.
    pub posterior: PosteriorSummary,
    /// The readable summary, as in `summary.txt`.
    pub text: String,
    /// Whether the stop flag ended it (then it resumes).
    pub interrupted: bool,
}

/// `posterior.json`: the summary, and how the features were made from the file's columns.
#[derive(Serialize)]
struct PosteriorFile<'a> {
    #[serde(flatten)]
    summary: &'a PosteriorSummary,
    intercept: bool,
    transform: &'a Transform,
}

/// A vi checkpoint's `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ViState {
    version: String,
    state: TrainState,
    method: MethodState,
}

/// Runs the vi config into `dir` (which must not exist or be empty): the data are read and
/// checked before the directory is made. `progress(line)` receives the log; `stop` ends the run
/// after the current step with a checkpoint that [`resume_vi`] continues bit for bit.
pub fn run_vi(
    config: &ViConfig,
    dir: &Path,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<ViOutcome> {
    config.validate()?;
    let data = load_data(config)?;
    for note in &data.notes {
        progress(note);
    }
    let run = RunDir::create(dir)?;
    run.write_file(CONFIG_FILE, stored_toml(config, &run)?.as_bytes())?;
    train(config, &data, &run, None, &mut progress, stop)
}

/// Runs the vi config on data given as arrays instead of files (the Python package's entry
/// point): features `x` (n × d, one point per row), labels `y` (0/1 or −1/+1) and an optional
/// held-out pair, checked as files are (errors name "X", "y", "X_test", "y_test"), then stored in
/// the new run as `data/train.npy`, `data/train-labels.npy`, `data/test.npy` and
/// `data/test-labels.npy`, which its `config.toml` names relative to the run: [`resume_vi`] and
/// `helmholtz vi --resume` read them from wherever the run is moved. The label and file options
/// of `config.data` (label, labels, test_labels, header, delimiter) are replaced; intercept and
/// transform apply as for files. The fit is the one [`run_vi`] makes of NPY files of the same
/// values.
pub fn run_vi_with_arrays(
    mut config: ViConfig,
    dir: &Path,
    x: MatRef<'_, f64>,
    y: &[f64],
    test: Option<(MatRef<'_, f64>, &[f64])>,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<ViOutcome> {
    let absolute = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
    let in_run = |name: &str| absolute.join(DATA_FOLDER).join(format!("{name}.npy"));
    let d = &mut config.data;
    d.train = in_run("train");
    d.labels = Some(in_run("train-labels"));
    d.label = None;
    d.test = test.map(|_| in_run("test"));
    d.test_labels = test.map(|_| in_run("test-labels"));
    d.header = None;
    d.delimiter = None;
    config.validate()?;
    let data = load_arrays(&config, x, y, test)?;
    let run = RunDir::create(dir)?;
    let column = |y: &[f64]| Mat::from_fn(y.len(), 1, |i, _| y[i]);
    run.store_array("train", x)?;
    run.store_array("train-labels", column(y).as_ref())?;
    if let Some((x, y)) = test {
        run.store_array("test", x)?;
        run.store_array("test-labels", column(y).as_ref())?;
    }
    run.write_file(CONFIG_FILE, stored_toml(&config, &run)?.as_bytes())?;
    train(&config, &data, &run, None, &mut progress, stop)
}

/// The config as a run stores it: every default written out, data paths absolute except those
/// of data inside the run, which are relative to it (so the run can move).
fn stored_toml(config: &ViConfig, run: &RunDir) -> Result<String> {
    let mut stored = config.clone();
    let d = &mut stored.data;
    let inside = |p: &mut Option<PathBuf>| {
        if let Some(path) = p {
            *path = relative_to_run(path, run.path());
        }
    };
    d.train = relative_to_run(&d.train, run.path());
    inside(&mut d.labels);
    inside(&mut d.test);
    inside(&mut d.test_labels);
    stored.to_toml()
}

/// The keys a resume may change: how long and how often, not what is fitted.
const RESUMABLE: [&str; 4] = [
    "train.iterations",
    "train.eval_every",
    "train.eval_draws",
    "train.final_draws",
];

/// Continues the vi run in `dir` from its last checkpoint; `overrides` may change
/// `train.iterations`, `train.eval_every`, `train.eval_draws` and `train.final_draws` (recorded
/// in the run's history).
pub fn resume_vi(
    dir: &Path,
    overrides: &[String],
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<ViOutcome> {
    let run = RunDir::open(dir)?;
    let path = run.join(CONFIG_FILE);
    let stored = ViConfig::load(&path, &[])?;
    let config = ViConfig::load(&path, overrides)?;
    let changes = config_changes(&stored, &config)?;
    for change in &changes {
        let key = change.split(':').next().unwrap_or_default();
        if !RESUMABLE.contains(&key) {
            return Err(Error::Config(format!(
                "{key} cannot change when resuming ({change}): the checkpoint continues the same fit; a resume may change {}",
                RESUMABLE.join(", ")
            )));
        }
    }
    let data = load_data(&config)?;
    for note in &data.notes {
        progress(note);
    }
    let state_path = run.checkpoint(Slot::Last).join(CHECKPOINT_STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let mut saved: ViState =
        serde_json::from_str(&text).map_err(|e| Error::format(&state_path, e.to_string()))?;
    let state = &mut saved.state;
    if state.finished && !state.stopped_early && state.step < config.train.iterations as u64 {
        state.finished = false;
    }
    run.truncate_metrics_after(state.step)?;
    if !overrides.is_empty() {
        run.record_resume(overrides, &changes)?;
        run.write_file(CONFIG_FILE, stored_toml(&config, &run)?.as_bytes())?;
    }
    train(&config, &data, &run, Some(saved), &mut progress, stop)
}

/// Whether `dir` holds a vi run (its config is one for `helmholtz vi`).
pub fn is_vi_run(dir: &Path) -> bool {
    crate::run::config::run_command(dir) == Some("vi")
}

/// The fitted posterior of the vi run in `dir` and its feature names, from `posterior.json`.
pub fn open_posterior(dir: &Path) -> Result<(Posterior, Vec<String>)> {
    let path = dir.join(POSTERIOR_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let summary: PosteriorSummary =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))?;
    let posterior = Posterior::from_parameters(&summary.parameters)
        .map_err(|e| Error::format(&path, e.to_string()))?;
    if summary.features.len() != posterior.dim() {
        return Err(Error::format(
            &path,
            format!(
                "{} feature names for {} weights",
                summary.features.len(),
                posterior.dim()
            ),
        ));
    }
    Ok((posterior, summary.features))
}

/// `n` draws of the posterior of the vi run in `dir` from `seed` (rows, one column per weight;
/// the stream `helmholtz sample` uses), with the feature names.
pub fn sample_run(dir: &Path, n: usize, seed: u64) -> Result<(Mat<f64>, Vec<String>)> {
    if n == 0 {
        return Err(Error::Config(
            "--n 0 draws nothing; give at least 1 sample".into(),
        ));
    }
    let (posterior, features) = open_posterior(dir)?;
    // The draws in f64, and the CSV text a caller may write (at most 25 bytes a value).
    check_allocation(
        &format!("--n {n} draws of {} weights", features.len()),
        bytes_of(&[n, features.len()], 8 + 25),
    )?;
    let draws = posterior.sample(n, &mut Stream::new(seed, &[ids::SAMPLE]))?;
    Ok((draws, features))
}

/// How the vi run in `dir` made its features: the transform of the file's columns and whether
/// an intercept was appended (from `posterior.json`).
#[derive(Deserialize)]
struct Features {
    intercept: bool,
    transform: Transform,
}

/// The posterior predictive P(y = +1 | x, data) ≈ (1/S) Σ_s σ(xᵀw_s) of each row of `x` (the
/// feature columns as the training data were given: the run's transform and intercept are
/// applied here), over S = `draws` draws of the vi run's posterior in `dir` from `seed`.
pub fn predict_run(dir: &Path, x: MatRef<'_, f64>, draws: usize, seed: u64) -> Result<Vec<f64>> {
    if draws == 0 {
        return Err(Error::Config(
            "draws = 0: the predictive needs at least 1 draw of the posterior".into(),
        ));
    }
    let path = dir.join(POSTERIOR_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let made: Features =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))?;
    let table = crate::data::table::Table::from_values(x, Path::new("X"))?;
    let (posterior, features) = open_posterior(dir)?;
    let columns = features.len() - usize::from(made.intercept);
    if table.values.ncols() != columns {
        return Err(Error::Dimension(format!(
            "X has {} columns; the posterior was fitted on {columns} ({})",
            table.values.ncols(),
            features[..columns].join(", ")
        )));
    }
    check_allocation(
        &format!("draws = {draws} draws of {} weights", features.len()),
        bytes_of(&[draws, features.len()], 8),
    )?;
    let w = posterior.sample(draws, &mut Stream::new(seed, &[ids::SAMPLE]))?;
    let x = design(table.values.as_ref(), &made.transform, made.intercept);
    Ok(positive_probabilities(w.as_ref(), x.as_ref()))
}

/// Everything a family × method run shares.
struct Session<'a, 'p> {
    config: &'a ViConfig,
    model: &'a LogisticRegression,
    run: &'a RunDir,
    state: TrainState,
    saved: Option<MethodState>,
    progress: &'p mut dyn FnMut(&str),
    stop: &'p AtomicBool,
}

/// Builds the configured family × method and trains it, then writes the summaries.
fn train(
    config: &ViConfig,
    data: &ViData,
    run: &RunDir,
    saved: Option<ViState>,
    progress: &mut dyn FnMut(&str),
    stop: &AtomicBool,
) -> Result<ViOutcome> {
    let (t, d) = (&config.train, data.model.dim());
    let (state, saved) = match saved {
        Some(s) => (s.state, Some(s.method)),
        None => (TrainState::default(), None),
    };
    let mut session = Session {
        config,
        model: &data.model,
        run,
        state,
        saved,
        progress,
        stop,
    };
    let search = LineSearch::Backtracking {
        start: t.step_size(),
        halvings: HALVINGS,
    };
    let (lr, lr_lambda) = (t.step_size(), t.lr_lambda);
    let start = SkewStart::new(d, START_VARIANCE, config.seed);
    let mixture = MixtureStart {
        components: config.model.n_components(),
        dim: d,
        omega_scale: START_VARIANCE,
        min_weight: MIN_WEIGHT,
        seed: config.seed,
    };
    let gaussian = |model, draws, noise| GaussianElbo {
        model,
        draws,
        noise,
    };
    let skew_normal = |model, draws, noise| SkewNormalElbo {
        model,
        draws,
        noise,
    };
    let skew_t = |model, draws, noise| SkewTElbo {
        model,
        draws,
        noise,
    };
    let skew_mixture = |model, draws, noise| SkewMixtureElbo {
        model,
        draws,
        noise,
    };
    let zeros = vec![0.0; d];
    use SkewMethod::{AdamCovariance, AdamPrecision, Mcef, Sngd};
    let (posterior, outcome) = match (config.model.family, t.method) {
        (Family::Gaussian, Sngd) => session.drive(
            start.sngd_natural::<SkewNormal>(zeros, lr_lambda, search)?,
            gaussian,
            Posterior::Gaussian,
        )?,
        (Family::Gaussian, AdamCovariance | AdamPrecision) => session.drive(
            start.adam::<SkewNormal>(t.method, &zeros, lr)?,
            gaussian,
            Posterior::Gaussian,
        )?,
        (Family::SkewNormal, Sngd) => session.drive(
            start.sngd_natural::<SkewNormal>(start.eta.clone(), lr_lambda, search)?,
            skew_normal,
            Posterior::SkewNormal,
        )?,
        (Family::SkewNormal, AdamCovariance | AdamPrecision) => session.drive(
            start.adam::<SkewNormal>(t.method, &start.eta, lr)?,
            skew_normal,
            Posterior::SkewNormal,
        )?,
        (Family::SkewNormal, Mcef) => {
            session.drive(start.mcef(search)?, skew_normal, Posterior::SkewNormal)?
        }
        (Family::SkewT, Sngd) => session.drive(
            start.sngd_natural::<SkewT>(start.skew_t_lambda(START_NU), lr_lambda, search)?,
            skew_t,
            Posterior::SkewT,
        )?,
        (Family::SkewT, AdamCovariance | AdamPrecision) => session.drive(
            start.adam::<SkewT>(t.method, &start.skew_t_lambda(START_NU), lr)?,
            skew_t,
            Posterior::SkewT,
        )?,
        (Family::SkewNormalMixture, Sngd) => session.drive(
            mixture.sngd(lr_lambda, search)?,
            skew_mixture,
            Posterior::Mixture,
        )?,
        (Family::SkewNormalMixture, AdamCovariance | AdamPrecision) => session.drive(
            mixture.adam(t.method, lr)?,
            skew_mixture,
            Posterior::Mixture,
        )?,
        (family, Mcef) => {
            return Err(Error::Config(format!(
                "train.method = \"mcef\" needs family = \"skew-normal\" (family is \"{}\")",
                family.name()
            )));
        }
    };
    let ended = match outcome {
        Outcome::Completed | Outcome::EarlyStopped => "completed".to_string(),
        Outcome::Interrupted => format!(
            "interrupted at step {}; continue with helmholtz vi --resume {}",
            session.state.step,
            run.path().display()
        ),
        Outcome::Diverged(message) => {
            return Err(Error::Diverged(format!(
                "{message}; the last checkpoint is kept (a smaller train.lr may help)"
            )));
        }
    };
    let interrupted = matches!(outcome, Outcome::Interrupted);
    let state = session.state;
    finish(
        config,
        data,
        run,
        &posterior,
        &state,
        ended,
        interrupted,
        progress,
    )
}

impl<'a> Session<'a, '_> {
    /// Trains `method` on the targets `target(model, draws, noise)`, from the saved state when
    /// resuming; returns the final posterior (`posterior` of the method's point) and how it
    /// ended.
    fn drive<M, T>(
        &mut self,
        mut method: M,
        target: impl Fn(&'a LogisticRegression, usize, Noise) -> T,
        posterior: impl Fn(M::Point) -> Posterior,
    ) -> Result<(Posterior, Outcome)>
    where
        M: Method<Point = T::Point, Gradient = T::Gradient>,
        T: Target,
    {
        let (config, model) = (self.config, self.model);
        let (seed, t) = (config.seed, &config.train);
        if let Some(saved) = &self.saved {
            method.restore(saved)?;
        }
        let noise = move |stream: u64, step: u64| Noise {
            seed,
            ids: vec![stream, step],
        };
        let evaluate =
            |q: &M::Point, step: u64| target(model, t.eval_draws, noise(ids::EVAL, step)).value(q);
        let fresh = self.state == TrainState::default();
        let mut watch = ViWatch {
            evaluate: &evaluate,
            run: self.run,
            progress: &mut *self.progress,
            iterations: t.iterations,
        };
        if fresh {
            let value = evaluate(&method.distribution()?, 0)?;
            watch.record(0, 0, 0.0, value)?;
        }
        let trainer = Trainer {
            seed,
            epochs: usize::MAX,
            batch_size: 1,
            checkpoint_every: 1,
            objective_name: "negative_elbo_steps",
            sampling: Sampling::WithReplacement {
                steps_per_epoch: t.eval_every,
            },
            max_steps: Some(t.iterations as u64),
        };
        let mut steps = MethodSteps::new(|m: &mut M, _: &Batch<'_, f64>, ctx: &StepContext| {
            m.step(&target(model, t.draws, noise(ids::TRAIN, ctx.step)))
                .map_err(|e| Error::Diverged(format!("step {}: {e}", ctx.step + 1)))
        });
        let outcome = trainer.fit(
            &mut method,
            &mut steps,
            &IndicesOnly { n_points: 1 },
            &mut self.state,
            &mut [&mut watch],
            &mut ViStore(self.run),
            self.stop,
        )?;
        Ok((posterior(method.distribution()?), outcome))
    }
}

/// Evaluates the negative ELBO after every block of `eval_every` steps: one metrics record and
/// one progress line each.
struct ViWatch<'a, E> {
    evaluate: &'a E,
    run: &'a RunDir,
    progress: &'a mut dyn FnMut(&str),
    iterations: usize,
}

impl<E> ViWatch<'_, E> {
    fn record(&mut self, step: u64, epoch: usize, seconds: f64, value: f64) -> Result<()> {
        self.run.log(&serde_json::json!({
            "step": step,
            "epoch": epoch,
            "split": "train",
            "seconds": seconds,
            "negative_elbo": value,
        }))?;
        (self.progress)(&format!(
            "step {step}/{}: negative ELBO {value:.4} ({seconds:.1} s)",
            self.iterations
        ));
        Ok(())
    }
}

impl<M, E> Observer<M> for ViWatch<'_, E>
where
    M: Method,
    E: Fn(&M::Point, u64) -> Result<f64>,
{
    fn on_epoch(
        &mut self,
        method: &M,
        _: &mut EpochRecord,
        state: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let value = (self.evaluate)(&method.distribution()?, state.step)?;
        self.record(state.step, state.epoch, state.train_s, value)?;
        if !value.is_finite() {
            return Ok(Control::Diverged(format!(
                "the negative ELBO is {value} after step {}",
                state.step
            )));
        }
        Ok(Control::Continue)
    }
}

/// Checkpoints of a vi run: the method's state and the counters, in `state.json`.
struct ViStore<'a>(&'a RunDir);

impl<M: Method, A> CheckpointStore<M, A> for ViStore<'_> {
    fn save(&mut self, slot: Slot, method: &M, _: &A, state: &TrainState) -> Result<()> {
        let stored = ViState {
            version: env!("CARGO_PKG_VERSION").to_string(),
            state: state.clone(),
            method: method.state(),
        };
        if stored
            .method
            .values
            .values()
            .flatten()
            .any(|v| !v.is_finite())
        {
            return Err(Error::Diverged(
                "the method's state is not finite; the last checkpoint is kept".into(),
            ));
        }
        let text = serde_json::to_string(&stored).map_err(|e| Error::Checkpoint(e.to_string()))?;
        self.0.write_checkpoint(slot, |tmp| {
            let path = tmp.join(CHECKPOINT_STATE);
            std::fs::write(&path, &text).map_err(|e| Error::io(&path, e))
        })
    }
}

/// The final draws, the negative ELBO with its standard error, the posterior summary, the
/// predictive on both splits, and the files.
#[allow(clippy::too_many_arguments)]
fn finish(
    config: &ViConfig,
    data: &ViData,
    run: &RunDir,
    posterior: &Posterior,
    state: &TrainState,
    ended: String,
    interrupted: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<ViOutcome> {
    let t = &config.train;
    // The draws, and the same again while they are made.
    let bytes = bytes_of(&[t.final_draws, data.model.dim(), 2], 8);
    check_allocation(
        &format!("train.final_draws = {} draws of q", t.final_draws),
        bytes,
    )?;
    let mut rng = Stream::new(config.seed, &[ids::SAMPLE, FINAL_DRAWS_STREAM]);
    let draws = posterior.sample(t.final_draws, &mut rng)?;
    let (negative_elbo, negative_elbo_se) = posterior.negative_elbo(&data.model, draws.as_ref())?;
    let how = format!("{} draws of the final q", t.final_draws);
    let summary_p = posterior.summarize(&data.features, draws.as_ref(), &how)?;
    let summary = ViSummary {
        name: config.name.clone(),
        family: config.model.family.name().to_string(),
        method: method_name(t.method).to_string(),
        points: data.model.x.nrows(),
        weights: data.model.dim(),
        steps: state.step,
        train_s: state.train_s,
        ended,
        negative_elbo,
        negative_elbo_se,
        final_draws: t.final_draws,
        train: predictive(draws.as_ref(), data.model.x.as_ref(), &data.model.y),
        test: data
            .test
            .as_ref()
            .map(|(x, y)| predictive(draws.as_ref(), x.as_ref(), y)),
    };
    progress(&format!(
        "final negative ELBO {negative_elbo:.4} ± {negative_elbo_se:.4} ({} draws)",
        t.final_draws
    ));
    let file = PosteriorFile {
        summary: &summary_p,
        intercept: config.data.intercept,
        transform: &data.transform,
    };
    run.write_file(POSTERIOR_FILE, pretty(&file)?.as_bytes())?;
    run.write_file(SUMMARY_FILE, pretty(&summary)?.as_bytes())?;
    let text = summary.text(&summary_p);
    run.write_file(SUMMARY_TEXT, text.as_bytes())?;
    Ok(ViOutcome {
        summary,
        posterior: summary_p,
        text,
        interrupted,
    })
}

/// Pretty JSON of a file a run writes.
fn pretty<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Checkpoint(e.to_string()))
}
