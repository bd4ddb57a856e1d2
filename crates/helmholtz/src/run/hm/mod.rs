//! The Helmholtz-machine run: a config becomes a run directory, the model trains on the
//! [`Trainer`] with its evaluation observer (validation, early stopping, test estimates) and
//! its checkpoint store (parameters, optimizer moments, Fisher samples), and resumes
//! bit-for-bit.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::config_changes;
use super::data::Points;
use super::{
    CHECKPOINT_STATE, CONFIG_FILE, Config, Control, EpochRecord, Observer, Outcome, RunData,
    RunDir, SUMMARY_FILE, Slot, Split, TrainState, checkpoint, data,
};
use crate::data::batches::BatchSource;
use crate::dist::{Conditions, EntropySum};
use crate::error::{Error, Result};
use crate::eval::Estimator;
use crate::math::rng::{Stream, ids};
use crate::memory::bytes_of;
use crate::models::HelmholtzMachine;
use crate::optim::{Preconditioner, PreconditionerState};
use crate::train::trainer::{CheckpointStore, DivergenceGuard, Trainer};
use crate::train::{HmLearner, Variant};

mod evaluation;

pub use evaluation::{BihmEstimate, TestEstimate};
use evaluation::{
    Evaluation, entropy_sum, estimate, mean_and_error, per_point_estimates, star_text,
    test_estimate,
};

/// A training run of a Helmholtz machine bound to its directory.
pub struct Run {
    /// The run directory (locked while this process trains it).
    pub dir: RunDir,
    /// The resolved config.
    pub config: Config,
    /// The model.
    pub model: HelmholtzMachine,
    /// The learning step: gradients and optimizer, wrapped with the Fisher preconditioner
    /// when the run is natural.
    pub algorithm: HmLearner,
    /// Counters.
    pub state: TrainState,
    /// The data.
    pub data: RunData,
    /// What a resume's overrides changed (to announce).
    pub changes: Vec<String>,
}

impl Run {
    /// Starts a new run in `dir`, which must not exist or be empty. Config and data are
    /// validated before anything is created.
    pub fn create(config: Config, dir: &Path) -> Result<Self> {
        if dir.join(CONFIG_FILE).exists() {
            return Err(Error::Config(format!(
                "{} already holds a run; use --resume to continue it or --out to choose another directory",
                dir.display()
            )));
        }
        config.validate()?;
        let data = data::load(&config.data)?;
        config.check_memory(data.train.dim())?;
        let run_dir = RunDir::create(dir)?;
        Self::start(run_dir, config, data)
    }

    /// Starts a new run in `dir` on in-memory data (one point per column of each array: the
    /// train split and, when given, the validation and test splits). The arrays are written
    /// into the run as `data/{train,valid,test}.npy` (float32) and the config's data section
    /// points at them (source `npy`, scale 1; written relative to the run, so the directory
    /// may move), so that the run resumes, evaluates and samples from the command line exactly
    /// as one made from files. `config.data.binarize` applies as
    /// for files. Config and arrays are checked before anything is created.
    pub fn create_with_arrays(
        mut config: Config,
        dir: &Path,
        train: faer::MatRef<'_, f32>,
        valid: Option<faer::MatRef<'_, f32>>,
        test: Option<faer::MatRef<'_, f32>>,
    ) -> Result<Self> {
        use super::config::DataSource;
        let d = train.nrows();
        for (name, x) in [("train", Some(train)), ("valid", valid), ("test", test)] {
            let Some(x) = x else { continue };
            if x.nrows() != d {
                return Err(Error::Dimension(format!(
                    "the {name} points have dimension {}, the training points {d}",
                    x.nrows()
                )));
            }
            let set = crate::data::Dataset::new(x.to_owned());
            set.check_finite()?;
            if config.data.binarize == super::config::Binarize::None {
                set.check_binary()?;
            }
        }
        if train.ncols() == 0 {
            return Err(Error::InvalidData("no training points".into()));
        }
        let absolute = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
        config.data.source = DataSource::Npy;
        config.data.scale = 1.0;
        config.data.label = None;
        let file = |name: &str, given: bool| {
            given.then(|| absolute.join("data").join(format!("{name}.npy")))
        };
        config.data.train = file("train", true);
        config.data.valid = file("valid", valid.is_some());
        config.data.test = file("test", test.is_some());
        config.validate()?;
        config.check_memory(d)?;
        let run_dir = RunDir::create(dir)?;
        let folder = dir.join("data");
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        for (name, x) in [("train", Some(train)), ("valid", valid), ("test", test)] {
            if let Some(x) = x {
                let path = folder.join(format!("{name}.npy"));
                std::fs::write(&path, crate::data::npy::npy_bytes_f32(x))
                    .map_err(|e| Error::io(&path, e))?;
            }
        }
        let data = data::load(&config.data)?;
        let mut stored = config.clone();
        let relative =
            |given: bool, name: &str| given.then(|| Path::new("data").join(format!("{name}.npy")));
        stored.data.train = relative(true, "train");
        stored.data.valid = relative(valid.is_some(), "valid");
        stored.data.test = relative(test.is_some(), "test");
        let mut run = Self::start(run_dir, stored, data)?;
        run.config = config;
        Ok(run)
    }

