//! The SNGD paper's reproductions (So & Turner, AISTATS 2024; natgrad.md b.5, d): the
//! negative-binomial and NB-mixture MLE tasks ([`nb`]), the skew-normal and skew-t MLE tasks
//! ([`skew`]), the Student-t copula MLE task ([`copula`]) and variational inference on Bayesian
//! logistic regression with skew-normal, skew-t and mixture families ([`vi`]); [`tables`] turns
//! their traces into the experiments' markdown tables.
//!
//! Every run takes a method of [`helmholtz::optim::sngd`] and a target of
//! [`helmholtz::objectives::targets`]; this module holds the loop that steps, times and
//! evaluates them.

pub mod copula;
pub mod nb;
pub mod skew;
pub mod tables;
pub mod vi;

use std::sync::atomic::AtomicBool;

use faer::{Mat, MatRef};
use serde::Serialize;

use helmholtz::data::batches::{BatchSource, Columns};
use helmholtz::error::{Error, Result};
use helmholtz::optim::sngd::{LineSearch, Method, Step};
use helmholtz::train::sngd::MethodSteps;
use helmholtz::train::trainer::{
    Batch, Control, EpochRecord, NoCheckpoints, Observer, Outcome, Sampling, StepContext,
    TrainState, Trainer,
};

pub use skew::SkewMethod;

/// Settings of one run of the minibatch (MLE) and VI tasks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SkewSettings {
    /// Optimisation steps.
    pub iterations: usize,
    /// Points per minibatch (drawn with replacement).
    pub batch: usize,
    /// Steps between held-out evaluations.
    pub eval_every: usize,
    /// SNGD's (and MCEF's) first step size β (halved until the covariance stays positive
    /// definite).
    pub lr_theta: f64,
    /// Adam's learning rate for SNGD's auxiliary λ.
    pub lr_lambda: f64,
    /// Adam's learning rate for the baselines.
    pub lr_adam: f64,
    /// Seed of the initialisation, the minibatches and the draws.
    pub seed: u64,
}

impl SkewSettings {
    /// The authors' validity backtracking from `lr_theta`: at most 20 halvings.
    pub fn backtracking(&self) -> LineSearch {
        LineSearch::Backtracking {
            start: self.lr_theta,
            halvings: 20,
        }
    }
}

/// The objective (held-out NLL for MLE, negative ELBO for VI) at evaluation points, with the
/// training seconds spent up to each.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkewTrace {
    /// The method.
    pub method: SkewMethod,
    /// Steps taken at each evaluation.
    pub iterations: Vec<usize>,
    /// The objective at each evaluation.
    pub objective: Vec<f64>,
    /// Training seconds (evaluations excluded) up to each evaluation.
    pub seconds: Vec<f64>,
    /// Why the run ended early, if it did.
    pub stopped: Option<String>,
}

impl SkewTrace {
    /// The lowest objective and the steps taken when it was first reached.
    pub fn best(&self) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        for (&it, &v) in self.iterations.iter().zip(&self.objective) {
            if v < best.1 {
                best = (it, v);
            }
        }
        best
    }

    /// Steps and training seconds at the first evaluation with an objective ≤ `target`.
    pub fn reaches(&self, target: f64) -> Option<(usize, f64)> {
        let k = self.objective.iter().position(|&v| v <= target)?;
        Some((self.iterations[k], self.seconds[k]))
    }
}

/// Progress of a run: `(steps, objective)` at every evaluation.
pub type Progress<'a> = &'a mut dyn FnMut(usize, f64);

/// The trace's observer: evaluates the method's distribution at the end of every block of
/// `eval_every` steps (the trainer's epochs) and at the last step.
struct Evaluations<'a, E> {
    evaluate: E,
    trace: &'a mut SkewTrace,
    progress: Progress<'a>,
}

impl<M, E> Observer<M> for Evaluations<'_, E>
where
    M: Method,
    E: FnMut(&M::Point, usize) -> Result<f64>,
{
    fn on_epoch(
        &mut self,
        method: &M,
        _record: &mut EpochRecord,
        state: &mut TrainState,
        _say: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let step = state.step as usize;
        let value = (self.evaluate)(&method.distribution()?, step)?;
        self.trace.iterations.push(step);
        self.trace.objective.push(value);
        self.trace.seconds.push(state.train_s);
        (self.progress)(step, value);
        Ok(Control::Continue)
    }
}

