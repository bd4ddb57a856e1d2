//! Surrogate natural gradient descent (So & Turner, AISTATS 2024; natgrad.md (b)) as a
//! composition: a [`Target`] (value and gradient in the standard coordinates of a distribution)
//! × a [`Method`] (how one step is taken). A distribution optimised through a surrogate
//! implements [`Surrogated`](crate::dist::surrogate::Surrogated); the surrogate's natural gradient
//! is one ordinary gradient in its dual coordinates.
//!
//! Methods, one file each:
//! * [`SngdMean`] (MLE form): the state is the surrogate's mean parameters μ̃; the step is
//!   μ̃ ← μ̃ − β ∇_η̃ f (with β = 1 and the target an exponential family, one step lands on the
//!   maximum-likelihood estimate);
//! * [`SngdNatural`] (VI form): the state is η̃, the step η̃ ← η̃ − β ∇_μ̃ f;
//! * [`AdamRoot`]: Adam on the Gaussian parts with Σ = WᵀW (covariance root) or Σ⁻¹ = WᵀW
//!   (precision root);
//! * [`Mcef`]: the natural gradient of the minimal conditional exponential family of a
//!   skew-normal (Lin, Khan & Schmidt 2019).
//!
//! The auxiliary parameters λ a surrogate does not cover are stepped by the crate's one Adam
//! ([`crate::optim::Adam`] on an f64 vector, as the Adam baselines). The step size
//! comes from a [`LineSearch`] that also keeps the iterate in the domain. GD, BFGS and a natural
//! gradient with a given Fisher on a flat objective ([`baselines`]) are the baselines for counts;
//! [`Flat`] takes GD or BFGS steps as a [`Method`] in a distribution's [`Unconstrained`]
//! coordinates. [`starts`] holds the paper's starting points.
//!
//! [`SkewStart`] and [`MixtureStart`] build each method at the start of a skew family.
//!
//! A method never loops: the caller takes steps, evaluates, and stops.
//!
//! Adding a target is one file in [`crate::objectives::targets`] (a [`Target`] and, for a new
//! distribution, its [`Surrogated`](crate::dist::surrogate::Surrogated)); adding a method is one
//! file here implementing [`Method`].
//!
//! ```
//! use faer::Mat;
//! use helmholtz::dist::skew::SkewNormal;
//! use helmholtz::dist::surrogate::{Gaussians, GaussianMixture};
//! use helmholtz::math::rng::Stream;
//! use helmholtz::objectives::targets::Target;
//! use helmholtz::objectives::targets::skew_normal::SkewNormalNll;
//! use helmholtz::optim::sngd::{LineSearch, Method, SngdMean};
//!
//! // Data from a skew-normal, fitted by SNGD from N(0, I) with η = 0.
//! let truth = SkewNormal::new(vec![1.0, -1.0], Mat::identity(2, 2), vec![2.0, 0.0])?;
//! let data = truth.sample(2000, &mut Stream::new(0, &[]))?;
//! let target = SkewNormalNll { points: data.as_ref() };
//! let start = Gaussians::single(vec![0.0; 2], Mat::identity(2, 2));
//! let search = LineSearch::Backtracking { start: 0.5, halvings: 20 };
//! let mut sngd = SngdMean::<SkewNormal>::new(GaussianMixture::single(2), start, vec![0.0; 2], 0.05, search)?;
//! let before = target.value(&sngd.distribution()?)?;
//! for _ in 0..100 {
//!     sngd.step(&target)?;
//! }
//! assert!(target.value(&sngd.distribution()?)? < before - 0.1);
//! # Ok::<(), helmholtz::Error>(())
//! ```

mod adam_root;
pub mod baselines;
mod flat;
mod form;
mod line_search;
mod mcef;
mod mean_form;
mod natural_form;
mod skew_start;
pub mod starts;

