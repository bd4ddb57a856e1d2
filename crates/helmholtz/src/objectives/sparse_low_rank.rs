//! The entropy objective L^H of sparse coding (see [`super::sparse_coding`]) for posteriors with
//! low-rank-plus-diagonal covariances Σ_n = V_n V_nᵀ + D_n², D_n = diag(d_n), as an amortized
//! encoder produces them ([`crate::models::encoder`]), with its gradient with respect to the
//! raw dictionary W̃ and to μ_n, V_n and d_n.
//!
//! With r the rank, B_n = D_n⁻² V_n and M_n = I_r + V_nᵀ B_n (r × r):
//! - H\[q_n\] = (H/2) log(2πe) + Σ_h log d_nh + ½ log det M_n (matrix determinant lemma);
//! - E_{q_n}|z_h| is the folded-normal mean at the marginal s_nh = (Σ_a V_nha² + d_nh²)^{1/2};
//! - tr(WᵀW Σ_n) = tr(V_nᵀ G V_n) + Σ_h G_hh d_nh², G = WᵀW;
//! - ∂H/∂V_n = Σ_n⁻¹ V_n = B_n M_n⁻¹, and (Σ_n⁻¹)_hh = 1/d_nh² − Σ_a (B_n M_n⁻¹)_ha (B_n)_ha
//!   (Woodbury), so nothing of size H × H is factorised.
//!
//! Rank 0 is the diagonal posterior.

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::Solve;
use faer::{Accum, Mat, MatRef, Par, Side};
use rayon::prelude::*;

use super::sparse_coding::{EntropyTerms, LN_2PI_E, expected_abs, through_normalization};
use crate::error::{Error, Result};
use crate::math::linalg::{matmul_by_columns, matmul_transpose_by_columns};
use crate::models::encoder::{AmortizedSparseCoding, LowRankPosteriors, PosteriorGradient};
use crate::models::params::ParamSet;
use crate::models::sparse_coding::normalized_columns;

/// The gradient of L^H with respect to W̃ and the posterior parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LowRankGradient {
    /// ∂L/∂W̃ (D × H).
    pub dictionary: Mat<f64>,
    /// ∂L/∂μ, ∂L/∂d, ∂L/∂V.
    pub posteriors: PosteriorGradient,
}

/// What the gradient needs of one point.
struct Point {
    quadratic: f64,
    entropy: f64,
    /// E|z_h|, ∂/∂μ_h, ∂/∂s_h.
    expected_abs: Vec<[f64; 3]>,
    /// Marginal standard deviations s_h.
    s: Vec<f64>,
    /// G V (H × r).
    gram_v: Mat<f64>,
    /// Σ⁻¹ V (H × r).
    inverse_v: Mat<f64>,
    /// (Σ⁻¹)_hh.
    inverse_diag: Vec<f64>,
}

