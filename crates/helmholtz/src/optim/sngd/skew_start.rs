//! Where the skew families start, for each method: a skew-normal (and the skew-t and the
//! skew-normal mixture built on it) from ξ, η ~ N(0, 0.01²) and Ω = (a given scale)·I, as SNGD
//! (the surrogate N(ξ, Ω), λ by Adam), Adam with a covariance or precision square root, or MCEF.
//! The MLE fits and the variational runs start here, in the library and in the paper harnesses.
//!
//! ```
//! use helmholtz::dist::skew::SkewNormal;
//! use helmholtz::optim::sngd::{LineSearch, Method, SkewStart};
//!
//! let start = SkewStart::new(3, 0.01, 0);
//! let search = LineSearch::Backtracking { start: 0.1, halvings: 20 };
//! let sngd = start.sngd_natural::<SkewNormal>(start.eta.clone(), 0.01, search)?;
//! let q = sngd.distribution()?;
//! assert_eq!((q.xi, q.omega[(1, 1)]), (start.xi.clone(), 0.01));
//! # Ok::<(), helmholtz::Error>(())
//! ```

use faer::Mat;
use serde::{Deserialize, Serialize};

use crate::dist::skew::SkewNormal;
use crate::dist::skew_mixture::SkewMixture;
use crate::dist::surrogate::{GaussianMixture, Gaussians, Surrogated};
use crate::error::Result;
use crate::math::rng::{Stream, ids};
use crate::objectives::targets::MIN_NU;
use crate::optim::sngd::{AdamRoot, LineSearch, Mcef, Root, SngdNatural};

/// The optimiser of a skew family's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkewMethod {
    /// SNGD: MVN(ξ, Ω) surrogate, λ by Adam.
    Sngd,
    /// Adam on (ξ, W, λ) with Ω = WᵀW.
    AdamCovariance,
    /// Adam on (ξ, W, λ) with Ω⁻¹ = WᵀW.
    AdamPrecision,
    /// The natural gradient of the minimal conditional exponential-family form (Lin, Khan &
    /// Schmidt 2019), the authors' natural-gradient baseline for skew-normal VI.
    Mcef,
}

impl SkewMethod {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            SkewMethod::Sngd => "SNGD (MVN surrogate, λ by Adam)",
            SkewMethod::AdamCovariance => "Adam (covariance = WᵀW)",
            SkewMethod::AdamPrecision => "Adam (precision = WᵀW)",
            SkewMethod::Mcef => "MCEF natural gradient",
        }
    }

    /// The square root of an Adam baseline (the covariance root for the other methods).
    pub fn root(self) -> Root {
        if self == SkewMethod::AdamPrecision {
            Root::Precision
        } else {
            Root::Covariance
        }
    }
}

/// The start of a skew-normal: ξ, η ~ N(0, 0.01²) from `seed`, Ω = `omega_scale`·I.
#[derive(Clone, Debug, PartialEq)]
pub struct SkewStart {
    /// Location ξ.
    pub xi: Vec<f64>,
    /// Shape η (the auxiliary λ of SNGD and Adam).
    pub eta: Vec<f64>,
    /// Ω = `omega_scale`·I.
    pub omega_scale: f64,
}

impl SkewStart {
    /// ξ then η, each entry 0.01 times a standard normal of the stream (seed, [`ids::INIT`]).
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

    /// The surrogate's member N(ξ, Ω) at the start.
    pub fn gaussians(&self) -> Gaussians {
        Gaussians::single(self.xi.clone(), self.omega())
    }

