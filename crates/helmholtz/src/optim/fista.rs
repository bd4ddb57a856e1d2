//! MAP sparse coding: the weighted-ℓ1 least-squares problem
//!
//! min_z ½‖x − Wz‖² + Σ_h κ_h |z_h|,
//!
//! the MAP estimate of the Laplace sparse-coding model with κ_h = σ²/λ_h, solved for many x at
//! once by FISTA (Beck & Teboulle 2009): a gradient step on the quadratic with step 1/L
//! (L = the largest eigenvalue of WᵀW), soft thresholding, and Nesterov momentum.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

use crate::error::{Error, Result};

/// Soft thresholding sign(v)·max(|v| − t, 0).
fn shrink(v: f64, t: f64) -> f64 {
    v.signum() * (v.abs() - t).max(0.0)
}

/// The MAP codes (H × M) of the columns of `x` (D × M) under dictionary `w` (D × H) and
/// per-latent penalties `kappa`, after `iterations` FISTA steps from zero.
pub fn fista(
    w: MatRef<'_, f64>,
    x: MatRef<'_, f64>,
    kappa: &[f64],
    iterations: usize,
) -> Result<Mat<f64>> {
    let (d, h, m) = (w.nrows(), w.ncols(), x.ncols());
    if x.nrows() != d || kappa.len() != h {
        return Err(Error::Dimension(format!(
            "FISTA: a {}×{} dictionary, data with {} rows and {} penalties",
            d,
            h,
            x.nrows(),
            kappa.len()
        )));
    }
    if kappa.iter().any(|k| !(k.is_finite() && *k >= 0.0)) {
        return Err(Error::Config(format!(
            "FISTA penalties must be finite and ≥ 0, got {kappa:?}"
        )));
    }
    let gram = w.transpose() * w;
    let lipschitz = gram
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| Error::InvalidData(format!("FISTA: eigenvalues of WᵀW: {e:?}")))?
        .last()
        .copied()
        .unwrap_or(0.0)
        .max(f64::MIN_POSITIVE);
    let wtx = w.transpose() * x;
    let mut z = Mat::<f64>::zeros(h, m);
    let mut y = z.clone();
    let mut t = 1.0f64;
    let mut grad = Mat::<f64>::zeros(h, m);
    for _ in 0..iterations {
        // ∇ = WᵀW y − Wᵀx.
        matmul(
            grad.as_mut(),
            Accum::Replace,
            gram.as_ref(),
            y.as_ref(),
            1.0,
            Par::rayon(0),
        );
        let next = Mat::from_fn(h, m, |r, c| {
            shrink(
                y[(r, c)] - (grad[(r, c)] - wtx[(r, c)]) / lipschitz,
                kappa[r] / lipschitz,
            )
        });
        let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let momentum = (t - 1.0) / t_next;
        y = Mat::from_fn(h, m, |r, c| {
            next[(r, c)] + momentum * (next[(r, c)] - z[(r, c)])
        });
        z = next;
        t = t_next;
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;

    #[test]
    fn fista_satisfies_the_optimality_conditions() {
        // At the optimum: Wᵀ(x − Wz)_h = κ_h sign(z_h) where z_h ≠ 0, and |·| ≤ κ_h where z_h = 0.
        let mut rng = Stream::new(1, &[]);
        let (d, h, m) = (12, 8, 5);
        let w = Mat::from_fn(d, h, |_, _| rng.normal());
        let x = Mat::from_fn(d, m, |_, _| rng.normal());
        let kappa: Vec<f64> = (0..h).map(|i| 0.5 + 0.2 * i as f64).collect();
        let z = fista(w.as_ref(), x.as_ref(), &kappa, 5000).unwrap();
        let correlation = w.transpose() * (&x - &w * &z);
        let mut zeros = 0;
        for c in 0..m {
            for r in 0..h {
                let g = correlation[(r, c)];
                if z[(r, c)] != 0.0 {
                    assert!(
                        (g - kappa[r] * z[(r, c)].signum()).abs() < 1e-8,
                        "active {r},{c}: {g}"
                    );
                } else {
                    zeros += 1;
                    assert!(g.abs() <= kappa[r] + 1e-8, "inactive {r},{c}: {g}");
                }
            }
        }
        assert!(zeros > 0, "the penalties should switch some latents off");
        // Without a penalty it is least squares.
        let z = fista(w.as_ref(), x.as_ref(), &vec![0.0; h], 5000).unwrap();
        assert!((w.transpose() * (&x - &w * &z)).norm_max() < 1e-8);
        assert!(fista(w.as_ref(), x.as_ref(), &[1.0], 10).is_err());
    }
}