pub use adam_root::{AdamRoot, Root};
pub use flat::{Flat, FlatRule, Unconstrained};
pub use form::{Form, Sngd};
pub use line_search::{LineSearch, search_along, search_step};
pub use mcef::Mcef;
pub use mean_form::{MeanForm, SngdMean};
pub use natural_form::{NaturalForm, SngdNatural};
pub use skew_start::{MixtureStart, SkewMethod, SkewStart};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::objectives::targets::Target;
use crate::optim::{Adam, OptimizerState, Update};

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The objective at the point the step started from.
    pub value: f64,
    /// The objective at the point it reached, when the line search evaluated it there.
    pub searched: Option<f64>,
}

/// An optimiser of a distribution's parameters: it holds the current distribution (in its own
/// coordinates) and takes one step on a target at a time.
pub trait Method {
    /// The distribution it optimises.
    type Point;
    /// The gradient type of the targets it takes.
    type Gradient;
    /// The current distribution.
    fn distribution(&self) -> Result<Self::Point>;
    /// One step on `target`. A failed step leaves the state unchanged where it can (an error
    /// from the λ update comes after the surrogate moved).
    fn step<T>(&mut self, target: &T) -> Result<Step>
    where
        T: Target<Point = Self::Point, Gradient = Self::Gradient>;
    /// Everything a resumed run needs to continue exactly: coordinates, auxiliary parameters
    /// and optimiser moments.
    fn state(&self) -> MethodState;
    /// Continues from `state` (from [`Method::state`] of a method built the same way); a state
    /// of another shape is refused with an error naming the entry, and nothing changes.
    fn restore(&mut self, state: &MethodState) -> Result<()>;
}

/// A method's state for a checkpoint: named vectors of f64, stored exactly (serde).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodState {
    /// The vectors by name.
    pub values: BTreeMap<String, Vec<f64>>,
}

impl MethodState {
    /// Stores `values` under `name`.
    pub fn put(&mut self, name: &str, values: Vec<f64>) {
        self.values.insert(name.to_string(), values);
    }

    /// The vector `name`, which must hold `len` values (any length when `len` is None).
    pub fn get(&self, name: &str, len: Option<usize>) -> Result<&[f64]> {
        let values = self
            .values
            .get(name)
            .ok_or_else(|| Error::Checkpoint(format!("the method state has no entry {name:?}")))?;
        match len {
            Some(len) if values.len() != len => Err(Error::Checkpoint(format!(
                "the method state's {name:?} holds {} values, {len} expected",
                values.len()
            ))),
            _ => Ok(values),
        }
    }

    /// Stores an Adam's step counter and moments under `prefix`.
    pub(crate) fn put_adam(&mut self, prefix: &str, adam: &Adam<Vec<f64>>) {
        let state = adam.state();
        self.put(&format!("{prefix}.step"), vec![state.step as f64]);
        for (name, moment) in ["m", "v"].iter().zip(state.moments) {
            self.put(&format!("{prefix}.{name}"), moment);
        }
    }

    /// The Adam state stored by [`MethodState::put_adam`] for `n` parameters.
    pub(crate) fn adam(&self, prefix: &str, n: usize) -> Result<OptimizerState<Vec<f64>>> {
        let step = self.get(&format!("{prefix}.step"), Some(1))?[0];
        Ok(OptimizerState {
            step: step as u64,
            moments: vec![
                self.get(&format!("{prefix}.m"), Some(n))?.to_vec(),
                self.get(&format!("{prefix}.v"), Some(n))?.to_vec(),
            ],
        })
    }
}

/// The target's value and gradient at `q`; a non-finite value is an error.
pub(crate) fn finite_objective<T: Target>(target: &T, q: &T::Point) -> Result<(f64, T::Gradient)> {
    let (value, g) = target.evaluate(q)?;
    if !value.is_finite() {
        return Err(Error::Diverged(format!("training objective is {value}")));
    }
    Ok((value, g))
}