/// L^H (prior entropy weighted by `beta`) of the posteriors `q` of the columns of `x` under the
/// dictionary W = `raw` with unit-norm columns, with its gradient if `gradient` is set.
pub fn entropy_objective_low_rank(
    raw: MatRef<'_, f64>,
    x: MatRef<'_, f64>,
    q: &LowRankPosteriors,
    beta: f64,
    gradient: bool,
) -> Result<(EntropyTerms, Option<LowRankGradient>)> {
    let (d, h, n, r) = (raw.nrows(), raw.ncols(), x.ncols(), q.rank);
    if x.nrows() != d || q.n_latents() != h || q.len() != n || n == 0 {
        return Err(Error::Dimension(format!(
            "data of {}×{n} and {} posteriors of {} latents for a {d}×{h} dictionary",
            x.nrows(),
            q.len(),
            q.n_latents()
        )));
    }
    q.validate()?;
    let raw_flat: Vec<f64> = (0..h)
        .flat_map(|c| raw.col(c).iter().copied().collect::<Vec<_>>())
        .collect();
    let w = normalized_columns(&raw_flat, d, h);
    let w_flat: Vec<f64> = (0..h)
        .flat_map(|c| w.col(c).iter().copied().collect::<Vec<_>>())
        .collect();
    let gram = w.transpose() * &w;
    // R = X − W M.
    let mut residual = x.to_owned();
    matmul_by_columns(residual.as_mut(), w.as_ref(), q.mean.as_ref(), -1.0, true);

    let points: Vec<Point> = (0..n)
        .into_par_iter()
        .with_min_len(16)
        .map(|i| {
            point(
                q,
                i,
                gram.as_ref(),
                residual.col(i).iter().map(|v| v * v).sum(),
            )
        })
        .collect::<Result<_>>()?;

    let mut lambda = vec![0.0; h];
    let (mut quadratic, mut entropy) = (0.0, 0.0);
    for p in &points {
        quadratic += p.quadratic;
        entropy += p.entropy;
        for (l, e) in lambda.iter_mut().zip(&p.expected_abs) {
            *l += e[0];
        }
    }
    let terms = EntropyTerms::from_sums(entropy, lambda, quadratic, n, d)?;
    if !gradient {
        return Ok((terms, None));
    }

    // ∂L/∂Q_n = a, ∂L/∂E_nh = e_h, ∂L/∂H[q_n] = c.
    let a = -1.0 / (2.0 * n as f64 * terms.sigma2);
    let e: Vec<f64> = terms
        .lambda
        .iter()
        .map(|l| -beta / (n as f64 * l))
        .collect();
    let c = 1.0 / n as f64;
    // ∂Q_n/∂μ_n = −2 Wᵀ r_n.
    let mut w_residual = Mat::<f64>::zeros(h, n);
    matmul_by_columns(
        w_residual.as_mut(),
        w.transpose(),
        residual.as_ref(),
        1.0,
        false,
    );
    let mut g_mean = Mat::<f64>::zeros(h, n);
    let mut g_diag = Mat::<f64>::zeros(h, n);
    let mut g_factor = Mat::<f64>::zeros(h * r, n);
    for (i, p) in points.iter().enumerate() {
        let v = q.factor_of(i);
        for k in 0..h {
            let [_, de_dmu, de_ds] = p.expected_abs[k];
            g_mean[(k, i)] = -2.0 * a * w_residual[(k, i)] + e[k] * de_dmu;
            let through_s = e[k] * de_ds / p.s[k];
            let dk = q.diag[(k, i)];
            g_diag[(k, i)] =
                2.0 * a * gram[(k, k)] * dk + through_s * dk + c * p.inverse_diag[k] * dk;
            for j in 0..r {
                g_factor[(j * h + k, i)] =
                    2.0 * a * p.gram_v[(k, j)] + through_s * v[(k, j)] + c * p.inverse_v[(k, j)];
            }
        }
    }
    // ∂L/∂W = a (−2 R Mᵀ + 2 W S), S = Σ_n Σ_n = Σ_n V_n V_nᵀ + diag(Σ_n d_n²).
    let mut second = Mat::<f64>::zeros(h, h);
    if r > 0 {
        // The factors side by side, H × (r·N): column i·r + j is column j of V_i.
        let stacked = Mat::from_fn(h, r * n, |k, c| q.factor[((c % r) * h + k, c / r)]);
        matmul_transpose_by_columns(second.as_mut(), stacked.as_ref(), stacked.as_ref(), 1.0);
    }
    for k in 0..h {
        second[(k, k)] += (0..n).map(|i| q.diag[(k, i)] * q.diag[(k, i)]).sum::<f64>();
    }
    let mut g_w = Mat::<f64>::zeros(d, h);
    matmul_transpose_by_columns(g_w.as_mut(), residual.as_ref(), q.mean.as_ref(), -2.0 * a);
    matmul(
        g_w.as_mut(),
        Accum::Add,
        w.as_ref(),
        second.as_ref(),
        2.0 * a,
        Par::Seq,
    );
    let mut g_raw = vec![0.0; d * h];
    through_normalization(&raw_flat, &w_flat, g_w.as_ref(), &mut g_raw);
    let dictionary = MatRef::from_column_major_slice(&g_raw, d, h).to_owned();
    Ok((
        terms,
        Some(LowRankGradient {
            dictionary,
            posteriors: PosteriorGradient {
                mean: g_mean,
                diag: g_diag,
                factor: g_factor,
            },
        }),
    ))
}

