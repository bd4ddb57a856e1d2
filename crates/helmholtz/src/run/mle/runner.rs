//! Running an `mle` fit: the method for the family built from the paper's start, stepped by the
//! [`Trainer`] in blocks of `eval_every` steps (sampling points with replacement, or the whole
//! file every step), the NLLs logged after every block, checkpoints of the method's state that a
//! resume continues bit for bit, and the fitted parameters and summaries at the end. Also the
//! uses of a finished run: the NLL of new data and draws from the fit.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use faer::{Mat, MatRef};
use serde::Serialize;
use serde_json::{Value, json};

use super::data::{
    Observations, RunTables, array_tables, observations_of_values, read_observations, read_tables,
};
use super::fitted::Fitted;
use super::{Coordinates, Family, LambdaRule, MleConfig, MleMethod, MleTrain, SearchRule, Start};
use crate::data::batches::{BatchSource, Columns, IndicesOnly};
use crate::data::table::Transform;
use crate::dist::copula::StudentTCopula;
use crate::dist::exponential_family::{Gamma, Mixture};
use crate::dist::skew::{SkewGradient, SkewNormal, SkewT};
use crate::dist::surrogate::{GaussianMixture, Gaussians, MeanCoordinates, Surrogated};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::objectives::targets::centred_skew::{Centred, CentredSkewNormal};
use crate::objectives::targets::copula::{CopulaGradient, CopulaNll};
use crate::objectives::targets::negative_binomial::{
    NbMixtureNll, NbMixtureParams, NegativeBinomial, NegativeBinomialNll,
};
use crate::objectives::targets::skew_normal::SkewNormalNll;
use crate::objectives::targets::skew_t::SkewTNll;
use crate::objectives::targets::{MIN_NU, Target};
use crate::optim::sngd::starts::{
    SkewStart, copula_start, nb_inits, nb_mixture_inits, nb_mixture_quantile_start,
    nb_mixture_surrogate_mean, nb_surrogate_mean, skew_normal_moment_start,
};
use crate::optim::sngd::{
    AdamRoot, Flat, FlatRule, LineSearch, Method, MethodState, Root, SngdMean, Step,
};
use crate::run::{
    CHECKPOINT_STATE, CONFIG_FILE, DATA_FOLDER, RunDir, SUMMARY_FILE, relative_to_run,
};
use crate::train::sngd::MethodSteps;
use crate::train::trainer::{
    Batch, CheckpointStore, Control, EpochRecord, Observer, Outcome, Sampling, Slot, StepContext,
    TrainState, Trainer,
};

/// The fitted parameters, the columns and the transform.
pub const PARAMS_FILE: &str = "params.json";
/// The readable summary.
pub const SUMMARY_TEXT: &str = "summary.txt";
/// The method's state in a checkpoint.
const METHOD_FILE: &str = "method.json";
/// Where the end of a run that stopped early is kept in the trainer's state.
const ENDED: &str = "ended";

/// How a fit ended, as `summary.json` records it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MleSummary {
    /// The run's name.
    pub name: String,
    /// The family.
    pub family: &'static str,
    /// The method.
    pub method: &'static str,
    /// The columns modelled.
    pub columns: Vec<String>,
    /// Training rows.
    pub rows: usize,
    /// Test rows, when a test file was given.
    pub test_rows: Option<usize>,
    /// Steps taken.
    pub steps: u64,
    /// Seconds of training (evaluations excluded).
    pub seconds: f64,
    /// Mean NLL per training row, nats, in the data's units.
    pub train_nll: f64,
    /// Mean NLL per test row.
    pub test_nll: Option<f64>,
    /// How the run ended, in words.
    pub ended: String,
    /// Completed, Interrupted or Diverged.
    pub outcome: &'static str,
}

/// What a fit returns: the summary, the fitted distribution in the data's units and the
/// readable summary text.
#[derive(Clone, Debug)]
pub struct MleOutcome {
    /// The summary.
    pub summary: MleSummary,
    /// The fit, in the data's own units.
    pub fitted: Fitted,
    /// `summary.txt`.
    pub text: String,
    /// Whether a stop request ended the run before its steps were done.
    pub interrupted: bool,
}

