//! First-order optimizers on a [`ParamSet`] and learning-rate schedules.
//!
//! Every optimizer minimises: it takes the gradient of a loss and moves against it. The rules
//! implement one trait, [`Update`] (`update`, `state`, `restore`; `update.rs`), generic over the
//! storage: f32 `ParamSet`s for the networks, f64 vectors for SNGD. [`Optimizer`] is the form a
//! config names, a factory of those rules on `ParamSet`s. Its state is the moments plus a step
//! counter, so checkpoints store and restore it exactly.

pub mod fisher;
pub mod fista;
pub mod natural;
pub mod precondition;
pub mod quasi_newton;
pub mod sngd;
pub mod update;

pub use precondition::{Identity, Preconditioner, PreconditionerState};
pub use update::{
    Adam, Correction, Momentum, Nadam, OptimizerState, Rate, Real, Sgd, Tensors, Update,
};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::{ParamSet, Tensor};

/// Refuses a learning rate or step size that is not a finite positive number (NaN, ±inf, zero
/// and negative values all get this one message, naming `what`).
pub fn check_step_size(what: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} must be a finite positive number (for example 0.01), got {value}"
        )))
    }
}

/// Which update rule, with its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// θ ← θ − lr·g.
    Sgd,
    /// Heavy-ball momentum: v ← μ v + g; θ ← θ − lr·v.
    Momentum {
        /// μ.
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// Adam (Kingma & Ba 2015) with bias correction.
    Adam {
        /// β₁.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// β₂.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// ε.
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// Nadam (Dozat 2016): Adam with Nesterov momentum.
    Nadam {
        /// β₁.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// β₂.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// ε.
        #[serde(default = "default_eps")]
        eps: f64,
    },
}

fn default_momentum() -> f64 {
    0.9
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

/// How the learning rate changes with the step count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// lr.
    Constant,
    /// lr · factor^⌊step / every⌋.
    Step {
        /// Steps between decays.
        every: u64,
        /// Multiplier at each decay.
        factor: f64,
    },
    /// lr · rate^(step / steps).
    Exponential {
        /// Multiplier per `steps` steps.
        rate: f64,
        /// Steps over which the rate applies once.
        steps: u64,
    },
    /// end + (lr − end)(1 − min(step, steps)/steps)^power.
    Polynomial {
        /// Final learning rate.
        end: f64,
        /// Steps to reach it.
        steps: u64,
        /// Exponent.
        power: f64,
    },
}

impl Schedule {
    /// The learning rate at `step` for base rate `lr`.
    pub fn rate(&self, lr: f64, step: u64) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { every, factor } => lr * factor.powi((step / every.max(1)) as i32),
            Schedule::Exponential { rate, steps } => {
                lr * rate.powf(step as f64 / steps.max(1) as f64)
            }
            Schedule::Polynomial { end, steps, power } => {
                let done = step.min(steps) as f64 / steps.max(1) as f64;
                end + (lr - end) * (1.0 - done).powf(power)
            }
        }
    }

    /// Checks the schedule's numbers.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Schedule::Constant => true,
            Schedule::Step { every, factor } => every > 0 && factor > 0.0,
            Schedule::Exponential { rate, steps } => steps > 0 && rate > 0.0,
            Schedule::Polynomial { end, steps, power } => steps > 0 && end >= 0.0 && power > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "invalid learning-rate schedule {self:?}"
            )))
        }
    }
}

/// The optimizer a config names: an [`OptimizerConfig`] rule with its learning rate and
/// schedule, built for a parameter layout. It is the factory of the rules ([`Sgd`],
/// [`Momentum`], [`Adam`], [`Nadam`]) on `ParamSet`s and implements [`Update`] by dispatching to
/// the one it built. Checkpoints store [`Optimizer::moments`] (`m.*` then `v.*`) and the step.
#[derive(Clone, Debug)]
pub struct Optimizer {
    /// The rule.
    pub config: OptimizerConfig,
    rule: Box<Rule>,
    /// Names and shapes of the parameters (the zeros of the moments a rule does not keep).
    layout: Vec<(String, Vec<usize>)>,
}

