//! A learning algorithm with its optional natural-gradient preconditioner: WS/RWS/BiHM gradients,
//! turned into NWS/NRWS/NBiHM steps by the per-unit Fisher blocks (DESIGN.md: natural gradient is
//! a preconditioner).

use super::trainer::{Algorithm, Batch, StepContext, StepStats};
use super::wake_sleep::{BatchStats, WakeSleep, WakeSleepConfig};
use crate::error::{Error, Result};
use crate::models::{HelmholtzMachine, ParamSet};
use crate::optim::{Optimizer, Update};
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
            if let Some(mut samples) = fisher {
                samples.step = step;
                pre.refresh(samples)?;
            }
            pre.precondition(model, grads, step)?;
        }
        Ok(stats)
    }
}

/// One step of a Helmholtz machine: the (natural) gradient of the minibatch from the
/// [`Learner`], applied by the optimizer. A non-finite bound, gradient or parameter is a
/// divergence, reported before the model is touched where it can be.
pub struct HmStep {
    /// Gradients and the optional preconditioner.
    pub learner: Learner,
    /// The update rule with its moments.
    pub optimizer: Optimizer,
    grads: ParamSet,
}

impl HmStep {
    /// A step for `model`'s parameter layout.
    pub fn new(learner: Learner, optimizer: Optimizer, model: &HelmholtzMachine) -> Self {
        HmStep {
            learner,
            optimizer,
            grads: model.params.zeros_like(),
        }
    }
}

impl Algorithm<HelmholtzMachine> for HmStep {
    type Scalar = f32;

    fn step(
        &mut self,
        model: &mut HelmholtzMachine,
        batch: &Batch<'_, f32>,
        ctx: &StepContext,
    ) -> Result<StepStats> {
        let n = batch.n_points();
        let stats =
            self.learner
                .gradient(model, batch.values, n, ctx.seed, ctx.step, &mut self.grads)?;
        let (epoch, b) = (ctx.epoch + 1, ctx.batch);
        if !stats.bound_sum.is_finite() {
            return Err(Error::Diverged(format!(
                "non-finite training bound at epoch {epoch} batch {b}; the last good checkpoint is kept"
            )));
        }
        if let Some(name) = self.grads.first_non_finite() {
            return Err(Error::Diverged(format!(
                "non-finite gradient of {name} at epoch {epoch} batch {b}; the last good checkpoint is kept"
            )));
        }
        self.optimizer.update(&mut model.params, &self.grads);
        if let Some(name) = model.params.first_non_finite() {
            return Err(Error::Diverged(format!(
                "parameter {name} became non-finite at epoch {epoch} batch {b}; the last good checkpoint is kept"
            )));
        }
        Ok(StepStats {
            objective_sum: stats.bound_sum,
            points: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::models::WeightInit;
    use crate::optim::Schedule;
    use crate::optim::fisher::{FisherKind, Storage};
    use crate::train::Variant;

    #[test]
    fn a_rising_alpha_schedule_turns_the_natural_step_into_the_plain_gradient() {
        let model = HelmholtzMachine::new(&[8, 4, 2], WeightInit::GlorotNormal, -1.0, 0).unwrap();
        let mut rng = Stream::new(1, &[]);
        let x: Vec<f32> = (0..8 * 10)
            .map(|_| (rng.uniform_f64() < 0.3) as u8 as f32)
            .collect();
        let mut rws = WakeSleep::new(WakeSleepConfig {
            variant: Variant::Rws,
            k: 3,
            wake_fraction: 0.5,
            q_baseline: true,
            chunk_points: 5,
        })
        .unwrap();
        let config = NaturalConfig {
            alpha: 0.2,
            refresh_every: 1000,
            fisher: FisherKind::Blocks,
            alpha_schedule: Schedule::Step {
                every: 10,
                factor: 100.0,
            },
            storage: Storage::F32,
        };
        let mut pre = FisherPreconditioner::new(config).unwrap();
        assert_eq!((pre.alpha_at(9), pre.alpha_at(10)), (0.2, 20.0));
        let mut grads = model.params.zeros_like();
        let mut samples = FisherSamples::default();
        rws.gradient_with_fisher(&model, &x, 10, 0, 0, &mut grads, Some(&mut samples))
            .unwrap();
        assert!(pre.needs_refresh(0));
        pre.refresh(samples).unwrap();
        let plain = grads.clone();
        pre.precondition(&model, &mut grads, 0).unwrap();
        assert_ne!(grads, plain, "α = 0.2 gives a natural step");
        // At step 10, α = 20 > 10: no refresh, and the plain gradient.
        assert!(!pre.needs_refresh(10));
        let mut later = plain.clone();
        pre.precondition(&model, &mut later, 10).unwrap();
        assert_eq!(later, plain);
    }
}