    /// The model and learner of a new run in the created `run_dir`, with its resolved config
    /// written.
    fn start(run_dir: RunDir, config: Config, data: RunData) -> Result<Self> {
        let mut sizes = vec![data.train.dim()];
        sizes.extend(&config.model.hidden);
        let model =
            HelmholtzMachine::new(&sizes, config.model.init, config.model.bias, config.seed)?;
        let optimizer = config.optimizer.build(&model.params)?;
        let algorithm = HmLearner::from_config(
            config.train.wake_sleep(),
            config.train.natural.clone(),
            optimizer,
            &model,
        )?;
        run_dir.write_file(CONFIG_FILE, config_text(&config).as_bytes())?;
        Ok(Self::assemble(
            run_dir,
            config,
            model,
            algorithm,
            TrainState::default(),
            data,
        ))
    }

    /// Opens an existing run from its last checkpoint to continue it; `overrides` may change
    /// e.g. `train.epochs`. Overrides are recorded in the run (`history.jsonl` and the resolved
    /// config); one that changes the model is refused, others are listed in `changes`. A run
    /// that early stopping ended continues when the overrides raise `eval.patience` past the
    /// evaluations it has gone without improvement, and epochs remain. A run that trains on
    /// has no summary until it ends again: `summary.json` (how its last call ended) is removed.
    pub fn resume(dir: &Path, overrides: &[String]) -> Result<Self> {
        let run_dir = RunDir::open(dir)?;
        let stored_config = Config::load(&run_dir.join(CONFIG_FILE), &[])?;
        let config = Config::load(&run_dir.join(CONFIG_FILE), overrides)?;
        let changes = config_changes(&stored_config, &config)?;
        let mut run = Self::load(run_dir, config, Slot::Last)?;
        if !overrides.is_empty() {
            run.dir.record_resume(overrides, &changes)?;
            run.dir.rewrite_config(&config_text(&run.config))?;
        }
        run.dir.truncate_metrics_after(run.state.step)?;
        if !run.state.finished {
            let summary = run.dir.join(SUMMARY_FILE);
            match std::fs::remove_file(&summary) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&summary, e));
                }
                _ => {}
            }
        }
        run.changes = changes;
        Ok(run)
    }

    /// Opens a run for evaluation or sampling, from its last checkpoint.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_checkpoint(dir, Slot::Last)
    }

    /// Opens a run for evaluation or sampling, from checkpoint `slot` (no lock is taken).
    pub fn open_checkpoint(dir: &Path, slot: Slot) -> Result<Self> {
        let run_dir = RunDir::open_read(dir)?;
        let config = Config::load(&run_dir.join(CONFIG_FILE), &[])?;
        Self::load(run_dir, config, slot)
    }

    /// The training state of a run's last checkpoint, read without loading its data or model
    /// (to ask, say, whether it [trains on](TrainState::trains_on) under a new config).
    pub fn last_state(dir: &Path) -> Result<TrainState> {
        let run_dir = RunDir::open_read(dir)?;
        Ok(stored_state(&run_dir, Slot::Last)?.state)
    }

    fn load(run_dir: RunDir, config: Config, slot: Slot) -> Result<Self> {
        let ckpt = run_dir.checkpoint(slot);
        let stored = stored_state(&run_dir, slot)?;
        let data = data::load(&config.data)?;
        let template =
            HelmholtzMachine::new(&stored.sizes, config.model.init, config.model.bias, 0)?;
        let params_path = ckpt.join("params.safetensors");
        let params = checkpoint::read_tensors(&params_path, &template.params)?;
        if let Some(name) = params.first_non_finite() {
            return Err(Error::Checkpoint(format!(
                "{}: parameter {name} holds a non-finite value, so the checkpoint cannot be evaluated or resumed (the run's other checkpoint, `--checkpoint best` or `last`, may be usable)",
                params_path.display()
            )));
        }
        let model = HelmholtzMachine::from_params(&stored.sizes, params)?;
        if model.x_dim() != data.train.dim() {
            return Err(Error::Dimension(format!(
                "the checkpoint's model expects data of dimension {}, the data has {}",
                model.x_dim(),
                data.train.dim()
            )));
        }
        let mut optimizer = config.optimizer.build(&model.params)?;
        let moments =
            checkpoint::read_tensors(&ckpt.join("optimizer.safetensors"), &optimizer.moments())?;
        optimizer.restore_moments(stored.optimizer_step, moments)?;
        let mut algorithm = HmLearner::from_config(
            config.train.wake_sleep(),
            config.train.natural.clone(),
            optimizer,
            &model,
        )?;
        let fisher_path = ckpt.join(FISHER_FILE);
        if algorithm.preconditioner.is_some() && fisher_path.exists() {
            let state = PreconditionerState {
                step: stored.fisher_step.unwrap_or(0),
                tensors: checkpoint::read_all_tensors(&fisher_path)?,
            };
            algorithm.preconditioner.restore(&model, state)?;
        }
        // A finished run with epochs left continues, unless early stopping ended it and the
        // patience still holds (a raised `eval.patience` lets it go on).
        let mut state = stored.state;
        if state.finished && state.trains_on(config.train.epochs, config.eval.patience) {
            state.finished = false;
            state.stopped_early = false;
        }
        Ok(Self::assemble(
            run_dir, config, model, algorithm, state, data,
        ))
    }

    fn assemble(
        dir: RunDir,
        config: Config,
        model: HelmholtzMachine,
        algorithm: HmLearner,
        state: TrainState,
        data: RunData,
    ) -> Self {
        Run {
            dir,
            config,
            model,
            algorithm,
            state,
            data,
            changes: Vec::new(),
        }
    }

    /// Appends one record to metrics.jsonl.
    pub fn log(&self, record: &serde_json::Value) -> Result<()> {
        self.dir.log(record)
    }

    /// Batches per epoch (the last one may be smaller).
    pub fn n_batches(&self) -> usize {
        self.trainer().n_batches(self.data.train.n_samples())
    }

    /// The loop's settings for this run.
    pub fn trainer(&self) -> Trainer {
        Trainer {
            seed: self.config.seed,
            epochs: self.config.train.epochs,
            batch_size: self.config.train.batch_size,
            checkpoint_every: self.config.checkpoint.every,
            objective_name: "bound",
            ..Trainer::default()
        }
    }

    /// Trains until the configured number of epochs, early stopping, divergence, or `stop`
    /// becoming true. `observer` sees every step and epoch (after evaluation and logging).
    pub fn train(
        &mut self,
        observer: &mut dyn Observer<HelmholtzMachine>,
        stop: &AtomicBool,
    ) -> Result<Outcome> {
        let trainer = self.trainer();
        let source = TrainSource {
            points: &self.data.train,
            binarize_seed: self.config.data.binarize_seed,
        };
        let conditions = self.conditions();
        let mut evaluation = Evaluation {
            config: &self.config,
            data: &self.data,
            conditions,
        };
        let mut guard = DivergenceGuard::default();
        let mut metrics = MetricsLog(&self.dir);
        let mut store = HmStore(&self.dir);
        trainer.fit(
            &mut self.model,
            &mut self.algorithm,
            &source,
            &mut self.state,
            &mut [&mut guard, &mut evaluation, &mut metrics, observer],
            &mut store,
            stop,
        )
    }

    /// Mean importance-sampling log-likelihood of a split (first `max_points` points if given).
    pub fn log_likelihood(&self, split: Split, k: usize, max_points: Option<usize>) -> Result<f64> {
        self.estimate(split, k, max_points, Estimator::LogLikelihood)
    }

    /// The test split's estimate with `k` samples per point and its standard error; for a BiHM
    /// run also log p* through log Z² (`eval.z_dreams`, `eval.z_inner`).
    pub fn test_estimate(&self, k: usize) -> Result<TestEstimate> {
        let dreams = self.config.eval.z_dreams;
        test_estimate(&self.model, &self.data, &self.config, k, dreams)
    }

    /// [`Run::estimate`] and its standard error over the points (sd / √n).
    pub fn estimate_with_error(
        &self,
        split: Split,
        k: usize,
        max_points: Option<usize>,
        estimator: Estimator,
    ) -> Result<(f64, f64)> {
        let per_point = per_point_estimates(
            &self.model,
            &self.data,
            &self.config,
            split,
            k,
            max_points,
            estimator,
        )?;
        Ok(mean_and_error(&per_point))
    }

    /// Mean importance-sampling estimate of a split: log p(x), or BiHM's log p̃*(x).
    pub fn estimate(
        &self,
        split: Split,
        k: usize,
        max_points: Option<usize>,
        estimator: Estimator,
    ) -> Result<f64> {
        Ok(self.estimate_with_error(split, k, max_points, estimator)?.0)
    }

    /// The mean importance-sampling log-likelihood of the points in `path` (the first
    /// `max_points`), read and binarised as the run's test split ([`data::load_file_like`]),
    /// with the number of points evaluated.
    pub fn log_likelihood_of_file(
        &self,
        path: &Path,
        k: usize,
        max_points: Option<usize>,
    ) -> Result<(f64, usize)> {
        let set = data::load_file_like(&self.config.data, path)?;
        if set.dim() != self.model.sizes[0] {
            return Err(Error::Dimension(format!(
                "{} has points of dimension {}; the model was trained on dimension {}",
                path.display(),
                set.dim(),
                self.model.sizes[0]
            )));
        }
        let test = crate::data::BitSet::from_dataset(&set)?;
        let data = RunData {
            train: Points::Binary(test.range(0, 0)),
            valid: test.range(0, 0),
            test,
        };
        let ll = estimate(
            &self.model,
            &data,
            &self.config,
            Split::Test,
            k,
            max_points,
            Estimator::LogLikelihood,
        )?;
        let n = max_points.unwrap_or(usize::MAX).min(data.test.n_samples());
        Ok((ll, n))
    }

    /// What the ELBO = entropy-sum identity needs, as this run trains: p follows the ELBO's
    /// gradient only with one sample per point (WS, or RWS with K = 1).
    pub fn conditions(&self) -> Conditions {
        let train = &self.config.train;
        Conditions {
            generative_on_elbo: train.algorithm == Variant::Ws
                || (train.algorithm == Variant::Rws && train.k == 1),
            ..Conditions::plain()
        }
    }

    /// The ELBO of a split (first `max_points` points if given) and its longer entropy sum, by
    /// Monte Carlo with `samples` draws from q per point.
    pub fn entropy_sum(
        &self,
        split: Split,
        samples: usize,
        max_points: Option<usize>,
    ) -> Result<EntropySum> {
        entropy_sum(
            &self.model,
            &self.data,
            &self.config,
            split,
            samples,
            max_points,
        )
    }

    /// Ends a call of [`Run::train`] as every front end does: an interrupted or diverged run
    /// writes its summary; a completed or early-stopped one that took steps (`stepped`), or
    /// has no summary yet, first estimates the test log-likelihood with `eval.final_k` (logged
    /// to metrics.jsonl, lines passed to `say`) and writes the summary with it. Returns the
    /// test NLL in nats when it was estimated.
    pub fn finish(
        &mut self,
        outcome: &Outcome,
        stepped: bool,
        say: &mut dyn FnMut(&str),
    ) -> Result<Option<f64>> {
        if matches!(outcome, Outcome::Interrupted | Outcome::Diverged(_)) {
            self.write_summary(outcome, json!({}))?;
            return Ok(None);
        }
        if !stepped && self.dir.join(SUMMARY_FILE).exists() {
            return Ok(None);
        }
        let mut extra = json!({});
        let mut nll = None;
        if let Some(k) = self
            .config
            .eval
            .final_k
            .filter(|_| self.data.test.n_samples() > 0)
        {
            say(&format!(
                "final test log-likelihood, K = {k} on {} points",
                self.data.test.n_samples()
            ));
            let started = Instant::now();
            let estimate = self.test_estimate(k)?;
            let eval_s = started.elapsed().as_secs_f64();
            let mut record = estimate.record(self.state.epoch, self.state.step, eval_s);
            record["final"] = json!(true);
            self.log(&record)?;
            say(&format!(
                "test NLL {:.3} ± {:.3} nats (K = {k}, {eval_s:.0} s){}",
                -estimate.ll,
                estimate.se,
                star_text(&estimate)
            ));
            extra["test_nll_nats"] = json!(-estimate.ll);
            extra["test_nll_se"] = json!(estimate.se);
            extra["test_k"] = json!(k);
            if let Some(b) = &estimate.bihm {
                extra["test_nll_star_nats"] = json!(-b.log_p_star());
                extra["test_log_z2"] = json!(b.log_z2);
            }
            nll = Some(-estimate.ll);
        }
        self.write_summary(outcome, extra)?;
        Ok(nll)
    }

    /// Writes summary.json with the final metrics and timings; `outcome` says how the run ended.
    pub fn write_summary(&self, outcome: &Outcome, extra: serde_json::Value) -> Result<()> {
        let mut summary = json!({
            "name": self.config.name,
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "train_s": self.state.train_s,
            "best_valid_ll": self.state.best_valid,
            "n_params": self.model.params.n_scalars(),
            "version": env!("CARGO_PKG_VERSION"),
            "outcome": outcome.name(),
        });
        if let Outcome::Diverged(message) = outcome {
            summary["diverged"] = json!(message);
        }
        if let (Some(map), serde_json::Value::Object(more)) = (summary.as_object_mut(), extra) {
            map.extend(more);
        }
        let text =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Checkpoint(e.to_string()))?;
        self.dir.write_file(SUMMARY_FILE, text.as_bytes())
    }

    /// Grey-level model samples: p(x | h_1) for `n` dreams, one image per entry.
    pub fn sample_means(&self, n: usize, seed: u64) -> Result<Vec<Vec<f32>>> {
        let width_sum = self
            .model
            .sizes
            .iter()
            .fold(0usize, |a, &s| a.saturating_add(s));
        // Every level of n dreams with their probabilities, and the means twice (flat and split).
        crate::memory::check_allocation(
            &format!("drawing {n} samples"),
            bytes_of(&[n, width_sum], 8).saturating_add(bytes_of(&[n, self.model.x_dim()], 8)),
        )?;
        let mut pass = crate::models::Pass::new(&self.model.sizes, n);
        self.model
            .dream(n, false, &mut pass, &mut Stream::new(seed, &[ids::SAMPLE]));
        let d = self.model.x_dim();
        let mut means = vec![0.0f32; d * n];
        self.model.data_means(&pass.h[1], n, &mut means);
        Ok(means.chunks_exact(d).map(|c| c.to_vec()).collect())
    }
}