/// L^H of an amortized model on the columns of `x` with the posteriors its encoder gives; with
/// `grads` (laid out like `model.params`), ∂L^H/∂θ for the dictionary and the encoder is written
/// there. Also returns the posteriors.
pub fn amortized_objective(
    model: &AmortizedSparseCoding,
    x: MatRef<'_, f64>,
    beta: f64,
    grads: Option<&mut ParamSet>,
) -> Result<(EntropyTerms, LowRankPosteriors)> {
    let (q, tape) = model.encoder.encode(model.encoder_params(), x)?;
    let raw = model.raw_dictionary();
    let (terms, gradient) = entropy_objective_low_rank(raw.as_ref(), x, &q, beta, grads.is_some())?;
    if let (Some(grads), Some(gradient)) = (grads, gradient) {
        grads.fill_zero();
        let (dictionary, encoder) = grads.tensors.split_at_mut(1);
        let (d, h) = (raw.nrows(), raw.ncols());
        for c in 0..h {
            for r in 0..d {
                dictionary[0].data[c * d + r] = gradient.dictionary[(r, c)] as f32;
            }
        }
        model
            .encoder
            .backward(model.encoder_params(), &tape, &gradient.posteriors, encoder);
    }
    Ok((terms, q))
}

/// The per-point terms of posterior `i` with squared residual norm `residual2`.
fn point(q: &LowRankPosteriors, i: usize, gram: MatRef<'_, f64>, residual2: f64) -> Result<Point> {
    let (h, r) = (q.n_latents(), q.rank);
    let v = q.factor_of(i);
    let diag = q.diag.col(i);
    let mut gram_v = Mat::<f64>::zeros(h, r);
    matmul(gram_v.as_mut(), Accum::Replace, gram, v, 1.0, Par::Seq);
    let mut trace = 0.0;
    for k in 0..h {
        trace += gram[(k, k)] * diag[k] * diag[k];
        for j in 0..r {
            trace += v[(k, j)] * gram_v[(k, j)];
        }
    }
    let s: Vec<f64> = (0..h)
        .map(|k| ((0..r).map(|j| v[(k, j)] * v[(k, j)]).sum::<f64>() + diag[k] * diag[k]).sqrt())
        .collect();
    let expected: Vec<[f64; 3]> = (0..h)
        .map(|k| {
            let (value, d_mu, d_s) = expected_abs(q.mean[(k, i)], s[k]);
            [value, d_mu, d_s]
        })
        .collect();
    // B = D⁻² V, M = I + Vᵀ B, Σ⁻¹ V = B M⁻¹.
    let b = Mat::from_fn(h, r, |k, j| v[(k, j)] / (diag[k] * diag[k]));
    let mut m = Mat::<f64>::identity(r, r);
    matmul(
        m.as_mut(),
        Accum::Add,
        v.transpose(),
        b.as_ref(),
        1.0,
        Par::Seq,
    );
    let (log_det_m, inverse_v) = if r == 0 {
        (0.0, Mat::zeros(h, 0))
    } else {
        let chol = m.llt(Side::Lower).map_err(|e| {
            Error::Diverged(format!(
                "posterior {i}: I + VᵀD⁻²V is not positive definite ({e:?})"
            ))
        })?;
        let l = chol.L();
        let log_det = 2.0 * (0..r).map(|j| l[(j, j)].ln()).sum::<f64>();
        // (B M⁻¹)ᵀ = M⁻¹ Bᵀ.
        let solved = chol.solve(b.transpose());
        (log_det, solved.transpose().to_owned())
    };
    let inverse_diag: Vec<f64> = (0..h)
        .map(|k| {
            1.0 / (diag[k] * diag[k]) - (0..r).map(|j| inverse_v[(k, j)] * b[(k, j)]).sum::<f64>()
        })
        .collect();
    let entropy =
        0.5 * h as f64 * LN_2PI_E + diag.iter().map(|v| v.ln()).sum::<f64>() + 0.5 * log_det_m;
    Ok(Point {
        quadratic: residual2 + trace,
        entropy,
        expected_abs: expected,
        s,
        gram_v,
        inverse_v,
        inverse_diag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::models::sparse_coding::{PosteriorKind, SparseCoding};
    use crate::objectives::sparse_coding::entropy_objective;

    fn random_problem(rank: usize, seed: u64) -> (Mat<f64>, Mat<f64>, LowRankPosteriors) {
        let (d, h, n) = (7, 4, 9);
        let mut rng = Stream::new(seed, &[]);
        let raw = Mat::from_fn(d, h, |_, _| rng.normal());
        let x = Mat::from_fn(d, n, |_, _| rng.normal());
        let q = LowRankPosteriors {
            rank,
            mean: Mat::from_fn(h, n, |_, _| 0.7 * rng.normal()),
            diag: Mat::from_fn(h, n, |_, _| 0.2 + rng.uniform_f64()),
            factor: Mat::from_fn(h * rank, n, |_, _| 0.5 * rng.normal()),
        };
        (raw, x, q)
    }

    /// The same posteriors as a full-covariance model with L_n = chol(Σ_n).
    fn as_full_model(raw: &Mat<f64>, q: &LowRankPosteriors) -> SparseCoding {
        let (d, h, n) = (raw.nrows(), raw.ncols(), q.len());
        let mut model = SparseCoding::new(d, h, n, PosteriorKind::Full, 0).unwrap();
        model.set_dictionary(raw).unwrap();
        let (_, mu, scales) = model.blocks_mut();
        for i in 0..n {
            for k in 0..h {
                mu[i * h + k] = q.mean[(k, i)];
            }
            let l = q.covariance(i).llt(Side::Lower).unwrap().L().to_owned();
            for c in 0..h {
                for rr in c..h {
                    scales[i * h * h + c * h + rr] =
                        if rr == c { l[(rr, c)].ln() } else { l[(rr, c)] };
                }
            }
        }
        model
    }

    #[test]
    fn the_low_rank_objective_equals_the_full_covariance_one() {
        for rank in [0, 1, 3] {
            let (raw, x, q) = random_problem(rank, 5 + rank as u64);
            let (terms, grad) =
                entropy_objective_low_rank(raw.as_ref(), x.as_ref(), &q, 2.0, true).unwrap();
            let model = as_full_model(&raw, &q);
            let mut full_grad = vec![0.0; model.theta.len()];
            let full = entropy_objective(&model, x.as_ref(), 2.0, Some(&mut full_grad)).unwrap();
            for (a, b) in [
                (terms.posterior, full.posterior),
                (terms.prior, full.prior),
                (terms.noise, full.noise),
                (terms.objective(2.0), full.objective(2.0)),
            ] {
                assert!(((a - b) / b).abs() < 1e-10, "rank {rank}: {a} vs {b}");
            }
            // The dictionary and mean gradients depend on Σ_n only through the same quantities.
            let grad = grad.unwrap();
            let (d, h) = (raw.nrows(), raw.ncols());
            for c in 0..h {
                for rr in 0..d {
                    let (a, b) = (grad.dictionary[(rr, c)], full_grad[c * d + rr]);
                    assert!((a - b).abs() < 1e-10 * (1.0 + b.abs()), "∂W̃ {a} vs {b}");
                }
            }
            for i in 0..q.len() {
                for k in 0..h {
                    let (a, b) = (grad.posteriors.mean[(k, i)], full_grad[d * h + i * h + k]);
                    assert!((a - b).abs() < 1e-10 * (1.0 + b.abs()), "∂μ {a} vs {b}");
                }
            }
        }
    }

    /// Access to one parameter block of the posteriors.
    type Block = fn(&mut LowRankPosteriors) -> &mut Mat<f64>;

    #[test]
    fn gradients_match_finite_differences() {
        for (rank, beta) in [(0, 1.0), (2, 1.0), (2, 3.0)] {
            let (mut raw, x, mut q) = random_problem(rank, 11);
            let (_, grad) =
                entropy_objective_low_rank(raw.as_ref(), x.as_ref(), &q, beta, true).unwrap();
            let grad = grad.unwrap();
            let value = |raw: &Mat<f64>, q: &LowRankPosteriors| {
                entropy_objective_low_rank(raw.as_ref(), x.as_ref(), q, beta, false)
                    .unwrap()
                    .0
                    .objective(beta)
            };
            let h = 1e-6;
            let check = |numeric: f64, analytic: f64, what: &str| {
                assert!(
                    (numeric - analytic).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "rank {rank}, β {beta}, {what}: analytic {analytic} vs numeric {numeric}"
                );
            };
            for i in 0..raw.nrows() {
                for j in 0..raw.ncols() {
                    let o = raw[(i, j)];
                    raw[(i, j)] = o + h;
                    let up = value(&raw, &q);
                    raw[(i, j)] = o - h;
                    let down = value(&raw, &q);
                    raw[(i, j)] = o;
                    check((up - down) / (2.0 * h), grad.dictionary[(i, j)], "W̃");
                }
            }
            let blocks: [(&str, Block, &Mat<f64>); 3] = [
                ("μ", |q| &mut q.mean, &grad.posteriors.mean),
                ("d", |q| &mut q.diag, &grad.posteriors.diag),
                ("V", |q| &mut q.factor, &grad.posteriors.factor),
            ];
            for (name, block, analytic) in blocks {
                for i in 0..analytic.nrows() {
                    for j in 0..analytic.ncols() {
                        let o = block(&mut q)[(i, j)];
                        block(&mut q)[(i, j)] = o + h;
                        let up = value(&raw, &q);
                        block(&mut q)[(i, j)] = o - h;
                        let down = value(&raw, &q);
                        block(&mut q)[(i, j)] = o;
                        check((up - down) / (2.0 * h), analytic[(i, j)], name);
                    }
                }
            }
        }
    }

    #[test]
    fn the_amortized_gradient_matches_finite_differences() {
        use crate::models::encoder::GaussianEncoder;
        use crate::models::mlp::Activation;
        let (d, h, n) = (6, 3, 8);
        let mut rng = Stream::new(21, &[]);
        let x = Mat::from_fn(d, n, |_, _| rng.normal());
        for (rank, activation) in [(0, Activation::Tanh), (2, Activation::Relu)] {
            let encoder = GaussianEncoder::new(d, &[5], h, rank, activation, 1e-3).unwrap();
            let mut model = AmortizedSparseCoding::new(d, encoder, 4).unwrap();
            // Larger output weights than the initialisation, so the posteriors differ per point.
            for t in model.params.tensors.iter_mut().skip(1) {
                t.data
                    .iter_mut()
                    .for_each(|v| *v = (0.5 * rng.normal()) as f32);
            }
            let mut grads = model.params.zeros_like();
            amortized_objective(&model, x.as_ref(), 2.0, Some(&mut grads)).unwrap();
            for t in 0..model.params.tensors.len() {
                for i in 0..model.params.tensors[t].data.len() {
                    let step = 1e-3f32;
                    let original = model.params.tensors[t].data[i];
                    let value = |m: &AmortizedSparseCoding| {
                        amortized_objective(m, x.as_ref(), 2.0, None)
                            .unwrap()
                            .0
                            .objective(2.0)
                    };
                    model.params.tensors[t].data[i] = original + step;
                    let up_at = f64::from(model.params.tensors[t].data[i]);
                    let up = value(&model);
                    model.params.tensors[t].data[i] = original - step;
                    let down_at = f64::from(model.params.tensors[t].data[i]);
                    let down = value(&model);
                    model.params.tensors[t].data[i] = original;
                    let numeric = (up - down) / (up_at - down_at);
                    let analytic = f64::from(grads.tensors[t].data[i]);
                    assert!(
                        (numeric - analytic).abs() < 1e-4 * (1.0 + numeric.abs()),
                        "rank {rank}, {}[{i}]: analytic {analytic} vs numeric {numeric}",
                        grads.tensors[t].name
                    );
                }
            }
        }
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let (raw, x, mut q) = random_problem(1, 3);
        assert!(entropy_objective_low_rank(raw.as_ref(), x.subcols(0, 4), &q, 1.0, false).is_err());
        q.diag[(0, 0)] = 0.0;
        assert!(entropy_objective_low_rank(raw.as_ref(), x.as_ref(), &q, 1.0, false).is_err());
        q.diag[(0, 0)] = f64::NAN;
        assert!(entropy_objective_low_rank(raw.as_ref(), x.as_ref(), &q, 1.0, false).is_err());
    }
}
