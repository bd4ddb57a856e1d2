//! The update rules as one trait: [`Update`] with `update`, `state` and `restore`, implemented by
//! [`Sgd`], [`Momentum`], [`Adam`] and [`Nadam`] on any [`Tensors`] — a [`ParamSet`] of f32
//! tensors (the networks) or an f64 vector (SNGD's auxiliary parameters and Adam baselines).
//!
//! Each rule is written once, generic over the storage scalar ([`Real`]): the coefficients
//! (learning rate, bias corrections) are computed in f64 and cast once per update to the
//! storage type, and the per-element arithmetic runs in the storage type.
//!
//! (Just over 700 lines: the four rules, the scalar and storage traits they share, and their
//! tests, the last 200 lines.)

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Sub, SubAssign};

use super::Schedule;
use crate::error::{Error, Result};
use crate::models::ParamSet;

/// The scalar an optimizer stores parameters and moments in: f32 or f64.
pub trait Real:
    Copy
    + Debug
    + PartialEq
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + SubAssign
    + Send
    + Sync
    + 'static
{
    /// 1.
    const ONE: Self;
    /// The nearest value to `x` (`x as f32` for f32).
    fn from_f64(x: f64) -> Self;
    /// √self.
    fn sqrt(self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
}

impl Real for f32 {
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Real for f64 {
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// What an optimizer moves: an ordered list of flat tensors of one scalar type. Moments are
/// kept in the same type, so they have the same layout as the parameters.
pub trait Tensors: Clone {
    /// The storage scalar.
    type Scalar: Real;
    /// Number of tensors.
    fn count(&self) -> usize;
    /// Values of tensor `i`.
    fn tensor(&self, i: usize) -> &[Self::Scalar];
    /// Values of tensor `i`, mutable.
    fn tensor_mut(&mut self, i: usize) -> &mut [Self::Scalar];
    /// Zeros of the same layout for a moment: a [`ParamSet`]'s tensors are named
    /// `<prefix>.<name>` (`m.p.0.w`, `v.p.0.w`), as checkpoints store them.
    fn moment(&self, prefix: &str) -> Self;
    /// Checks that `other` has the same layout (names and shapes, or length); the error says
    /// what differs.
    fn check_layout(&self, other: &Self) -> Result<()>;
}

impl Tensors for ParamSet {
    type Scalar = f32;
    fn count(&self) -> usize {
        self.tensors.len()
    }
    fn tensor(&self, i: usize) -> &[f32] {
        &self.tensors[i].data
    }
    fn tensor_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.tensors[i].data
    }
    fn moment(&self, prefix: &str) -> Self {
        let mut set = self.zeros_like();
        for t in &mut set.tensors {
            t.name = format!("{prefix}.{}", t.name);
        }
        set
    }
    fn check_layout(&self, other: &Self) -> Result<()> {
        self.check_same_layout(other)
    }
}

impl<T: Real + Default> Tensors for Vec<T> {
    type Scalar = T;
    fn count(&self) -> usize {
        1
    }
    fn tensor(&self, _: usize) -> &[T] {
        self
    }
    fn tensor_mut(&mut self, _: usize) -> &mut [T] {
        self
    }
    fn moment(&self, _: &str) -> Self {
        vec![T::default(); self.len()]
    }
    fn check_layout(&self, other: &Self) -> Result<()> {
        if self.len() == other.len() {
            Ok(())
        } else {
            Err(Error::Dimension(format!(
                "a vector of {} values expected, {} given",
                self.len(),
                other.len()
            )))
        }
    }
}

/// An optimizer's state for a checkpoint: the number of updates applied and the moments it
/// keeps (none for SGD, the first for momentum, first and second for Adam and Nadam), each
/// laid out like the parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<P> {
    /// Updates applied so far.
    pub step: u64,
    /// The moments, first then second.
    pub moments: Vec<P>,
}

/// An update rule: one step θ ← θ − lr·direction(g) on parameters `P` with gradients of the
/// same layout, and its state for checkpoints.
pub trait Update<P: Tensors> {
    /// Applies one update. `grads` has the layout of `params` (not checked; see
    /// [`Update::checked_update`]).
    fn update(&mut self, params: &mut P, grads: &P);

    /// The step counter and the moments.
    fn state(&self) -> OptimizerState<P>;

    /// Continues from `state`; moments of another number or layout are refused with an error
    /// that says what was expected, and nothing changes.
    fn restore(&mut self, state: OptimizerState<P>) -> Result<()>;

    /// [`Update::update`] after checking that `grads` has the layout of `params` and is
    /// finite; otherwise an error ([`Error::Dimension`], [`Error::Diverged`]) before anything
    /// moves.
    fn checked_update(&mut self, params: &mut P, grads: &P) -> Result<()> {
        params.check_layout(grads)?;
        for i in 0..grads.count() {
            if let Some(k) = grads.tensor(i).iter().position(|g| !g.is_finite()) {
                return Err(Error::Diverged(format!(
                    "non-finite gradient: entry {k} of tensor {i}"
                )));
            }
        }
        self.update(params, grads);
        Ok(())
    }
}

/// The learning rate over the steps and the step counter that every rule keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Rate {
    /// Base learning rate.
    pub lr: f64,
    /// How it changes with the step count.
    pub schedule: Schedule,
    /// Updates applied so far.
    pub step: u64,
}

