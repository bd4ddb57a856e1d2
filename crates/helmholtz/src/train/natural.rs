//! The natural version of any algorithm that exposes its gradients (DESIGN.md: natural gradient
//! is a preconditioner): [`Natural`] runs the inner algorithm's gradient pass, refreshes its
//! [`Preconditioner`] when due from the samples that pass gathered, preconditions the gradient
//! and lets the inner algorithm apply it. NRWS = `Natural<HmStep, FisherPreconditioner>` with
//! the RWS gradients and SGD; NWS and NBiHM likewise, and `Natural<A, Identity>` is `A`.

use super::trainer::{Algorithm, Batch, EpochRecord, StepContext, StepStats};
use crate::error::Result;
use crate::models::ParamSet;
use crate::optim::Preconditioner;

/// An algorithm whose step is a gradient pass followed by an update of the model: what
/// [`Natural`] wraps. Its [`Algorithm::step`] must be `gradient(.., None)` then `apply`.
pub trait GradientStep<M>: Algorithm<M> {
    /// What the gradient pass gathers, when asked, for a preconditioner's refresh.
    type Samples: Default;

    /// The ordinary gradient of the loss on `batch` into the algorithm's gradient buffer
    /// ([`GradientStep::gradients_mut`]), and with `samples` also the samples of a refresh.
    fn gradient(
        &mut self,
        model: &M,
        batch: &Batch<'_, Self::Scalar>,
        ctx: &StepContext,
        samples: Option<&mut Self::Samples>,
    ) -> Result<StepStats>;

    /// The gradient buffer the last pass wrote (the layout of the model's parameters).
    fn gradients_mut(&mut self) -> &mut ParamSet;

    /// Updates `model` from the gradient buffer; `stats` is what the gradient pass reported
    /// (returned, or a divergence error).
    fn apply(&mut self, model: &mut M, stats: StepStats, ctx: &StepContext) -> Result<StepStats>;
}

/// An algorithm `A` whose gradients pass through the preconditioner `P` before `A` applies them.
pub struct Natural<A, P> {
    /// The algorithm: gradients and their update.
    pub inner: A,
    /// Turns its gradients into natural gradients.
    pub preconditioner: P,
}

impl<A, P> Natural<A, P> {
    /// `inner` with its gradients preconditioned by `preconditioner`.
    pub fn new(inner: A, preconditioner: P) -> Self {
        Natural {
            inner,
            preconditioner,
        }
    }

    /// The preconditioned gradient of `batch` into the inner algorithm's gradient buffer:
    /// refreshes the preconditioner first when step `ctx.step` is due, from the samples of this
    /// very pass. [`Algorithm::step`] is this, then the inner algorithm's update.
    pub fn gradient<M>(
        &mut self,
        model: &M,
        batch: &Batch<'_, A::Scalar>,
        ctx: &StepContext,
    ) -> Result<StepStats>
    where
        A: GradientStep<M>,
        P: Preconditioner<M, A::Samples>,
    {
        let mut samples = self
            .preconditioner
            .needs_refresh(ctx.step)
            .then(A::Samples::default);
        let stats = self.inner.gradient(model, batch, ctx, samples.as_mut())?;
        if let Some(samples) = samples {
            self.preconditioner.refresh(model, samples, ctx.step)?;
        }
        self.preconditioner
            .precondition(model, self.inner.gradients_mut(), ctx.step)?;
        Ok(stats)
    }
}

impl<M, A, P> Algorithm<M> for Natural<A, P>
where
    A: GradientStep<M>,
    P: Preconditioner<M, A::Samples>,
{
    type Scalar = A::Scalar;

    fn step(
        &mut self,
        model: &mut M,
        batch: &Batch<'_, Self::Scalar>,
        ctx: &StepContext,
    ) -> Result<StepStats> {
        let stats = self.gradient(model, batch, ctx)?;
        self.inner.apply(model, stats, ctx)
    }

    fn end_epoch(&mut self, record: &mut EpochRecord) {
        self.inner.end_epoch(record)
    }
}
