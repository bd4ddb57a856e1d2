//! The skew-t maximum-likelihood target: the mean NLL of a batch under ST(ξ, Ω, η, ν), with its
//! gradient in ((ξ, Ω, η), ν). Through a surrogate the skew-t is the Gaussian N(ξ, Ω) with
//! λ = (η, ln(ν − 2)).

use faer::MatRef;

use crate::dist::skew::{SkewGradient, SkewNormal, SkewT};
use crate::dist::surrogate::{GaussianMixture, Gaussians, GaussiansGradient, Surrogated};
use crate::error::{Error, Result};
use crate::objectives::targets::{MIN_NU, Target};

/// The mean NLL of `points` (rows) under a skew-t.
pub struct SkewTNll<'a> {
    /// The batch, one point per row.
    pub points: MatRef<'a, f64>,
}

impl Target for SkewTNll<'_> {
    type Point = SkewT;
    type Gradient = (SkewGradient, f64);

    fn evaluate(&self, q: &SkewT) -> Result<(f64, (SkewGradient, f64))> {
        let (value, g, g_nu) = q.nll_gradient(self.points)?;
        Ok((value, (g, g_nu)))
    }

    fn value(&self, q: &SkewT) -> Result<f64> {
        q.nll(self.points)
    }
}

/// The Gaussian N(ξ, Ω) as the surrogate, λ = (η, ln(ν − 2)).
impl Surrogated for SkewT {
    type Surrogate = GaussianMixture;
    type Gradient = (SkewGradient, f64);

    fn from_surrogate(
        surrogate: &GaussianMixture,
        point: &Gaussians,
        lambda: &[f64],
    ) -> Result<Self> {
        let d = surrogate.dim;
        if lambda.len() != d + 1 {
            return Err(Error::Dimension(format!(
                "{} auxiliary parameters for a skew-t of dimension {d}",
                lambda.len()
            )));
        }
        let base = SkewNormal::from_surrogate(surrogate, point, &lambda[..d])?;
        Ok(SkewT {
            base,
            nu: MIN_NU + lambda[d].exp(),
        })
    }

    fn pull_back(
        &self,
        _surrogate: &GaussianMixture,
        _point: &Gaussians,
        _lambda: &[f64],
        g: &(SkewGradient, f64),
    ) -> Result<(GaussiansGradient, Vec<f64>)> {
        let mut g_lambda = g.0.eta.clone();
        g_lambda.push(g.1 * (self.nu - MIN_NU));
        Ok((
            GaussiansGradient::single(g.0.xi.clone(), g.0.omega.clone()),
            g_lambda,
        ))
    }
}