impl Rate {
    /// Base rate `lr` under `schedule`, at step 0; `lr` must be finite and positive and the
    /// schedule valid.
    pub fn new(lr: f64, schedule: Schedule) -> Result<Self> {
        super::check_step_size("learning rate", lr)?;
        schedule.validate()?;
        Ok(Rate {
            lr,
            schedule,
            step: 0,
        })
    }

    /// The learning rate of the next update.
    pub fn current(&self) -> f64 {
        self.schedule.rate(self.lr, self.step)
    }

    /// The learning rate of this update, counting it: (lr, t) with t the 1-based update number.
    fn advance(&mut self) -> (f64, f64) {
        let lr = self.current();
        self.step += 1;
        (lr, self.step as f64)
    }
}

/// Checks the number and layout of restored moments against the current ones.
fn check_moments<P: Tensors>(current: &[&P], restored: &[P], rule: &str) -> Result<()> {
    if current.len() != restored.len() {
        return Err(Error::Checkpoint(format!(
            "{rule} keeps {} moment sets, the state holds {}",
            current.len(),
            restored.len()
        )));
    }
    for (c, r) in current.iter().zip(restored) {
        c.check_layout(r)
            .map_err(|e| Error::Checkpoint(format!("{rule} moments: {e}")))?;
    }
    Ok(())
}

/// Plain gradient descent θ ← θ − lr·g.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate and step counter.
    pub rate: Rate,
}

impl Sgd {
    /// SGD at base rate `lr` under `schedule`.
    pub fn new(lr: f64, schedule: Schedule) -> Result<Self> {
        Ok(Sgd {
            rate: Rate::new(lr, schedule)?,
        })
    }
}

impl<P: Tensors> Update<P> for Sgd {
    fn update(&mut self, params: &mut P, grads: &P) {
        let (lr, _) = self.rate.advance();
        let lr = P::Scalar::from_f64(lr);
        for i in 0..params.count() {
            for (p, &g) in params.tensor_mut(i).iter_mut().zip(grads.tensor(i)) {
                *p -= lr * g;
            }
        }
    }

    fn state(&self) -> OptimizerState<P> {
        OptimizerState {
            step: self.rate.step,
            moments: Vec::new(),
        }
    }

    fn restore(&mut self, state: OptimizerState<P>) -> Result<()> {
        check_moments::<P>(&[], &state.moments, "SGD")?;
        self.rate.step = state.step;
        Ok(())
    }
}

/// Heavy-ball momentum: v ← μ v + g; θ ← θ − lr·v.
#[derive(Clone, Debug, PartialEq)]
pub struct Momentum<P> {
    /// Learning rate and step counter.
    pub rate: Rate,
    /// μ.
    pub momentum: f64,
    velocity: P,
}

