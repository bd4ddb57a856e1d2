//! A mixture Σ_k p_k SN(ξ_k, Ω_k, η_k) of skew-normals, as a variational family, optimised through
//! the joint exponential family of its Gaussian parts
//! ([`GaussianMixture`]) with λ = (η_1, …, η_K).

use crate::dist::skew::{SkewGradient, SkewNormal};
use crate::dist::surrogate::{GaussianMixture, Gaussians, GaussiansGradient, Surrogated};
use crate::error::{Error, Result};

/// A mixture Σ_k p_k SN(ξ_k, Ω_k, η_k) of skew-normals.
#[derive(Clone, Debug)]
pub struct SkewMixture {
    /// Weights on the open simplex.
    pub weights: Vec<f64>,
    /// The components, all of one dimension.
    pub components: Vec<SkewNormal>,
}

/// Gradients of an objective of a [`SkewMixture`]: in the weights as free coordinates, and per
/// component.
#[derive(Clone, Debug)]
pub struct SkewMixtureGradient {
    /// ∂f/∂p_k.
    pub weights: Vec<f64>,
    /// Per component, in (ξ_k, Ω_k, η_k).
    pub components: Vec<SkewGradient>,
}

impl SkewMixture {
    /// Checks matching lengths, one dimension and weights on the open simplex.
    pub fn new(weights: Vec<f64>, components: Vec<SkewNormal>) -> Result<Self> {
        if weights.is_empty() || weights.len() != components.len() {
            return Err(Error::Dimension(format!(
                "{} weights for {} components",
                weights.len(),
                components.len()
            )));
        }
        let d = components[0].dim();
        if components.iter().any(|c| c.dim() != d) {
            return Err(Error::Dimension(
                "mixture components of different dimensions".into(),
            ));
        }
        if weights.iter().any(|&p| !(p > 0.0 && p.is_finite()))
            || (weights.iter().sum::<f64>() - 1.0).abs() > 1e-9
        {
            return Err(Error::InvalidData(format!(
                "mixture weights {weights:?} are not a point of the open simplex"
            )));
        }
        Ok(SkewMixture {
            weights,
            components,
        })
    }
}

/// The Gaussian parts (p_k, ξ_k, Ω_k) through the joint family, λ = (η_1, …, η_K).
impl Surrogated for SkewMixture {
    type Surrogate = GaussianMixture;
    type Gradient = SkewMixtureGradient;

    fn from_surrogate(
        surrogate: &GaussianMixture,
        point: &Gaussians,
        lambda: &[f64],
    ) -> Result<Self> {
        let d = surrogate.dim;
        if lambda.len() != surrogate.components * d {
            return Err(Error::Dimension(format!(
                "{} auxiliary parameters for {} components of dimension {d}",
                lambda.len(),
                surrogate.components
            )));
        }
        SkewMixture::new(
            point.weights.clone(),
            (0..surrogate.components)
                .map(|k| {
                    SkewNormal::new(
                        point.means[k].clone(),
                        point.covariances[k].clone(),
                        lambda[k * d..(k + 1) * d].to_vec(),
                    )
                })
                .collect::<Result<_>>()?,
        )
    }

    fn pull_back(
        &self,
        _surrogate: &GaussianMixture,
        _point: &Gaussians,
        _lambda: &[f64],
        g: &SkewMixtureGradient,
    ) -> Result<(GaussiansGradient, Vec<f64>)> {
        Ok((
            GaussiansGradient {
                weights: g.weights.clone(),
                means: g.components.iter().map(|c| c.xi.clone()).collect(),
                covariances: g.components.iter().map(|c| c.omega.clone()).collect(),
            },
            g.components.iter().flat_map(|c| c.eta.clone()).collect(),
        ))
    }
}
