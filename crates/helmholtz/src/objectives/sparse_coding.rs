//! The ELBOs of Laplace sparse coding with Gaussian posteriors (entropy.md §2.2–2.3).
//!
//! With Q_n = ‖x_n − Wμ_n‖² + tr(WᵀW Σ_n) and E_nh = E_{q_n}|z_h| (a folded-normal mean), the
//! standard ELBO is
//!
//! F(λ, σ²) = (1/N) Σ_n { −(D/2) log(2πσ²) − Q_n/(2σ²) − Σ_h \[log(2λ_h) + E_nh/λ_h\] + H\[q_n\] }.
//!
//! Its maximisers are λ_h = (1/N) Σ_n E_nh and σ² = (1/(ND)) Σ_n Q_n; substituting them gives the
//! entropy objective
//!
//! L^H = (1/N) Σ_n H\[q_n\] − Σ_h log(2eλ_h) − (D/2) log(2πeσ²),
//!
//! the mean posterior entropy minus the Laplace prior entropy minus the Gaussian noise entropy.
//! Entropy annealing multiplies the prior-entropy term by β ≥ 1 (then L^H is no longer an ELBO).
//!
//! (About 1,040 lines, 180 of them tests: the objective, its gradient and the per-point kernels
//! they share. The kernels, from `Shared` down, are the part to move out when it grows again.)

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::math::rng::Stream;
#[cfg(test)]
use crate::models::sparse_coding::ScaleParam;
use crate::models::sparse_coding::{PosteriorKind, SparseCoding, reparameterise};

pub(crate) const LN_2PI_E: f64 = 2.837_877_066_409_345_5; // ln(2πe)
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// E|z| for z ~ N(μ, s²): s√(2/π) exp(−μ²/(2s²)) + μ erf(μ/(√2 s)), with its derivatives
/// ∂/∂μ = erf(μ/(√2 s)) and ∂/∂s = √(2/π) exp(−μ²/(2s²)).
pub fn expected_abs(mu: f64, s: f64) -> (f64, f64, f64) {
    let density = SQRT_2_OVER_PI * (-0.5 * (mu / s) * (mu / s)).exp();
    let erf = libm::erf(mu / (std::f64::consts::SQRT_2 * s));
    (s * density + mu * erf, erf, density)
}

/// The three entropies of the objective and the closed-form λ and σ².
#[derive(Clone, Debug, PartialEq)]
pub struct EntropyTerms {
    /// (1/N) Σ_n H\[q_n\].
    pub posterior: f64,
    /// Σ_h log(2eλ_h), the entropy of the Laplace prior.
    pub prior: f64,
    /// (D/2) log(2πeσ²), the entropy of the Gaussian noise.
    pub noise: f64,
    /// λ_h = (1/N) Σ_n E_{q_n}|z_h|.
    pub lambda: Vec<f64>,
    /// σ² = (1/(ND)) Σ_n [‖x_n − Wμ_n‖² + tr(WᵀWΣ_n)].
    pub sigma2: f64,
}

impl EntropyTerms {
    /// The terms from sums over N points of dimension D: Σ_n H\[q_n\], Σ_n E_{q_n}|z_h| (per latent)
    /// and Σ_n Q_n. A λ_h or σ² that is not positive is a degenerate solution.
    pub fn from_sums(
        entropy: f64,
        expected_abs: Vec<f64>,
        quadratic: f64,
        n: usize,
        d: usize,
    ) -> Result<Self> {
        let lambda: Vec<f64> = expected_abs.into_iter().map(|l| l / n as f64).collect();
        let sigma2 = quadratic / (n * d) as f64;
        if !(sigma2 > 0.0 && lambda.iter().all(|&l| l > 0.0)) {
            return Err(Error::Diverged(format!(
                "degenerate sparse-coding solution: σ² = {sigma2}, λ = {lambda:?}"
            )));
        }
        Ok(EntropyTerms {
            posterior: entropy / n as f64,
            prior: lambda
                .iter()
                .map(|l| (2.0 * std::f64::consts::E * l).ln())
                .sum(),
            noise: 0.5 * d as f64 * (LN_2PI_E + sigma2.ln()),
            lambda,
            sigma2,
        })
    }

    /// L^H with the prior entropy weighted by β (β = 1: the ELBO at the optimal λ and σ²).
    pub fn objective(&self, beta: f64) -> f64 {
        self.posterior - beta * self.prior - self.noise
    }
}

/// Per-point quantities of the first pass.
struct PointTerms {
    quadratic: f64,
    expected_abs: Vec<f64>,
    entropy: f64,
}

/// What every point's computation shares: the data, W and WᵀW (flat, column-major).
struct Shared<'a> {
    model: &'a SparseCoding,
    /// W (D × H).
    w_mat: Mat<f64>,
    w: Vec<f64>,
    gram: Vec<f64>,
    /// WᵀW with each column padded with zeros to a multiple of 4 rows ([`padded`]).
    gram_padded: Vec<f64>,
    /// R = X − W U (D × N), one residual per column.
    residual: Vec<f64>,
}

/// Per-point scratch: L (H × H), WᵀW L and the marginal standard deviations.
struct Scratch {
    l: Vec<f64>,
    /// L with each column padded with zeros to a multiple of 4 rows (full posteriors with a
    /// dictionary gradient).
    l_padded: Vec<f64>,
    gram_l: Vec<f64>,
    s: Vec<f64>,
    /// ∂ℓ/∂ρ of the diagonal entries ℓ_h (the Cholesky diagonal, or s for diagonal posteriors).
    ds: Vec<f64>,
}

