//! A sigmoid belief net with one small latent layer, handled exactly by enumerating the 2^H latent
//! configurations: p(z_h = 1) = σ(a_h), p(x_d = 1 | z) = σ(W_d·z + b_d).
//!
//! The exact posteriors make the ELBO the log-likelihood, whose gradient is the posterior
//! expectation of the complete-data gradient. At a stationary point the ELBO equals the entropy
//! sum (entropy.md §1.4) (1/N) Σ_n H[p(z | x_n)] − Σ_h H_B(σ(a_h)) − (1/N) Σ_n E Σ_d H_B(σ(W_d·z + b_d)).
//! The parameters are one flat vector θ = [a (H) | W (D × H, column-major) | b (D)] so that a
//! quasi-Newton solver can find the stationary points ([`crate::optim::quasi_newton`]).

use faer::MatRef;
use rayon::prelude::*;

use crate::dist::{EntropySum, bernoulli_entropy, categorical_entropy};
use crate::error::{Error, Result};
use crate::math::{log_sigmoid, logsumexp, sigmoid};

/// Largest latent layer handled by enumeration.
pub const MAX_LATENTS: usize = 12;

/// Points per parallel work item of the log-likelihood.
const POINTS_PER_CHUNK: usize = 64;

/// A one-layer SBN with enumerable latents.
#[derive(Clone, Debug, PartialEq)]
pub struct ExactSbn {
    /// Observed units D.
    pub dim: usize,
    /// Latent units H.
    pub n_latents: usize,
    /// θ = [a | W | b].
    pub theta: Vec<f64>,
}

/// What does not depend on the data: every latent configuration z, its logits W·z + b, log p(z)
/// and Σ_d H_B(σ(W_d·z + b_d)).
struct Configurations {
    zs: Vec<Vec<f64>>,
    /// log σ(W_d·z + b_d) and log σ(−W_d·z − b_d), the log-probabilities of x_d = 1 and 0.
    log_on: Vec<Vec<f64>>,
    log_off: Vec<Vec<f64>>,
    /// σ(W_d·z + b_d).
    probs: Vec<Vec<f64>>,
    log_prior: Vec<f64>,
    observable_entropy: Vec<f64>,
}

/// What one data point contributes.
struct PointTerms {
    log_px: f64,
    posterior_entropy: f64,
    observable_entropy: f64,
}

impl ExactSbn {
    /// A model with parameters θ.
    pub fn new(dim: usize, n_latents: usize, theta: Vec<f64>) -> Result<Self> {
        if dim == 0 || n_latents == 0 || n_latents > MAX_LATENTS {
            return Err(Error::Config(format!(
                "an exact SBN needs D ≥ 1 and 1 ≤ H ≤ {MAX_LATENTS}, got D = {dim}, H = {n_latents}"
            )));
        }
        if theta.len() != n_latents + dim * n_latents + dim {
            return Err(Error::Dimension(format!(
                "θ of {} values for an SBN with D = {dim}, H = {n_latents}",
                theta.len()
            )));
        }
        Ok(ExactSbn {
            dim,
            n_latents,
            theta,
        })
    }

    fn prior_logit(&self, h: usize) -> f64 {
        self.theta[h]
    }

    fn weight(&self, d: usize, h: usize) -> f64 {
        self.theta[self.n_latents + h * self.dim + d]
    }

    fn bias(&self, d: usize) -> f64 {
        self.theta[self.n_latents * (1 + self.dim) + d]
    }

    /// The latent configuration number `k` as bits.
    fn bits(&self, k: usize) -> Vec<f64> {
        (0..self.n_latents).map(|h| ((k >> h) & 1) as f64).collect()
    }

    /// W_d·z + b_d for every d.
    fn logits(&self, z: &[f64]) -> Vec<f64> {
        (0..self.dim)
            .map(|d| {
                self.bias(d)
                    + (0..self.n_latents)
                        .map(|h| self.weight(d, h) * z[h])
                        .sum::<f64>()
            })
            .collect()
    }