impl<P: Tensors> Momentum<P> {
    /// Momentum μ at base rate `lr` under `schedule`, for parameters shaped like `params`.
    pub fn new(momentum: f64, lr: f64, schedule: Schedule, params: &P) -> Result<Self> {
        Ok(Momentum {
            rate: Rate::new(lr, schedule)?,
            momentum,
            velocity: params.moment("m"),
        })
    }
}

impl<P: Tensors> Update<P> for Momentum<P> {
    fn update(&mut self, params: &mut P, grads: &P) {
        let (lr, _) = self.rate.advance();
        let (lr, mu) = (P::Scalar::from_f64(lr), P::Scalar::from_f64(self.momentum));
        for i in 0..params.count() {
            let m = self.velocity.tensor_mut(i);
            for ((p, &g), m) in params
                .tensor_mut(i)
                .iter_mut()
                .zip(grads.tensor(i))
                .zip(m.iter_mut())
            {
                *m = mu * *m + g;
                *p -= lr * *m;
            }
        }
    }

    fn state(&self) -> OptimizerState<P> {
        OptimizerState {
            step: self.rate.step,
            moments: vec![self.velocity.clone()],
        }
    }

    fn restore(&mut self, state: OptimizerState<P>) -> Result<()> {
        check_moments(&[&self.velocity], &state.moments, "momentum")?;
        let mut moments = state.moments.into_iter();
        self.velocity = moments.next().expect("checked");
        self.rate.step = state.step;
        Ok(())
    }
}

/// How [`Adam`] applies its bias corrections c_i = 1 − β_iᵗ. The two forms are equal in exact
/// arithmetic and round differently; each keeps the results its runs were made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correction {
    /// m̂ = m·(1/c₁), v̂ = v·(1/c₂), the reciprocals computed in f64 (β_iᵗ by `powf`) and cast
    /// to the storage type: the configs' Adam and Nadam ([`Adam::new`], [`Nadam::new`]).
    Scaled,
    /// m̂ = m/c₁, v̂ = v/c₂ in the storage type (β_iᵗ by repeated multiplication, `powi`):
    /// Kingma & Ba's algorithm written literally ([`Adam::literal`]), SNGD's λ and Adam
    /// baselines.
    Divided,
}

/// Adam (Kingma & Ba 2015) with bias correction: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
/// θ ← θ − lr·m̂/(√v̂ + ε). The one Adam update of the crate: the networks' f32 `ParamSet`s and
/// SNGD's f64 vectors both use it (with the [`Correction`] each was made with), and [`Nadam`]
/// is it with Nesterov's look-ahead.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<P> {
    /// Learning rate and step counter.
    pub rate: Rate,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// How the bias corrections are applied.
    pub correction: Correction,
    nesterov: bool,
    first: P,
    second: P,
}

impl<P: Tensors> Adam<P> {
    /// Adam with (β₁, β₂, ε) at base rate `lr` under `schedule`, for parameters shaped like
    /// `params` ([`Correction::Scaled`]).
    pub fn new(
        beta1: f64,
        beta2: f64,
        eps: f64,
        lr: f64,
        schedule: Schedule,
        params: &P,
    ) -> Result<Self> {
        Ok(Adam {
            rate: Rate::new(lr, schedule)?,
            beta1,
            beta2,
            eps,
            correction: Correction::Scaled,
            nesterov: false,
            first: params.moment("m"),
            second: params.moment("v"),
        })
    }

    /// Adam as the SNGD authors' JAX optimisers set it (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) at a
    /// constant learning rate `lr`, with the corrections divided ([`Correction::Divided`]).
    pub fn literal(lr: f64, params: &P) -> Result<Self> {
        let mut adam = Self::new(0.9, 0.999, 1e-8, lr, Schedule::Constant, params)?;
        adam.correction = Correction::Divided;
        Ok(adam)
    }