/// Points per parallel chunk; chunk results are combined in order, so results do not depend on
/// the number of threads.
const CHUNK: usize = 64;

/// The entropy objective L^H (prior entropy weighted by `beta`) and, if `grad` is given, its
/// gradient with respect to θ (written over `grad`, same layout as `model.theta`).
pub fn entropy_objective(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    beta: f64,
    grad: Option<&mut [f64]>,
) -> Result<EntropyTerms> {
    objective_and_gradient(model, x, beta, grad, true)
}

/// As [`entropy_objective`], with the gradient taken with respect to the posteriors only (the
/// dictionary block of `grad` is set to zero): what an E-step needs, at a fraction of the cost.
pub fn entropy_objective_posteriors(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    beta: f64,
    grad: &mut [f64],
) -> Result<EntropyTerms> {
    objective_and_gradient(model, x, beta, Some(grad), false)
}

fn objective_and_gradient(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    beta: f64,
    grad: Option<&mut [f64]>,
    dictionary: bool,
) -> Result<EntropyTerms> {
    check_data(model, x)?;
    let shared = Shared::new(model, x);
    let (d, h, n) = (model.dim, model.n_latents, model.n_points);
    let Some(grad) = grad else {
        let points: Vec<PointTerms> = (0..n)
            .into_par_iter()
            .with_min_len(CHUNK)
            .map(|i| shared.point(i))
            .collect();
        let mut lambda = vec![0.0; h];
        let (mut quadratic, mut entropy) = (0.0, 0.0);
        for p in &points {
            quadratic += p.quadratic;
            entropy += p.entropy;
            for (l, e) in lambda.iter_mut().zip(&p.expected_abs) {
                *l += e;
            }
        }
        return EntropyTerms::from_sums(entropy, lambda, quadratic, n, d);
    };
    // One pass for the terms and the parts of the gradient that do not depend on λ and σ²;
    // then the gradient from those parts once the closed-form λ and σ² are known.
    let pass = shared.pass(grad, dictionary);
    let mut lambda = vec![0.0; h];
    let (mut quadratic, mut entropy) = (0.0, 0.0);
    for i in 0..n {
        let record = pass.record(i);
        quadratic += record[0];
        entropy += record[1];
        for (l, e) in lambda.iter_mut().zip(&record[2..2 + h]) {
            *l += e;
        }
    }
    let terms = EntropyTerms::from_sums(entropy, lambda, quadratic, n, d)?;
    // ∂L/∂Q_n = −1/(2Nσ²), ∂L/∂E_nh = −β/(Nλ_h), ∂L/∂H[q_n] = 1/N.
    let coefficients = Coefficients {
        quadratic: -1.0 / (2.0 * n as f64 * terms.sigma2),
        expected_abs: terms
            .lambda
            .iter()
            .map(|l| -beta / (n as f64 * l))
            .collect(),
        entropy: 1.0 / n as f64,
    };
    shared.finish(&pass, &coefficients, grad, dictionary);
    Ok(terms)
}

/// The standard ELBO F(λ, σ²) per data point, for any λ and σ².
pub fn standard_elbo(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    lambda: &[f64],
    sigma2: f64,
) -> Result<f64> {
    let points = standard_elbo_points(model, x, lambda, sigma2, None)?;
    Ok(points.iter().sum::<f64>() / model.n_points as f64)
}

/// The standard ELBO F_n(λ, σ²) of each data point (column of `x`) with its posterior q_n:
/// −(D/2) log(2πσ²) − Q_n/(2σ²) − Σ_h [log(2λ_h) + E_nh/λ_h] + H\[q_n\]. With `grad`, the
/// gradient of their mean with respect to the posteriors is written there (the dictionary block
/// set to zero): the E-step of a model whose λ and σ² are held, where each point's posterior is
/// its own problem.
pub fn standard_elbo_points(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    lambda: &[f64],
    sigma2: f64,
    grad: Option<&mut [f64]>,
) -> Result<Vec<f64>> {
    check_data(model, x)?;
    check_prior(model, lambda, sigma2)?;
    let shared = Shared::new(model, x);
    let (d, h, n) = (model.dim as f64, model.n_latents, model.n_points);
    let value = |quadratic: f64, entropy: f64, expected: &[f64]| {
        let prior: f64 = lambda
            .iter()
            .zip(expected)
            .map(|(l, e)| (2.0 * l).ln() + e / l)
            .sum();
        -0.5 * d * (std::f64::consts::TAU * sigma2).ln() - quadratic / (2.0 * sigma2) - prior
            + entropy
    };
    let Some(grad) = grad else {
        return Ok((0..n)
            .into_par_iter()
            .with_min_len(CHUNK)
            .map(|i| {
                let p = shared.point(i);
                value(p.quadratic, p.entropy, &p.expected_abs)
            })
            .collect());
    };
    let pass = shared.pass(grad, false);
    let values = (0..n)
        .map(|i| {
            let record = pass.record(i);
            value(record[0], record[1], &record[2..2 + h])
        })
        .collect();
    // ∂F/∂Q_n = −1/(2Nσ²), ∂F/∂E_nh = −1/(Nλ_h), ∂F/∂H[q_n] = 1/N.
    let coefficients = Coefficients {
        quadratic: -1.0 / (2.0 * n as f64 * sigma2),
        expected_abs: lambda.iter().map(|l| -1.0 / (n as f64 * l)).collect(),
        entropy: 1.0 / n as f64,
    };
    shared.finish(&pass, &coefficients, grad, false);
    Ok(values)
}

