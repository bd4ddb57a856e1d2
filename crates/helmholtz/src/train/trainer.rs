//! THE training loop. A [`Trainer`] owns epochs, the shuffled minibatches
//! ([`Minibatches`]), the stop flag (Ctrl-C / SIGTERM), checkpoints and resume; an
//! [`Algorithm`] takes one step on one minibatch; [`Observer`]s watch (metrics, evaluation and
//! early stopping, the divergence guard, progress). A new algorithm implements one trait and
//! never touches the loop (STYLE.md, after argmin's executor).
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use helmholtz::data::batches::Columns;
//! use helmholtz::train::trainer::*;
//!
//! /// The mean of scalar data as a running average of batch means: m ← m + (x̄_b − m)/(t + 1).
//! struct RunningMean;
//! impl Algorithm<f64> for RunningMean {
//!     type Scalar = f64;
//!     fn step(&mut self, m: &mut f64, batch: &Batch<'_, f64>, ctx: &StepContext) -> helmholtz::Result<StepStats> {
//!         let n = batch.n_points() as f64;
//!         let batch_mean = batch.values.iter().sum::<f64>() / n;
//!         *m += (batch_mean - *m) / (ctx.step + 1) as f64;
//!         let objective_sum = batch.values.iter().map(|x| -0.5 * (x - *m).powi(2)).sum();
//!         Ok(StepStats { objective_sum, points: batch.n_points() })
//!     }
//! }
//! let data = Columns { values: (0..100).map(|i| i as f64 / 10.0).collect(), dim: 1 };
//! let trainer = Trainer { seed: 0, epochs: 3, batch_size: 10, ..Trainer::default() };
//! let (mut mean, mut state) = (0.0, TrainState::default());
//! let outcome = trainer.fit(&mut mean, &mut RunningMean, &data, &mut state,
//!     &mut [], &mut NoCheckpoints, &AtomicBool::new(false))?;
//! assert_eq!((outcome, state.epoch, state.step), (Outcome::Completed, 3, 30));
//! // Every point was seen three times in equal batches: the average of the batch means.
//! assert!((mean - 4.95).abs() < 1e-12, "{mean}");
//! # Ok::<(), helmholtz::Error>(())
//! ```
//!
//! (Over 700 lines on purpose: the loop and its small types are one concept; the last 270 lines
//! are tests.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::batches::{BatchSource, Minibatches};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// Where a step is: one step counter for the whole program, with the seed and the epoch it
/// belongs to. Random streams of a step derive from these, so a resumed run repeats them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepContext {
    /// Master seed of the run.
    pub seed: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Batch within the epoch.
    pub batch: usize,
    /// Optimizer updates before this one.
    pub step: u64,
}

/// A minibatch view: the points' values as contiguous columns and their indices in the data.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a, T> {
    /// `dim * indices.len()` values, column-major.
    pub values: &'a [T],
    /// Values per point.
    pub dim: usize,
    /// Which points of the data set these are.
    pub indices: &'a [usize],
}

impl<'a, T> Batch<'a, T> {
    /// Number of points.
    pub fn n_points(&self) -> usize {
        self.indices.len()
    }

    /// The batch as a (dim × n) matrix view.
    pub fn mat(&self) -> faer::MatRef<'a, T> {
        faer::MatRef::from_column_major_slice(self.values, self.dim, self.indices.len())
    }
}

/// What one step reports: the sum over the batch of the objective it ascends (a bound, an
/// ELBO, a log-likelihood), and the number of points.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Sum of the per-point objective over the batch.
    pub objective_sum: f64,
    /// Points in the batch.
    pub points: usize,
}

/// One learning step on one minibatch. Implemented by WS/RWS/BiHM (and their natural versions),
/// the VAEs, sparse-coding EM, the amortized encoder, the EM fits and the SNGD runs; a
/// full-batch fit is an algorithm whose one step sees every point.
pub trait Algorithm<M> {
    /// The element type of the data batches.
    type Scalar: Copy + Default + Send + Sync;
    /// Updates `model` from `batch`. A non-finite result is an [`Error::Diverged`] that leaves
    /// the last checkpoint in place.
    fn step(
        &mut self,
        model: &mut M,
        batch: &Batch<'_, Self::Scalar>,
        ctx: &StepContext,
    ) -> Result<StepStats>;

