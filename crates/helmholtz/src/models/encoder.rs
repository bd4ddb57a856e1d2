//! Amortized Gaussian posteriors for sparse coding (entropy.md §2.4): an MLP maps each data point
//! x_n to the parameters of q_n = N(μ_n, Σ_n) with
//!
//! Σ_n = V_n V_nᵀ + diag(d_n²),   d_n = floor + softplus(a_n),
//!
//! V_n an H × r factor (rank r = 0 gives a diagonal posterior, r > 0 correlated latents, as the
//! authors' rank-5 heads). The network's output per point is [μ_n (H) | a_n (H) | V_n (H × r,
//! column-major)].

use faer::{Mat, MatRef};

use super::mlp::{Activation, Mlp, Tape};
use super::params::{ParamSet, Tensor};
use crate::error::{Error, Result};

/// Gaussian posteriors with low-rank-plus-diagonal covariances, one per column.
#[derive(Clone, Debug, PartialEq)]
pub struct LowRankPosteriors {
    /// Rank r of the factors.
    pub rank: usize,
    /// Means μ_n (H × B).
    pub mean: Mat<f64>,
    /// Diagonal standard deviations d_n (H × B), all positive.
    pub diag: Mat<f64>,
    /// Factors V_n, one H × r column-major block per point (H·r × B).
    pub factor: Mat<f64>,
}

impl LowRankPosteriors {
    /// Number of latents H.
    pub fn n_latents(&self) -> usize {
        self.mean.nrows()
    }

    /// Number of posteriors B.
    pub fn len(&self) -> usize {
        self.mean.ncols()
    }