/// A Monte Carlo estimate of F(λ, σ²) per data point from `samples` reparameterised draws
/// z = μ_n + L_n ε per point: (estimate, standard error).
pub fn monte_carlo_elbo(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    lambda: &[f64],
    sigma2: f64,
    samples: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    check_data(model, x)?;
    check_prior(model, lambda, sigma2)?;
    if samples < 2 {
        return Err(Error::Config(
            "a Monte Carlo ELBO needs at least 2 samples".into(),
        ));
    }
    let (d, h, n) = (model.dim, model.n_latents, model.n_points);
    let w = model.dictionary();
    let per_point: Vec<(f64, f64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut rng = Stream::new(seed, &[crate::math::rng::ids::SAMPLE, i as u64]);
            let l = model.cholesky(i);
            let mu = model.mean(i);
            let log_det: f64 = (0..h).map(|k| l[(k, k)].ln()).sum();
            let values: Vec<f64> = (0..samples)
                .map(|_| {
                    let eps: Vec<f64> = (0..h).map(|_| rng.normal()).collect();
                    let z = reparameterise(mu, &l, &eps);
                    let residual: f64 = (0..d)
                        .map(|r| {
                            let v = x[(r, i)] - (0..h).map(|c| w[(r, c)] * z[c]).sum::<f64>();
                            v * v
                        })
                        .sum();
                    let log_lik = -0.5 * d as f64 * (std::f64::consts::TAU * sigma2).ln()
                        - residual / (2.0 * sigma2);
                    let log_prior: f64 = z
                        .iter()
                        .zip(lambda)
                        .map(|(z, l)| -(2.0 * l).ln() - z.abs() / l)
                        .sum();
                    let log_q = -0.5 * h as f64 * std::f64::consts::TAU.ln()
                        - log_det
                        - 0.5 * eps.iter().map(|e| e * e).sum::<f64>();
                    log_lik + log_prior - log_q
                })
                .collect();
            let mean = values.iter().sum::<f64>() / samples as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (samples - 1) as f64;
            (mean, var / samples as f64)
        })
        .collect();
    let estimate = per_point.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let variance = per_point.iter().map(|p| p.1).sum::<f64>() / (n * n) as f64;
    Ok((estimate, variance.sqrt()))
}

fn check_data(model: &SparseCoding, x: MatRef<'_, f64>) -> Result<()> {
    if x.nrows() != model.dim || x.ncols() != model.n_points {
        return Err(Error::Dimension(format!(
            "data of {}×{} for a sparse-coding model with D = {} and N = {}",
            x.nrows(),
            x.ncols(),
            model.dim,
            model.n_points
        )));
    }
    Ok(())
}

fn check_prior(model: &SparseCoding, lambda: &[f64], sigma2: f64) -> Result<()> {
    let positive = |v: f64| v > 0.0;
    if lambda.len() != model.n_latents || !positive(sigma2) || !lambda.iter().all(|&l| positive(l))
    {
        return Err(Error::Config(format!(
            "λ needs {} positive entries and σ² must be positive, got λ = {lambda:?}, σ² = {sigma2}",
            model.n_latents
        )));
    }
    Ok(())
}

/// ∂L^H with respect to the per-point quantities.
struct Coefficients {
    quadratic: f64,
    expected_abs: Vec<f64>,
    entropy: f64,
}

impl<'a> Shared<'a> {
    fn new(model: &'a SparseCoding, x: MatRef<'a, f64>) -> Self {
        let (d, h, n) = (model.dim, model.n_latents, model.n_points);
        let w_mat = model.dictionary();
        let w: Vec<f64> = (0..h)
            .flat_map(|c| (0..d).map(move |r| (r, c)))
            .map(|(r, c)| w_mat[(r, c)])
            .collect();
        let mut gram = vec![0.0; h * h];
        matmul(
            MatMut::from_column_major_slice_mut(&mut gram, h, h),
            Accum::Replace,
            w_mat.transpose(),
            w_mat.as_ref(),
            1.0,
            Par::Seq,
        );
        // R = X − W U by chunks of points (sequential products inside, so the result does not
        // depend on the number of threads).
        let means = model.blocks().1;
        let mut residual = vec![0.0; d * n];
        residual
            .par_chunks_mut(d * CHUNK)
            .enumerate()
            .for_each(|(chunk, out)| {
                let (start, len) = (chunk * CHUNK, out.len() / d);
                let mut r = MatMut::from_column_major_slice_mut(out, d, len);
                r.copy_from(x.subcols(start, len));
                let u =
                    MatRef::from_column_major_slice(&means[start * h..(start + len) * h], h, len);
                matmul(r, Accum::Add, w_mat.as_ref(), u, -1.0, Par::Seq);
            });
        Shared {
            model,
            w_mat,
            w,
            gram_padded: pad_columns(&gram, h),
            gram,
            residual,
        }
    }

    fn scratch(&self) -> Scratch {
        let h = self.model.n_latents;
        Scratch {
            l: vec![0.0; h * h],
            l_padded: vec![0.0; h * padded(h)],
            gram_l: vec![0.0; h * h],
            s: vec![0.0; h],
            ds: vec![0.0; h],
        }
    }