    /// The epoch ended: add what the algorithm gathered over its batches (averages of its own
    /// terms) to the epoch's record, and start afresh. Does nothing by default.
    fn end_epoch(&mut self, _record: &mut EpochRecord) {}
}

/// Counters of a run: everything besides tensors that a resumed run needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epoch: usize,
    /// Next batch within the current epoch (non-zero after an interruption mid-epoch).
    pub batch: usize,
    /// Optimizer updates so far.
    pub step: u64,
    /// Sum of the training objective over the points seen so far in the current epoch.
    pub epoch_bound_sum: f64,
    /// Points seen so far in the current epoch.
    pub epoch_points: usize,
    /// Best validation score so far (validation log-likelihood, or the run's objective).
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
    /// Mean objective of the run's first batch: the divergence guard's reference.
    #[serde(default)]
    pub reference_objective: Option<f64>,
    /// What observers keep across a resume (a convergence criterion's counters…), by name.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl TrainState {
    /// Whether a run in this state has training left to do with `epochs` epochs and early
    /// stopping after `patience` evaluations without improvement: an unfinished run has (if
    /// only its end), a finished one when epochs remain and early stopping did not end it, or
    /// ended it under a patience that `patience` raises past the evaluations without
    /// improvement so far.
    pub fn trains_on(&self, epochs: usize, patience: Option<usize>) -> bool {
        if !self.finished {
            return true;
        }
        let patient = patience.is_none_or(|p| self.evals_since_best < p);
        (!self.stopped_early || patient) && self.epoch < epochs
    }
}

/// How a call to [`Trainer::fit`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All epochs done.
    Completed,
    /// An observer stopped the run (early stopping, a convergence criterion).
    EarlyStopped,
    /// The stop flag was raised; a checkpoint was written and resume continues.
    Interrupted,
    /// The objective became non-finite or collapsed; the last good checkpoint was kept.
    Diverged(String),
}

impl Outcome {
    /// The word `summary.json` uses for it.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Completed => "Completed",
            Outcome::EarlyStopped => "EarlyStopped",
            Outcome::Interrupted => "Interrupted",
            Outcome::Diverged(_) => "Diverged",
        }
    }
}

/// What an observer asks of the loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop after this epoch, as converged or early-stopped.
    Stop,
    /// Stop now: the run diverged (the message says how); nothing more is saved.
    Diverged(String),
}

/// Progress of one step, for observers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Epoch (0-based) being trained.
    pub epoch: usize,
    /// Batch index within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub n_batches: usize,
    /// Updates so far, this one included.
    pub step: u64,
    /// Mean objective of this batch.
    pub objective: f64,
    /// Mean objective of the epoch so far.
    pub bound_mean: f64,
    /// Data points per second in this epoch so far.
    pub points_per_s: f64,
}

/// The record of one finished epoch, as written to `metrics.jsonl` (fields sorted by name).
/// Observers add their values (validation log-likelihood, entropies…) to `fields`, and may
/// queue records of their own (a test evaluation) in `side_records`, which are written first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epochs done (1-based).
    pub epoch: usize,
    /// Updates so far.
    pub step: u64,
    /// Always "train" for epoch records.
    pub split: String,
    /// Seconds of training in this epoch (in this process).
    pub epoch_s: f64,
    /// Points per second in this epoch.
    pub points_per_s: f64,
    /// The training objective and every value observers added.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Records to write before this one.
    #[serde(skip)]
    pub side_records: Vec<serde_json::Value>,
    /// Set by an evaluation observer when this epoch is the best so far.
    #[serde(skip)]
    pub improved: bool,
}

impl EpochRecord {
    /// The record as one JSON object with sorted keys.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A numeric field.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.fields.get(key).and_then(|v| v.as_f64())
    }
}

