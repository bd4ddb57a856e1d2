//! One step of a Helmholtz machine: the WS/RWS/BiHM gradients of a minibatch applied by an
//! optimizer ([`HmStep`]). Their natural versions (NWS/NRWS/NBiHM) are [`HmStep`] wrapped in
//! [`Natural`] with the per-unit Fisher blocks (DESIGN.md: natural gradient is a
//! preconditioner); [`HmLearner`] is the one a config names.

use super::natural::{GradientStep, Natural};
use super::trainer::{Algorithm, Batch, StepContext, StepStats};
use super::wake_sleep::{WakeSleep, WakeSleepConfig};
use crate::error::{Error, Result};
use crate::models::{HelmholtzMachine, ParamSet};
use crate::optim::natural::{FisherPreconditioner, FisherSamples, NaturalConfig};
use crate::optim::{Optimizer, Update};

/// One step of a Helmholtz machine: the WS/RWS/BiHM gradient of the minibatch, applied by the
/// optimizer. A non-finite bound, gradient or parameter is a divergence, reported before the
/// model is touched where it can be.
pub struct HmStep {
    /// The gradient estimator.
    pub gradients: WakeSleep,
    /// The update rule with its moments.
    pub optimizer: Optimizer,
    grads: ParamSet,
}

impl HmStep {
    /// A step for `model`'s parameter layout.
    pub fn new(gradients: WakeSleep, optimizer: Optimizer, model: &HelmholtzMachine) -> Self {
        HmStep {
            gradients,
            optimizer,
            grads: model.params.zeros_like(),
        }
    }

    /// The gradient of the last pass.
    pub fn grads(&self) -> &ParamSet {
        &self.grads
    }

    /// Applies the optimizer to the gradient of the last pass without the divergence checks of
    /// [`GradientStep::apply`] (for timing the bare update).
    pub fn update(&mut self, model: &mut HelmholtzMachine) {
        self.optimizer.update(&mut model.params, &self.grads);
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
        let stats = self.gradient(model, batch, ctx, None)?;
        self.apply(model, stats, ctx)
    }
}

impl GradientStep<HelmholtzMachine> for HmStep {
    type Samples = FisherSamples;

    /// The wake-sleep gradient drawn with the streams of (seed, step); with `samples` also the
    /// Fisher samples of every layer (p from dreams, q from wake samples).
    fn gradient(
        &mut self,
        model: &HelmholtzMachine,
        batch: &Batch<'_, f32>,
        ctx: &StepContext,
        samples: Option<&mut FisherSamples>,
    ) -> Result<StepStats> {
        let n = batch.n_points();
        let stats = self.gradients.gradient_with_fisher(
            model,
            batch.values,
            n,
            ctx.seed,
            ctx.step,
            &mut self.grads,
            samples,
        )?;
        Ok(StepStats {
            objective_sum: stats.bound_sum,
            points: n,
        })
    }

    fn gradients_mut(&mut self) -> &mut ParamSet {
        &mut self.grads
    }