/// Fits `config` and writes the run into `dir` (which must not exist or be empty; nothing is
/// created when the config or the data are refused). `progress(line)` gets a line per
/// evaluation; raising `stop` ends the run after the current step with a checkpoint that
/// [`resume_mle`] continues.
pub fn run_mle(
    config: &MleConfig,
    dir: &Path,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<MleOutcome> {
    config.validate()?;
    let tables = read_tables(config)?;
    let run = RunDir::create(dir)?;
    run.write_file(CONFIG_FILE, stored_toml(config, &run)?.as_bytes())?;
    for note in &tables.notes {
        progress(note);
    }
    fit(config, &run, &tables, None, &mut progress, stop)
}

/// Fits `config` to data given as arrays instead of files (the Python package's entry point):
/// `train` (n × d, one observation per row; counts as whole numbers in one column) and `test`
/// are checked as files are (errors name them `data` and `test`, rows counted from 1), then stored in the new run as `data/train.npy` and `data/test.npy`, which
/// its `config.toml` names relative to the run. [`resume_mle`], [`eval_file`] and the command
/// line (`helmholtz mle --resume`, `helmholtz eval`) read them from wherever the run is moved.
/// The file options of `config.data` (header, delimiter, column) must be unset; its train and
/// test paths are replaced. The fit is the one [`run_mle`] makes of an NPY file of the same
/// values.
pub fn run_mle_with_arrays(
    mut config: MleConfig,
    dir: &Path,
    train: MatRef<'_, f64>,
    test: Option<MatRef<'_, f64>>,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<MleOutcome> {
    let d = &config.data;
    if d.header.is_some() || d.delimiter.is_some() || d.column.is_some() {
        return Err(Error::Config(
            "data.header, data.delimiter and data.column describe files; a fit of arrays models every column of the array as it is".into(),
        ));
    }
    let absolute = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
    let in_run = |name: &str| absolute.join(DATA_FOLDER).join(format!("{name}.npy"));
    config.data.train = in_run("train");
    config.data.test = test.map(|_| in_run("test"));
    config.validate()?;
    let tables = array_tables(&config, train, test)?;
    let run = RunDir::create(dir)?;
    run.store_array("train", train)?;
    if let Some(test) = test {
        run.store_array("test", test)?;
    }
    run.write_file(CONFIG_FILE, stored_toml(&config, &run)?.as_bytes())?;
    fit(&config, &run, &tables, None, &mut progress, stop)
}

/// The config as a run stores it: every default written out, data paths absolute except those
/// of data inside the run, which are relative to it (so the run can move).
fn stored_toml(config: &MleConfig, run: &RunDir) -> Result<String> {
    let mut stored = config.clone();
    stored.data.train = relative_to_run(&stored.data.train, run.path());
    stored.data.test = stored.data.test.map(|p| relative_to_run(&p, run.path()));
    stored.to_toml()
}

/// Continues the `mle` run in `dir` from its last checkpoint; `overrides` may raise
/// `train.iterations` (recorded in `history.jsonl`). The steps taken after a resume are those an
/// uninterrupted run takes.
pub fn resume_mle(
    dir: &Path,
    overrides: &[String],
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<MleOutcome> {
    let run = RunDir::open(dir)?;
    let path = run.join(CONFIG_FILE);
    let stored = MleConfig::load(&path, &[])?;
    let config = MleConfig::load(&path, overrides)?;
    let changes = stored.resume_changes(&config)?;
    let tables = read_tables(&config)?;
    let checkpoint = run.checkpoint(Slot::Last);
    let method: MethodState = read_json(&checkpoint.join(METHOD_FILE))?;
    let stored_state: StoredState = read_json(&checkpoint.join(CHECKPOINT_STATE))?;
    let mut state = stored_state.state;
    if !overrides.is_empty() {
        run.record_resume(overrides, &changes)?;
        run.write_file(CONFIG_FILE, stored_toml(&config, &run)?.as_bytes())?;
    }
    let (iterations, eval_every) = (config.iterations() as u64, config.eval_every() as u64);
    if state.finished && !state.stopped_early && state.step < iterations {
        // More steps asked of a finished run: continue inside the block its last step was in,
        // where an uninterrupted run would be (its draws are replayed from the block's start).
        state.finished = false;
        state.epoch = (state.step / eval_every) as usize;
        state.batch = (state.step % eval_every) as usize;
    }
    run.truncate_metrics_after(state.step)?;
    for note in &tables.notes {
        progress(note);
    }
    fit(
        &config,
        &run,
        &tables,
        Some((method, state)),
        &mut progress,
        stop,
    )
}

/// A checkpoint's `state.json`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
struct StoredState {
    version: String,
    state: TrainState,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(path, e.to_string()))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Checkpoint(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Builds the method of `config` for the family from the paper's start and trains it.
fn fit(
    config: &MleConfig,
    run: &RunDir,
    tables: &RunTables,
    resume: Option<(MethodState, TrainState)>,
    progress: &mut dyn FnMut(&str),
    stop: &AtomicBool,
) -> Result<MleOutcome> {
    let t = &config.train;
    let seed = config.seed;
    let session = Session {
        config,
        run,
        tables,
        resume,
        stop,
    };
    let grid = || LineSearch::Grid {
        points: t.grid.unwrap_or(1000),
    };
    let rule = if t.method == MleMethod::Gd {
        FlatRule::Gd
    } else {
        FlatRule::Bfgs
    };
    let start = t.lr_theta.unwrap_or(0.1);
    let backtracking = match t.search {
        Some(SearchRule::Decrease) => LineSearch::Decrease {
            start,
            halvings: 20,
        },
        _ => LineSearch::Backtracking {
            start,
            halvings: 20,
        },
    };
    let lr_adam = t.lr_adam.unwrap_or(0.01);
    let root = if t.method == MleMethod::AdamPrecision {
        Root::Precision
    } else {
        Root::Covariance
    };
    let sngd = t.method == MleMethod::Sngd;
    match (config.model.family, &tables.train) {
        (Family::NegativeBinomial, Observations::Counts(counts)) => {
            let target = NegativeBinomialNll { counts };
            let (r, s) = nb_inits(1, seed)[0];
            if sngd {
                let method = SngdMean::<NegativeBinomial>::new(
                    MeanCoordinates { family: Gamma },
                    nb_surrogate_mean(r, s)?,
                    Vec::new(),
                    1.0,
                    grid(),
                )?;
                session.train(method, progress, on_target(&target))
            } else {
                let method = Flat::new(&NegativeBinomial { r, s }, rule, grid())?;
                session.train(method, progress, on_target(&target))
            }
        }
        (Family::NbMixture, Observations::Counts(counts)) => {
            let k = config.model.components.unwrap_or(1);
            let init = match config.model.start {
                Some(Start::Paper) => nb_mixture_inits(counts, k, 1, seed).remove(0),
                _ => nb_mixture_quantile_start(counts, k),
            };
            let target = NbMixtureNll { counts };
            if sngd {
                let family = Mixture {
                    family: Gamma,
                    components: k,
                };
                let method = SngdMean::<NbMixtureParams>::new(
                    MeanCoordinates { family },
                    nb_mixture_surrogate_mean(&init)?,
                    Vec::new(),
                    1.0,
                    grid(),
                )?;
                session.train(method, progress, on_target(&target))
            } else {
                let method = Flat::new(&init, rule, grid())?;
                session.train(method, progress, on_target(&target))
            }
        }
        (Family::SkewNormal, Observations::Points(x)) => {
            let q = skew_start(config, x)?;
            if sngd && t.coordinates == Some(Coordinates::Centred) {
                let (m, s, beta) = CentredSkewNormal::coordinates(&q);
                let method = gaussian_sngd(Gaussians::single(m, s), beta, t, backtracking)?;
                session.train_points(method, x, progress, |m, points| {
                    m.step(&Centred(SkewNormalNll { points }))
                })
            } else if sngd {
                let point = Gaussians::single(q.xi.clone(), q.omega.clone());
                let method = gaussian_sngd(point, q.eta.clone(), t, backtracking)?;
                session.train_points(method, x, progress, skew_normal_step)
            } else {
                let method = adam_at::<SkewNormal>(&q, root, &q.eta, lr_adam)?;
                session.train_points(method, x, progress, skew_normal_step)
            }
        }
        (Family::SkewT, Observations::Points(x)) => {
            let q = skew_start(config, x)?;
            // λ = (η, ln(ν − 2)) with ν = 50.
            let mut lambda = q.eta.clone();
            lambda.push((50.0 - MIN_NU).ln());
            if sngd {
                let point = Gaussians::single(q.xi.clone(), q.omega.clone());
                let method = gaussian_sngd(point, lambda, t, backtracking)?;
                session.train_points(method, x, progress, skew_t_step)
            } else {
                let method = adam_at::<SkewT>(&q, root, &lambda, lr_adam)?;
                session.train_points(method, x, progress, skew_t_step)
            }
        }
        (Family::TCopula, Observations::Points(x)) => {
            let d = x.ncols();
            let (r, lambda) = copula_start(d, seed)?;
            if sngd {
                let point = Gaussians::single(vec![0.0; d], r);
                let method = gaussian_sngd(point, vec![lambda], t, backtracking)?;
                session.train_points(method, x, progress, copula_step)
            } else {
                // WᵀW = R (or R⁻¹) with W = Lᵀ.
                let w = AdamRoot::<StudentTCopula>::root_of(&r, root)?;
                let method = AdamRoot::<StudentTCopula>::new(
                    GaussianMixture::single(d),
                    root,
                    vec![0.0],
                    &[vec![0.0; d]],
                    &[w],
                    &[lambda],
                    lr_adam,
                )?;
                session.train_points(method, x, progress, copula_step)
            }
        }
        (family, _) => Err(Error::Config(format!(
            "the {} family does not take these observations",
            family.name()
        ))),
    }
}

/// Continuous SNGD from the surrogate Gaussian `point` and λ, which moves as `train.lambda_step`
/// says, with `train.lr_lambda`.
fn gaussian_sngd<P>(
    point: Gaussians,
    lambda: Vec<f64>,
    train: &MleTrain,
    search: LineSearch,
) -> Result<SngdMean<P>>
where
    P: Surrogated<Surrogate = GaussianMixture>,
{
    let d = point.means[0].len();
    let lr = train.lr_lambda.unwrap_or(0.01);
    let method = SngdMean::<P>::new(GaussianMixture::single(d), point, lambda, lr, search)?;
    match train.lambda_step {
        Some(LambdaRule::QuasiNewton) => method.quasi_newton_lambda(lr),
        _ => Ok(method),
    }
}

/// The start of a skew family: the method-of-moments skew-normal of the data, or the paper's
/// ξ, η ~ N(0, 0.01²), Ω = I from the seed.
fn skew_start(config: &MleConfig, x: &Mat<f64>) -> Result<SkewNormal> {
    match config.model.start {
        Some(Start::Paper) => {
            let start = SkewStart::new(x.ncols(), 1.0, config.seed);
            SkewNormal::new(start.xi.clone(), start.omega(), start.eta.clone())
        }
        _ => skew_normal_moment_start(x.as_ref()),
    }
}

/// Adam with square root `root` on the Gaussian part of `q`, with λ beside it.
fn adam_at<P>(q: &SkewNormal, root: Root, lambda: &[f64], lr: f64) -> Result<AdamRoot<P>>
where
    P: crate::dist::surrogate::Surrogated<Surrogate = GaussianMixture>,
{
    AdamRoot::new(
        GaussianMixture::single(q.dim()),
        root,
        vec![0.0],
        std::slice::from_ref(&q.xi),
        &[AdamRoot::<P>::root_of(&q.omega, root)?],
        lambda,
        lr,
    )
}

/// Steps of a method on one full-batch target.
fn on_target<'t, M, T>(
    target: &'t T,
) -> impl FnMut(&mut M, &Batch<'_, f64>, &StepContext) -> Result<Step> + 't
where
    M: Method,
    T: Target<Point = M::Point, Gradient = M::Gradient>,
{
    move |method, _, _| method.step(target)
}

/// A step on the skew-normal NLL of `points`.
fn skew_normal_step<M>(method: &mut M, points: MatRef<'_, f64>) -> Result<Step>
where
    M: Method<Point = SkewNormal, Gradient = SkewGradient>,
{
    method.step(&SkewNormalNll { points })
}

/// A step on the skew-t NLL of `points`.
fn skew_t_step<M>(method: &mut M, points: MatRef<'_, f64>) -> Result<Step>
where
    M: Method<Point = SkewT, Gradient = (SkewGradient, f64)>,
{
    method.step(&SkewTNll { points })
}

/// A step on the copula NLL of `points`.
fn copula_step<M>(method: &mut M, points: MatRef<'_, f64>) -> Result<Step>
where
    M: Method<Point = StudentTCopula, Gradient = CopulaGradient>,
{
    method.step(&CopulaNll { points })
}

/// One run's fixed parts: config, directory, data, where it resumes from, the stop flag.
struct Session<'a> {
    config: &'a MleConfig,
    run: &'a RunDir,
    tables: &'a RunTables,
    resume: Option<(MethodState, TrainState)>,
    stop: &'a AtomicBool,
}

impl Session<'_> {
    /// Trains `method` on continuous points `x`: each step on a batch drawn with replacement
    /// (`train.batch`) or on all of `x`; `step_on(method, points)` takes it.
    fn train_points<M>(
        self,
        method: M,
        x: &Mat<f64>,
        progress: &mut dyn FnMut(&str),
        step_on: impl Fn(&mut M, MatRef<'_, f64>) -> Result<Step>,
    ) -> Result<MleOutcome>
    where
        M: Method,
        M::Point: Into<Fitted>,
    {
        match self.config.train.batch {
            Some(_) => self.train(method, progress, |m, batch, _| {
                let rows = batch.mat().transpose().to_owned();
                step_on(m, rows.as_ref())
            }),
            None => self.train(method, progress, |m, _, _| step_on(m, x.as_ref())),
        }
    }

    /// Trains `method` with `step` on the Trainer from the start or the checkpoint, then writes
    /// the parameters and the summaries.
    fn train<M>(
        self,
        mut method: M,
        progress: &mut dyn FnMut(&str),
        mut step: impl FnMut(&mut M, &Batch<'_, f64>, &StepContext) -> Result<Step>,
    ) -> Result<MleOutcome>
    where
        M: Method,
        M::Point: Into<Fitted>,
    {
        let (config, run, tables) = (self.config, self.run, self.tables);
        let mut state = TrainState::default();
        if let Some((stored, resumed)) = &self.resume {
            method.restore(stored)?;
            state = resumed.clone();
        }
        let (iterations, eval_every) = (config.iterations(), config.eval_every());
        let points;
        let one = IndicesOnly { n_points: 1 };
        let (source, batch_size): (&dyn BatchSource<f64>, usize) =
            match (config.train.batch, &tables.train) {
                (Some(batch), Observations::Points(x)) => {
                    let d = x.ncols();
                    points = Columns {
                        values: (0..x.nrows())
                            .flat_map(|i| (0..d).map(move |j| x[(i, j)]))
                            .collect(),
                        dim: d,
                    };
                    (&points, batch)
                }
                _ => (&one, 1),
            };
        let trainer = Trainer {
            seed: config.seed,
            epochs: iterations.div_ceil(eval_every),
            batch_size,
            checkpoint_every: 1,
            objective_name: "objective",
            sampling: Sampling::WithReplacement {
                steps_per_epoch: eval_every,
            },
            max_steps: Some(iterations as u64),
        };
        let mut evaluations = Evaluations {
            tables,
            run,
            iterations,
            progress,
        };
        if state.step == 0 && state.epoch == 0 && state.batch == 0 {
            evaluations.evaluate(&method, &state)?;
        }
        let mut steps = MethodSteps::new(|m: &mut M, batch: &Batch<'_, f64>, ctx: &StepContext| {
            step(m, batch, ctx).map_err(|e| Error::Diverged(format!("step {}: {e}", ctx.step + 1)))
        });
        let mut store = MleStore(run);
        let outcome = trainer.fit(
            &mut method,
            &mut steps,
            source,
            &mut state,
            &mut [&mut evaluations],
            &mut store,
            self.stop,
        )?;
        let ended = match &outcome {
            Outcome::Completed | Outcome::EarlyStopped => match state.extra.get(ENDED) {
                Some(Value::String(ended)) => ended.clone(),
                _ => format!("completed {} steps", state.step),
            },
            Outcome::Interrupted => format!(
                "interrupted after step {}; continue with helmholtz mle --resume {}",
                state.step,
                run.path().display()
            ),
            Outcome::Diverged(message) => {
                let ended = format!("stopped after step {}: {message}", state.step);
                state.finished = true;
                state.stopped_early = true;
                state.extra.insert(ENDED.into(), ended.clone().into());
                store.save(Slot::Last, &method, &steps, &state)?;
                ended
            }
        };
        let fitted: Fitted = method.distribution()?.into();
        finish(
            config,
            run,
            tables,
            &fitted,
            &state,
            ended,
            outcome.name(),
            outcome == Outcome::Interrupted,
        )
    }
}

/// Logs the training and test NLLs at the end of every block of steps (the trainer's epochs)
/// and before the first step, and reports them.
struct Evaluations<'a> {
    tables: &'a RunTables,
    run: &'a RunDir,
    iterations: usize,
    progress: &'a mut dyn FnMut(&str),
}

/// The mean NLL of `data` under `fitted` in the data's units.
fn data_nll(fitted: &Fitted, data: &Observations, transform: &Transform) -> Result<f64> {
    Ok(fitted.nll(data)? + transform.log_scale())
}

impl Evaluations<'_> {
    fn evaluate<M>(&mut self, method: &M, state: &TrainState) -> Result<()>
    where
        M: Method,
        M::Point: Into<Fitted>,
    {
        let fitted: Fitted = method.distribution()?.into();
        let transform = &self.tables.transform;
        let train = data_nll(&fitted, &self.tables.train, transform)?;
        let test = match &self.tables.test {
            Some(test) => Some(data_nll(&fitted, test, transform)?),
            None => None,
        };
        let mut record =
            json!({ "step": state.step, "seconds": state.train_s, "train_nll": train });
        let mut line = format!(
            "step {}/{}: train NLL {train:.6}",
            state.step, self.iterations
        );
        if let Some(test) = test {
            record["test_nll"] = test.into();
            line.push_str(&format!(", test NLL {test:.6}"));
        }
        line.push_str(&format!(" ({:.2} s)", state.train_s));
        self.run.log(&record)?;
        (self.progress)(&line);
        Ok(())
    }
}

impl<M> Observer<M> for Evaluations<'_>
where
    M: Method,
    M::Point: Into<Fitted>,
{
    fn on_epoch(
        &mut self,
        method: &M,
        _record: &mut EpochRecord,
        state: &mut TrainState,
        _say: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        self.evaluate(method, state)?;
        Ok(Control::Continue)
    }
}

/// Checkpoints of an `mle` run: the method's state and the trainer's counters, as JSON (exact
/// for f64).
struct MleStore<'a>(&'a RunDir);

impl<M: Method, A> CheckpointStore<M, A> for MleStore<'_> {
    fn save(&mut self, slot: Slot, method: &M, _: &A, state: &TrainState) -> Result<()> {
        let saved = method.state();
        if let Some((name, _)) = saved
            .values
            .iter()
            .find(|(_, v)| v.iter().any(|x| !x.is_finite()))
        {
            return Err(Error::Diverged(format!(
                "the method's {name:?} holds a non-finite value; the last checkpoint is kept"
            )));
        }
        self.0.write_checkpoint(slot, |tmp| {
            write_json(&tmp.join(METHOD_FILE), &saved)?;
            let stored = StoredState {
                version: env!("CARGO_PKG_VERSION").to_string(),
                state: state.clone(),
            };
            write_json(&tmp.join(CHECKPOINT_STATE), &stored)
        })
    }
}

/// Writes `params.json`, `summary.json` and `summary.txt` of a fit.
#[allow(clippy::too_many_arguments)]
fn finish(
    config: &MleConfig,
    run: &RunDir,
    tables: &RunTables,
    fitted: &Fitted,
    state: &TrainState,
    ended: String,
    outcome: &'static str,
    interrupted: bool,
) -> Result<MleOutcome> {
    let transform = &tables.transform;
    let train_nll = data_nll(fitted, &tables.train, transform)?;
    let test_nll = match &tables.test {
        Some(test) => Some(data_nll(fitted, test, transform)?),
        None => None,
    };
    let in_data_units = fitted.in_data_units(transform)?;
    let mut params = json!({
        "family": config.model.family.name(),
        "method": config.train.method.name(),
        "steps": state.step,
        "columns": tables.columns,
        "transform": transform,
        "params": fitted.to_json(),
    });
    if transform.kind != crate::data::table::TransformKind::None {
        params["params_in_data_units"] = in_data_units.to_json();
    }
    run.write_file(PARAMS_FILE, pretty(&params)?.as_bytes())?;
    let summary = MleSummary {
        name: config.name.clone(),
        family: config.model.family.name(),
        method: config.train.method.name(),
        columns: tables.columns.clone(),
        rows: tables.train.rows(),
        test_rows: tables.test.as_ref().map(Observations::rows),
        steps: state.step,
        seconds: state.train_s,
        train_nll,
        test_nll,
        ended,
        outcome,
    };
    run.write_file(SUMMARY_FILE, pretty(&summary)?.as_bytes())?;
    let text = summary_text(config, &summary, transform, &in_data_units);
    run.write_file(SUMMARY_TEXT, text.as_bytes())?;
    Ok(MleOutcome {
        summary,
        fitted: in_data_units,
        text,
        interrupted,
    })
}

fn pretty(value: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Checkpoint(e.to_string()))
}

