//! The Student-t copula maximum-likelihood target: the mean NLL of a batch of points in (0, 1)^d
//! under C(R, ν), with its gradient in (R, ν). Through a surrogate the copula is the zero-mean
//! Gaussian N(0, Σ) with R = cov2corr(Σ) and λ = ln(ν − 2).

use faer::{Mat, MatRef};

use crate::dist::copula::{StudentTCopula, cov2corr, cov2corr_backward};
use crate::dist::surrogate::{GaussianMixture, Gaussians, GaussiansGradient, Surrogated};
use crate::error::{Error, Result};
use crate::objectives::targets::{MIN_NU, Target};

/// A copula's gradient: symmetric in R, and in ν.
#[derive(Clone, Debug)]
pub struct CopulaGradient {
    /// ∂f/∂R.
    pub r: Mat<f64>,
    /// ∂f/∂ν.
    pub nu: f64,
}

/// The mean NLL of `points` (rows in (0, 1)^d) under a t copula.
pub struct CopulaNll<'a> {
    /// The batch, one point per row.
    pub points: MatRef<'a, f64>,
}

impl Target for CopulaNll<'_> {
    type Point = StudentTCopula;
    type Gradient = CopulaGradient;

    fn evaluate(&self, q: &StudentTCopula) -> Result<(f64, CopulaGradient)> {
        let (value, r, nu) = q.nll_gradient(self.points)?;
        Ok((value, CopulaGradient { r, nu }))
    }

    fn value(&self, q: &StudentTCopula) -> Result<f64> {
        q.nll(self.points)
    }
}

/// The zero-mean Gaussian N(0, Σ) as the surrogate (its mean stays at zero: the gradient in it
/// is zero), R = cov2corr(Σ), λ = ln(ν − 2).
impl Surrogated for StudentTCopula {
    type Surrogate = GaussianMixture;
    type Gradient = CopulaGradient;

    fn from_surrogate(
        surrogate: &GaussianMixture,
        point: &Gaussians,
        lambda: &[f64],
    ) -> Result<Self> {
        if surrogate.components != 1 || lambda.len() != 1 {
            return Err(Error::Dimension(format!(
                "a copula takes one Gaussian and one auxiliary parameter, got {} and {}",
                surrogate.components,
                lambda.len()
            )));
        }
        StudentTCopula::new(cov2corr(&point.covariances[0])?, MIN_NU + lambda[0].exp())
    }

    fn pull_back(
        &self,
        surrogate: &GaussianMixture,
        point: &Gaussians,
        _lambda: &[f64],
        g: &CopulaGradient,
    ) -> Result<(GaussiansGradient, Vec<f64>)> {
        let g_sigma = cov2corr_backward(&point.covariances[0], &g.r)?;
        Ok((
            GaussiansGradient::single(vec![0.0; surrogate.dim], g_sigma),
            vec![g.nu * (self.nu - MIN_NU)],
        ))
    }
}
