//! Starting points of the SNGD methods, as the SNGD paper's code draws them (So & Turner, AISTATS
//! 2024): random negative-binomial starts, the NB-mixture starts spread over the range of the
//! counts, a skew-normal (or skew-t) start near N(0, s I), and a copula start near the identity
//! correlation. The paper harnesses (`helmholtz-experiments`) and `helmholtz mle`
//! ([`crate::run::mle`]) both start from these, so a fit of a user's file starts as the paper's
//! runs do.
//!
//! ```
//! use helmholtz::optim::sngd::starts::{SkewStart, nb_inits};
//!
//! let (r, s) = nb_inits(1, 0)[0];
//! assert!(r > 0.0 && (0.05..0.95).contains(&s));
//! let start = SkewStart::new(3, 1.0, 0);
//! assert_eq!(start.omega()[(1, 1)], 1.0);
//! assert!(start.xi.iter().all(|v| v.abs() < 0.1));
//! ```

use faer::Mat;

use crate::dist::copula::cov2corr;
use crate::dist::exponential_family::{ExponentialFamily, Gamma};
use crate::dist::negative_binomial::Counts;
use crate::dist::surrogate::{GaussianMixture, Gaussians, Surrogated};
use crate::error::Result;
use crate::math::rng::{Stream, ids};
use crate::math::special::gamma_draw;
use crate::objectives::targets::MIN_NU;
use crate::objectives::targets::negative_binomial::NbMixtureParams;
use crate::optim::sngd::{AdamRoot, Root};

/// `count` starting points (r, s) of a negative binomial: r ~ Gamma with mean 5 and standard
/// deviation 2, s ~ U(0.05, 0.95), drawn from `seed`.
pub fn nb_inits(count: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = Stream::new(seed, &[ids::INIT]);
    (0..count)
        .map(|_| {
            let r = gamma_draw(6.25, &mut rng) * 0.8;
            (r, 0.05 + 0.9 * rng.uniform_f64())
        })
        .collect()
}

/// The NB mixture whose components have means `means` and success probabilities `s`
/// (r = m s/(1 − s)).
pub fn nb_from_means(weights: Vec<f64>, means: &[f64], s: Vec<f64>) -> NbMixtureParams {
    let r = means
        .iter()
        .zip(&s)
        .map(|(m, s)| m * s / (1.0 - s))
        .collect();
    NbMixtureParams { weights, r, s }
}

/// `count` starting points of a `k`-component NB mixture on `counts`: equal weights, means
/// U(0.1 max x, 0.9 max x), s ~ U(0.001, 0.02), drawn from `seed`.
pub fn nb_mixture_inits(
    counts: &Counts,
    k: usize,
    count: usize,
    seed: u64,
) -> Vec<NbMixtureParams> {
    let top = counts.max() as f64;
    let mut rng = Stream::new(seed, &[ids::INIT]);
    (0..count)
        .map(|_| {
            let means: Vec<f64> = (0..k)
                .map(|_| top * (0.1 + 0.8 * rng.uniform_f64()))
                .collect();
            let s = (0..k).map(|_| 0.001 + 0.019 * rng.uniform_f64()).collect();
            nb_from_means(vec![1.0 / k as f64; k], &means, s)
        })
        .collect()
}

/// The Gamma surrogate's mean parameters at NB(r, s): the Gamma(α = r(1 − s), β = s) of the
/// Gamma–Poisson link, where SNGD on one negative binomial starts.
pub fn nb_surrogate_mean(r: f64, s: f64) -> Result<Vec<f64>> {
    Gamma.mean_from_natural(&Gamma::natural(r * (1.0 - s), s))
}