    fn configurations(&self) -> Configurations {
        let zs: Vec<Vec<f64>> = (0..1 << self.n_latents).map(|k| self.bits(k)).collect();
        let logits: Vec<Vec<f64>> = zs.iter().map(|z| self.logits(z)).collect();
        let log_prior = zs
            .iter()
            .map(|z| {
                (0..self.n_latents)
                    .map(|h| {
                        let a = self.prior_logit(h);
                        z[h] * log_sigmoid(a) + (1.0 - z[h]) * log_sigmoid(-a)
                    })
                    .sum()
            })
            .collect();
        let observable_entropy = logits
            .iter()
            .map(|l| l.iter().map(|&v| bernoulli_entropy(sigmoid(v))).sum())
            .collect();
        let per_unit = |f: fn(f64) -> f64| -> Vec<Vec<f64>> {
            logits
                .iter()
                .map(|l| l.iter().map(|&v| f(v)).collect())
                .collect()
        };
        Configurations {
            log_on: per_unit(log_sigmoid),
            log_off: per_unit(|v| log_sigmoid(-v)),
            probs: per_unit(sigmoid),
            zs,
            log_prior,
            observable_entropy,
        }
    }

    /// The exact posterior means E[z | x_n] (H × N) of the binary columns of `x`, by
    /// enumeration.
    pub fn posterior_means(&self, x: MatRef<'_, f64>) -> Result<faer::Mat<f64>> {
        self.check(x)?;
        let all = self.configurations();
        let mut means = faer::Mat::zeros(self.n_latents, x.ncols());
        for n in 0..x.ncols() {
            let point: Vec<f64> = (0..self.dim).map(|d| x[(d, n)]).collect();
            let joint: Vec<f64> = (0..all.zs.len())
                .map(|k| {
                    let (on, off) = (&all.log_on[k], &all.log_off[k]);
                    all.log_prior[k]
                        + (0..self.dim)
                            .map(|d| if point[d] == 1.0 { on[d] } else { off[d] })
                            .sum::<f64>()
                })
                .collect();
            let log_px = logsumexp(&joint);
            for (k, z) in all.zs.iter().enumerate() {
                let r = (joint[k] - log_px).exp();
                for h in 0..self.n_latents {
                    means[(h, n)] += r * z[h];
                }
            }
        }
        Ok(means)
    }

    /// `n` draws x ~ p(x) (D × n, binary) from `seed`: z_h ~ Bern(σ(a_h)), then
    /// x_d ~ Bern(σ(W_d·z + b_d)).
    pub fn sample(&self, n: usize, seed: u64) -> faer::Mat<f64> {
        use crate::math::rng::{Stream, ids};
        let mut rng = Stream::new(seed, &[ids::SAMPLE]);
        let mut x = faer::Mat::zeros(self.dim, n);
        for j in 0..n {
            let z: Vec<f64> = (0..self.n_latents)
                .map(|h| f64::from(u8::from(rng.uniform_f64() < sigmoid(self.prior_logit(h)))))
                .collect();
            for (d, logit) in self.logits(&z).into_iter().enumerate() {
                x[(d, j)] = f64::from(u8::from(rng.uniform_f64() < sigmoid(logit)));
            }
        }
        x
    }

    /// log p(x_n), the entropies of the exact posterior and of p(x | z) under it, and (when
    /// `grad` is given) the gradient of log p(x_n) added to it.
    fn point(&self, x: &[f64], all: &Configurations, grad: Option<&mut [f64]>) -> PointTerms {
        let zs = &all.zs;
        let joint: Vec<f64> = (0..zs.len())
            .map(|k| {
                let (on, off) = (&all.log_on[k], &all.log_off[k]);
                all.log_prior[k]
                    + (0..self.dim)
                        .map(|d| if x[d] == 1.0 { on[d] } else { off[d] })
                        .sum::<f64>()
            })
            .collect();
        let log_px = logsumexp(&joint);
        let posterior: Vec<f64> = joint.iter().map(|j| (j - log_px).exp()).collect();
        let observable_entropy = (0..zs.len())
            .map(|k| posterior[k] * all.observable_entropy[k])
            .sum();
        if let Some(grad) = grad {
            let (h, dim) = (self.n_latents, self.dim);
            let prior: Vec<f64> = (0..h).map(|j| sigmoid(self.prior_logit(j))).collect();
            for k in 0..zs.len() {
                let r = posterior[k];
                for j in 0..h {
                    grad[j] += r * (zs[k][j] - prior[j]);
                }
                let probs = &all.probs[k];
                for d in 0..dim {
                    let error = r * (x[d] - probs[d]);
                    for j in 0..h {
                        grad[h + j * dim + d] += error * zs[k][j];
                    }
                    grad[h * (1 + dim) + d] += error;
                }
            }
        }
        PointTerms {
            log_px,
            posterior_entropy: categorical_entropy(&posterior),
            observable_entropy,
        }
    }

