//! A learning algorithm with its optional natural-gradient preconditioner: WS/RWS/BiHM gradients,
//! turned into NWS/NRWS/NBiHM steps by the per-unit Fisher blocks (DESIGN.md: natural gradient is
//! a preconditioner).

use super::wake_sleep::{BatchStats, WakeSleep, WakeSleepConfig};
use crate::error::Result;
use crate::models::{HelmholtzMachine, ParamSet};
use crate::optim::natural::{FisherPreconditioner, FisherSamples, NaturalConfig};

/// Gradients of the wake-sleep family, preconditioned when a natural-gradient config is given.
pub struct Learner {
    /// The gradient estimator.
    pub algorithm: WakeSleep,
    /// The Fisher-block preconditioner, if any.
    pub preconditioner: Option<FisherPreconditioner>,
}

impl Learner {
    /// Checks both configs.
    pub fn new(algorithm: WakeSleepConfig, natural: Option<NaturalConfig>) -> Result<Self> {
        Ok(Learner {
            algorithm: WakeSleep::new(algorithm)?,
            preconditioner: natural.map(FisherPreconditioner::new).transpose()?,
        })
    }

    /// The (natural) gradient of one minibatch: refreshes the Fisher factors when step `step` is
    /// due, then preconditions the ordinary gradient in `grads`.
    pub fn gradient(
        &mut self,
        model: &HelmholtzMachine,
        batch: &[f32],
        n_points: usize,
        seed: u64,
        step: u64,
        grads: &mut ParamSet,
    ) -> Result<BatchStats> {
        let refresh = self
            .preconditioner
            .as_ref()
            .is_some_and(|p| p.needs_refresh(step));
        let mut fisher = refresh.then(FisherSamples::default);
        let stats = self.algorithm.gradient_with_fisher(
            model,
            batch,
            n_points,
            seed,
            step,
            grads,
            fisher.as_mut(),
        )?;
        if let Some(pre) = self.preconditioner.as_mut() {
            if let Some(samples) = fisher {
                pre.refresh(samples)?;
            }
            pre.precondition(model, grads)?;
        }
        Ok(stats)
    }
}
