//! First-order optimizers on a [`ParamSet`] and learning-rate schedules.
//!
//! Every optimizer minimises: it takes the gradient of a loss and moves against it. Its state is
//! a `ParamSet` of moments plus a step counter, so checkpoints store and restore it exactly.

pub mod fisher;
pub mod fista;
pub mod natural;
pub mod quasi_newton;
pub mod sngd;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::ParamSet;

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

/// An optimizer: the rule, its moments and its step counter.
#[derive(Clone, Debug)]
pub struct Optimizer {
    /// The rule.
    pub config: OptimizerConfig,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Number of updates applied so far.
    pub step: u64,
    /// First moments (momentum / Adam m), named `m.<param>`.
    pub first: ParamSet,
    /// Second moments (Adam v), named `v.<param>`.
    pub second: ParamSet,
}

impl Optimizer {
    /// A fresh optimizer for parameters shaped like `params`.
    pub fn new(
        config: OptimizerConfig,
        lr: f64,
        schedule: Schedule,
        params: &ParamSet,
    ) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::Config(format!(
                "learning rate must be positive, got {lr}"
            )));
        }
        schedule.validate()?;
        let named = |prefix: &str| {
            let mut set = params.zeros_like();
            for t in &mut set.tensors {
                t.name = format!("{prefix}.{}", t.name);
            }
            set
        };
        Ok(Optimizer {
            config,
            lr,
            schedule,
            step: 0,
            first: named("m"),
            second: named("v"),
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

    /// First and second moments as one set (`m.*` then `v.*`), as stored in checkpoints.
    pub fn moments(&self) -> ParamSet {
        ParamSet {
            tensors: self
                .first
                .tensors
                .iter()
                .chain(&self.second.tensors)
                .cloned()
                .collect(),
        }
    }

    /// Restores the moments from a set laid out like [`Optimizer::moments`].
    pub fn set_moments(&mut self, moments: ParamSet) {
        let mut tensors = moments.tensors;
        self.second.tensors = tensors.split_off(self.first.tensors.len());
        self.first.tensors = tensors;
    }

    /// The learning rate of the next update.
    pub fn current_lr(&self) -> f64 {
        self.schedule.rate(self.lr, self.step)
    }

    /// One ascent step on an objective whose gradient is `grads` (negated in place, then
    /// [`Optimizer::update`]); a non-finite gradient is refused with [`Error::Diverged`] naming
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

    /// Applies one update θ ← θ − lr·direction(g).
    pub fn update(&mut self, params: &mut ParamSet, grads: &ParamSet) {
        let lr = self.current_lr();
        self.step += 1;
        let t = self.step as f64;
        for (index, (param, grad)) in params.tensors.iter_mut().zip(&grads.tensors).enumerate() {
            let m = &mut self.first.tensors[index].data;
            let v = &mut self.second.tensors[index].data;
            match self.config {
                OptimizerConfig::Sgd => {
                    let lr = lr as f32;
                    for (p, g) in param.data.iter_mut().zip(&grad.data) {
                        *p -= lr * g;
                    }
                }
                OptimizerConfig::Momentum { momentum } => {
                    let (lr, mu) = (lr as f32, momentum as f32);
                    for ((p, g), m) in param.data.iter_mut().zip(&grad.data).zip(m.iter_mut()) {
                        *m = mu * *m + g;
                        *p -= lr * *m;
                    }
                }
                OptimizerConfig::Adam { beta1, beta2, eps }
                | OptimizerConfig::Nadam { beta1, beta2, eps } => {
                    let nesterov = matches!(self.config, OptimizerConfig::Nadam { .. });
                    let (b1, b2) = (beta1 as f32, beta2 as f32);
                    let correction1 = 1.0 - beta1.powf(t);
                    let correction2 = 1.0 - beta2.powf(t);
                    // Nadam's look-ahead: β₁ m̂_t + (1 − β₁) g_t / (1 − β₁^t).
                    let (coef_m, coef_g) = if nesterov {
                        (
                            beta1 / (1.0 - beta1.powf(t + 1.0)),
                            (1.0 - beta1) / correction1,
                        )
                    } else {
                        (1.0 / correction1, 0.0)
                    };
                    let (coef_m, coef_g) = (coef_m as f32, coef_g as f32);
                    let inv_c2 = (1.0 / correction2) as f32;
                    let (lr, eps) = (lr as f32, eps as f32);
                    for (((p, &g), m), v) in param
                        .data
                        .iter_mut()
                        .zip(&grad.data)
                        .zip(m.iter_mut())
                        .zip(v.iter_mut())
                    {
                        *m = b1 * *m + (1.0 - b1) * g;
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        let direction = coef_m * *m + coef_g * g;
                        *p -= lr * direction / ((*v * inv_c2).sqrt() + eps);
                    }
                }
            }
        }
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