/// The readable summary: what was fitted to what, how it ended, the NLLs and the parameters.
fn summary_text(
    config: &MleConfig,
    summary: &MleSummary,
    transform: &Transform,
    fitted: &Fitted,
) -> String {
    let mut text = format!(
        "{}: {} fitted by {} to {} rows of {}\n{} steps, {:.2} s: {}\ntrain NLL {:.6} nats per row",
        summary.name,
        summary.family,
        summary.method,
        summary.rows,
        config.data.train.display(),
        summary.steps,
        summary.seconds,
        summary.ended,
        summary.train_nll
    );
    if let (Some(test), Some(rows), Some(path)) =
        (summary.test_nll, summary.test_rows, &config.data.test)
    {
        text.push_str(&format!(
            "; test NLL {test:.6} on {rows} rows of {}",
            path.display()
        ));
    }
    text.push('\n');
    if transform.kind != crate::data::table::TransformKind::None {
        text.push_str(&format!(
            "data transform: {} (fitted on the training file); NLLs and parameters in the data's own units\n",
            transform.kind.name()
        ));
    }
    text.push_str(&fitted.describe(&summary.columns));
    text
}

/// A finished (or interrupted) `mle` run, as eval and sample read it: the config, the fit in
/// the model's coordinates, the transform and the columns.
pub fn open_mle(dir: &Path) -> Result<(MleConfig, Fitted, Transform, Vec<String>)> {
    let run = RunDir::open_read(dir)?;
    let config = MleConfig::load(&run.join(CONFIG_FILE), &[])?;
    let path = run.join(PARAMS_FILE);
    if !path.exists() {
        return Err(Error::Config(format!(
            "{} holds no {PARAMS_FILE}: the fit has not written its parameters yet; continue it with helmholtz mle --resume {}",
            dir.display(),
            dir.display()
        )));
    }
    let params: Value = read_json(&path)?;
    let fitted = Fitted::from_json(config.model.family, &params["params"])
        .map_err(|e| Error::format(&path, e.to_string()))?;
    let transform: Transform = serde_json::from_value(params["transform"].clone())
        .map_err(|e| Error::format(&path, format!("transform: {e}")))?;
    let columns: Vec<String> = serde_json::from_value(params["columns"].clone())
        .map_err(|e| Error::format(&path, format!("columns: {e}")))?;
    Ok((config, fitted, transform, columns))
}