    /// The residual x_n − Wμ_n.
    fn residual_of(&self, i: usize) -> &[f64] {
        let d = self.model.dim;
        &self.residual[i * d..(i + 1) * d]
    }

    /// Fills the scratch for point i: L_n, WᵀW L_n (full q) and s; returns tr(WᵀW Σ_n).
    #[inline(always)]
    fn prepare(&self, i: usize, scratch: &mut Scratch) -> f64 {
        let h = self.model.n_latents;
        let len = SparseCoding::scale_len(self.model.kind, h);
        let block = &self.model.blocks().2[i * len..(i + 1) * len];
        match self.model.kind {
            PosteriorKind::Diagonal => {
                let mut trace = 0.0;
                let scales = scratch.s.iter_mut().zip(scratch.ds.iter_mut());
                for (k, ((s, ds), rho)) in scales.zip(block).enumerate() {
                    (*s, *ds) = self.model.scale_and_derivative(*rho);
                    trace += self.gram[k * h + k] * *s * *s;
                }
                trace
            }
            PosteriorKind::Full => {
                let l = &mut scratch.l;
                // Column c: zeros above the diagonal, ℓ_c = s(ρ_c) on it, θ's entries below.
                for (c, (column, from)) in
                    l.chunks_exact_mut(h).zip(block.chunks_exact(h)).enumerate()
                {
                    column[..c].fill(0.0);
                    let (diagonal, ds) = self.model.scale_and_derivative(from[c]);
                    (column[c], scratch.ds[c]) = (diagonal, ds);
                    column[c + 1..].copy_from_slice(&from[c + 1..]);
                }
                for r in 0..h {
                    scratch.s[r] = (0..=r)
                        .map(|c| l[c * h + r] * l[c * h + r])
                        .sum::<f64>()
                        .sqrt();
                }
                // (WᵀW L)[:, c] = Σ_{k ≥ c} WᵀW[:, k] L[k, c], each entry summed over k in
                // increasing order, four rows at a time in registers.
                let mut trace = 0.0;
                for c in 0..h {
                    let column = &l[c * h..(c + 1) * h];
                    let out = &mut scratch.gram_l[c * h..(c + 1) * h];
                    out.fill(0.0);
                    let terms = column.iter().copied().enumerate().skip(c);
                    accumulate_columns(out, &self.gram_padded, terms);
                    trace += dot(&l[c * h + c..(c + 1) * h], &out[c..]);
                }
                trace
            }
        }
    }

    fn point(&self, i: usize) -> PointTerms {
        let h = self.model.n_latents;
        let mut scratch = self.scratch();
        let trace = self.prepare(i, &mut scratch);
        let mu = self.model.mean(i);
        let log_det: f64 = match self.model.kind {
            PosteriorKind::Diagonal => scratch.s.iter().map(|s| s.ln()).sum(),
            PosteriorKind::Full => (0..h).map(|k| scratch.l[k * h + k].ln()).sum(),
        };
        PointTerms {
            quadratic: dot(self.residual_of(i), self.residual_of(i)) + trace,
            expected_abs: mu
                .iter()
                .zip(&scratch.s)
                .map(|(&m, &s)| expected_abs(m, s).0)
                .collect(),
            entropy: 0.5 * h as f64 * LN_2PI_E + log_det,
        }
    }

    /// The pass over the points that a gradient needs: each point's terms and the parts of its
    /// gradient that do not depend on the coefficients (λ, σ², β), so that the terms and the
    /// gradient come from one evaluation of L_n, WᵀW L_n and the folded-normal moments.
    ///
    /// Per point it writes Wᵀr_n into the μ block of `grad`, 2 WᵀW L_n into the scale block
    /// (full posteriors), and a record (see [`Pass::record`]); per chunk of points it keeps
    /// Σ r μᵀ and Σ Σ_n for the dictionary.
    fn pass(&self, grad: &mut [f64], dictionary: bool) -> Pass {
        let model = self.model;
        let (d, h, n) = (model.dim, model.n_latents, model.n_points);
        let scale_len = SparseCoding::scale_len(model.kind, h);
        assert_eq!(grad.len(), model.theta.len());
        let (_, rest) = grad.split_at_mut(d * h);
        let (grad_mu, grad_scales) = rest.split_at_mut(h * n);
        let stride = Pass::stride(h);
        let mut records = vec![0.0; stride * n];
        let partials: Vec<(Mat<f64>, Vec<f64>)> = grad_mu
            .par_chunks_mut(h * CHUNK)
            .zip(grad_scales.par_chunks_mut(scale_len * CHUNK))
            .zip(records.par_chunks_mut(stride * CHUNK))
            .enumerate()
            .map(|(chunk, ((g_mu, g_scale), records))| {
                self.pass_chunk(chunk, g_mu, g_scale, records, dictionary)
            })
            .collect();
        Pass {
            h,
            records,
            partials,
        }
    }

