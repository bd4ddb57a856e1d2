//! Probabilistic sparse coding (entropy.md §2.1): a Laplace prior p(z_h) = exp(−|z_h|/λ_h)/(2λ_h)
//! on H latents, a linear Gaussian observation p(x|z) = N(x; Wz, σ²I_D) with a dictionary W of
//! unit-norm columns, and one Gaussian posterior q_n = N(μ_n, Σ_n) per data point.
//!
//! λ and σ² are not stored: the entropy objective eliminates them in closed form
//! ([`crate::objectives::sparse_coding`]). What is learned is the dictionary and the posteriors,
//! kept in one flat vector θ so that a quasi-Newton solver can optimise them jointly:
//!
//! θ = [ W̃ (D × H) | μ (H × N) | scale parameters ], every block column-major, where
//! W = W̃ with each column divided by its norm (the model's scale invariance z_h → c z_h,
//! λ_h → c λ_h, W_h → W_h / c is fixed this way), and the scale parameters are
//! - diagonal q: ρ (H × N) with standard deviations s = exp(ρ);
//! - full q: one H × H block per point holding a Cholesky factor L_n of Σ_n = L_n L_nᵀ, the
//!   strictly lower part as is and the diagonal as log L_hh (so it stays positive); the upper part
//!   is unused.

use faer::Mat;

use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// The family of the per-point Gaussian posteriors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PosteriorKind {
    /// Independent latents: a mean and a standard deviation per (point, latent).
    Diagonal,
    /// Correlated latents: a mean and a full Cholesky factor per point.
    Full,
}

/// The dictionary and the posteriors of a sparse-coding model, as one parameter vector.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseCoding {
    /// Observed dimension D.
    pub dim: usize,
    /// Number of latents H.
    pub n_latents: usize,
    /// Number of data points N (one posterior each).
    pub n_points: usize,
    /// Posterior family.
    pub kind: PosteriorKind,
    /// θ = [W̃ | μ | scale parameters] (see the module documentation).
    pub theta: Vec<f64>,
    /// A floor added to every posterior standard deviation (diagonal q) or Cholesky diagonal
    /// (full q): s = s_floor + e^ρ. 0 by default; the authors' code uses 1e-3, which keeps the
    /// annealed objective (β > 1) bounded: without it, switching a latent off (μ, s → 0) raises
    /// (β − 1) log s without limit.
    pub scale_floor: f64,
    /// How a standard deviation (or Cholesky diagonal entry) is parameterised.
    pub scale_param: ScaleParam,
}

/// The parameter ρ of a posterior standard deviation s (or Cholesky diagonal entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleParam {
    /// s = floor + e^ρ (the default).
    #[default]
    Log,
    /// s = floor + |ρ|, as in the authors' non-amortized posteriors.
    Linear,
}

impl SparseCoding {
    /// A model with a standard-normal W̃ drawn from `seed`, zero posterior means and unit
    /// posterior covariances (as the authors' code initialises them).
    pub fn new(
        dim: usize,
        n_latents: usize,
        n_points: usize,
        kind: PosteriorKind,
        seed: u64,
    ) -> Result<Self> {
        if dim == 0 || n_latents == 0 || n_points == 0 {
            return Err(Error::Config(format!(
                "sparse coding needs D, H and N ≥ 1, got D = {dim}, H = {n_latents}, N = {n_points}"
            )));
        }
        let mut model = SparseCoding {
            dim,
            n_latents,
            n_points,
            kind,
            theta: vec![
                0.0;
                dim * n_latents
                    + n_latents * n_points
                    + Self::scale_len(kind, n_latents) * n_points
            ],
            scale_floor: 0.0,
            scale_param: ScaleParam::Log,
        };
        let mut rng = Stream::new(seed, &[ids::INIT]);
        for w in &mut model.theta[..dim * n_latents] {
            *w = rng.normal();
        }
        Ok(model)
    }

    /// Switches the scale parameterisation and resets every posterior to the unit Gaussian.
    pub fn with_scale_param(mut self, scale_param: ScaleParam) -> Self {
        self.scale_param = scale_param;
        let unit = match scale_param {
            ScaleParam::Log => 0.0,
            ScaleParam::Linear => 1.0,
        };
        let (h, kind) = (self.n_latents, self.kind);
        let len = Self::scale_len(kind, h);
        for block in self.blocks_mut().2.chunks_exact_mut(len) {
            match kind {
                PosteriorKind::Diagonal => block.fill(unit),
                PosteriorKind::Full => {
                    block.fill(0.0);
                    for k in 0..h {
                        block[k * h + k] = unit;
                    }
                }
            }
        }
        self
    }