    /// The moment updates and the step on every tensor; `direction(m, g)` is the bias-corrected
    /// first moment (or Nadam's look-ahead) and `second(v)` the corrected second moment.
    fn apply<S: Real>(
        &mut self,
        params: &mut P,
        grads: &P,
        [b1, b2, lr, eps]: [S; 4],
        direction: impl Fn(S, S) -> S,
        second: impl Fn(S) -> S,
    ) where
        P: Tensors<Scalar = S>,
    {
        let one = S::ONE;
        for i in 0..params.count() {
            let m = self.first.tensor_mut(i);
            let v = self.second.tensor_mut(i);
            for (((p, &g), m), v) in params
                .tensor_mut(i)
                .iter_mut()
                .zip(grads.tensor(i))
                .zip(m.iter_mut())
                .zip(v.iter_mut())
            {
                *m = b1 * *m + (one - b1) * g;
                *v = b2 * *v + (one - b2) * g * g;
                *p -= lr * direction(*m, g) / (second(*v).sqrt() + eps);
            }
        }
    }
}

impl<P: Tensors> Update<P> for Adam<P> {
    fn update(&mut self, params: &mut P, grads: &P) {
        let (lr, t) = self.rate.advance();
        let (beta1, beta2) = (self.beta1, self.beta2);
        let cast = <P as Tensors>::Scalar::from_f64;
        let scalars = [cast(beta1), cast(beta2), cast(lr), cast(self.eps)];
        match self.correction {
            Correction::Scaled => {
                let correction1 = 1.0 - beta1.powf(t);
                let correction2 = 1.0 - beta2.powf(t);
                // Nadam's look-ahead: β₁ m̂_t + (1 − β₁) g_t / (1 − β₁^t).
                let (coef_m, coef_g) = if self.nesterov {
                    (
                        beta1 / (1.0 - beta1.powf(t + 1.0)),
                        (1.0 - beta1) / correction1,
                    )
                } else {
                    (1.0 / correction1, 0.0)
                };
                let (coef_m, coef_g) = (cast(coef_m), cast(coef_g));
                let inv_c2 = cast(1.0 / correction2);
                self.apply(
                    params,
                    grads,
                    scalars,
                    |m, g| coef_m * m + coef_g * g,
                    |v| v * inv_c2,
                );
            }
            Correction::Divided => {
                let step = self.rate.step as i32;
                let c1 = cast(1.0 - beta1.powi(step));
                let c2 = cast(1.0 - beta2.powi(step));
                self.apply(params, grads, scalars, |m, _| m / c1, |v| v / c2);
            }
        }
    }

    fn state(&self) -> OptimizerState<P> {
        OptimizerState {
            step: self.rate.step,
            moments: vec![self.first.clone(), self.second.clone()],
        }
    }

    fn restore(&mut self, state: OptimizerState<P>) -> Result<()> {
        let rule = if self.nesterov { "Nadam" } else { "Adam" };
        check_moments(&[&self.first, &self.second], &state.moments, rule)?;
        let mut moments = state.moments.into_iter();
        self.first = moments.next().expect("checked");
        self.second = moments.next().expect("checked");
        self.rate.step = state.step;
        Ok(())
    }
}

/// Nadam (Dozat 2016): [`Adam`] with Nesterov momentum, the direction β₁m̂_t + (1−β₁)g_t/(1−β₁^t).
#[derive(Clone, Debug, PartialEq)]
pub struct Nadam<P>(pub Adam<P>);

impl<P: Tensors> Nadam<P> {
    /// Nadam with (β₁, β₂, ε) at base rate `lr` under `schedule`, for parameters shaped like
    /// `params`.
    pub fn new(
        beta1: f64,
        beta2: f64,
        eps: f64,
        lr: f64,
        schedule: Schedule,
        params: &P,
    ) -> Result<Self> {
        let mut adam = Adam::new(beta1, beta2, eps, lr, schedule, params)?;
        adam.nesterov = true;
        Ok(Nadam(adam))
    }
}