    /// One chunk of [`Shared::pass`]: its points' μ and scale gradients, records, and its
    /// Σ r μᵀ and Σ Σ_n. Runs an AVX2 build of the same code where the CPU has it: the same
    /// operations in the same order (no fused multiply-adds), so the same values.
    fn pass_chunk(
        &self,
        chunk: usize,
        g_mu: &mut [f64],
        g_scale: &mut [f64],
        records: &mut [f64],
        dictionary: bool,
    ) -> (Mat<f64>, Vec<f64>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { self.pass_chunk_avx2(chunk, g_mu, g_scale, records, dictionary) };
        }
        self.pass_chunk_generic(chunk, g_mu, g_scale, records, dictionary)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn pass_chunk_avx2(
        &self,
        chunk: usize,
        g_mu: &mut [f64],
        g_scale: &mut [f64],
        records: &mut [f64],
        dictionary: bool,
    ) -> (Mat<f64>, Vec<f64>) {
        self.pass_chunk_generic(chunk, g_mu, g_scale, records, dictionary)
    }

    #[inline(always)]
    fn pass_chunk_generic(
        &self,
        chunk: usize,
        g_mu: &mut [f64],
        g_scale: &mut [f64],
        records: &mut [f64],
        dictionary: bool,
    ) -> (Mat<f64>, Vec<f64>) {
        let model = self.model;
        let (d, h) = (model.dim, model.n_latents);
        let scale_len = SparseCoding::scale_len(model.kind, h);
        let stride = Pass::stride(h);
        let start = chunk * CHUNK;
        let len = g_mu.len() / h;
        let r =
            MatRef::from_column_major_slice(&self.residual[start * d..(start + len) * d], d, len);
        let u = MatRef::from_column_major_slice(
            &model.blocks().1[start * h..(start + len) * h],
            h,
            len,
        );
        // Wᵀ R of the chunk, straight into the μ block.
        matmul(
            MatMut::from_column_major_slice_mut(g_mu, h, len),
            Accum::Replace,
            self.w_mat.transpose(),
            r,
            1.0,
            Par::Seq,
        );
        let mut cross = Mat::<f64>::zeros(if dictionary { d } else { 0 }, h);
        if dictionary {
            matmul(
                cross.as_mut(),
                Accum::Replace,
                r,
                u.transpose(),
                1.0,
                Par::Seq,
            );
        }
        let mut second = vec![0.0; if dictionary { h * h } else { 0 }];
        let mut scratch = self.scratch();
        let points = g_scale
            .chunks_exact_mut(scale_len)
            .zip(records.chunks_exact_mut(stride));
        for (j, (g_scale, record)) in points.enumerate() {
            let i = start + j;
            let mu = model.mean(i);
            let trace = self.prepare(i, &mut scratch);
            if dictionary && model.kind == PosteriorKind::Full {
                let hp = padded(h);
                for (to, from) in scratch
                    .l_padded
                    .chunks_exact_mut(hp)
                    .zip(scratch.l.chunks_exact(h))
                {
                    to[..h].copy_from_slice(from);
                }
            }
            let Scratch {
                l,
                l_padded,
                gram_l,
                s,
                ds,
            } = &scratch;
            let log_det: f64 = match model.kind {
                PosteriorKind::Diagonal => s.iter().map(|s| s.ln()).sum(),
                PosteriorKind::Full => (0..h).map(|k| l[k * h + k].ln()).sum(),
            };
            let residual = self.residual_of(i);
            record[0] = dot(residual, residual) + trace;
            record[1] = 0.5 * h as f64 * LN_2PI_E + log_det;
            let (expected, rest) = record[2..].split_at_mut(h);
            let (d_mu, rest) = rest.split_at_mut(h);
            let (d_sd, rest) = rest.split_at_mut(h);
            let (sd, rest) = rest.split_at_mut(h);
            let (diagonal, d_diagonal) = rest.split_at_mut(h);
            for k in 0..h {
                (expected[k], d_mu[k], d_sd[k]) = expected_abs(mu[k], s[k]);
            }
            sd.copy_from_slice(s);
            d_diagonal.copy_from_slice(ds);
            match model.kind {
                PosteriorKind::Diagonal => diagonal.copy_from_slice(s),
                PosteriorKind::Full => {
                    for (k, v) in diagonal.iter_mut().enumerate() {
                        *v = l[k * h + k];
                    }
                }
            }
            match model.kind {
                PosteriorKind::Diagonal => {
                    if dictionary {
                        for k in 0..h {
                            second[k * h + k] += s[k] * s[k];
                        }
                    }
                }
                PosteriorKind::Full => {
                    // ∂Q/∂L = 2 WᵀW L (lower triangle).
                    for (g, w) in g_scale.iter_mut().zip(gram_l) {
                        *g = 2.0 * w;
                    }
                    if dictionary {
                        // Σ_n = L Lᵀ: Σ[r, c] = Σ_{k ≤ c} L[r, k] L[c, k], added to the
                        // chunk's sum term by term in increasing k (L[r, k] = 0 for k > r),
                        // four rows at a time in registers.
                        for c in 0..h {
                            let out = &mut second[c * h..(c + 1) * h];
                            let terms = (0..=c).map(|k| (k, l[k * h + c]));
                            accumulate_columns(out, l_padded, terms);
                        }
                    }
                }
            }
        }
        (cross, second)
    }