    /// Whether there are no posteriors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// V_n (H × r).
    pub fn factor_of(&self, n: usize) -> MatRef<'_, f64> {
        let h = self.n_latents();
        let column = self.factor.col(n).try_as_col_major().expect("owned column");
        MatRef::from_column_major_slice(column.as_slice(), h, self.rank)
    }

    /// Σ_n (H × H).
    pub fn covariance(&self, n: usize) -> Mat<f64> {
        let v = self.factor_of(n);
        let mut sigma = v * v.transpose();
        for h in 0..self.n_latents() {
            sigma[(h, h)] += self.diag[(h, n)] * self.diag[(h, n)];
        }
        sigma
    }

    /// Checks shapes and values: positive finite d, finite μ and V.
    pub fn validate(&self) -> Result<()> {
        let (h, b) = (self.mean.nrows(), self.mean.ncols());
        if self.diag.nrows() != h
            || self.diag.ncols() != b
            || self.factor.nrows() != h * self.rank
            || self.factor.ncols() != b
        {
            return Err(Error::Dimension(format!(
                "low-rank posteriors: means {h}×{b}, diagonals {}×{}, factors {}×{} (rank {})",
                self.diag.nrows(),
                self.diag.ncols(),
                self.factor.nrows(),
                self.factor.ncols(),
                self.rank
            )));
        }
        let finite = |m: &Mat<f64>| m.col_iter().all(|c| c.iter().all(|v| v.is_finite()));
        let positive = self.diag.col_iter().all(|c| c.iter().all(|&v| v > 0.0));
        if !(finite(&self.mean) && finite(&self.factor) && finite(&self.diag) && positive) {
            return Err(Error::Diverged(
                "posterior parameters are not finite or a standard deviation is not positive"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// ∂f/∂ of the posterior parameters, shaped like [`LowRankPosteriors`].
#[derive(Clone, Debug, PartialEq)]
pub struct PosteriorGradient {
    /// ∂f/∂μ (H × B).
    pub mean: Mat<f64>,
    /// ∂f/∂d (H × B).
    pub diag: Mat<f64>,
    /// ∂f/∂V (H·r × B).
    pub factor: Mat<f64>,
}

/// An MLP encoder to low-rank-plus-diagonal Gaussian posteriors.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianEncoder {
    /// The network, D → hidden… → H(2 + r).
    pub mlp: Mlp,
    /// Number of latents H.
    pub n_latents: usize,
    /// Rank r of the covariance factor.
    pub rank: usize,
    /// Floor added to every diagonal standard deviation (the authors: 1e-3).
    pub floor: f64,
}

fn softplus(a: f64) -> f64 {
    crate::math::numerics::softplus(a)
}

fn sigmoid(a: f64) -> f64 {
    1.0 / (1.0 + (-a).exp())
}

impl GaussianEncoder {
    /// An encoder from D-dimensional data through `hidden` layers to H latents of rank `rank`.
    pub fn new(
        dim: usize,
        hidden: &[usize],
        n_latents: usize,
        rank: usize,
        activation: Activation,
        floor: f64,
    ) -> Result<Self> {
        if !(floor.is_finite() && floor >= 0.0) {
            return Err(Error::Config(format!(
                "the encoder's standard-deviation floor must be finite and ≥ 0, got {floor}"
            )));
        }
        if rank > n_latents {
            return Err(Error::Config(format!(
                "a covariance factor of rank {rank} for {n_latents} latents"
            )));
        }
        let mut sizes = vec![dim];
        sizes.extend_from_slice(hidden);
        sizes.push(n_latents * (2 + rank));
        Ok(GaussianEncoder {
            mlp: Mlp::new("encoder", &sizes, activation)?,
            n_latents,
            rank,
            floor,
        })
    }

    /// Initial parameters from `seed`, with the output layer scaled down so the first posteriors
    /// are near μ = 0, d = floor + softplus(0).
    pub fn init(&self, seed: u64) -> ParamSet {
        let mut params = self.mlp.init(seed);
        let last = params.tensors.len() - 2;
        params.tensors[last].data.iter_mut().for_each(|v| *v *= 0.1);
        params
    }

    /// The posteriors of a batch `x` (D × B), and the tape for [`GaussianEncoder::backward`].
    pub fn encode(
        &self,
        params: &[Tensor],
        x: MatRef<'_, f64>,
    ) -> Result<(LowRankPosteriors, Tape)> {
        let tape = self.mlp.forward(params, x)?;
        let out = tape.output();
        let (h, r, b) = (self.n_latents, self.rank, x.ncols());
        let q = LowRankPosteriors {
            rank: r,
            mean: Mat::from_fn(h, b, |i, j| out[(i, j)]),
            diag: Mat::from_fn(h, b, |i, j| self.floor + softplus(out[(h + i, j)])),
            factor: Mat::from_fn(h * r, b, |i, j| out[(2 * h + i, j)]),
        };
        q.validate()?;
        Ok((q, tape))
    }

    /// Adds ∂f/∂θ to `grads` (laid out like `params`) given ∂f/∂ of the posteriors of `tape`.
    pub fn backward(
        &self,
        params: &[Tensor],
        tape: &Tape,
        d_posteriors: &PosteriorGradient,
        grads: &mut [Tensor],
    ) {
        let out = tape.output();
        let h = self.n_latents;
        let d_out = Mat::from_fn(out.nrows(), out.ncols(), |i, j| {
            if i < h {
                d_posteriors.mean[(i, j)]
            } else if i < 2 * h {
                d_posteriors.diag[(i - h, j)] * sigmoid(out[(i, j)])
            } else {
                d_posteriors.factor[(i - 2 * h, j)]
            }
        });
        self.mlp
            .backward_params(params, tape, d_out.as_ref(), grads);
    }
}

/// Sparse coding with an amortized posterior: the raw dictionary W̃ and the encoder's weights in
/// one [`ParamSet`] (`dictionary`, D × H, first; then the encoder's tensors), so one optimizer
/// trains them jointly.
#[derive(Clone, Debug, PartialEq)]
pub struct AmortizedSparseCoding {
    /// Observed dimension D.
    pub dim: usize,
    /// The encoder.
    pub encoder: GaussianEncoder,
    /// `dictionary` then the encoder's tensors.
    pub params: ParamSet,
}

impl AmortizedSparseCoding {
    /// A model with a standard-normal W̃ scaled to unit-norm columns and a fresh encoder, both
    /// drawn from `seed`.
    pub fn new(dim: usize, encoder: GaussianEncoder, seed: u64) -> Result<Self> {
        if encoder.mlp.sizes[0] != dim {
            return Err(Error::Dimension(format!(
                "an encoder of {}-dimensional data for D = {dim}",
                encoder.mlp.sizes[0]
            )));
        }
        let h = encoder.n_latents;
        let mut rng = crate::math::rng::Stream::new(seed, &[crate::math::rng::ids::INIT, 1]);
        let raw: Vec<f64> = (0..dim * h).map(|_| rng.normal()).collect();
        let w = super::sparse_coding::normalized_columns(&raw, dim, h);
        let mut dictionary = Tensor::zeros("dictionary", &[dim, h]);
        for c in 0..h {
            for r in 0..dim {
                dictionary.data[c * dim + r] = w[(r, c)] as f32;
            }
        }
        let mut params = encoder.init(seed);
        params.tensors.insert(0, dictionary);
        Ok(AmortizedSparseCoding {
            dim,
            encoder,
            params,
        })
    }

    /// Number of latents H.
    pub fn n_latents(&self) -> usize {
        self.encoder.n_latents
    }

    /// W̃ (D × H) as stored.
    pub fn raw_dictionary(&self) -> Mat<f64> {
        let t = &self.params.tensors[0];
        Mat::from_fn(self.dim, self.n_latents(), |r, c| {
            f64::from(t.data[c * self.dim + r])
        })
    }

    /// W (D × H) with unit-norm columns.
    pub fn dictionary(&self) -> Mat<f64> {
        let raw = self.raw_dictionary();
        let flat: Vec<f64> = (0..self.n_latents())
            .flat_map(|c| raw.col(c).iter().copied().collect::<Vec<_>>())
            .collect();
        super::sparse_coding::normalized_columns(&flat, self.dim, self.n_latents())
    }

    /// The encoder's tensors.
    pub fn encoder_params(&self) -> &[Tensor] {
        &self.params.tensors[1..]
    }
}