impl<P: Tensors> Update<P> for Nadam<P> {
    fn update(&mut self, params: &mut P, grads: &P) {
        self.0.update(params, grads)
    }
    fn state(&self) -> OptimizerState<P> {
        self.0.state()
    }
    fn restore(&mut self, state: OptimizerState<P>) -> Result<()> {
        self.0.restore(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Tensor;

    /// ½ Σ_k c_k (x_k − t_k)² with badly scaled curvatures: the gradient at `x`.
    fn quadratic_gradient<T: Real>(x: &[T]) -> Vec<T> {
        let (c, t) = ([200.0, 0.02, 1.0], [1.0, -1.0, 0.5]);
        x.iter()
            .zip(c.iter().zip(t))
            .map(|(&x, (&c, t))| T::from_f64(c) * (x - T::from_f64(t)))
            .collect()
    }

    fn descend<T: Real + Default>(
        rule: &mut (impl Update<Vec<T>> + ?Sized),
        x: &mut Vec<T>,
        steps: usize,
    ) {
        for _ in 0..steps {
            let g = quadratic_gradient(x);
            rule.checked_update(x, &g).unwrap();
        }
    }

    #[test]
    fn adam_in_f32_and_f64_agree_on_a_quadratic_and_minimise_it() {
        let start = [3.0, -2.0, 0.0];
        let mut x64: Vec<f64> = start.to_vec();
        let mut x32: Vec<f32> = start.iter().map(|&v| v as f32).collect();
        let mut a64 = Adam::literal(0.05, &x64).unwrap();
        let mut a32 = Adam::literal(0.05, &x32).unwrap();
        for _ in 0..200 {
            descend(&mut a64, &mut x64, 1);
            descend(&mut a32, &mut x32, 1);
            for (a, b) in x64.iter().zip(&x32) {
                assert!((a - *b as f64).abs() < 1e-3, "{x64:?} vs {x32:?}");
            }
        }
        descend(&mut a64, &mut x64, 1800);
        assert!(
            (x64[0] - 1.0).abs() < 1e-2
                && (x64[1] + 1.0).abs() < 1e-1
                && (x64[2] - 0.5).abs() < 1e-2,
            "{x64:?}"
        );
    }

    #[test]
    fn adam_on_f64_keeps_the_arithmetic_of_sngds_adam() {
        // The form SNGD's f64 Adam had before it was this one: x −= lr (m/c₁)/(√(v/c₂) + ε),
        // with c_i = 1 − β_iᵗ by powi. Correction::Divided is it bit for bit; the Scaled form
        // multiplies by 1/c_i computed with powf and agrees to rounding.
        for correction in [Correction::Divided, Correction::Scaled] {
            let worst = against_sngds_adam(correction);
            if correction == Correction::Divided {
                assert_eq!(worst, 0.0);
            } else {
                assert!(worst < 1e-9, "max relative difference {worst:e}");
            }
        }
    }

    fn against_sngds_adam(correction: Correction) -> f64 {
        let (b1, b2, lr) = (0.9f64, 0.999f64, 0.01);
        let mut x = vec![3.0, -2.0, 0.0];
        let mut reference = x.clone();
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        let mut adam = Adam::literal(lr, &x).unwrap();
        adam.correction = correction;
        let mut worst = 0.0f64;
        for step in 1..=1000 {
            let g = quadratic_gradient(&x);
            adam.update(&mut x, &g);
            let g = quadratic_gradient(&reference);
            let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
            for k in 0..3 {
                m[k] = b1 * m[k] + (1.0 - b1) * g[k];
                v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
                reference[k] -= lr * (m[k] / c1) / ((v[k] / c2).sqrt() + 1e-8);
            }
            for (a, b) in x.iter().zip(&reference) {
                worst = worst.max((a - b).abs() / b.abs().max(1e-300));
            }
        }
        worst
    }

    #[test]
    fn the_f32_rules_keep_the_arithmetic_they_had() {
        // Adam and Nadam on a ParamSet, against the f32 update as it was written before the
        // rules became generic: bit for bit.
        let params = ParamSet {
            tensors: vec![Tensor {
                name: "x".into(),
                shape: vec![3],
                data: vec![0.3, -1.2, 2.0],
            }],
        };
        for nesterov in [false, true] {
            let (beta1, beta2, eps, lr) = (0.9f64, 0.999f64, 1e-8f64, 0.01f64);
            let mut rule: Box<dyn Update<ParamSet>> = if nesterov {
                Box::new(Nadam::new(beta1, beta2, eps, lr, Schedule::Constant, &params).unwrap())
            } else {
                Box::new(Adam::new(beta1, beta2, eps, lr, Schedule::Constant, &params).unwrap())
            };
            let mut p = params.clone();
            let mut old = params.tensors[0].data.clone();
            let (mut m, mut v) = (vec![0.0f32; 3], vec![0.0f32; 3]);
            for step in 1..=50u64 {
                let g = ParamSet {
                    tensors: vec![Tensor {
                        name: "x".into(),
                        shape: vec![3],
                        data: quadratic_gradient(&p.tensors[0].data),
                    }],
                };
                rule.update(&mut p, &g);
                let t = step as f64;
                let g = quadratic_gradient(&old);
                let (b1, b2) = (beta1 as f32, beta2 as f32);
                let correction1 = 1.0 - beta1.powf(t);
                let correction2 = 1.0 - beta2.powf(t);
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
                for k in 0..3 {
                    m[k] = b1 * m[k] + (1.0 - b1) * g[k];
                    v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
                    let direction = coef_m * m[k] + coef_g * g[k];
                    old[k] -= lr * direction / ((v[k] * inv_c2).sqrt() + eps);
                }
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&p.tensors[0].data), bits(&old), "step {step}");
            }
        }
    }