/// The NLL of a file under a fit: rows, mean NLL per row and total, in nats in the data's
/// units, with the lines the reader logged.
#[derive(Clone, Debug, PartialEq)]
pub struct FileNll {
    /// Rows read.
    pub rows: usize,
    /// Mean NLL per row.
    pub mean: f64,
    /// Total NLL.
    pub total: f64,
    /// Lines for the log (a header read from the file's first row).
    pub notes: Vec<String>,
}

/// The NLL of the rows of `file` under the `mle` run in `dir`, read as the run's training file
/// was read (header, delimiter, column) and transformed as it was.
pub fn eval_file(dir: &Path, file: &Path) -> Result<FileNll> {
    let (config, fitted, transform, columns) = open_mle(dir)?;
    let (data, notes) = read_observations(&config, file, &columns, &transform)?;
    file_nll(&fitted, &data, &transform, file, notes)
}

/// The NLL of the rows of `values` (n × d, one observation per row, in the data's units as the
/// training data were given) under the `mle` run in `dir`: [`eval_file`] for data in memory,
/// checked and transformed the same way; `origin` names them in errors.
pub fn eval_values(dir: &Path, values: MatRef<'_, f64>, origin: &Path) -> Result<FileNll> {
    let (config, fitted, transform, columns) = open_mle(dir)?;
    let data = observations_of_values(&config, values, origin, &columns, &transform)?;
    file_nll(&fitted, &data, &transform, origin, Vec::new())
}

