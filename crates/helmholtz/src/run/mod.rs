//! A training run and its directory: resolved config, metrics, checkpoints that resume
//! bit-for-bit, evaluation, early stopping and the summary.
//!
//! ```text
//! runs/NAME/config.toml         resolved config
//! runs/NAME/metrics.jsonl       one JSON object per epoch or evaluation
//! runs/NAME/checkpoints/last/   params.safetensors, optimizer.safetensors, state.json
//! runs/NAME/summary.json        final metrics and timings
//! ```

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod denoise;
pub mod fit;
pub mod sparse;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use config::{Config, Split};
pub use data::RunData;

use crate::dist::{Conditions, EntropySum};
use crate::error::{Error, Result};
use crate::eval::entropy::hm_entropy_sum;
use crate::eval::{Estimator, IsConfig, exact_kl_from, importance_log_likelihood};
use crate::math::rng::{Stream, ids};
use crate::models::{HelmholtzMachine, ParamSet, Tensor};
use crate::optim::Optimizer;
use crate::optim::fisher::LayerSamples;
use crate::optim::natural::FisherSamples;
use crate::train::{Learner, Variant};
use fit::entropy_fields;

/// Counters of a run: everything besides tensors that a resumed run needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epoch: usize,
    /// Next batch within the current epoch (non-zero after an interruption mid-epoch).
    pub batch: usize,
    /// Optimizer updates so far.
    pub step: u64,
    /// Sum of the training bound over the points seen so far in the current epoch.
    pub epoch_bound_sum: f64,
    /// Points seen so far in the current epoch.
    pub epoch_points: usize,
    /// Best validation log-likelihood so far.
    pub best_valid: Option<f64>,
    /// Evaluations since the best one (for early stopping).
    pub evals_since_best: usize,
    /// Training time so far, in seconds (excluding evaluation).
    pub train_s: f64,
    /// Whether training ended (all epochs done or stopped early).
    pub finished: bool,
    /// Whether early stopping ended it (then more epochs do not restart it).
    #[serde(default)]
    pub stopped_early: bool,
}

/// What a training call ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All epochs done.
    Completed,
    /// Early stopping on the validation log-likelihood.
    EarlyStopped,
    /// Interrupted (e.g. Ctrl-C); a checkpoint was written and `--resume` continues.
    Interrupted,
}

/// Progress of one batch, for observers.
#[derive(Clone, Copy, Debug)]
pub struct BatchInfo {
    /// Epoch index (0-based) being trained.
    pub epoch: usize,
    /// Batch index within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub n_batches: usize,
    /// Mean training bound so far in this epoch.
    pub bound_mean: f64,
    /// Data points per second in this epoch so far.
    pub points_per_s: f64,
}