    #[test]
    fn state_and_restore_continue_bit_for_bit_and_refuse_other_layouts() {
        let x0 = vec![3.0f64, -2.0, 0.0];
        type Make = Box<dyn Fn() -> Box<dyn Update<Vec<f64>>>>;
        let rules: Vec<Make> = vec![
            Box::new(|| Box::new(Sgd::new(0.001, Schedule::Constant).unwrap())),
            Box::new(|| {
                Box::new(Momentum::new(0.5, 0.001, Schedule::Constant, &vec![0.0; 3]).unwrap())
            }),
            Box::new(|| Box::new(Adam::literal(0.01, &vec![0.0; 3]).unwrap())),
            Box::new(|| {
                Box::new(
                    Nadam::new(0.9, 0.999, 1e-8, 0.01, Schedule::Constant, &vec![0.0; 3]).unwrap(),
                )
            }),
        ];
        for make in &rules {
            let (mut whole, mut x_whole) = (make(), x0.clone());
            descend(whole.as_mut(), &mut x_whole, 40);
            let (mut first, mut x) = (make(), x0.clone());
            descend(first.as_mut(), &mut x, 25);
            let state = first.state();
            assert_eq!(state.step, 25);
            let mut resumed = make();
            resumed.restore(state.clone()).unwrap();
            descend(resumed.as_mut(), &mut x, 15);
            assert_eq!(x, x_whole);
            assert_eq!(resumed.state(), whole.state());
            // A moment of another length, or one moment too many, is refused.
            let mut wrong = state.clone();
            wrong.moments.push(vec![0.0; 3]);
            assert!(resumed.restore(wrong).is_err());
            if let Some(first_moment) = state.moments.first() {
                let mut short = state.clone();
                short.moments[0] = first_moment[..2].to_vec();
                let err = resumed.restore(short).unwrap_err().to_string();
                assert!(err.contains("3 values expected, 2 given"), "{err}");
            }
        }
    }

    #[test]
    fn checked_updates_refuse_bad_gradients_and_rates() {
        let mut adam = Adam::literal(0.05, &vec![0.0f64; 2]).unwrap();
        let mut x = vec![3.0, -2.0];
        assert!(adam.checked_update(&mut x, &vec![f64::NAN, 0.0]).is_err());
        assert!(adam.checked_update(&mut x, &vec![0.0]).is_err());
        assert_eq!((x, adam.state().step), (vec![3.0, -2.0], 0));
        assert!(Adam::literal(0.0, &vec![0.0f64; 2]).is_err());
        assert!(Sgd::new(f64::NAN, Schedule::Constant).is_err());
    }
}