/// Watches a run. Every method has a default that does nothing.
pub trait Observer<M> {
    /// An epoch starts; `first_batch` is non-zero when resuming mid-epoch.
    fn on_epoch_start(&mut self, _epoch: usize, _n_batches: usize, _first_batch: usize) {}
    /// A step was applied.
    fn on_step(&mut self, _record: &StepRecord, _state: &TrainState) -> Control {
        Control::Continue
    }
    /// An epoch ended: add to its record, update the best score in `state`, ask to stop.
    /// `say` passes a line to the other observers (the progress display).
    fn on_epoch(
        &mut self,
        _model: &M,
        _record: &mut EpochRecord,
        _state: &mut TrainState,
        _say: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// Something worth telling the user.
    fn message(&mut self, _text: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl<M> Observer<M> for Silent {}

/// Which checkpoint to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The latest state: what resume continues from.
    Last,
    /// The best state by the run's validation score.
    Best,
}

impl Slot {
    /// Folder name under `checkpoints/`.
    pub fn name(self) -> &'static str {
        match self {
            Slot::Last => "last",
            Slot::Best => "best",
        }
    }
}

/// Writes checkpoints of a model, its algorithm (optimizer moments, Fisher factors) and the
/// counters. The run directory implements it; [`NoCheckpoints`] writes nothing.
pub trait CheckpointStore<M, A> {
    /// Writes the checkpoint `slot` atomically.
    fn save(&mut self, slot: Slot, model: &M, algorithm: &A, state: &TrainState) -> Result<()>;
}

/// A store that keeps nothing (in-memory training, tests, examples).
pub struct NoCheckpoints;

impl<M, A> CheckpointStore<M, A> for NoCheckpoints {
    fn save(&mut self, _: Slot, _: &M, _: &A, _: &TrainState) -> Result<()> {
        Ok(())
    }
}

/// Stops a run whose objective collapses while staying finite: `patience` batches in a row
/// whose mean objective is below the reference (the run's first batch) by more than
/// `factor × max(|reference|, 1)`.
#[derive(Clone, Debug)]
pub struct DivergenceGuard {
    /// How far below the reference counts as collapsed, relative to |reference|.
    pub factor: f64,
    /// Batches in a row before the run is stopped.
    pub patience: usize,
    below: usize,
}

impl Default for DivergenceGuard {
    fn default() -> Self {
        DivergenceGuard {
            factor: 1.0,
            patience: 5,
            below: 0,
        }
    }
}

impl<M> Observer<M> for DivergenceGuard {
    fn on_step(&mut self, record: &StepRecord, state: &TrainState) -> Control {
        let Some(reference) = state.reference_objective else {
            return Control::Continue;
        };
        let floor = reference - self.factor * reference.abs().max(1.0);
        if record.objective < floor {
            self.below += 1;
        } else {
            self.below = 0;
        }
        if self.below >= self.patience.max(1) {
            return Control::Diverged(format!(
                "the training objective collapsed to {:.4e} per point (the run started at {reference:.4e}) for {} batches in a row, at epoch {} batch {}; the last good checkpoint is kept",
                record.objective,
                self.below,
                record.epoch + 1,
                record.batch
            ));
        }
        Control::Continue
    }
}

/// How a [`Trainer`] draws the batches of an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sampling {
    /// Every point once per epoch, in an order drawn from (seed, epoch) ([`Minibatches::new`]).
    #[default]
    Shuffle,
    /// `steps_per_epoch` batches per epoch, each point drawn uniformly with replacement from one
    /// stream of the run, (seed, [`ids::SHUFFLE`]): the stochastic-optimisation setting where an
    /// "epoch" is a block of steps between evaluations. A target without data (variational
    /// inference) uses a one-point source such as [`IndicesOnly`](crate::data::batches::IndicesOnly).
    WithReplacement {
        /// Batches per epoch.
        steps_per_epoch: usize,
    },
}

/// THE loop: epochs of shuffled minibatches, observers, stop flag and checkpoints.
#[derive(Clone, Debug)]
pub struct Trainer {
    /// Master seed (shuffles and the steps' streams derive from it).
    pub seed: u64,
    /// Epochs to train in all (a resumed run continues up to this).
    pub epochs: usize,
    /// Points per minibatch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Write the `last` checkpoint every this many epochs (and at the end, and on a stop).
    pub checkpoint_every: usize,
    /// Name of the objective's field in the epoch records.
    pub objective_name: &'static str,
    /// How batches are drawn.
    pub sampling: Sampling,
    /// Stop after this many steps in all (the last epoch may then be shorter); no limit if None.
    pub max_steps: Option<u64>,
}