/// The mean and total NLL of `data` under `fitted`; a row of zero density is an error naming
/// `origin`.
fn file_nll(
    fitted: &Fitted,
    data: &Observations,
    transform: &Transform,
    origin: &Path,
    notes: Vec<String>,
) -> Result<FileNll> {
    let mean = data_nll(fitted, data, transform)?;
    if !mean.is_finite() {
        return Err(Error::InvalidData(format!(
            "{}: the NLL under the fit is {mean} (a row with zero density)",
            origin.display()
        )));
    }
    let rows = data.rows();
    Ok(FileNll {
        rows,
        mean,
        total: mean * rows as f64,
        notes,
    })
}

/// `n` draws from the `mle` run in `dir`, seeded by `seed`, in the data's own units (rows), with
/// the column names.
pub fn sample_run(dir: &Path, n: usize, seed: u64) -> Result<(Mat<f64>, Vec<String>)> {
    if n == 0 {
        return Err(Error::Config(
            "--n 0 draws nothing; give at least 1 draw".into(),
        ));
    }
    let (_, fitted, transform, columns) = open_mle(dir)?;
    // The draws, their transform back and the file's text.
    let bytes = crate::memory::bytes_of(&[n, fitted.dim(), 3], 8);
    crate::memory::check_allocation(
        &format!("--n {n} draws of dimension {}", fitted.dim()),
        bytes,
    )?;
    let draws = fitted.sample(n, &mut Stream::new(seed, &[ids::SAMPLE]))?;
    Ok((transform.invert(draws.as_ref()), columns))
}