    /// A standard deviation (or Cholesky diagonal entry) from its parameter ρ.
    #[inline]
    pub fn scale_of(&self, rho: f64) -> f64 {
        self.scale_floor
            + match self.scale_param {
                ScaleParam::Log => rho.exp(),
                ScaleParam::Linear => rho.abs(),
            }
    }

    /// [`Self::scale_of`] and [`Self::scale_derivative`] together, with one exponential (the
    /// same values bit for bit).
    #[inline]
    pub fn scale_and_derivative(&self, rho: f64) -> (f64, f64) {
        match self.scale_param {
            ScaleParam::Log => {
                let e = rho.exp();
                (self.scale_floor + e, e)
            }
            ScaleParam::Linear => (self.scale_floor + rho.abs(), rho.signum()),
        }
    }

    /// ∂s/∂ρ.
    #[inline]
    pub fn scale_derivative(&self, rho: f64) -> f64 {
        match self.scale_param {
            ScaleParam::Log => rho.exp(),
            ScaleParam::Linear => rho.signum(),
        }
    }

    /// Scale parameters per point: H (diagonal) or H² (full).
    pub fn scale_len(kind: PosteriorKind, n_latents: usize) -> usize {
        match kind {
            PosteriorKind::Diagonal => n_latents,
            PosteriorKind::Full => n_latents * n_latents,
        }
    }

    /// The three blocks of θ: W̃, μ and the scale parameters.
    pub fn blocks(&self) -> (&[f64], &[f64], &[f64]) {
        let (w, rest) = self.theta.split_at(self.dim * self.n_latents);
        let (mu, scales) = rest.split_at(self.n_latents * self.n_points);
        (w, mu, scales)
    }

    /// Mutable blocks of θ.
    pub fn blocks_mut(&mut self) -> (&mut [f64], &mut [f64], &mut [f64]) {
        let (w, rest) = self.theta.split_at_mut(self.dim * self.n_latents);
        let (mu, scales) = rest.split_at_mut(self.n_latents * self.n_points);
        (w, mu, scales)
    }

    /// The dictionary W (D × H) with unit-norm columns.
    pub fn dictionary(&self) -> Mat<f64> {
        normalized_columns(self.blocks().0, self.dim, self.n_latents)
    }

    /// Sets W̃ = `w` (any column norms; the model uses the normalised columns).
    pub fn set_dictionary(&mut self, w: &Mat<f64>) -> Result<()> {
        if w.nrows() != self.dim || w.ncols() != self.n_latents {
            return Err(Error::Dimension(format!(
                "a dictionary of {}×{} for a model with D = {}, H = {}",
                w.nrows(),
                w.ncols(),
                self.dim,
                self.n_latents
            )));
        }
        let dim = self.dim;
        for (h, column) in self.blocks_mut().0.chunks_exact_mut(dim).enumerate() {
            for (r, v) in column.iter_mut().enumerate() {
                *v = w[(r, h)];
            }
        }
        Ok(())
    }

    /// The posterior mean μ_n.
    pub fn mean(&self, n: usize) -> &[f64] {
        &self.blocks().1[n * self.n_latents..(n + 1) * self.n_latents]
    }

    /// The Cholesky factor L_n of Σ_n (H × H, lower triangular; diagonal for a diagonal q).
    pub fn cholesky(&self, n: usize) -> Mat<f64> {
        let h = self.n_latents;
        let len = Self::scale_len(self.kind, h);
        let block = &self.blocks().2[n * len..(n + 1) * len];
        match self.kind {
            PosteriorKind::Diagonal => {
                Mat::from_fn(
                    h,
                    h,
                    |i, j| {
                        if i == j { self.scale_of(block[i]) } else { 0.0 }
                    },
                )
            }
            PosteriorKind::Full => Mat::from_fn(h, h, |i, j| match i.cmp(&j) {
                std::cmp::Ordering::Equal => self.scale_of(block[j * h + i]),
                std::cmp::Ordering::Greater => block[j * h + i],
                std::cmp::Ordering::Less => 0.0,
            }),
        }
    }
}

/// A reparameterised posterior draw z = μ + L ε (L lower triangular, as from
/// [`SparseCoding::cholesky`]).
pub fn reparameterise(mu: &[f64], l: &Mat<f64>, eps: &[f64]) -> Vec<f64> {
    (0..mu.len())
        .map(|r| mu[r] + (0..=r).map(|c| l[(r, c)] * eps[c]).sum::<f64>())
        .collect()
}

/// W with each column of `raw` (D × H, column-major) scaled to unit norm.
pub fn normalized_columns(raw: &[f64], dim: usize, n_latents: usize) -> Mat<f64> {
    let mut w = Mat::zeros(dim, n_latents);
    for (h, column) in raw.chunks_exact(dim).enumerate() {
        let norm = column
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        for (r, v) in column.iter().enumerate() {
            w[(r, h)] = v / norm;
        }
    }
    w
}