    /// Writes ∂/∂θ of Σ_n [a Q_n + Σ_h b_h E_nh + c H(q_n)] (the coefficients) into `grad`,
    /// which holds what [`Shared::pass`] wrote there.
    fn finish(&self, pass: &Pass, coefficients: &Coefficients, grad: &mut [f64], dictionary: bool) {
        let model = self.model;
        let (d, h, n) = (model.dim, model.n_latents, model.n_points);
        let scale_len = SparseCoding::scale_len(model.kind, h);
        let (grad_w, rest) = grad.split_at_mut(d * h);
        let (grad_mu, grad_scales) = rest.split_at_mut(h * n);
        let a = coefficients.quadratic;
        let stride = Pass::stride(h);
        grad_mu
            .par_chunks_mut(h * CHUNK)
            .zip(grad_scales.par_chunks_mut(scale_len * CHUNK))
            .zip(pass.records.par_chunks(stride * CHUNK))
            .enumerate()
            .for_each(|(chunk, ((g_mu, g_scale), records))| {
                let points = g_mu
                    .chunks_exact_mut(h)
                    .zip(g_scale.chunks_exact_mut(scale_len))
                    .zip(records.chunks_exact(stride));
                let mut d_s = vec![0.0; h];
                for (j, ((g_mu, g_scale), record)) in points.enumerate() {
                    let i = chunk * CHUNK + j;
                    let (d_mu, rest) = record[2 + h..].split_at(h);
                    let (d_sd, rest) = rest.split_at(h);
                    let (s, rest) = rest.split_at(h);
                    // The diagonal ℓ_h and ∂ℓ_h/∂ρ, kept by the pass (no exponential here).
                    let (diagonal, d_diagonal) = rest.split_at(h);
                    let rho = &model.blocks().2[i * scale_len..(i + 1) * scale_len];
                    for k in 0..h {
                        let b = coefficients.expected_abs[k];
                        // ∂Q/∂μ = −2Wᵀr.
                        g_mu[k] = -2.0 * a * g_mu[k] + b * d_mu[k];
                        d_s[k] = b * d_sd[k];
                    }
                    match model.kind {
                        PosteriorKind::Diagonal => {
                            // ∂Q/∂s_h = 2(WᵀW)_hh s_h; ∂H/∂s_h = 1/s_h; then ∂s/∂ρ.
                            for k in 0..h {
                                let ds = d_diagonal[k];
                                g_scale[k] = (2.0 * a * self.gram[k * h + k] * s[k] + d_s[k]) * ds
                                    + coefficients.entropy * ds / s[k];
                            }
                        }
                        PosteriorKind::Full => {
                            // ∂s_h/∂L_hc = L_hc / s_h; L_hh = s(ℓ_h), ∂H/∂ℓ_h = 1.
                            let columns = g_scale.chunks_exact_mut(h).zip(rho.chunks_exact(h));
                            for (c, (g, rho)) in columns.enumerate() {
                                g[..c].fill(0.0);
                                let l = diagonal[c];
                                let on = a * g[c] + d_s[c] * l / s[c];
                                g[c] = (on + coefficients.entropy / l) * d_diagonal[c];
                                let below = g[c + 1..].iter_mut().zip(&rho[c + 1..]);
                                for (r, (g, rho)) in below.enumerate().map(|(r, p)| (r + c + 1, p))
                                {
                                    *g = a * *g + d_s[r] * rho / s[r];
                                }
                            }
                        }
                    }
                }
            });
        if !dictionary {
            grad_w.fill(0.0);
            return;
        }
        let mut cross = Mat::<f64>::zeros(d, h);
        let mut second = Mat::<f64>::zeros(h, h);
        for (c, s) in &pass.partials {
            cross += c;
            second += MatRef::from_column_major_slice(s, h, h);
        }
        // ∂L/∂W = 2a (W Σ Σ_n − Σ r μᵀ), then through the column normalisation
        // ∂L/∂W̃_h = (g_h − W_h W_hᵀ g_h) / ‖W̃_h‖.
        let mut g_w = cross * faer::Scale(-2.0 * a);
        matmul(
            g_w.as_mut(),
            Accum::Add,
            self.w_mat.as_ref(),
            second.as_ref(),
            2.0 * a,
            Par::Seq,
        );
        through_normalization(model.blocks().0, &self.w, g_w.as_ref(), grad_w);
    }
}

/// `n` rounded up to a multiple of 4.
fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// The columns of the n × n column-major `m`, each padded with zeros to [`padded`]`(n)` rows.
fn pad_columns(m: &[f64], n: usize) -> Vec<f64> {
    let np = padded(n);
    let mut out = vec![0.0; n * np];
    for (to, from) in out.chunks_exact_mut(np).zip(m.chunks_exact(n)) {
        to[..n].copy_from_slice(from);
    }
    out
}

/// out\[r\] += Σ over `terms` (k, a), in their order, of m\[r, k\]·a, with `m` column-major with
/// columns padded to a multiple of 4 rows ([`pad_columns`]): every entry summed term by term in
/// that order, all of `out` in registers at once (up to 16 rows) so that the rows' sums proceed
/// side by side instead of through memory. The values are those of the plain loop.
#[inline(always)]
fn accumulate_columns(out: &mut [f64], m: &[f64], terms: impl Iterator<Item = (usize, f64)>) {
    match padded(out.len()) / 4 {
        1 => accumulate_blocks::<1>(out, m, terms),
        2 => accumulate_blocks::<2>(out, m, terms),
        3 => accumulate_blocks::<3>(out, m, terms),
        4 => accumulate_blocks::<4>(out, m, terms),
        _ => {
            let stride = padded(out.len());
            for (k, a) in terms {
                for (o, v) in out.iter_mut().zip(&m[k * stride..]) {
                    *o += v * a;
                }
            }
        }
    }
}

