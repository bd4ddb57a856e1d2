//! The skew-normal maximum-likelihood target: the mean NLL of a batch of points under
//! SN(ξ, Ω, η), with its gradient in (ξ, Ω, η). Through a surrogate the skew-normal is the
//! Gaussian N(ξ, Ω) with λ = η.

use faer::MatRef;

use crate::dist::skew::{SkewGradient, SkewNormal};
use crate::dist::surrogate::{GaussianMixture, Gaussians, GaussiansGradient, Surrogated};
use crate::error::Result;
use crate::objectives::targets::Target;

/// The mean NLL of `points` (rows) under a skew-normal.
pub struct SkewNormalNll<'a> {
    /// The batch, one point per row.
    pub points: MatRef<'a, f64>,
}

impl Target for SkewNormalNll<'_> {
    type Point = SkewNormal;
    type Gradient = SkewGradient;

    fn evaluate(&self, q: &SkewNormal) -> Result<(f64, SkewGradient)> {
        q.nll_gradient(self.points)
    }

    fn value(&self, q: &SkewNormal) -> Result<f64> {
        q.nll(self.points)
    }
}

/// The Gaussian N(ξ, Ω) as the surrogate, λ = η.
impl Surrogated for SkewNormal {
    type Surrogate = GaussianMixture;
    type Gradient = SkewGradient;

    fn from_surrogate(
        surrogate: &GaussianMixture,
        point: &Gaussians,
        lambda: &[f64],
    ) -> Result<Self> {
        let (mean, covariance) = surrogate.single_gaussian(point, "a skew-normal")?;
        SkewNormal::new(mean.to_vec(), covariance.clone(), lambda.to_vec())
    }

    fn pull_back(
        &self,
        _surrogate: &GaussianMixture,
        _point: &Gaussians,
        _lambda: &[f64],
        g: &SkewGradient,
    ) -> Result<(GaussiansGradient, Vec<f64>)> {
        Ok((
            GaussiansGradient::single(g.xi.clone(), g.omega.clone()),
            g.eta.clone(),
        ))
    }
}