impl Default for Trainer {
    fn default() -> Self {
        Trainer {
            seed: 0,
            epochs: 1,
            batch_size: 100,
            checkpoint_every: 1,
            objective_name: "bound",
            sampling: Sampling::Shuffle,
            max_steps: None,
        }
    }
}

impl Trainer {
    /// Batches per epoch for `n_points` points.
    pub fn n_batches(&self, n_points: usize) -> usize {
        match self.sampling {
            Sampling::Shuffle => n_points.div_ceil(self.batch_size.max(1)),
            Sampling::WithReplacement { steps_per_epoch } => steps_per_epoch,
        }
    }

    /// Whether the step limit is reached.
    fn out_of_steps(&self, state: &TrainState) -> bool {
        self.max_steps.is_some_and(|max| state.step >= max)
    }

    /// The batches of epoch `epoch`; `draws` is the run's stream for sampling with replacement,
    /// positioned at this epoch's first draw.
    fn batches(&self, epoch: usize, n_points: usize, draws: Option<&mut Stream>) -> Minibatches {
        match (self.sampling, draws) {
            (Sampling::WithReplacement { steps_per_epoch }, Some(stream)) => {
                let count = steps_per_epoch * self.batch_size;
                Minibatches::from_order(Minibatches::draw(stream, n_points, count), self.batch_size)
            }
            _ => Minibatches::new(self.seed, epoch, n_points, self.batch_size),
        }
    }

    /// The run's stream of draws with replacement, positioned at the start of epoch `epoch`
    /// (replayed: one 64-bit draw per point of every earlier epoch).
    fn draws_from(&self, epoch: usize) -> Option<Stream> {
        let Sampling::WithReplacement { steps_per_epoch } = self.sampling else {
            return None;
        };
        let mut stream = Stream::new(self.seed, &[ids::SHUFFLE]);
        for _ in 0..epoch * steps_per_epoch * self.batch_size {
            stream.next_u64();
        }
        Some(stream)
    }

