//! The ELBOs of Laplace sparse coding with Gaussian posteriors (entropy.md §2.2–2.3).
//!
//! With Q_n = ‖x_n − Wμ_n‖² + tr(WᵀW Σ_n) and E_nh = E_{q_n}|z_h| (a folded-normal mean), the
//! standard ELBO is
//!
//! F(λ, σ²) = (1/N) Σ_n { −(D/2) log(2πσ²) − Q_n/(2σ²) − Σ_h [log(2λ_h) + E_nh/λ_h] + H[q_n] }.
//!
//! Its maximisers are λ_h = (1/N) Σ_n E_nh and σ² = (1/(ND)) Σ_n Q_n; substituting them gives the
//! entropy objective
//!
//! L^H = (1/N) Σ_n H[q_n] − Σ_h log(2eλ_h) − (D/2) log(2πeσ²),
//!
//! the mean posterior entropy minus the Laplace prior entropy minus the Gaussian noise entropy.
//! Entropy annealing multiplies the prior-entropy term by β ≥ 1 (then L^H is no longer an ELBO).

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::math::rng::Stream;
use crate::models::sparse_coding::{PosteriorKind, SparseCoding};

const LN_2PI_E: f64 = 2.837_877_066_409_345_5; // ln(2πe)
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
    /// (1/N) Σ_n H[q_n].
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

/// What every point's computation shares: the data, W and WᵀW.
struct Shared<'a> {
    model: &'a SparseCoding,
    x: MatRef<'a, f64>,
    w: Mat<f64>,
    gram: Mat<f64>,
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
    check_data(model, x)?;
    let shared = Shared::new(model, x);
    let (d, h, n) = (model.dim, model.n_latents, model.n_points);
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
    lambda.iter_mut().for_each(|l| *l /= n as f64);
    let sigma2 = quadratic / (n * d) as f64;
    if !(sigma2 > 0.0 && lambda.iter().all(|&l| l > 0.0)) {
        return Err(Error::Diverged(format!(
            "degenerate sparse-coding solution: σ² = {sigma2}, λ = {lambda:?}"
        )));
    }
    let terms = EntropyTerms {
        posterior: entropy / n as f64,
        prior: lambda
            .iter()
            .map(|l| (2.0 * std::f64::consts::E * l).ln())
            .sum(),
        noise: 0.5 * d as f64 * (LN_2PI_E + sigma2.ln()),
        lambda,
        sigma2,
    };
    if let Some(grad) = grad {
        // ∂L/∂Q_n = −1/(2Nσ²), ∂L/∂E_nh = −β/(Nλ_h), ∂L/∂H[q_n] = 1/N.
        let coefficients = Coefficients {
            quadratic: -1.0 / (2.0 * n as f64 * sigma2),
            expected_abs: terms
                .lambda
                .iter()
                .map(|l| -beta / (n as f64 * l))
                .collect(),
            entropy: 1.0 / n as f64,
        };
        shared.gradient(&coefficients, grad);
    }
    Ok(terms)
}