    /// The mean log-likelihood of the columns of `x` (binary, D × N) and, with `grad`, its
    /// gradient with respect to θ (written over it).
    ///
    /// With L_dk = log σ(ℓ_dk) − log σ(−ℓ_dk) (ℓ_k = W z_k + b) and c_k = log p(z_k) +
    /// Σ_d log σ(−ℓ_dk), the joint of point n and configuration k is c_k + (XᵀL)_nk: one matrix
    /// product per chunk of points. The gradient is the posterior expectation of the complete-data
    /// gradient: with responsibilities R (N × K), m = Rᵀ1 and A = RᵀXᵀ − diag(m) P (K × D, P the
    /// probabilities σ(ℓ)), ∂/∂a_h = Σ_k m_k (z_kh − σ(a_h)), ∂/∂W = Zᵀ A and ∂/∂b = Aᵀ1 (over N).
    pub fn log_likelihood(&self, x: MatRef<'_, f64>, mut grad: Option<&mut [f64]>) -> Result<f64> {
        use faer::linalg::matmul::matmul;
        use faer::{Accum, Mat, Par};
        self.check(x)?;
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        let (n, dim, h) = (x.ncols(), self.dim, self.n_latents);
        let all = self.configurations();
        let k_all = all.zs.len();
        let log_odds = Mat::from_fn(dim, k_all, |d, k| all.log_on[k][d] - all.log_off[k][d]);
        let base: Vec<f64> = (0..k_all)
            .map(|k| all.log_prior[k] + all.log_off[k].iter().sum::<f64>())
            .collect();
        let with_grad = grad.is_some();
        // Fixed chunks of points, reduced in order: the result does not depend on the threads.
        let chunks: Vec<(f64, Mat<f64>, Vec<f64>)> = (0..n.div_ceil(POINTS_PER_CHUNK))
            .into_par_iter()
            .map(|chunk| {
                let start = chunk * POINTS_PER_CHUNK;
                let len = (n - start).min(POINTS_PER_CHUNK);
                let xc = x.subcols(start, len);
                // joint[k, j] = c_k + Σ_d L_dk x_dj.
                let mut joint = Mat::<f64>::zeros(k_all, len);
                matmul(
                    joint.as_mut(),
                    Accum::Replace,
                    log_odds.transpose(),
                    xc,
                    1.0,
                    Par::Seq,
                );
                let mut total = 0.0;
                let mut mass = vec![0.0; if with_grad { k_all } else { 0 }];
                let mut column = vec![0.0; k_all];
                for j in 0..len {
                    for (k, c) in column.iter_mut().enumerate() {
                        *c = base[k] + joint[(k, j)];
                    }
                    let log_px = logsumexp(&column);
                    total += log_px;
                    if with_grad {
                        for k in 0..k_all {
                            let r = (column[k] - log_px).exp();
                            joint[(k, j)] = r;
                            mass[k] += r;
                        }
                    }
                }
                // Σ_j r_jk x_j (K × D) of the chunk.
                let mut expected = Mat::<f64>::zeros(if with_grad { k_all } else { 0 }, dim);
                if with_grad {
                    matmul(
                        expected.as_mut(),
                        Accum::Replace,
                        joint.as_ref(),
                        xc.transpose(),
                        1.0,
                        Par::Seq,
                    );
                }
                (total, expected, mass)
            })
            .collect();
        let total: f64 = chunks.iter().map(|c| c.0).sum();
        if let Some(g) = grad {
            let mut a = Mat::<f64>::zeros(k_all, dim);
            let mut mass = vec![0.0; k_all];
            for (_, expected, m) in &chunks {
                a += expected;
                mass.iter_mut().zip(m).for_each(|(t, v)| *t += v);
            }
            for k in 0..k_all {
                for d in 0..dim {
                    a[(k, d)] -= mass[k] * all.probs[k][d];
                }
            }
            let scale = 1.0 / n as f64;
            for (j, g) in g[..h].iter_mut().enumerate() {
                let prior = sigmoid(self.prior_logit(j));
                *g = scale
                    * (0..k_all)
                        .map(|k| mass[k] * (all.zs[k][j] - prior))
                        .sum::<f64>();
            }
            for d in 0..dim {
                let mut bias = 0.0;
                let mut weights = vec![0.0; h];
                for k in 0..k_all {
                    let v = a[(k, d)];
                    bias += v;
                    for (w, z) in weights.iter_mut().zip(&all.zs[k]) {
                        *w += z * v;
                    }
                }
                for (j, w) in weights.iter().enumerate() {
                    g[h + j * dim + d] = scale * w;
                }
                g[h * (1 + dim) + d] = scale * bias;
            }
        }
        Ok(total / n as f64)
    }