#[derive(Clone, Debug)]
enum Rule {
    Sgd(Sgd),
    Momentum(Momentum<ParamSet>),
    Adam(Adam<ParamSet>),
    Nadam(Nadam<ParamSet>),
}

impl Optimizer {
    /// A fresh optimizer for parameters shaped like `params`.
    pub fn new(
        config: OptimizerConfig,
        lr: f64,
        schedule: Schedule,
        params: &ParamSet,
    ) -> Result<Self> {
        let rule = match config {
            OptimizerConfig::Sgd => Rule::Sgd(Sgd::new(lr, schedule)?),
            OptimizerConfig::Momentum { momentum } => {
                Rule::Momentum(Momentum::new(momentum, lr, schedule, params)?)
            }
            OptimizerConfig::Adam { beta1, beta2, eps } => {
                Rule::Adam(Adam::new(beta1, beta2, eps, lr, schedule, params)?)
            }
            OptimizerConfig::Nadam { beta1, beta2, eps } => {
                Rule::Nadam(Nadam::new(beta1, beta2, eps, lr, schedule, params)?)
            }
        };
        let layout = params
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        Ok(Optimizer {
            config,
            rule: Box::new(rule),
            layout,
        })
    }

    /// Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) at a constant learning rate `lr`.
    pub fn adam(lr: f64, params: &ParamSet) -> Result<Self> {
        let rule = OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        Self::new(rule, lr, Schedule::Constant, params)
    }

    fn rate(&self) -> &Rate {
        match self.rule.as_ref() {
            Rule::Sgd(r) => &r.rate,
            Rule::Momentum(r) => &r.rate,
            Rule::Adam(r) => &r.rate,
            Rule::Nadam(r) => &r.0.rate,
        }
    }

    fn rule(&self) -> &dyn Update<ParamSet> {
        match self.rule.as_ref() {
            Rule::Sgd(r) => r,
            Rule::Momentum(r) => r,
            Rule::Adam(r) => r,
            Rule::Nadam(r) => r,
        }
    }

    fn rule_mut(&mut self) -> &mut dyn Update<ParamSet> {
        match self.rule.as_mut() {
            Rule::Sgd(r) => r,
            Rule::Momentum(r) => r,
            Rule::Adam(r) => r,
            Rule::Nadam(r) => r,
        }
    }

    /// Number of updates applied so far.
    pub fn step(&self) -> u64 {
        self.rate().step
    }

    /// The learning rate of the next update.
    pub fn current_lr(&self) -> f64 {
        self.rate().current()
    }

    /// The moments as checkpoints store them: first moments `m.<param>` then second moments
    /// `v.<param>`, zeros for those the rule does not keep (SGD keeps none, momentum no `v`).
    pub fn moments(&self) -> ParamSet {
        let mut kept = self.rule().state().moments.into_iter();
        let mut tensors = Vec::with_capacity(2 * self.layout.len());
        for prefix in ["m", "v"] {
            match kept.next() {
                Some(set) => tensors.extend(set.tensors),
                None => tensors.extend(
                    self.layout
                        .iter()
                        .map(|(name, shape)| Tensor::zeros(format!("{prefix}.{name}"), shape)),
                ),
            }
        }
        ParamSet { tensors }
    }

    /// Continues from a checkpoint: `step` updates applied and the moments laid out as
    /// [`Optimizer::moments`] lays them out. Another layout is refused with an error naming the
    /// first tensor that differs, and nothing changes.
    pub fn restore_moments(&mut self, step: u64, moments: ParamSet) -> Result<()> {
        self.moments()
            .check_same_layout(&moments)
            .map_err(|e| Error::Checkpoint(format!("optimizer moments: {e}")))?;
        let n_kept = self.rule().state().moments.len();
        let mut tensors = moments.tensors;
        let second = tensors.split_off(self.layout.len());
        let sets = [ParamSet { tensors }, ParamSet { tensors: second }];
        self.rule_mut().restore(OptimizerState {
            step,
            moments: sets.into_iter().take(n_kept).collect(),
        })
    }