/// Watches a run: progress bars, logs. Every method has a default that does nothing.
pub trait Observer {
    /// An epoch starts; `first_batch` is non-zero when resuming mid-epoch.
    fn on_epoch_start(&mut self, _epoch: usize, _n_batches: usize, _first_batch: usize) {}
    /// A batch was applied.
    fn on_batch(&mut self, _info: &BatchInfo) {}
    /// An epoch ended, with its metrics record.
    fn on_epoch_end(&mut self, _record: &serde_json::Value) {}
    /// Something worth telling the user (evaluation started, checkpoint written…).
    fn message(&mut self, _text: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// A training run bound to its directory.
pub struct Run {
    /// The run directory.
    pub dir: PathBuf,
    /// The resolved config.
    pub config: Config,
    /// The model.
    pub model: HelmholtzMachine,
    /// The optimizer with its moments.
    pub optimizer: Optimizer,
    /// Counters.
    pub state: TrainState,
    /// The data.
    pub data: RunData,
    learner: Learner,
    train_columns: Vec<f32>,
}

/// Files of a run directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Metrics file name.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Summary file name.
pub const SUMMARY_FILE: &str = "summary.json";

impl Run {
    /// Starts a new run in `dir` (which must not hold a run already).
    pub fn create(config: Config, dir: &Path) -> Result<Self> {
        if dir.join(CONFIG_FILE).exists() {
            return Err(Error::Config(format!(
                "{} already holds a run; use --resume to continue it or --out to choose another directory",
                dir.display()
            )));
        }
        let data = data::load(&config.data)?;
        let mut sizes = vec![data.train.dim()];
        sizes.extend(&config.model.hidden);
        let model =
            HelmholtzMachine::new(&sizes, config.model.init, config.model.bias, config.seed)?;
        let optimizer = config.optimizer.build(&model.params)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let header = format!("# resolved by helmholtz {}\n", env!("CARGO_PKG_VERSION"));
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, header + &config.to_toml()).map_err(|e| Error::io(&path, e))?;
        Self::assemble(dir, config, model, optimizer, TrainState::default(), data)
    }

    /// Opens an existing run from its last checkpoint; `overrides` may change e.g. `train.epochs`.
    pub fn resume(dir: &Path, overrides: &[String]) -> Result<Self> {
        let config = Config::load(&dir.join(CONFIG_FILE), overrides)?;
        let ckpt = checkpoint::checkpoint_dir(dir);
        let state_path = ckpt.join("state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| {
            Error::Checkpoint(format!(
                "{}: {e} (no checkpoint to resume from)",
                state_path.display()
            ))
        })?;
        let stored: StoredState =
            serde_json::from_str(&text).map_err(|e| Error::format(&state_path, e.to_string()))?;
        let data = data::load(&config.data)?;
        let template =
            HelmholtzMachine::new(&stored.sizes, config.model.init, config.model.bias, 0)?;
        let params = checkpoint::read_tensors(&ckpt.join("params.safetensors"), &template.params)?;
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
        optimizer.set_moments(moments);
        optimizer.step = stored.optimizer_step;
        let stored_fisher_step = stored.fisher_step;
        let mut state = stored.state;
        if state.finished && !state.stopped_early && state.epoch < config.train.epochs {
            state.finished = false;
        }
        let mut run = Self::assemble(dir, config, model, optimizer, state, data)?;
        let fisher_path = ckpt.join(FISHER_FILE);
        if let (Some(pre), true) = (run.learner.preconditioner.as_mut(), fisher_path.exists()) {
            let mut samples =
                fisher_from_tensors(&checkpoint::read_all_tensors(&fisher_path)?, &run.model)?;
            samples.step = stored_fisher_step.unwrap_or(0);
            pre.refresh(samples)?;
        }
        Ok(run)
    }