#[inline(always)]
fn accumulate_blocks<const B: usize>(
    out: &mut [f64],
    m: &[f64],
    terms: impl Iterator<Item = (usize, f64)>,
) {
    let stride = 4 * B;
    let mut acc = [[0.0; 4]; B];
    for (r, o) in out.iter().enumerate() {
        acc[r / 4][r % 4] = *o;
    }
    for (k, a) in terms {
        let column = &m[k * stride..(k + 1) * stride];
        for (block, values) in acc.iter_mut().zip(column.chunks_exact(4)) {
            for (x, v) in block.iter_mut().zip(values) {
                *x += v * a;
            }
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        *o = acc[r / 4][r % 4];
    }
}

/// What [`Shared::pass`] keeps per point, read by [`Shared::finish`].
struct Pass {
    h: usize,
    /// Per point: Q_n, H(q_n), then E_nh, ∂E_nh/∂μ_h, ∂E_nh/∂s_h, s_h, the diagonal ℓ_h of the
    /// scale (Cholesky diagonal; s_h for diagonal posteriors) and ∂ℓ_h/∂ρ_h (H values each).
    records: Vec<f64>,
    /// Per chunk: Σ r μᵀ (D × H) and Σ Σ_n (H × H), for the dictionary's gradient.
    partials: Vec<(Mat<f64>, Vec<f64>)>,
}

impl Pass {
    fn stride(h: usize) -> usize {
        2 + 6 * h
    }

    /// The record of point i.
    fn record(&self, i: usize) -> &[f64] {
        let stride = Self::stride(self.h);
        &self.records[i * stride..(i + 1) * stride]
    }
}

/// The gradient with respect to W̃ (`raw`, D × H column-major) of a function of the normalised
/// W = W̃ / ‖W̃‖ (`w`, the same layout) whose gradient with respect to W is `g_w`:
/// ∂/∂W̃_h = (g_h − W_h W_hᵀ g_h) / ‖W̃_h‖, written over `out`.
pub(crate) fn through_normalization(raw: &[f64], w: &[f64], g_w: MatRef<'_, f64>, out: &mut [f64]) {
    let d = g_w.nrows();
    for (c, out) in out.chunks_exact_mut(d).enumerate() {
        let w_c = &w[c * d..(c + 1) * d];
        let g: Vec<f64> = (0..d).map(|r| g_w[(r, c)]).collect();
        let along = dot(w_c, &g);
        let norm = dot(&raw[c * d..(c + 1) * d], &raw[c * d..(c + 1) * d]).sqrt();
        for ((o, gv), wv) in out.iter_mut().zip(&g).zip(w_c) {
            *o = (gv - wv * along) / norm;
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The register-blocked column sums give the plain loop's values bit for bit, for every
    /// H up to 4 blocks and beyond (the fallback), with the terms in any order.
    #[test]
    fn blocked_column_sums_are_the_plain_loop() {
        let mut rng = Stream::new(3, &[]);
        for h in 1..=19 {
            let m: Vec<f64> = (0..h * h).map(|_| rng.normal()).collect();
            let start: Vec<f64> = (0..h).map(|_| rng.normal()).collect();
            let terms: Vec<(usize, f64)> = [h - 1, 0, h / 2]
                .iter()
                .map(|&k| (k, rng.normal()))
                .collect();
            let mut plain = start.clone();
            for &(k, a) in &terms {
                for (o, v) in plain.iter_mut().zip(&m[k * h..(k + 1) * h]) {
                    *o += v * a;
                }
            }
            let mut blocked = start.clone();
            accumulate_columns(&mut blocked, &pad_columns(&m, h), terms.iter().copied());
            assert_eq!(plain, blocked, "H = {h}");
        }
    }

    /// A model with every entry of θ random (so posteriors are correlated and off-centre), and
    /// data from the model.
    fn random_problem(kind: PosteriorKind, seed: u64) -> (SparseCoding, Mat<f64>) {
        let (d, h, n) = (7, 4, 9);
        let mut model = SparseCoding::new(d, h, n, kind, seed).unwrap();
        let mut rng = Stream::new(seed, &[77]);
        for v in &mut model.theta[d * h..] {
            *v = 0.6 * rng.normal();
        }
        let x = Mat::from_fn(d, n, |_, _| rng.normal());
        (model, x)
    }

    #[test]
    fn the_standard_elbo_equals_the_entropy_objective_at_the_closed_form_parameters() {
        for kind in [PosteriorKind::Diagonal, PosteriorKind::Full] {
            let (model, x) = random_problem(kind, 1);
            let terms = entropy_objective(&model, x.as_ref(), 1.0, None).unwrap();
            let elbo = standard_elbo(&model, x.as_ref(), &terms.lambda, terms.sigma2).unwrap();
            let objective = terms.objective(1.0);
            assert!(
                ((elbo - objective) / objective).abs() < 1e-10,
                "{kind:?}: {elbo} vs {objective}"
            );
            // λ and σ² maximise F: moving either lowers it.
            for factor in [0.9, 1.1] {
                let lambda: Vec<f64> = terms.lambda.iter().map(|l| l * factor).collect();
                assert!(standard_elbo(&model, x.as_ref(), &lambda, terms.sigma2).unwrap() < elbo);
                let moved = terms.sigma2 * factor;
                assert!(standard_elbo(&model, x.as_ref(), &terms.lambda, moved).unwrap() < elbo);
            }
        }
    }

    #[test]
    fn the_fixed_prior_gradient_matches_finite_differences_and_points_add_up() {
        for kind in [PosteriorKind::Diagonal, PosteriorKind::Full] {
            let (mut model, x) = random_problem(kind, 3);
            model.scale_floor = 0.05;
            let (lambda, sigma2) = (vec![0.7, 1.3, 0.4, 1.0], 0.3);
            let mut grad = vec![0.0; model.theta.len()];
            let points =
                standard_elbo_points(&model, x.as_ref(), &lambda, sigma2, Some(&mut grad)).unwrap();
            let mean = points.iter().sum::<f64>() / points.len() as f64;
            let whole = standard_elbo(&model, x.as_ref(), &lambda, sigma2).unwrap();
            assert_eq!(mean, whole);
            let dictionary = model.dim * model.n_latents;
            assert!(grad[..dictionary].iter().all(|&g| g == 0.0));
            let h = 1e-6;
            for (i, &analytic) in grad.iter().enumerate().skip(dictionary) {
                let original = model.theta[i];
                model.theta[i] = original + h;
                let up = standard_elbo(&model, x.as_ref(), &lambda, sigma2).unwrap();
                model.theta[i] = original - h;
                let down = standard_elbo(&model, x.as_ref(), &lambda, sigma2).unwrap();
                model.theta[i] = original;
                let numeric = (up - down) / (2.0 * h);
                assert!(
                    (numeric - analytic).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "{kind:?} θ[{i}]: {numeric} vs {analytic}"
                );
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for kind in [PosteriorKind::Diagonal, PosteriorKind::Full] {
            for (beta, floor, param) in [
                (1.0, 0.0, ScaleParam::Log),
                (3.0, 0.0, ScaleParam::Log),
                (3.0, 0.05, ScaleParam::Log),
                (2.0, 0.05, ScaleParam::Linear),
            ] {
                let (mut model, x) = random_problem(kind, 2);
                model.scale_floor = floor;
                model.scale_param = param;
                let mut grad = vec![0.0; model.theta.len()];
                entropy_objective(&model, x.as_ref(), beta, Some(&mut grad)).unwrap();
                let h = 1e-6;
                for (i, &analytic) in grad.iter().enumerate() {
                    let original = model.theta[i];
                    model.theta[i] = original + h;
                    let up = entropy_objective(&model, x.as_ref(), beta, None).unwrap();
                    model.theta[i] = original - h;
                    let down = entropy_objective(&model, x.as_ref(), beta, None).unwrap();
                    model.theta[i] = original;
                    let numeric = (up.objective(beta) - down.objective(beta)) / (2.0 * h);
                    assert!(
                        (numeric - analytic).abs() < 1e-6 * (1.0 + numeric.abs()),
                        "{kind:?}, β {beta}, θ[{i}]: analytic {analytic} vs numeric {numeric}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_posterior_gradient_is_the_posterior_block_of_the_full_one() {
        for kind in [PosteriorKind::Diagonal, PosteriorKind::Full] {
            let (model, x) = random_problem(kind, 8);
            let mut full = vec![0.0; model.theta.len()];
            let mut posterior = vec![1.0; model.theta.len()];
            entropy_objective(&model, x.as_ref(), 2.0, Some(&mut full)).unwrap();
            entropy_objective_posteriors(&model, x.as_ref(), 2.0, &mut posterior).unwrap();
            let w = model.dim * model.n_latents;
            assert!(posterior[..w].iter().all(|&g| g == 0.0));
            assert_eq!(&posterior[w..], &full[w..]);
        }
    }

    #[test]
    fn the_folded_normal_mean_matches_monte_carlo() {
        let mut rng = Stream::new(3, &[]);
        for (mu, s) in [(0.0, 1.0), (1.3, 0.4), (-0.7, 2.0), (5.0, 0.1)] {
            let n = 1_000_000;
            let draws: Vec<f64> = (0..n).map(|_| (mu + s * rng.normal()).abs()).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let sd = (draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            let (closed, _, _) = expected_abs(mu, s);
            assert!(
                (closed - mean).abs() < 4.0 * sd / (n as f64).sqrt(),
                "μ {mu}, s {s}: {closed} vs {mean}"
            );
        }
    }

    #[test]
    fn the_entropy_objective_lies_in_the_monte_carlo_interval() {
        for kind in [PosteriorKind::Diagonal, PosteriorKind::Full] {
            let (model, x) = random_problem(kind, 4);
            let terms = entropy_objective(&model, x.as_ref(), 1.0, None).unwrap();
            let (estimate, stderr) =
                monte_carlo_elbo(&model, x.as_ref(), &terms.lambda, terms.sigma2, 20_000, 5)
                    .unwrap();
            let objective = terms.objective(1.0);
            assert!(
                (estimate - objective).abs() < 3.0 * stderr && stderr < 0.05,
                "{kind:?}: L^H {objective}, Monte Carlo {estimate} ± {stderr}"
            );
        }
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let (model, x) = random_problem(PosteriorKind::Diagonal, 6);
        let wrong = Mat::<f64>::zeros(3, 9);
        assert!(matches!(
            entropy_objective(&model, wrong.as_ref(), 1.0, None),
            Err(Error::Dimension(_))
        ));
        assert!(standard_elbo(&model, x.as_ref(), &[1.0; 4], -1.0).is_err());
        assert!(standard_elbo(&model, x.as_ref(), &[1.0; 3], 1.0).is_err());
    }
}