/// The resolved config as written into a run.
fn config_text(config: &Config) -> String {
    format!(
        "# resolved by helmholtz {}\n{}",
        env!("CARGO_PKG_VERSION"),
        config.to_toml()
    )
}

/// The training points as the trainer reads them: fixed bits, or grey levels binarised anew
/// each epoch.
struct TrainSource<'a> {
    points: &'a Points,
    binarize_seed: u64,
}

impl BatchSource<f32> for TrainSource<'_> {
    fn dim(&self) -> usize {
        self.points.dim()
    }

    fn n_points(&self) -> usize {
        self.points.n_samples()
    }

    fn fill(&self, indices: &[usize], epoch: usize, out: &mut [f32]) {
        let d = self.points.dim();
        for (column, &i) in out.chunks_exact_mut(d).zip(indices) {
            match self.points {
                Points::Binary(set) => set.column_into(i, column),
                Points::Grey(set) => {
                    let column = faer::MatMut::from_column_major_slice_mut(column, d, 1);
                    crate::data::binarize_dynamic_into(
                        set.x.subcols(i, 1),
                        self.binarize_seed,
                        epoch as u64,
                        i,
                        column,
                    );
                }
            }
        }
    }
}

/// Writes each epoch's records to `metrics.jsonl`.
struct MetricsLog<'a>(&'a RunDir);

