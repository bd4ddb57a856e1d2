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

use std::time::Instant;

use faer::{Mat, MatRef};
use serde::Serialize;

use helmholtz::error::{Error, Result};
use helmholtz::math::rng::{Stream, ids};
use helmholtz::optim::sngd::{LineSearch, Method};

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

/// The loop every minibatch and VI run shares: evaluate every `eval_every` steps and at the end
/// (`progress` sees each), otherwise `take_step(method, step)`. Only the steps are timed. A
/// failing step ends the run with its reason in `stopped`; the trace so far is kept.
pub(crate) fn drive<M: Method>(
    mut method: M,
    which: SkewMethod,
    settings: &SkewSettings,
    mut evaluate: impl FnMut(&M::Point, usize) -> Result<f64>,
    mut take_step: impl FnMut(&mut M, usize) -> Result<()>,
    progress: Progress<'_>,
) -> Result<SkewTrace> {
    let mut trace = SkewTrace {
        method: which,
        iterations: Vec::new(),
        objective: Vec::new(),
        seconds: Vec::new(),
        stopped: None,
    };
    let mut seconds = 0.0;
    for step in 0..=settings.iterations {
        if step % settings.eval_every == 0 || step == settings.iterations {
            let value = evaluate(&method.distribution()?, step)?;
            trace.iterations.push(step);
            trace.objective.push(value);
            trace.seconds.push(seconds);
            progress(step, value);
        }
        if step == settings.iterations {
            break;
        }
        let started = Instant::now();
        let outcome = take_step(&mut method, step);
        seconds += started.elapsed().as_secs_f64();
        if let Err(e) = outcome {
            trace.stopped = Some(format!("step {step}: {e}"));
            break;
        }
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
    mut step_on: impl FnMut(&mut M, MatRef<'_, f64>) -> Result<()>,
    progress: Progress<'_>,
) -> Result<SkewTrace> {
    if settings.batch == 0 || settings.eval_every == 0 {
        return Err(Error::Config(
            "batch size and evaluation interval must be positive".into(),
        ));
    }
    let (n, d) = (train.nrows(), train.ncols());
    let method = method(d)?;
    let mut rng = Stream::new(settings.seed, &[ids::SHUFFLE]);
    drive(
        method,
        which,
        settings,
        |q, _| nll(q, test.as_ref()),
        |m, _| {
            let rows: Vec<usize> = (0..settings.batch).map(|_| rng.below(n)).collect();
            let batch = Mat::from_fn(settings.batch, d, |i, j| train[(rows[i], j)]);
            step_on(m, batch.as_ref())
        },
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