    /// One ascent step on an objective whose gradient is `grads` (negated in place, then
    /// [`Update::update`]); a non-finite gradient is refused with [`Error::Diverged`] naming
    /// the tensor and `context` before the parameters are touched.
    pub fn ascend(
        &mut self,
        params: &mut ParamSet,
        grads: &mut ParamSet,
        context: &str,
    ) -> Result<()> {
        if let Some(name) = grads.first_non_finite() {
            return Err(Error::Diverged(format!(
                "{context}: non-finite gradient in {name}"
            )));
        }
        for t in &mut grads.tensors {
            t.data.iter_mut().for_each(|g| *g = -*g);
        }
        self.update(params, grads);
        Ok(())
    }
}

impl Update<ParamSet> for Optimizer {
    fn update(&mut self, params: &mut ParamSet, grads: &ParamSet) {
        match self.rule.as_mut() {
            Rule::Sgd(r) => r.update(params, grads),
            Rule::Momentum(r) => r.update(params, grads),
            Rule::Adam(r) => r.update(params, grads),
            Rule::Nadam(r) => r.update(params, grads),
        }
    }

    fn state(&self) -> OptimizerState<ParamSet> {
        self.rule().state()
    }

    fn restore(&mut self, state: OptimizerState<ParamSet>) -> Result<()> {
        self.rule_mut().restore(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Tensor;

    fn quadratic_descent(config: OptimizerConfig, lr: f64, steps: usize) -> f32 {
        // Minimise ½‖θ − c‖² from θ = 0.
        let target = [1.0f32, -2.0, 0.5];
        let mut params = ParamSet {
            tensors: vec![Tensor {
                name: "x".into(),
                shape: vec![3],
                data: vec![0.0; 3],
            }],
        };
        let mut opt = Optimizer::new(config, lr, Schedule::Constant, &params).unwrap();
        let mut grads = params.zeros_like();
        for _ in 0..steps {
            for ((g, p), t) in grads.tensors[0]
                .data
                .iter_mut()
                .zip(&params.tensors[0].data)
                .zip(&target)
            {
                *g = p - t;
            }
            opt.update(&mut params, &grads);
        }
        params.tensors[0]
            .data
            .iter()
            .zip(&target)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn every_optimizer_minimises_a_quadratic() {
        assert!(quadratic_descent(OptimizerConfig::Sgd, 0.1, 300) < 1e-4);
        assert!(quadratic_descent(OptimizerConfig::Momentum { momentum: 0.5 }, 0.1, 300) < 1e-4);
        let adam = OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        assert!(quadratic_descent(adam, 0.05, 2000) < 1e-3);
        let nadam = OptimizerConfig::Nadam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        assert!(quadratic_descent(nadam, 0.05, 2000) < 1e-3);
    }

    #[test]
    fn first_adam_step_has_size_lr() {
        let mut params = ParamSet {
            tensors: vec![Tensor {
                name: "x".into(),
                shape: vec![1],
                data: vec![0.0],
            }],
        };
        let grads = ParamSet {
            tensors: vec![Tensor {
                name: "x".into(),
                shape: vec![1],
                data: vec![123.0],
            }],
        };
        let mut opt = Optimizer::new(
            OptimizerConfig::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            0.01,
            Schedule::Constant,
            &params,
        )
        .unwrap();
        opt.update(&mut params, &grads);
        assert!((params.tensors[0].data[0] + 0.01).abs() < 1e-6);
    }

    #[test]
    fn schedules() {
        assert_eq!(
            Schedule::Step {
                every: 10,
                factor: 0.5
            }
            .rate(1.0, 25),
            0.25
        );
        assert!(
            (Schedule::Exponential {
                rate: 0.1,
                steps: 100
            }
            .rate(1.0, 200)
                - 0.01)
                .abs()
                < 1e-12
        );
        assert_eq!(
            Schedule::Polynomial {
                end: 0.1,
                steps: 10,
                power: 1.0
            }
            .rate(1.1, 20),
            0.1
        );
        assert!(
            Schedule::Step {
                every: 0,
                factor: 0.5
            }
            .validate()
            .is_err()
        );
    }
}
