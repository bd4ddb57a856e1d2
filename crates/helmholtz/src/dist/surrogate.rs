//! Surrogates for surrogate natural gradient descent (So & Turner, AISTATS 2024; natgrad.md (b)):
//! an exponential family q̃ whose mean parameters μ̃ and natural parameters η̃ are each other's
//! dual coordinates, so that a natural gradient step is an ordinary gradient step in the other
//! system. A [`Surrogate`] exposes both systems as flat vectors with the maps back to its own
//! coordinates; a distribution that is optimised through a surrogate implements [`Surrogated`]
//! (how a surrogate member and auxiliary parameters λ make it, and how its gradient pulls back).
//!
//! Two surrogates are here: [`GaussianMixture`] (one Gaussian when K = 1; the joint exponential
//! family over (component, x) for K > 1), kept in standard coordinates (p_k, m_k, Σ_k), and
//! [`MeanCoordinates`], any [`ExponentialFamily`] kept in its mean parameters.

use faer::Mat;
use faer::linalg::solvers::{DenseSolveCore, Solve};

use crate::dist::exponential_family::{ExponentialFamily, MultivariateGaussian};
use crate::error::{Error, Result};
use crate::math::linalg::{cholesky, log_det};

/// An exponential-family surrogate in its two dual coordinate systems, as flat vectors. Its
/// `Point` is what a method keeps between steps; `Gradient` is a gradient in the coordinates the
/// point is written in.
pub trait Surrogate: Sync {
    /// A member of the family, in the coordinates a method keeps between steps.
    type Point: Clone + Send;
    /// A gradient of the objective in the point's coordinates.
    type Gradient;
    /// What a step must keep (used in the error when no step size does).
    fn domain(&self) -> &'static str;
    /// The mean parameters μ̃ of `point`.
    fn mean(&self, point: &Self::Point) -> Result<Vec<f64>>;
    /// The member with mean parameters `mu`; None outside the mean domain.
    fn point_from_mean(&self, mu: &[f64]) -> Option<Self::Point>;
    /// The natural parameters η̃ of `point`.
    fn natural(&self, point: &Self::Point) -> Result<Vec<f64>>;
    /// The member with natural parameters `eta`; None outside the natural domain.
    fn point_from_natural(&self, eta: &[f64]) -> Option<Self::Point>;
    /// ∇_η̃ f at `point` from the gradient `g` in the point's coordinates: the natural gradient in
    /// mean coordinates (the direction of the MLE form).
    fn gradient_in_natural(&self, point: &Self::Point, g: &Self::Gradient) -> Result<Vec<f64>>;
    /// ∇_μ̃ f at `point`: the natural gradient in natural coordinates (the direction of the VI
    /// form).
    fn gradient_in_mean(&self, point: &Self::Point, g: &Self::Gradient) -> Result<Vec<f64>>;
    /// The numbers `point` is stored as, exactly (for checkpoints; no change of coordinates).
    fn point_values(&self, point: &Self::Point) -> Vec<f64>;
    /// The point stored as `values` by [`Surrogate::point_values`]; an error if their number
    /// does not fit this surrogate.
    fn point_from_values(&self, values: &[f64]) -> Result<Self::Point>;
}

/// A distribution optimised through a surrogate: it is made from a surrogate member and
/// auxiliary parameters λ (those the surrogate does not cover, stepped by Adam), and its gradient
/// in its own standard coordinates pulls back to the surrogate's coordinates and λ.
pub trait Surrogated: Sized {
    /// The surrogate.
    type Surrogate: Surrogate;
    /// The gradient of an objective in the distribution's standard coordinates.
    type Gradient;
    /// The distribution made from `point` and `lambda`.
    fn from_surrogate(
        surrogate: &Self::Surrogate,
        point: &<Self::Surrogate as Surrogate>::Point,
        lambda: &[f64],
    ) -> Result<Self>;
    /// The gradient `g` (at `self`, made from `point` and `lambda`) in the surrogate's
    /// coordinates and in λ.
    fn pull_back(
        &self,
        surrogate: &Self::Surrogate,
        point: &<Self::Surrogate as Surrogate>::Point,
        lambda: &[f64],
        g: &Self::Gradient,
    ) -> Result<(<Self::Surrogate as Surrogate>::Gradient, Vec<f64>)>;
}

