//! Targets: objectives written in the standard coordinates of a distribution, with their
//! gradient there: a maximum-likelihood target on data (the mean NLL of a batch) or a variational
//! target (a negative-ELBO estimate with its noise fixed). The SNGD methods
//! ([`crate::optim::sngd`]) take any target; adding one is one file here (the target and, for a
//! new distribution, its [`Surrogated`](crate::dist::surrogate::Surrogated) implementation).

pub mod centred_skew;
mod check;
pub mod copula;
pub mod logistic_vi;
pub mod negative_binomial;
mod reparameterised;
pub mod skew_normal;
pub mod skew_t;

pub use check::{Coordinate, GradientCheck, check_gradient};

use crate::error::Result;

/// The smallest ν of the parametrisation ν = 2 + e^λ used for degrees of freedom (finite
/// variance).
pub const MIN_NU: f64 = 2.0;

/// An objective f of a distribution, with its gradient in the distribution's standard
/// coordinates. `evaluate` is a function of the point alone (any noise is fixed inside the
/// target), so a line search may call it at several points.
pub trait Target: Sync {
    /// The distribution f is a function of.
    type Point;
    /// The gradient of f in the point's standard coordinates.
    type Gradient;
    /// f and its gradient at `point`.
    fn evaluate(&self, point: &Self::Point) -> Result<(f64, Self::Gradient)>;
    /// f alone at `point`.
    fn value(&self, point: &Self::Point) -> Result<f64> {
        Ok(self.evaluate(point)?.0)
    }
}