impl<M> Observer<M> for MetricsLog<'_> {
    fn on_epoch(
        &mut self,
        _: &M,
        record: &mut EpochRecord,
        _: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        for side in &record.side_records {
            self.0.log(side)?;
        }
        self.0.log(&record.to_json())?;
        Ok(Control::Continue)
    }
}

/// Checkpoints of a Helmholtz-machine run: parameters, optimizer moments, Fisher samples and
/// counters. Non-finite parameters are refused, so the last good checkpoint is kept.
struct HmStore<'a>(&'a RunDir);

impl CheckpointStore<HelmholtzMachine, HmLearner> for HmStore<'_> {
    fn save(
        &mut self,
        slot: Slot,
        model: &HelmholtzMachine,
        algorithm: &HmLearner,
        state: &TrainState,
    ) -> Result<()> {
        checkpoint::check_finite(&model.params)?;
        let preconditioner = algorithm.preconditioner.state();
        let optimizer = &algorithm.inner.optimizer;
        self.0.write_checkpoint(slot, |tmp| {
            checkpoint::write_tensors(&tmp.join("params.safetensors"), &model.params)?;
            checkpoint::write_tensors(&tmp.join("optimizer.safetensors"), &optimizer.moments())?;
            if let Some(preconditioner) = &preconditioner {
                checkpoint::write_tensors(&tmp.join(FISHER_FILE), &preconditioner.tensors)?;
            }
            let stored = StoredState {
                version: env!("CARGO_PKG_VERSION").to_string(),
                sizes: model.sizes.clone(),
                optimizer_step: optimizer.step(),
                state: state.clone(),
                fisher_step: preconditioner.as_ref().map(|p| p.step),
            };
            let path = tmp.join(CHECKPOINT_STATE);
            let text = serde_json::to_string_pretty(&stored)
                .map_err(|e| Error::Checkpoint(e.to_string()))?;
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
        })
    }
}

/// File of a checkpoint holding the samples of the last Fisher refresh.
const FISHER_FILE: &str = "fisher.safetensors";

fn stored_state(run_dir: &RunDir, slot: Slot) -> Result<StoredState> {
    let state_path = run_dir.checkpoint(slot).join(CHECKPOINT_STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| {
        Error::Checkpoint(format!(
            "{}: {e} (no {} checkpoint)",
            state_path.display(),
            slot.name()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::format(&state_path, e.to_string()))
}

#[derive(Serialize, Deserialize)]
struct StoredState {
    version: String,
    sizes: Vec<usize>,
    optimizer_step: u64,
    state: TrainState,
    /// Step of the last Fisher refresh (natural-gradient runs).
    #[serde(default)]
    fisher_step: Option<u64>,
}