/// The loop every minibatch and VI run shares, on the [`Trainer`]: `settings.iterations` steps
/// in blocks of `eval_every` (the trainer's epochs), each step on a batch of `settings.batch`
/// points of `data` drawn with replacement (`take_step(method, batch, step)` takes it), the
/// objective evaluated at the start and after every block (`progress` sees each). Only the
/// steps are timed. A failing step ends the run with its reason in `stopped`; the trace so far
/// is kept.
pub(crate) fn drive<M: Method>(
    mut method: M,
    which: SkewMethod,
    settings: &SkewSettings,
    data: &dyn BatchSource<f64>,
    mut evaluate: impl FnMut(&M::Point, usize) -> Result<f64>,
    mut take_step: impl FnMut(&mut M, &Batch<'_, f64>, usize) -> Result<Step>,
    progress: Progress<'_>,
) -> Result<SkewTrace> {
    if settings.batch == 0 || settings.eval_every == 0 {
        return Err(Error::Config(
            "batch size and evaluation interval must be positive".into(),
        ));
    }
    let first = evaluate(&method.distribution()?, 0)?;
    progress(0, first);
    let mut trace = SkewTrace {
        method: which,
        iterations: vec![0],
        objective: vec![first],
        seconds: vec![0.0],
        stopped: None,
    };
    let trainer = Trainer {
        seed: settings.seed,
        epochs: settings.iterations.div_ceil(settings.eval_every),
        batch_size: settings.batch,
        objective_name: "objective",
        sampling: Sampling::WithReplacement {
            steps_per_epoch: settings.eval_every,
        },
        max_steps: Some(settings.iterations as u64),
        ..Trainer::default()
    };
    let mut steps = MethodSteps::new(|m: &mut M, batch: &Batch<'_, f64>, ctx: &StepContext| {
        take_step(m, batch, ctx.step as usize)
            .map_err(|e| Error::Diverged(format!("step {}: {e}", ctx.step)))
    });
    let mut evaluations = Evaluations {
        evaluate,
        trace: &mut trace,
        progress,
    };
    let outcome = trainer.fit(
        &mut method,
        &mut steps,
        data,
        &mut TrainState::default(),
        &mut [&mut evaluations],
        &mut NoCheckpoints,
        &AtomicBool::new(false),
    )?;
    if let Outcome::Diverged(message) = outcome {
        trace.stopped = Some(message);
    }
    Ok(trace)
}

/// The MLE tasks' loop: minibatches of `settings.batch` rows of `train` drawn with replacement
/// (`step_on(method, batch)` takes the step), the held-out `nll` on `test` at every evaluation.
pub(crate) fn drive_minibatch<M: Method>(
    method: impl FnOnce(usize) -> Result<M>,
    which: SkewMethod,
    settings: &SkewSettings,
    (train, test): (&Mat<f64>, &Mat<f64>),
    nll: impl Fn(&M::Point, MatRef<'_, f64>) -> Result<f64>,
    mut step_on: impl FnMut(&mut M, MatRef<'_, f64>) -> Result<Step>,
    progress: Progress<'_>,
) -> Result<SkewTrace> {
    let (n, d) = (train.nrows(), train.ncols());
    let points = Columns {
        values: (0..n)
            .flat_map(|i| (0..d).map(move |j| train[(i, j)]))
            .collect(),
        dim: d,
    };
    drive(
        method(d)?,
        which,
        settings,
        &points,
        |q, _| nll(q, test.as_ref()),
        |m, batch, _| step_on(m, batch.mat().transpose().to_owned().as_ref()),
        progress,
    )
}

/// Test check shared by the MLE tasks: SNGD's run reaches the best objective of each Adam
/// baseline in at most 1/`fraction` of that baseline's steps, and each baseline improves on its
/// start by more than `gain`.
#[cfg(test)]
pub(crate) fn assert_sngd_leads(
    run: impl Fn(SkewMethod) -> SkewTrace,
    baselines: &[SkewMethod],
    fraction: usize,
    gain: f64,
) {
    let sngd = run(SkewMethod::Sngd);
    assert!(sngd.stopped.is_none(), "{sngd:?}");
    for &method in baselines {
        let adam = run(method);
        assert!(adam.stopped.is_none(), "{adam:?}");
        let (steps, best) = adam.best();
        assert!(best < adam.objective[0] - gain, "{adam:?}");
        let (reached, _) = sngd
            .reaches(best)
            .unwrap_or_else(|| panic!("SNGD {sngd:?} never reaches {best}"));
        assert!(
            fraction * reached <= steps,
            "{}: SNGD {reached} steps, the baseline {steps} to {best}",
            method.name()
        );
    }
}