    /// Trains `model` with `algorithm` on `data` from `state` until the configured number of
    /// epochs, an observer's stop, a divergence, or `stop` becoming true (then the current batch
    /// finishes and a checkpoint is written).
    #[allow(clippy::too_many_arguments)]
    pub fn fit<M, A: Algorithm<M>>(
        &self,
        model: &mut M,
        algorithm: &mut A,
        data: &dyn BatchSource<A::Scalar>,
        state: &mut TrainState,
        observers: &mut [&mut dyn Observer<M>],
        store: &mut dyn CheckpointStore<M, A>,
        stop: &AtomicBool,
    ) -> Result<Outcome> {
        let n_points = data.n_points();
        if n_points == 0 {
            return Err(Error::InvalidData("the training set is empty".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::Config("train.batch_size must be at least 1".into()));
        }
        if self.sampling == (Sampling::WithReplacement { steps_per_epoch: 0 }) {
            return Err(Error::Config(
                "sampling with replacement needs at least one step per epoch".into(),
            ));
        }
        if state.step == 0 && state.batch == 0 && state.epoch == 0 {
            store.save(Slot::Last, model, algorithm, state)?;
        }
        let dim = data.dim();
        let n_batches = self.n_batches(n_points);
        let mut buffer = vec![A::Scalar::default(); dim * self.batch_size];
        let mut draws = self.draws_from(state.epoch);
        while !state.finished && state.epoch < self.epochs && !self.out_of_steps(state) {
            let epoch = state.epoch;
            let batches = self.batches(epoch, n_points, draws.as_mut());
            for o in observers.iter_mut() {
                o.on_epoch_start(epoch, n_batches, state.batch);
            }
            let started = Instant::now();
            let mut points_this_call = 0usize;
            for b in state.batch..n_batches {
                let indices = batches.batch(b);
                let n = indices.len();
                data.fill(indices, epoch, &mut buffer[..dim * n]);
                let batch = Batch {
                    values: &buffer[..dim * n],
                    dim,
                    indices,
                };
                let ctx = StepContext {
                    seed: self.seed,
                    epoch,
                    batch: b,
                    step: state.step,
                };
                let stats = match algorithm.step(model, &batch, &ctx) {
                    Ok(stats) if stats.objective_sum.is_finite() => stats,
                    Ok(stats) => {
                        return Ok(Outcome::Diverged(format!(
                            "non-finite training objective ({}) at epoch {} batch {b}; the last good checkpoint is kept",
                            stats.objective_sum,
                            epoch + 1
                        )));
                    }
                    Err(Error::Diverged(message)) => return Ok(Outcome::Diverged(message)),
                    Err(err) => return Err(err),
                };
                let batch_mean = stats.objective_sum / stats.points.max(1) as f64;
                if state.reference_objective.is_none() {
                    state.reference_objective = Some(batch_mean);
                }
                state.step += 1;
                state.batch = b + 1;
                state.epoch_bound_sum += stats.objective_sum;
                state.epoch_points += stats.points;
                points_this_call += n;
                let record = StepRecord {
                    epoch,
                    batch: b,
                    n_batches,
                    step: state.step,
                    objective: batch_mean,
                    bound_mean: state.epoch_bound_sum / state.epoch_points.max(1) as f64,
                    points_per_s: points_this_call as f64
                        / started.elapsed().as_secs_f64().max(1e-9),
                };
                for o in observers.iter_mut() {
                    if let Control::Diverged(message) = o.on_step(&record, state) {
                        return Ok(Outcome::Diverged(message));
                    }
                }
                if self.out_of_steps(state) {
                    break;
                }
                if stop.load(Ordering::SeqCst) && b + 1 < n_batches {
                    state.train_s += started.elapsed().as_secs_f64();
                    store.save(Slot::Last, model, algorithm, state)?;
                    return Ok(Outcome::Interrupted);
                }
            }
            let epoch_s = started.elapsed().as_secs_f64();
            state.train_s += epoch_s;
            let mut record = EpochRecord {
                epoch: epoch + 1,
                step: state.step,
                split: "train".into(),
                epoch_s,
                points_per_s: points_this_call as f64 / epoch_s.max(1e-9),
                ..EpochRecord::default()
            };
            record.fields.insert(
                self.objective_name.into(),
                (state.epoch_bound_sum / state.epoch_points.max(1) as f64).into(),
            );
            algorithm.end_epoch(&mut record);
            state.epoch += 1;
            state.batch = 0;
            state.epoch_bound_sum = 0.0;
            state.epoch_points = 0;
            let mut early_stop = false;
            for i in 0..observers.len() {
                let (before, rest) = observers.split_at_mut(i);
                let Some((current, after)) = rest.split_first_mut() else {
                    break;
                };
                let mut say = |text: &str| {
                    for o in before.iter_mut().chain(after.iter_mut()) {
                        o.message(text);
                    }
                };
                match current.on_epoch(model, &mut record, state, &mut say)? {
                    Control::Continue => {}
                    Control::Stop => early_stop = true,
                    Control::Diverged(message) => return Ok(Outcome::Diverged(message)),
                }
            }
            if early_stop || state.epoch == self.epochs || self.out_of_steps(state) {
                state.finished = true;
                state.stopped_early = early_stop;
            }
            if state.finished
                || state.epoch.is_multiple_of(self.checkpoint_every.max(1))
                || stop.load(Ordering::SeqCst)
            {
                store.save(Slot::Last, model, algorithm, state)?;
            }
            if record.improved {
                store.save(Slot::Best, model, algorithm, state)?;
            }
            if early_stop {
                return Ok(Outcome::EarlyStopped);
            }
            if stop.load(Ordering::SeqCst) && !state.finished {
                return Ok(Outcome::Interrupted);
            }
        }
        // A run that early stopping ended before this call stays early-stopped.
        Ok(if state.stopped_early {
            Outcome::EarlyStopped
        } else {
            Outcome::Completed
        })
    }
}

#[cfg(test)]
mod tests;
