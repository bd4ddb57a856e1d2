//! SNGD, Adam and MCEF runs on the [`Trainer`](crate::train::Trainer): a [`Method`] of
//! [`crate::optim::sngd`] is the trained state, and [`MethodSteps`] takes one of its steps per
//! batch on the target that the batch makes (an MLE target on the batch's points, or a
//! variational target with the step's draws).
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use faer::Mat;
//! use helmholtz::data::batches::Columns;
//! use helmholtz::dist::skew::SkewNormal;
//! use helmholtz::dist::surrogate::{GaussianMixture, Gaussians};
//! use helmholtz::math::rng::Stream;
//! use helmholtz::objectives::targets::{Target, skew_normal::SkewNormalNll};
//! use helmholtz::optim::sngd::{LineSearch, Method, SngdMean};
//! use helmholtz::train::sngd::MethodSteps;
//! use helmholtz::train::trainer::*;
//!
//! // 2000 skew-normal points (one per column), fitted from N(0, I) by minibatch SNGD.
//! let truth = SkewNormal::new(vec![1.0, -1.0], Mat::identity(2, 2), vec![2.0, 0.0])?;
//! let rows = truth.sample(2000, &mut Stream::new(0, &[]))?;
//! let values = (0..2000).flat_map(|i| [rows[(i, 0)], rows[(i, 1)]]).collect();
//! let data = Columns { values, dim: 2 };
//! let search = LineSearch::Backtracking { start: 0.5, halvings: 20 };
//! let start = Gaussians::single(vec![0.0; 2], Mat::identity(2, 2));
//! let mut sngd = SngdMean::<SkewNormal>::new(GaussianMixture::single(2), start, vec![0.0; 2], 0.05, search)?;
//! let mut steps = MethodSteps::new(|m: &mut SngdMean<SkewNormal>, batch: &Batch<'_, f64>, _: &StepContext| {
//!     let rows = batch.mat().transpose().to_owned();
//!     m.step(&SkewNormalNll { points: rows.as_ref() })
//! });
//! let trainer = Trainer { epochs: 5, batch_size: 200, ..Trainer::default() };
//! let before = SkewNormalNll { points: rows.as_ref() }.value(&sngd.distribution()?)?;
//! trainer.fit(&mut sngd, &mut steps, &data, &mut TrainState::default(), &mut [],
//!     &mut NoCheckpoints, &AtomicBool::new(false))?;
//! let after = SkewNormalNll { points: rows.as_ref() }.value(&sngd.distribution()?)?;
//! assert!(after < before - 0.1, "{before} -> {after}");
//! # Ok::<(), helmholtz::Error>(())
//! ```

use std::marker::PhantomData;

use crate::error::Result;
use crate::optim::sngd::{Method, Step};
use crate::train::trainer::{Algorithm, Batch, StepContext, StepStats};

/// One step of a [`Method`] per batch: `step(method, batch, ctx)` builds the batch's target
/// and steps on it. The objective the trainer records is minus the target's value (the
/// trainer's objectives are ascended), weighted by the batch's points.
pub struct MethodSteps<M, F> {
    step: F,
    method: PhantomData<fn(&mut M)>,
}

impl<M, F> MethodSteps<M, F>
where
    M: Method,
    F: FnMut(&mut M, &Batch<'_, f64>, &StepContext) -> Result<Step>,
{
    /// Steps taken by `step`.
    pub fn new(step: F) -> Self {
        MethodSteps {
            step,
            method: PhantomData,
        }
    }
}

impl<M, F> Algorithm<M> for MethodSteps<M, F>
where
    M: Method,
    F: FnMut(&mut M, &Batch<'_, f64>, &StepContext) -> Result<Step>,
{
    type Scalar = f64;

    fn step(
        &mut self,
        method: &mut M,
        batch: &Batch<'_, f64>,
        ctx: &StepContext,
    ) -> Result<StepStats> {
        let step = (self.step)(method, batch, ctx)?;
        let points = batch.n_points().max(1);
        Ok(StepStats {
            objective_sum: -step.value * points as f64,
            points,
        })
    }
}