    /// Opens a run for evaluation or sampling: its config and its last checkpoint.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::resume(dir, &[])
    }

    fn assemble(
        dir: &Path,
        config: Config,
        model: HelmholtzMachine,
        optimizer: Optimizer,
        state: TrainState,
        data: RunData,
    ) -> Result<Self> {
        let learner = Learner::new(config.train.wake_sleep(), config.train.natural.clone())?;
        let train_columns = data.train.to_columns();
        Ok(Run {
            dir: dir.to_path_buf(),
            config,
            model,
            optimizer,
            state,
            data,
            learner,
            train_columns,
        })
    }

    /// Writes the checkpoint (refusing non-finite parameters, so the last good one is kept).
    pub fn save_checkpoint(&self) -> Result<()> {
        if let Some(name) = self.model.params.first_non_finite() {
            return Err(Error::Diverged(format!(
                "parameter {name} is not finite; the last good checkpoint is kept"
            )));
        }
        checkpoint::replace_checkpoint(&self.dir, |tmp| {
            checkpoint::write_tensors(&tmp.join("params.safetensors"), &self.model.params)?;
            checkpoint::write_tensors(
                &tmp.join("optimizer.safetensors"),
                &self.optimizer.moments(),
            )?;
            if let Some(samples) = self
                .learner
                .preconditioner
                .as_ref()
                .and_then(|p| p.samples())
            {
                checkpoint::write_tensors(&tmp.join(FISHER_FILE), &fisher_to_tensors(samples))?;
            }
            let stored = StoredState {
                version: env!("CARGO_PKG_VERSION").to_string(),
                sizes: self.model.sizes.clone(),
                optimizer_step: self.optimizer.step,
                state: self.state.clone(),
                fisher_step: self
                    .learner
                    .preconditioner
                    .as_ref()
                    .and_then(|p| p.samples())
                    .map(|s| s.step),
            };
            let path = tmp.join("state.json");
            let text = serde_json::to_string_pretty(&stored)
                .map_err(|e| Error::Checkpoint(e.to_string()))?;
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
        })
    }

    /// Appends one record to metrics.jsonl.
    pub fn log(&self, record: &serde_json::Value) -> Result<()> {
        let path = self.dir.join(METRICS_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{record}").map_err(|e| Error::io(&path, e))
    }

    /// Batches per epoch (the last one may be smaller).
    pub fn n_batches(&self) -> usize {
        self.data
            .train
            .n_samples()
            .div_ceil(self.config.train.batch_size)
    }

    /// Trains until the configured number of epochs, early stopping, or `stop` becoming true.
    pub fn train(&mut self, observer: &mut dyn Observer, stop: &AtomicBool) -> Result<Outcome> {
        let n_train = self.data.train.n_samples();
        if n_train == 0 {
            return Err(Error::InvalidData("the training set is empty".into()));
        }
        if self.state.step == 0 && !checkpoint::checkpoint_dir(&self.dir).exists() {
            self.save_checkpoint()?;
        }
        let d = self.model.x_dim();
        let batch_size = self.config.train.batch_size;
        let n_batches = self.n_batches();
        let seed = self.config.seed;
        let mut grads = self.model.params.zeros_like();
        let mut batch = vec![0.0f32; d * batch_size];
        while !self.state.finished && self.state.epoch < self.config.train.epochs {
            let epoch = self.state.epoch;
            let order = Stream::new(seed, &[ids::SHUFFLE, epoch as u64]).permutation(n_train);
            observer.on_epoch_start(epoch, n_batches, self.state.batch);
            let started = Instant::now();
            let mut points_this_call = 0usize;
            for b in self.state.batch..n_batches {
                let indices = &order[b * batch_size..((b + 1) * batch_size).min(n_train)];
                let n = indices.len();
                self.gather(indices, epoch, &mut batch);
                let stats = self.learner.gradient(
                    &self.model,
                    &batch[..d * n],
                    n,
                    seed,
                    self.state.step,
                    &mut grads,
                )?;
                if !stats.bound_sum.is_finite() {
                    return Err(Error::Diverged(format!(
                        "non-finite training bound at epoch {} batch {b}; the last good checkpoint is kept",
                        epoch + 1
                    )));
                }
                if let Some(name) = grads.first_non_finite() {
                    return Err(Error::Diverged(format!(
                        "non-finite gradient of {name} at epoch {} batch {b}; the last good checkpoint is kept",
                        epoch + 1
                    )));
                }
                self.optimizer.update(&mut self.model.params, &grads);
                if let Some(name) = self.model.params.first_non_finite() {
                    return Err(Error::Diverged(format!(
                        "parameter {name} became non-finite at epoch {} batch {b}; the last good checkpoint is kept",
                        epoch + 1
                    )));
                }
                self.state.step += 1;
                self.state.batch = b + 1;
                self.state.epoch_bound_sum += stats.bound_sum;
                self.state.epoch_points += n;
                points_this_call += n;
                let elapsed = started.elapsed().as_secs_f64();
                observer.on_batch(&BatchInfo {
                    epoch,
                    batch: b,
                    n_batches,
                    bound_mean: self.state.epoch_bound_sum / self.state.epoch_points as f64,
                    points_per_s: points_this_call as f64 / elapsed.max(1e-9),
                });
                if stop.load(Ordering::SeqCst) && b + 1 < n_batches {
                    self.state.train_s += started.elapsed().as_secs_f64();
                    self.save_checkpoint()?;
                    return Ok(Outcome::Interrupted);
                }
            }
            let epoch_s = started.elapsed().as_secs_f64();
            self.state.train_s += epoch_s;
            let mut record = json!({
                "epoch": epoch + 1,
                "step": self.state.step,
                "split": "train",
                "bound": self.state.epoch_bound_sum / self.state.epoch_points as f64,
                "epoch_s": epoch_s,
                "points_per_s": points_this_call as f64 / epoch_s.max(1e-9),
            });
            self.state.epoch += 1;
            self.state.batch = 0;
            self.state.epoch_bound_sum = 0.0;
            self.state.epoch_points = 0;
            let early_stop = self.end_of_epoch_evaluations(observer, &mut record)?;
            self.log(&record)?;
            observer.on_epoch_end(&record);
            let last = self.state.epoch == self.config.train.epochs;
            if early_stop || last {
                self.state.finished = true;
                self.state.stopped_early = early_stop;
            }
            if self.state.finished
                || self
                    .state
                    .epoch
                    .is_multiple_of(self.config.checkpoint.every)
                || stop.load(Ordering::SeqCst)
            {
                self.save_checkpoint()?;
            }
            if early_stop {
                return Ok(Outcome::EarlyStopped);
            }
            if stop.load(Ordering::SeqCst) && !self.state.finished {
                return Ok(Outcome::Interrupted);
            }
        }
        Ok(Outcome::Completed)
    }

    fn gather(&self, indices: &[usize], epoch: usize, batch: &mut [f32]) {
        let d = self.model.x_dim();
        for (j, &i) in indices.iter().enumerate() {
            let out = &mut batch[j * d..(j + 1) * d];
            if self.data.dynamic {
                let src = self.data.train.x.as_ref().subcols(i, 1);
                let out = faer::MatMut::from_column_major_slice_mut(out, d, 1);
                crate::data::binarize_dynamic_into(
                    src,
                    self.config.data.binarize_seed,
                    epoch as u64,
                    i,
                    out,
                );
            } else {
                out.copy_from_slice(&self.train_columns[i * d..(i + 1) * d]);
            }
        }
    }

    /// Validation, test and exact-KL evaluations due after the epoch just finished; returns
    /// whether early stopping triggers.
    fn end_of_epoch_evaluations(
        &mut self,
        observer: &mut dyn Observer,
        record: &mut serde_json::Value,
    ) -> Result<bool> {
        let epoch = self.state.epoch;
        let eval = self.config.eval.clone();
        let mut early_stop = false;
        if eval.exact_kl {
            let kl = exact_kl_from(&self.model, &crate::data::lines3x3_distribution())?;
            record["kl_true_model"] = json!(kl);
        }
        if eval.every > 0 && epoch.is_multiple_of(eval.every) && self.data.valid.n_samples() > 0 {
            let n = eval
                .max_points
                .unwrap_or(usize::MAX)
                .min(self.data.valid.n_samples());
            observer.message(&format!(
                "validation log-likelihood, K = {} on {n} points",
                eval.k
            ));
            let ll = self.log_likelihood(Split::Valid, eval.k, Some(n))?;
            record["valid_ll"] = json!(ll);
            record["valid_k"] = json!(eval.k);
            if eval.entropy_samples > 0 {
                let sum = self.entropy_sum(Split::Valid, eval.entropy_samples, Some(n))?;
                if let Some(map) = record.as_object_mut() {
                    entropy_fields(&sum, &self.conditions(), map);
                }
            }
            if self.state.best_valid.is_none_or(|best| ll > best) {
                self.state.best_valid = Some(ll);
                self.state.evals_since_best = 0;
            } else {
                self.state.evals_since_best += 1;
                if eval
                    .patience
                    .is_some_and(|p| self.state.evals_since_best >= p)
                {
                    observer.message(&format!(
                        "early stopping: no improvement in {} evaluations",
                        self.state.evals_since_best
                    ));
                    early_stop = true;
                }
            }
        }
        if eval.test_at.contains(&epoch) && self.data.test.n_samples() > 0 {
            let k = eval.test_k.unwrap_or(eval.k);
            observer.message(&format!(
                "test log-likelihood, K = {k} on {} points",
                self.data.test.n_samples()
            ));
            let started = Instant::now();
            let ll = self.log_likelihood(Split::Test, k, None)?;
            let record = json!({"epoch": epoch, "step": self.state.step, "split": "test", "k": k,
                "ll": ll, "nll_nats": -ll, "eval_s": started.elapsed().as_secs_f64()});
            self.log(&record)?;
            observer.message(&format!(
                "epoch {epoch}: test NLL {:.3} nats (K = {k})",
                -ll
            ));
        }
        Ok(early_stop)
    }

    /// Mean importance-sampling log-likelihood of a split (first `max_points` points if given).
    pub fn log_likelihood(&self, split: Split, k: usize, max_points: Option<usize>) -> Result<f64> {
        self.estimate(split, k, max_points, Estimator::LogLikelihood)
    }

    /// Mean importance-sampling estimate of a split: log p(x), or BiHM's log p̃*(x).
    pub fn estimate(
        &self,
        split: Split,
        k: usize,
        max_points: Option<usize>,
        estimator: Estimator,
    ) -> Result<f64> {
        let (x, n) = self.split_columns(split, max_points)?;
        let seed = self.config.seed ^ 0x5EED_E7A1;
        let config = IsConfig {
            estimator,
            ..IsConfig::new(k, seed)
        };
        let per_point = importance_log_likelihood(&self.model, &x, n, 0, config)?;
        Ok(per_point.iter().sum::<f64>() / n as f64)
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
        let (x, n) = self.split_columns(split, max_points)?;
        hm_entropy_sum(&self.model, &x, n, samples, self.config.seed ^ 0xE17B_0501)
    }

    /// The first `max_points` points of a split (all if absent) as contiguous columns, and
    /// their number; the training set only when it is not binarised anew every epoch.
    fn split_columns(&self, split: Split, max_points: Option<usize>) -> Result<(Vec<f32>, usize)> {
        let set = match split {
            Split::Train if self.data.dynamic => {
                return Err(Error::Config(
                    "the training set is binarised anew every epoch; evaluate valid or test".into(),
                ));
            }
            Split::Train => &self.data.train,
            Split::Valid => &self.data.valid,
            Split::Test => &self.data.test,
        };
        let n = max_points.unwrap_or(usize::MAX).min(set.n_samples());
        if n == 0 {
            return Err(Error::InvalidData(format!(
                "the {} split is empty",
                split.name()
            )));
        }
        Ok((set.range(0, n).to_columns(), n))
    }

    /// Writes summary.json with the final metrics and timings.
    pub fn write_summary(&self, extra: serde_json::Value) -> Result<()> {
        let mut summary = json!({
            "name": self.config.name,
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "train_s": self.state.train_s,
            "best_valid_ll": self.state.best_valid,
            "n_params": self.model.params.n_scalars(),
            "version": env!("CARGO_PKG_VERSION"),
        });
        if let (Some(map), serde_json::Value::Object(more)) = (summary.as_object_mut(), extra) {
            map.extend(more);
        }
        let path = self.dir.join(SUMMARY_FILE);
        let text =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Checkpoint(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }

    /// Grey-level model samples: p(x | h_1) for `n` dreams, one image per entry.
    pub fn sample_means(&self, n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut pass = crate::models::Pass::new(&self.model.sizes, n);
        self.model
            .dream(n, false, &mut pass, &mut Stream::new(seed, &[ids::SAMPLE]));
        let d = self.model.x_dim();
        let mut means = vec![0.0f32; d * n];
        self.model.data_means(&pass.h[1], n, &mut means);
        means.chunks_exact(d).map(|c| c.to_vec()).collect()
    }
}

/// File of a checkpoint holding the samples of the last Fisher refresh.
const FISHER_FILE: &str = "fisher.safetensors";

fn fisher_to_tensors(samples: &FisherSamples) -> ParamSet {
    let mut tensors = Vec::new();
    for (prefix, set) in [("p", &samples.generative), ("q", &samples.recognition)] {
        for (l, layer) in set.iter().enumerate() {
            let n = layer.n_samples();
            tensors.push(Tensor {
                name: format!("{prefix}.{l}.parents"),
                shape: vec![layer.n_in, n],
                data: layer.parents.clone(),
            });
            tensors.push(Tensor {
                name: format!("{prefix}.{l}.probs"),
                shape: vec![layer.n_out, n],
                data: layer.probs.clone(),
            });
        }
    }
    ParamSet { tensors }
}

fn fisher_from_tensors(set: &ParamSet, model: &HelmholtzMachine) -> Result<FisherSamples> {
    let layer = |prefix: &str, l: usize| -> Result<LayerSamples> {
        let get = |what: &str| {
            set.get(&format!("{prefix}.{l}.{what}")).ok_or_else(|| {
                Error::Checkpoint(format!("Fisher samples {prefix}.{l}.{what} are missing"))
            })
        };
        let (parents, probs) = (get("parents")?, get("probs")?);
        Ok(LayerSamples {
            n_in: parents.shape[0],
            n_out: probs.shape[0],
            parents: parents.data.clone(),
            probs: probs.data.clone(),
            sample_weights: None,
        })
    };
    Ok(FisherSamples {
        step: 0,
        generative: (0..model.n_layers())
            .map(|l| layer("p", l))
            .collect::<Result<_>>()?,
        recognition: (0..model.n_layers())
            .map(|l| layer("q", l))
            .collect::<Result<_>>()?,
    })
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