    fn apply(
        &mut self,
        model: &mut HelmholtzMachine,
        stats: StepStats,
        ctx: &StepContext,
    ) -> Result<StepStats> {
        let (epoch, b) = (ctx.epoch + 1, ctx.batch);
        if !stats.objective_sum.is_finite() {
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
        Ok(stats)
    }
}

/// The Helmholtz-machine learner a config names: WS/RWS/BiHM, and their natural versions
/// NWS/NRWS/NBiHM when a [`NaturalConfig`] is given (`None` is the plain gradient).
pub type HmLearner = Natural<HmStep, Option<FisherPreconditioner>>;

impl HmLearner {
    /// Checks both configs and builds the step for `model`.
    pub fn from_config(
        gradients: WakeSleepConfig,
        natural: Option<NaturalConfig>,
        optimizer: Optimizer,
        model: &HelmholtzMachine,
    ) -> Result<Self> {
        Ok(Natural::new(
            HmStep::new(WakeSleep::new(gradients)?, optimizer, model),
            natural.map(FisherPreconditioner::new).transpose()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::models::WeightInit;
    use crate::optim::Schedule;
    use crate::optim::fisher::{FisherKind, Storage};
    use crate::optim::{Identity, Preconditioner};
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
        pre.refresh(&model, samples, 0).unwrap();
        let plain = grads.clone();
        pre.precondition(&model, &mut grads, 0).unwrap();
        assert_ne!(grads, plain, "α = 0.2 gives a natural step");
        // At step 10, α = 20 > 10: no refresh, and the plain gradient.
        assert!(!pre.needs_refresh(10));
        let mut later = plain.clone();
        pre.precondition(&model, &mut later, 10).unwrap();
        assert_eq!(later, plain);
    }

    fn digits_like(n: usize) -> Vec<f32> {
        let mut rng = Stream::new(1, &[]);
        (0..8 * n)
            .map(|_| (rng.uniform_f64() < 0.3) as u8 as f32)
            .collect()
    }

    fn rws_step(model: &HelmholtzMachine) -> HmStep {
        let config = WakeSleepConfig {
            variant: Variant::Rws,
            k: 3,
            wake_fraction: 0.5,
            q_baseline: true,
            chunk_points: 5,
        };
        let sgd = Optimizer::new(
            crate::optim::OptimizerConfig::Sgd,
            0.05,
            Schedule::Constant,
            &model.params,
        )
        .unwrap();
        HmStep::new(WakeSleep::new(config).unwrap(), sgd, model)
    }

    /// Runs `steps` steps of `algorithm` on 10-point batches of `x` from step `from`.
    fn run<A: Algorithm<HelmholtzMachine, Scalar = f32>>(
        algorithm: &mut A,
        model: &mut HelmholtzMachine,
        x: &[f32],
        from: u64,
        steps: u64,
    ) {
        let indices: Vec<usize> = (0..10).collect();
        for step in from..from + steps {
            let batch = Batch {
                values: x,
                dim: 8,
                indices: &indices,
            };
            let ctx = StepContext {
                seed: 3,
                epoch: 0,
                batch: step as usize,
                step,
            };
            algorithm.step(model, &batch, &ctx).unwrap();
        }
    }

    #[test]
    fn the_wrapper_with_the_identity_is_the_plain_algorithm_bit_for_bit() {
        let x = digits_like(10);
        let start = HelmholtzMachine::new(&[8, 4, 2], WeightInit::GlorotNormal, -1.0, 0).unwrap();
        let (mut plain_model, mut wrapped_model, mut none_model) =
            (start.clone(), start.clone(), start.clone());
        let mut plain = rws_step(&start);
        let mut wrapped = Natural::new(rws_step(&start), Identity);
        let mut none: HmLearner = Natural::new(rws_step(&start), None);
        run(&mut plain, &mut plain_model, &x, 0, 12);
        run(&mut wrapped, &mut wrapped_model, &x, 0, 12);
        run(&mut none, &mut none_model, &x, 0, 12);
        let bits = |m: &HelmholtzMachine| {
            m.params
                .tensors
                .iter()
                .flat_map(|t| t.data.iter().map(|v| v.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_ne!(bits(&plain_model), bits(&start));
        assert_eq!(bits(&plain_model), bits(&wrapped_model));
        assert_eq!(bits(&plain_model), bits(&none_model));
    }

    #[test]
    fn a_natural_step_restored_from_its_state_continues_bit_for_bit() {
        // NRWS refreshing every 4 steps, interrupted at step 6 (between refreshes): the restored
        // preconditioner refits the same factors from the stored samples.
        let x = digits_like(10);
        let start = HelmholtzMachine::new(&[8, 4, 2], WeightInit::GlorotNormal, -1.0, 0).unwrap();
        let natural = NaturalConfig {
            refresh_every: 4,
            ..NaturalConfig::default()
        };
        let nrws = |model: &HelmholtzMachine| -> HmLearner {
            Natural::new(
                rws_step(model),
                Some(FisherPreconditioner::new(natural.clone()).unwrap()),
            )
        };
        let (mut whole_model, mut parts_model) = (start.clone(), start.clone());
        let mut whole = nrws(&start);
        run(&mut whole, &mut whole_model, &x, 0, 10);
        let mut first = nrws(&start);
        run(&mut first, &mut parts_model, &x, 0, 6);
        let state = first.preconditioner.state().unwrap();
        assert_eq!(state.step, 4);
        let mut resumed = nrws(&parts_model);
        resumed
            .inner
            .optimizer
            .restore(first.inner.optimizer.state())
            .unwrap();
        resumed
            .preconditioner
            .restore(&parts_model, state.clone())
            .unwrap();
        run(&mut resumed, &mut parts_model, &x, 6, 4);
        assert_eq!(parts_model.params, whole_model.params);
        assert_ne!(whole_model.params, start.params);
        // Samples that do not fit the model are refused.
        let other = HelmholtzMachine::new(&[8, 3, 2], WeightInit::GlorotNormal, -1.0, 0).unwrap();
        let err = nrws(&other)
            .preconditioner
            .restore(&other, state)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not fit"), "{err}");
    }
}