/// The Gamma-mixture surrogate's mean parameters at the NB mixture `init`: the first k − 1
/// weights, then each component's Gamma mean parameters times its weight.
pub fn nb_mixture_surrogate_mean(init: &NbMixtureParams) -> Result<Vec<f64>> {
    let k = init.weights.len();
    let mut mu = init.weights[..k.saturating_sub(1)].to_vec();
    for j in 0..k {
        let (alpha, beta) = (init.r[j] * (1.0 - init.s[j]), init.s[j]);
        let component = Gamma.mean_from_natural(&Gamma::natural(alpha, beta))?;
        mu.extend(component.iter().map(|v| init.weights[j] * v));
    }
    Ok(mu)
}

/// The start of a skew-normal (or of the skew-normal part of a skew-t): ξ, η ~ N(0, 0.01²)
/// from `seed`, Ω = `omega_scale`·I.
#[derive(Clone, Debug, PartialEq)]
pub struct SkewStart {
    /// Location ξ.
    pub xi: Vec<f64>,
    /// Shape η.
    pub eta: Vec<f64>,
    /// Ω = omega_scale · I.
    pub omega_scale: f64,
}

impl SkewStart {
    /// Draws ξ and η for dimension `dim` from `seed`.
    pub fn new(dim: usize, omega_scale: f64, seed: u64) -> Self {
        let mut rng = Stream::new(seed, &[ids::INIT]);
        let xi: Vec<f64> = (0..dim).map(|_| 0.01 * rng.normal()).collect();
        let eta: Vec<f64> = (0..dim).map(|_| 0.01 * rng.normal()).collect();
        SkewStart {
            xi,
            eta,
            omega_scale,
        }
    }

    /// Ω at the start.
    pub fn omega(&self) -> Mat<f64> {
        let d = self.xi.len();
        Mat::<f64>::identity(d, d) * faer::Scale(self.omega_scale)
    }

    /// The Gaussian part N(ξ, Ω) as a surrogate member.
    pub fn gaussians(&self) -> Gaussians {
        Gaussians::single(self.xi.clone(), self.omega())
    }

    /// W with WᵀW = Ω (covariance root) or Ω⁻¹ (precision root) at the start: √(scale) I or
    /// I/√(scale).
    pub fn root(&self, root: Root) -> Mat<f64> {
        let d = self.xi.len();
        let diagonal = match root {
            Root::Precision => 1.0 / self.omega_scale.sqrt(),
            Root::Covariance => self.omega_scale.sqrt(),
        };
        Mat::from_fn(d, d, |r, c| if r == c { diagonal } else { 0.0 })
    }

    /// Adam with square root `root` on the single Gaussian part, with λ beside it and learning
    /// rate `lr`.
    pub fn adam<P: Surrogated<Surrogate = GaussianMixture>>(
        &self,
        root: impl Into<Root>,
        lambda: &[f64],
        lr: f64,
    ) -> Result<AdamRoot<P>> {
        let root = root.into();
        AdamRoot::new(
            GaussianMixture::single(self.xi.len()),
            root,
            vec![0.0],
            std::slice::from_ref(&self.xi),
            &[self.root(root)],
            lambda,
            lr,
        )
    }
}

/// λ of a skew-t at `start`: η and ln(ν − 2) with ν = 50.
pub fn skew_t_lambda(start: &SkewStart) -> Vec<f64> {
    let mut lambda = start.eta.clone();
    lambda.push((50.0 - MIN_NU).ln());
    lambda
}

/// The start of a t copula of dimension `dim`: R = cov2corr(I + WᵀW) with W ~ N(0, 0.01²)
/// from `seed`, and λ = ln(ν − 2) with ν = 50.
pub fn copula_start(dim: usize, seed: u64) -> Result<(Mat<f64>, f64)> {
    let mut rng = Stream::new(seed, &[ids::INIT]);
    let w = Mat::from_fn(dim, dim, |_, _| 0.01 * rng.normal());
    let r = cov2corr(&(Mat::<f64>::identity(dim, dim) + w.transpose() * &w))?;
    Ok((r, (50.0 - MIN_NU).ln()))
}