/// A mixture Σ_k p_k N(m_k, Σ_k) in standard coordinates (K = 1: one Gaussian, p = (1)).
#[derive(Clone, Debug)]
pub struct Gaussians {
    /// Weights p_k on the open simplex.
    pub weights: Vec<f64>,
    /// Means m_k.
    pub means: Vec<Vec<f64>>,
    /// Covariances Σ_k (symmetric positive definite).
    pub covariances: Vec<Mat<f64>>,
}

impl Gaussians {
    /// One Gaussian N(m, Σ).
    pub fn single(mean: Vec<f64>, covariance: Mat<f64>) -> Self {
        Gaussians {
            weights: vec![1.0],
            means: vec![mean],
            covariances: vec![covariance],
        }
    }
}

/// A gradient in the standard coordinates of [`Gaussians`]: ∂f/∂p_k (the weights as free
/// coordinates), ∂f/∂m_k and the symmetric ∂f/∂Σ_k.
#[derive(Clone, Debug)]
pub struct GaussiansGradient {
    /// ∂f/∂p_k.
    pub weights: Vec<f64>,
    /// ∂f/∂m_k.
    pub means: Vec<Vec<f64>>,
    /// ∂f/∂Σ_k.
    pub covariances: Vec<Mat<f64>>,
}

impl GaussiansGradient {
    /// The gradient of a function of one Gaussian (no weight dependence).
    pub fn single(mean: Vec<f64>, covariance: Mat<f64>) -> Self {
        GaussiansGradient {
            weights: vec![0.0],
            means: vec![mean],
            covariances: vec![covariance],
        }
    }
}

/// The mixture of K Gaussians of dimension `dim` as one joint exponential family over
/// (component, x) (natgrad.md b.4): mean parameters (p_1..p_{K−1}, p_k m_k, p_k(Σ_k + m_k m_kᵀ)),
/// natural parameters (θ_1..θ_{K−1}, Σ_k⁻¹m_k, −½Σ_k⁻¹) with θ_k = ln p_k − A_k − ln p_K + A_K.
/// Matrix blocks are flattened column-major. K = 1 is the Gaussian N(m, Σ).
///
/// After a step in natural coordinates the weights are floored at `min_weight` and renormalised
/// (0 leaves them as they are); use it to keep a variational mixture from losing a component.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianMixture {
    /// Number of components K ≥ 1.
    pub components: usize,
    /// Dimension of each Gaussian.
    pub dim: usize,
    /// Floor of the weights after a natural-coordinate step.
    pub min_weight: f64,
}

impl GaussianMixture {
    /// One Gaussian of dimension `dim`.
    pub fn single(dim: usize) -> Self {
        GaussianMixture {
            components: 1,
            dim,
            min_weight: 0.0,
        }
    }

    /// The mean and covariance of `point` when this surrogate is one Gaussian, else an error
    /// saying that `what` (the distribution made from it) takes a single Gaussian surrogate.
    pub fn single_gaussian<'p>(
        &self,
        point: &'p Gaussians,
        what: &str,
    ) -> Result<(&'p [f64], &'p Mat<f64>)> {
        if self.components != 1 {
            return Err(Error::Config(format!(
                "{what} takes a single Gaussian surrogate, not a mixture of {}",
                self.components
            )));
        }
        Ok((&point.means[0], &point.covariances[0]))
    }

    fn check(&self, point: &Gaussians) -> Result<()> {
        let k = self.components;
        if k == 0
            || point.weights.len() != k
            || point.means.len() != k
            || point.covariances.len() != k
        {
            return Err(Error::Dimension(format!(
                "a point of {} weights, {} means and {} covariances for a mixture of {k}",
                point.weights.len(),
                point.means.len(),
                point.covariances.len()
            )));
        }
        Ok(())
    }

    fn block(&self) -> usize {
        self.dim + self.dim * self.dim
    }
}