/// The standard ELBO F(λ, σ²) per data point, for any λ and σ².
pub fn standard_elbo(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    lambda: &[f64],
    sigma2: f64,
) -> Result<f64> {
    check_data(model, x)?;
    check_prior(model, lambda, sigma2)?;
    let shared = Shared::new(model, x);
    let d = model.dim as f64;
    let total: f64 = (0..model.n_points)
        .map(|i| {
            let p = shared.point(i);
            let prior: f64 = lambda
                .iter()
                .zip(&p.expected_abs)
                .map(|(l, e)| (2.0 * l).ln() + e / l)
                .sum();
            -0.5 * d * (std::f64::consts::TAU * sigma2).ln() - p.quadratic / (2.0 * sigma2) - prior
                + p.entropy
        })
        .sum();
    Ok(total / model.n_points as f64)
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
                    let z: Vec<f64> = (0..h)
                        .map(|r| mu[r] + (0..=r).map(|c| l[(r, c)] * eps[c]).sum::<f64>())
                        .collect();
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
    if lambda.len() != model.n_latents || !(sigma2 > 0.0) || lambda.iter().any(|&l| !(l > 0.0)) {
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
        let w = model.dictionary();
        let mut gram = Mat::zeros(model.n_latents, model.n_latents);
        matmul(
            gram.as_mut(),
            Accum::Replace,
            w.transpose(),
            w.as_ref(),
            1.0,
            Par::Seq,
        );
        Shared { model, x, w, gram }
    }

    /// The residual x_n − Wμ_n.
    fn residual(&self, i: usize) -> Vec<f64> {
        let mu = self.model.mean(i);
        (0..self.model.dim)
            .map(|r| {
                self.x[(r, i)]
                    - mu.iter()
                        .enumerate()
                        .map(|(c, m)| self.w[(r, c)] * m)
                        .sum::<f64>()
            })
            .collect()
    }

    /// Marginal standard deviations s_h = √Σ_hh (row norms of L).
    fn marginal_std(l: &Mat<f64>) -> Vec<f64> {
        (0..l.nrows())
            .map(|r| (0..=r).map(|c| l[(r, c)] * l[(r, c)]).sum::<f64>().sqrt())
            .collect()
    }

    fn point(&self, i: usize) -> PointTerms {
        let h = self.model.n_latents;
        let l = self.model.cholesky(i);
        let s = Self::marginal_std(&l);
        let residual = self.residual(i);
        // tr(WᵀW L Lᵀ) = Σ (L ⊙ WᵀW L).
        let trace: f64 = match self.model.kind {
            PosteriorKind::Diagonal => (0..h).map(|k| self.gram[(k, k)] * s[k] * s[k]).sum(),
            PosteriorKind::Full => {
                let gl = &self.gram * &l;
                (0..h)
                    .flat_map(|c| (c..h).map(move |r| (r, c)))
                    .map(|(r, c)| l[(r, c)] * gl[(r, c)])
                    .sum()
            }
        };
        let mu = self.model.mean(i);
        PointTerms {
            quadratic: residual.iter().map(|v| v * v).sum::<f64>() + trace,
            expected_abs: mu
                .iter()
                .zip(&s)
                .map(|(&m, &s)| expected_abs(m, s).0)
                .collect(),
            entropy: 0.5 * h as f64 * LN_2PI_E + (0..h).map(|k| l[(k, k)].ln()).sum::<f64>(),
        }
    }

    /// Writes ∂L^H/∂θ into `grad`.
    fn gradient(&self, coefficients: &Coefficients, grad: &mut [f64]) {
        let model = self.model;
        let (d, h, n) = (model.dim, model.n_latents, model.n_points);
        let scale_len = SparseCoding::scale_len(model.kind, h);
        assert_eq!(grad.len(), model.theta.len());
        let (grad_w, rest) = grad.split_at_mut(d * h);
        let (grad_mu, grad_scales) = rest.split_at_mut(h * n);
        let a = coefficients.quadratic;
        // Per chunk of points: the posterior gradients in place, and the chunk's Σ_n r_n μ_nᵀ and
        // Σ_n Σ_n for the dictionary.
        let partials: Vec<(Mat<f64>, Mat<f64>)> = grad_mu
            .par_chunks_mut(h * CHUNK)
            .zip(grad_scales.par_chunks_mut(scale_len * CHUNK))
            .enumerate()
            .map(|(chunk, (g_mu, g_scale))| {
                let mut cross = Mat::<f64>::zeros(d, h);
                let mut second = Mat::<f64>::zeros(h, h);
                for (j, (g_mu, g_scale)) in g_mu
                    .chunks_exact_mut(h)
                    .zip(g_scale.chunks_exact_mut(scale_len))
                    .enumerate()
                {
                    let i = chunk * CHUNK + j;
                    let mu = model.mean(i);
                    let l = model.cholesky(i);
                    let s = Self::marginal_std(&l);
                    let residual = self.residual(i);
                    let mut d_s = vec![0.0; h]; // ∂L/∂s_h through E_nh
                    for k in 0..h {
                        let (_, d_mu, d_sd) = expected_abs(mu[k], s[k]);
                        let b = coefficients.expected_abs[k];
                        // ∂Q/∂μ = −2Wᵀr.
                        let wr: f64 = (0..d).map(|r| self.w[(r, k)] * residual[r]).sum();
                        g_mu[k] = -2.0 * a * wr + b * d_mu;
                        d_s[k] = b * d_sd;
                    }
                    match model.kind {
                        PosteriorKind::Diagonal => {
                            // s = e^ρ: ∂/∂ρ = s ∂/∂s; ∂Q/∂s_h = 2(WᵀW)_hh s_h; ∂H/∂ρ_h = 1.
                            for k in 0..h {
                                g_scale[k] = (2.0 * a * self.gram[(k, k)] * s[k] + d_s[k]) * s[k]
                                    + coefficients.entropy;
                            }
                        }
                        PosteriorKind::Full => {
                            // ∂Q/∂L = 2 WᵀW L; ∂s_h/∂L_hc = L_hc / s_h; L_hh = e^ℓ_h, ∂H/∂ℓ_h = 1.
                            let gl = &self.gram * &l;
                            for c in 0..h {
                                for r in 0..h {
                                    let index = c * h + r;
                                    g_scale[index] = if r < c {
                                        0.0
                                    } else {
                                        let g = 2.0 * a * gl[(r, c)] + d_s[r] * l[(r, c)] / s[r];
                                        if r == c {
                                            g * l[(r, r)] + coefficients.entropy
                                        } else {
                                            g
                                        }
                                    };
                                }
                            }
                        }
                    }
                    for c in 0..h {
                        for r in 0..d {
                            cross[(r, c)] += residual[r] * mu[c];
                        }
                    }
                    let sigma = &l * l.transpose();
                    second += &sigma;
                }
                (cross, second)
            })
            .collect();
        let mut cross = Mat::<f64>::zeros(d, h);
        let mut second = Mat::<f64>::zeros(h, h);
        for (c, s) in &partials {
            cross += c;
            second += s;
        }
        // ∂L/∂W = a (−2 Σ r μᵀ + 2 W Σ Σ_n), then through the column normalisation
        // ∂L/∂W̃_h = (g_h − W_h W_hᵀ g_h) / ‖W̃_h‖.
        let g_w = (&self.w * &second - &cross) * faer::Scale(2.0 * a);
        let raw = model.blocks().0;
        for (c, out) in grad_w.chunks_exact_mut(d).enumerate() {
            let norm = raw[c * d..(c + 1) * d]
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt();
            let along: f64 = (0..d).map(|r| self.w[(r, c)] * g_w[(r, c)]).sum();
            for (r, o) in out.iter_mut().enumerate() {
                *o = (g_w[(r, c)] - self.w[(r, c)] * along) / norm;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn gradients_match_finite_differences() {
        for kind in [PosteriorKind::Diagonal, PosteriorKind::Full] {
            for beta in [1.0, 3.0] {
                let (mut model, x) = random_problem(kind, 2);
                let mut grad = vec![0.0; model.theta.len()];
                entropy_objective(&model, x.as_ref(), beta, Some(&mut grad)).unwrap();
                let h = 1e-6;
                for i in 0..model.theta.len() {
                    let original = model.theta[i];
                    model.theta[i] = original + h;
                    let up = entropy_objective(&model, x.as_ref(), beta, None).unwrap();
                    model.theta[i] = original - h;
                    let down = entropy_objective(&model, x.as_ref(), beta, None).unwrap();
                    model.theta[i] = original;
                    let numeric = (up.objective(beta) - down.objective(beta)) / (2.0 * h);
                    assert!(
                        (numeric - grad[i]).abs() < 1e-6 * (1.0 + numeric.abs()),
                        "{kind:?}, β {beta}, θ[{i}]: analytic {} vs numeric {numeric}",
                        grad[i]
                    );
                }
            }
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