    /// The skew-normal at the start.
    pub fn skew_normal(&self) -> Result<SkewNormal> {
        SkewNormal::new(self.xi.clone(), self.omega(), self.eta.clone())
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

    /// The Adam baseline in `method`'s square root on the single Gaussian part with λ.
    pub fn adam<P: Surrogated<Surrogate = GaussianMixture>>(
        &self,
        method: SkewMethod,
        lambda: &[f64],
        lr: f64,
    ) -> Result<AdamRoot<P>> {
        let root = method.root();
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

    /// SNGD in the VI form on the single Gaussian part, λ by Adam with learning rate
    /// `lr_lambda`.
    pub fn sngd_natural<P: Surrogated<Surrogate = GaussianMixture>>(
        &self,
        lambda: Vec<f64>,
        lr_lambda: f64,
        search: LineSearch,
    ) -> Result<SngdNatural<P>> {
        SngdNatural::new(
            GaussianMixture::single(self.xi.len()),
            self.gaussians(),
            lambda,
            lr_lambda,
            search,
        )
    }

    /// MCEF from the skew-normal at the start.
    pub fn mcef(&self, search: LineSearch) -> Result<Mcef> {
        Mcef::new(&self.skew_normal()?, search)
    }

    /// λ of a skew-t at the start with `nu` degrees of freedom: η and ln(ν − 2).
    pub fn skew_t_lambda(&self, nu: f64) -> Vec<f64> {
        let mut lambda = self.eta.clone();
        lambda.push((nu - MIN_NU).ln());
        lambda
    }
}

/// The start of a mixture of `components` skew-normals of dimension `dim`: equal weights (kept
/// at or above `min_weight`), Ω_k = `omega_scale`·I.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixtureStart {
    /// Components K.
    pub components: usize,
    /// Dimension d.
    pub dim: usize,
    /// Ω_k = `omega_scale`·I.
    pub omega_scale: f64,
    /// The smallest weight a step may leave.
    pub min_weight: f64,
    /// Seed of ξ_k and η_k.
    pub seed: u64,
}

impl MixtureStart {
    fn surrogate(&self) -> GaussianMixture {
        GaussianMixture {
            components: self.components,
            dim: self.dim,
            min_weight: self.min_weight,
        }
    }

    /// SNGD through the joint family of the Gaussian parts: ξ_k, η_k ~ N(0, 0.01²) from one
    /// stream (ξ_1, η_1, ξ_2, …), λ = (η_1, …, η_K) by Adam with learning rate `lr_lambda`.
    pub fn sngd(&self, lr_lambda: f64, search: LineSearch) -> Result<SngdNatural<SkewMixture>> {
        let (components, dim) = (self.components, self.dim);
        let mut rng = Stream::new(self.seed, &[ids::INIT]);
        let mut means = Vec::new();
        let mut lambda = Vec::new();
        for _ in 0..components {
            means.push((0..dim).map(|_| 0.01 * rng.normal()).collect());
            lambda.extend((0..dim).map(|_| 0.01 * rng.normal()));
        }
        let start = Gaussians {
            weights: vec![1.0 / components as f64; components],
            means,
            covariances: vec![
                Mat::<f64>::identity(dim, dim) * faer::Scale(self.omega_scale);
                components
            ],
        };
        SngdNatural::new(self.surrogate(), start, lambda, lr_lambda, search)
    }

    /// Adam in `method`'s square root: logits 0, component k from the [`SkewStart`] of seed
    /// `seed + k`.
    pub fn adam(&self, method: SkewMethod, lr: f64) -> Result<AdamRoot<SkewMixture>> {
        let root = method.root();
        let starts: Vec<SkewStart> = (0..self.components)
            .map(|k| SkewStart::new(self.dim, self.omega_scale, self.seed.wrapping_add(k as u64)))
            .collect();
        let means: Vec<Vec<f64>> = starts.iter().map(|s| s.xi.clone()).collect();
        let roots: Vec<Mat<f64>> = starts.iter().map(|s| s.root(root)).collect();
        let lambda: Vec<f64> = starts.iter().flat_map(|s| s.eta.clone()).collect();
        AdamRoot::new(
            self.surrogate(),
            root,
            vec![0.0; self.components],
            &means,
            &roots,
            &lambda,
            lr,
        )
    }
}