/// ln of the Gaussian normaliser up to its constant: ½ mᵀΣ⁻¹m + ½ ln det Σ.
fn gaussian_log_partition(m: &[f64], sigma: &Mat<f64>) -> Result<f64> {
    let llt = cholesky(sigma, "Ω")?;
    let solved = llt.solve(Mat::from_fn(m.len(), 1, |r, _| m[r]));
    let quadratic: f64 = (0..m.len()).map(|r| m[r] * solved[(r, 0)]).sum();
    Ok(0.5 * quadratic + 0.5 * log_det(&llt))
}

/// Appends the d × d matrix `m` column-major.
fn push_matrix(out: &mut Vec<f64>, m: &Mat<f64>, scale: impl Fn(f64) -> f64) {
    for c in 0..m.ncols() {
        out.extend((0..m.nrows()).map(|r| scale(m[(r, c)])));
    }
}

impl Surrogate for GaussianMixture {
    type Point = Gaussians;
    type Gradient = GaussiansGradient;

    fn domain(&self) -> &'static str {
        "keeps the covariance positive definite"
    }

    fn mean(&self, point: &Gaussians) -> Result<Vec<f64>> {
        self.check(point)?;
        let d = self.dim;
        let mut mu = point.weights[..self.components - 1].to_vec();
        for k in 0..self.components {
            let (p, m, sigma) = (point.weights[k], &point.means[k], &point.covariances[k]);
            mu.extend(m.iter().map(|v| p * v));
            for c in 0..d {
                mu.extend((0..d).map(|r| p * (sigma[(r, c)] + m[r] * m[c])));
            }
        }
        Ok(mu)
    }

    fn point_from_mean(&self, mu: &[f64]) -> Option<Gaussians> {
        let (big_k, d, block) = (self.components, self.dim, self.block());
        if big_k == 0 || mu.len() != big_k - 1 + big_k * block {
            return None;
        }
        let mut weights = mu[..big_k - 1].to_vec();
        weights.push(1.0 - weights.iter().sum::<f64>());
        if weights.iter().any(|&p| !(p > 0.0 && p.is_finite())) {
            return None;
        }
        let mut means = Vec::with_capacity(big_k);
        let mut covariances = Vec::with_capacity(big_k);
        for (k, &p) in weights.iter().enumerate() {
            let start = big_k - 1 + k * block;
            let m: Vec<f64> = mu[start..start + d].iter().map(|v| v / p).collect();
            let second = &mu[start + d..start + block];
            let sigma = Mat::from_fn(d, d, |r, c| second[c * d + r] / p - m[r] * m[c]);
            cholesky(&sigma, "Σ").ok()?;
            means.push(m);
            covariances.push(sigma);
        }
        Some(Gaussians {
            weights,
            means,
            covariances,
        })
    }

    fn natural(&self, point: &Gaussians) -> Result<Vec<f64>> {
        self.check(point)?;
        let (big_k, d) = (self.components, self.dim);
        let mut eta = Vec::with_capacity(big_k - 1 + big_k * self.block());
        if big_k > 1 {
            let a: Vec<f64> = (0..big_k)
                .map(|k| gaussian_log_partition(&point.means[k], &point.covariances[k]))
                .collect::<Result<_>>()?;
            let (p, last) = (&point.weights, big_k - 1);
            eta.extend((0..last).map(|k| p[k].ln() - a[k] - p[last].ln() + a[last]));
        }
        for k in 0..big_k {
            let precision = cholesky(&point.covariances[k], "Ω")?.inverse();
            let m = &point.means[k];
            eta.extend((0..d).map(|r| (0..d).map(|c| precision[(r, c)] * m[c]).sum::<f64>()));
            push_matrix(&mut eta, &precision, |v| -0.5 * v);
        }
        Ok(eta)
    }

    fn point_from_natural(&self, eta: &[f64]) -> Option<Gaussians> {
        let (big_k, d, block) = (self.components, self.dim, self.block());
        if big_k == 0 || eta.len() != big_k - 1 + big_k * block {
            return None;
        }
        let last = big_k - 1;
        let mut means = Vec::with_capacity(big_k);
        let mut covariances = Vec::with_capacity(big_k);
        let mut log_w = Vec::with_capacity(big_k);
        for k in 0..big_k {
            let start = last + k * block;
            let (eta1, eta2) = (&eta[start..start + d], &eta[start + d..start + block]);
            // Σ⁻¹ = −2η₂, m = Σ η₁.
            let precision = Mat::from_fn(d, d, |r, c| -2.0 * eta2[c * d + r]);
            let sigma = cholesky(&precision, "S").ok()?.inverse();
            let m: Vec<f64> = (0..d)
                .map(|r| (0..d).map(|c| sigma[(r, c)] * eta1[c]).sum())
                .collect();
            if big_k > 1 {
                let a = gaussian_log_partition(&m, &sigma).ok()?;
                let theta = if k < last { eta[k] } else { 0.0 };
                log_w.push(theta + a);
            }
            means.push(m);
            covariances.push(sigma);
        }
        let weights = if big_k == 1 {
            vec![1.0]
        } else {
            let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = log_w.iter().map(|v| (v - top).exp()).sum();
            let mut w: Vec<f64> = log_w.iter().map(|v| (v - top).exp() / total).collect();
            if self.min_weight > 0.0 {
                for p in w.iter_mut() {
                    *p = p.max(self.min_weight);
                }
                let total: f64 = w.iter().sum();
                for p in w.iter_mut() {
                    *p /= total;
                }
            }
            if !w.iter().all(|v| v.is_finite()) {
                return None;
            }
            w
        };
        Some(Gaussians {
            weights,
            means,
            covariances,
        })
    }

    fn gradient_in_natural(&self, point: &Gaussians, g: &GaussiansGradient) -> Result<Vec<f64>> {
        self.check(point)?;
        if self.components != 1 {
            return Err(Error::Config(
                "the mean-parameter (MLE) form is implemented for a single Gaussian surrogate"
                    .into(),
            ));
        }
        let (first, second) = MultivariateGaussian::gradient_in_natural(
            &point.means[0],
            &point.covariances[0],
            &g.means[0],
            &g.covariances[0],
        );
        let mut out = first;
        push_matrix(&mut out, &second, |v| v);
        Ok(out)
    }

    fn gradient_in_mean(&self, point: &Gaussians, g: &GaussiansGradient) -> Result<Vec<f64>> {
        self.check(point)?;
        let (big_k, d) = (self.components, self.dim);
        let mut g_p = Vec::with_capacity(big_k);
        let mut blocks = Vec::with_capacity(big_k * self.block());
        for k in 0..big_k {
            let (p, m, sigma) = (point.weights[k], &point.means[k], &point.covariances[k]);
            // Per component (m₁, m₂) = (m, Σ + mmᵀ), then the joint (p_k m₁, p_k m₂) and p_k.
            let (g1, g2) =
                MultivariateGaussian::gradient_in_mean(m, &g.means[k], &g.covariances[k]);
            if big_k > 1 {
                let mut inner: f64 = (0..d).map(|r| g1[r] * m[r]).sum();
                for r in 0..d {
                    for c in 0..d {
                        inner += g2[(r, c)] * (sigma[(r, c)] + m[r] * m[c]);
                    }
                }
                g_p.push(g.weights[k] - inner / p);
            }
            blocks.extend(g1.iter().map(|v| v / p));
            let scale = 1.0 / p;
            push_matrix(&mut blocks, &g2, |v| v * scale);
        }
        // θ_k is stepped with ∂f/∂p_k − ∂f/∂p_K.
        let mut out: Vec<f64> = (0..big_k.saturating_sub(1))
            .map(|k| g_p[k] - g_p[big_k - 1])
            .collect();
        out.extend(blocks);
        Ok(out)
    }

    fn point_values(&self, point: &Gaussians) -> Vec<f64> {
        let mut out = point.weights.clone();
        for m in &point.means {
            out.extend(m);
        }
        for sigma in &point.covariances {
            push_matrix(&mut out, sigma, |v| v);
        }
        out
    }

    fn point_from_values(&self, values: &[f64]) -> Result<Gaussians> {
        let (k, d) = (self.components, self.dim);
        if values.len() != k + k * d + k * d * d {
            return Err(Error::Dimension(format!(
                "a mixture of {k} Gaussians of dimension {d} is stored as {} values, {} given",
                k + k * d + k * d * d,
                values.len()
            )));
        }
        let (weights, rest) = values.split_at(k);
        let (means, covariances) = rest.split_at(k * d);
        Ok(Gaussians {
            weights: weights.to_vec(),
            means: means
                .chunks(d.max(1))
                .take(k)
                .map(<[f64]>::to_vec)
                .collect(),
            covariances: (0..k)
                .map(|c| {
                    let block = &covariances[c * d * d..(c + 1) * d * d];
                    Mat::from_fn(d, d, |r, col| block[col * d + r])
                })
                .collect(),
        })
    }
}