    /// The ELBO with the exact posteriors (the log-likelihood) and its entropy decomposition.
    pub fn entropy_sum(&self, x: MatRef<'_, f64>) -> Result<EntropySum> {
        self.check(x)?;
        let n = x.ncols();
        let all = self.configurations();
        let (mut elbo, mut posterior, mut observable) = (0.0, 0.0, 0.0);
        for c in 0..n {
            let column: Vec<f64> = x.col(c).iter().copied().collect();
            let terms = self.point(&column, &all, None);
            elbo += terms.log_px;
            posterior += terms.posterior_entropy;
            observable += terms.observable_entropy;
        }
        let prior = (0..self.n_latents)
            .map(|h| bernoulli_entropy(sigmoid(self.prior_logit(h))))
            .sum();
        Ok(EntropySum::new(
            elbo / n as f64,
            posterior / n as f64,
            prior,
            observable / n as f64,
        ))
    }

    fn check(&self, x: MatRef<'_, f64>) -> Result<()> {
        if x.nrows() != self.dim || x.ncols() == 0 {
            return Err(Error::Dimension(format!(
                "{}×{} data for an SBN with D = {}",
                x.nrows(),
                x.ncols(),
                self.dim
            )));
        }
        if x.col_iter()
            .any(|c| c.iter().any(|&v| v != 0.0 && v != 1.0))
        {
            return Err(Error::InvalidData("an SBN needs binary (0/1) data".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::optim::quasi_newton::{LbfgsConfig, minimize};
    use faer::Mat;

    /// N samples from a random SBN with H = 3, D = 6.
    fn data(n: usize, seed: u64) -> (ExactSbn, Mat<f64>) {
        let (d, h) = (6, 3);
        let mut rng = Stream::new(seed, &[]);
        let theta: Vec<f64> = (0..h + d * h + d).map(|_| 1.5 * rng.normal()).collect();
        let truth = ExactSbn::new(d, h, theta).unwrap();
        let mut x = Mat::zeros(d, n);
        for c in 0..n {
            let z: Vec<f64> = (0..h)
                .map(|j| (rng.uniform_f64() < sigmoid(truth.prior_logit(j))) as u8 as f64)
                .collect();
            let logits = truth.logits(&z);
            for r in 0..d {
                x[(r, c)] = (rng.uniform_f64() < sigmoid(logits[r])) as u8 as f64;
            }
        }
        (truth, x)
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let (mut model, x) = data(50, 1);
        let mut grad = vec![0.0; model.theta.len()];
        model.log_likelihood(x.as_ref(), Some(&mut grad)).unwrap();
        for (i, &analytic) in grad.iter().enumerate() {
            let o = model.theta[i];
            model.theta[i] = o + 1e-6;
            let up = model.log_likelihood(x.as_ref(), None).unwrap();
            model.theta[i] = o - 1e-6;
            let down = model.log_likelihood(x.as_ref(), None).unwrap();
            model.theta[i] = o;
            let numeric = (up - down) / 2e-6;
            assert!(
                (numeric - analytic).abs() < 1e-7,
                "θ[{i}]: {analytic} vs {numeric}"
            );
        }
    }

    /// The matrix form of the log-likelihood and its gradient is the per-point enumeration's
    /// (each point's joint over every configuration, its posterior, the complete-data gradient
    /// weighted by it), over more points than one chunk holds.
    #[test]
    fn the_matrix_form_is_the_per_point_enumeration() {
        let (mut model, x) = data(150, 4);
        let mut rng = Stream::new(9, &[]);
        model
            .theta
            .iter_mut()
            .for_each(|v| *v += 0.3 * rng.normal());
        let all = model.configurations();
        let mut reference = vec![0.0; model.theta.len()];
        let mut total = 0.0;
        for c in 0..x.ncols() {
            let column: Vec<f64> = x.col(c).iter().copied().collect();
            total += model.point(&column, &all, Some(&mut reference)).log_px;
        }
        let n = x.ncols() as f64;
        let mut grad = vec![0.0; model.theta.len()];
        let ll = model.log_likelihood(x.as_ref(), Some(&mut grad)).unwrap();
        assert!(
            (ll - total / n).abs() < 1e-12 * ll.abs(),
            "{ll} vs {}",
            total / n
        );
        for (i, (g, r)) in grad.iter().zip(&reference).enumerate() {
            assert!(
                (g - r / n).abs() < 1e-12 * (1.0 + g.abs()),
                "θ_{i}: {g} vs {}",
                r / n
            );
        }
        assert_eq!(model.log_likelihood(x.as_ref(), None).unwrap(), ll);
    }

    #[test]
    fn at_a_stationary_point_found_by_l_bfgs_the_elbo_is_the_entropy_sum() {
        let (truth, x) = data(400, 2);
        let mut rng = Stream::new(3, &[]);
        let start: Vec<f64> = (0..truth.theta.len()).map(|_| 0.1 * rng.normal()).collect();
        let start_model = ExactSbn::new(6, 3, start.clone()).unwrap();
        assert!(start_model.entropy_sum(x.as_ref()).unwrap().relative_gap() > 1e-3);
        let negative = |theta: &[f64]| -> Result<(f64, Vec<f64>)> {
            let model = ExactSbn::new(6, 3, theta.to_vec())?;
            let mut grad = vec![0.0; theta.len()];
            let ll = model.log_likelihood(x.as_ref(), Some(&mut grad))?;
            Ok((-ll, grad.iter().map(|g| -g).collect()))
        };
        let config = LbfgsConfig {
            history: 20,
            max_iters: 5000,
            tol_grad: 1e-8,
            tol_cost: 0.0,
            ..LbfgsConfig::default()
        };
        let minimum = minimize(negative, start, &config, |_, _| {}).unwrap();
        assert!(minimum.evaluations >= minimum.iterations);
        let model = ExactSbn::new(6, 3, minimum.param).unwrap();
        let mut grad = vec![0.0; model.theta.len()];
        model.log_likelihood(x.as_ref(), Some(&mut grad)).unwrap();
        let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let sum = model.entropy_sum(x.as_ref()).unwrap();
        assert!(norm < 1e-6, "gradient norm {norm} ({})", minimum.stopped);
        assert!(sum.relative_gap() < 1e-6, "{sum:?}");
    }

    #[test]
    fn bad_inputs_are_rejected() {
        assert!(ExactSbn::new(4, 13, vec![0.0; 13 + 52 + 4]).is_err());
        assert!(ExactSbn::new(4, 2, vec![0.0; 3]).is_err());
        let model = ExactSbn::new(2, 1, vec![0.0; 1 + 2 + 2]).unwrap();
        let x = Mat::from_fn(2, 3, |r, c| ((r + c) % 2) as f64 * 0.5);
        assert!(model.log_likelihood(x.as_ref(), None).is_err());
        assert!(model.entropy_sum(Mat::<f64>::zeros(3, 2).as_ref()).is_err());
    }

    #[test]
    fn posterior_means_are_the_prior_gradient_and_samples_follow_the_model() {
        let (model, x) = data(200, 4);
        // ∂/∂a_h of the mean log-likelihood is mean_n E[z_h | x_n] − σ(a_h).
        let mut grad = vec![0.0; model.theta.len()];
        model.log_likelihood(x.as_ref(), Some(&mut grad)).unwrap();
        let means = model.posterior_means(x.as_ref()).unwrap();
        for h in 0..3 {
            let mean = (0..200).map(|n| means[(h, n)]).sum::<f64>() / 200.0;
            assert!((mean - sigmoid(model.prior_logit(h)) - grad[h]).abs() < 1e-12);
        }
        // Pattern frequencies of the draws against p(x) by enumeration (total variation).
        let n = 100_000;
        let draws = model.sample(n, 11);
        let mut counts = vec![0usize; 64];
        for j in 0..n {
            counts[(0..6).map(|d| (draws[(d, j)] as usize) << d).sum::<usize>()] += 1;
        }
        let tv: f64 = (0..64)
            .map(|k| {
                let pattern = Mat::from_fn(6, 1, |d, _| ((k >> d) & 1) as f64);
                let p = model.log_likelihood(pattern.as_ref(), None).unwrap().exp();
                (counts[k] as f64 / n as f64 - p).abs()
            })
            .sum::<f64>()
            / 2.0;
        assert!(tv < 0.02, "total variation {tv}");
    }
}