/// Any [`ExponentialFamily`] kept in its mean parameters μ̃ (the point is μ̃ itself); gradients
/// are given in its natural parameters η̃ (the coordinates an objective through the surrogate is
/// written in), so the MLE form's direction is the gradient itself. The VI form would need
/// ∇_μ̃ = F⁻¹∇_η̃ and is not offered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanCoordinates<F> {
    /// The family.
    pub family: F,
}

impl<F: ExponentialFamily + Sync> Surrogate for MeanCoordinates<F> {
    type Point = Vec<f64>;
    type Gradient = Vec<f64>;

    fn domain(&self) -> &'static str {
        "keeps the surrogate in its domain"
    }

    fn mean(&self, point: &Vec<f64>) -> Result<Vec<f64>> {
        Ok(point.clone())
    }

    fn point_from_mean(&self, mu: &[f64]) -> Option<Vec<f64>> {
        self.family.natural_from_mean(mu).ok().map(|_| mu.to_vec())
    }

    fn natural(&self, point: &Vec<f64>) -> Result<Vec<f64>> {
        self.family.natural_from_mean(point)
    }

    fn point_from_natural(&self, eta: &[f64]) -> Option<Vec<f64>> {
        self.family.mean_from_natural(eta).ok()
    }

    fn gradient_in_natural(&self, _point: &Vec<f64>, g: &Vec<f64>) -> Result<Vec<f64>> {
        Ok(g.clone())
    }

    fn gradient_in_mean(&self, _point: &Vec<f64>, _g: &Vec<f64>) -> Result<Vec<f64>> {
        Err(Error::Config(
            "a surrogate kept in mean coordinates takes gradients in η̃ only: use the MLE form"
                .into(),
        ))
    }

    fn point_values(&self, point: &Vec<f64>) -> Vec<f64> {
        point.clone()
    }

    fn point_from_values(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixture_point() -> Gaussians {
        Gaussians {
            weights: vec![0.2, 0.5, 0.3],
            means: vec![vec![1.0, -0.5], vec![0.0, 2.0], vec![-1.5, 0.3]],
            covariances: [0.5, 1.5, 0.8]
                .iter()
                .map(|&a| Mat::from_fn(2, 2, |r, c| if r == c { a } else { 0.2 }))
                .collect(),
        }
    }

    /// Both coordinate systems of the joint family return the standard coordinates they came
    /// from, and the MLE-form direction of one Gaussian is the flattened chain rule.
    #[test]
    fn gaussian_mixture_coordinates_round_trip() {
        let family = GaussianMixture {
            components: 3,
            dim: 2,
            min_weight: 0.0,
        };
        let point = mixture_point();
        let close = |a: &Gaussians, b: &Gaussians| {
            for k in 0..3 {
                assert!((a.weights[k] - b.weights[k]).abs() < 1e-12);
                for r in 0..2 {
                    assert!((a.means[k][r] - b.means[k][r]).abs() < 1e-12);
                    for c in 0..2 {
                        let gap = a.covariances[k][(r, c)] - b.covariances[k][(r, c)];
                        assert!(gap.abs() < 1e-12);
                    }
                }
            }
        };
        let back = family
            .point_from_mean(&family.mean(&point).unwrap())
            .unwrap();
        close(&back, &point);
        let back = family
            .point_from_natural(&family.natural(&point).unwrap())
            .unwrap();
        close(&back, &point);
        // Outside the domain: a negative weight, an indefinite precision.
        let mut mu = family.mean(&point).unwrap();
        mu[0] = -0.1;
        assert!(family.point_from_mean(&mu).is_none());
        let mut eta = family.natural(&point).unwrap();
        eta[2 + 2] = 1.0;
        assert!(family.point_from_natural(&eta).is_none());
    }
}
