//! Dense products that run in parallel and still give the same bits for any number of threads.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Columns per parallel task.
const CHUNK: usize = 32;

/// out = beta·out + alpha·A B (`accumulate` false: out = alpha·A B), split over blocks of
/// columns of B and out; every block is a sequential product, so the result does not depend on
/// the number of threads.
pub fn matmul_by_columns(
    out: MatMut<'_, f64>,
    a: MatRef<'_, f64>,
    b: MatRef<'_, f64>,
    alpha: f64,
    accumulate: bool,
) {
    let n = out.ncols();
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    let blocks: Vec<(usize, MatMut<'_, f64>)> = {
        let mut rest = out;
        let mut blocks = Vec::with_capacity(n.div_ceil(CHUNK));
        let mut start = 0;
        while start < n {
            let len = CHUNK.min(n - start);
            let (head, tail) = rest.split_at_col_mut(len);
            blocks.push((start, head));
            rest = tail;
            start += len;
        }
        blocks
    };
    blocks.into_par_iter().for_each(|(start, block)| {
        let len = block.ncols();
        matmul(block, accum, a, b.subcols(start, len), alpha, Par::Seq);
    });
}

/// out = alpha·A Bᵀ where the inner dimension (the columns of A and B, typically a batch) is
/// summed in fixed blocks whose partial products are added in order.
pub fn matmul_transpose_by_columns(
    mut out: MatMut<'_, f64>,
    a: MatRef<'_, f64>,
    b: MatRef<'_, f64>,
    alpha: f64,
) {
    let n = a.ncols();
    let partials: Vec<faer::Mat<f64>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|k| {
            let (start, len) = (k * CHUNK, CHUNK.min(n - k * CHUNK));
            let mut p = faer::Mat::zeros(a.nrows(), b.nrows());
            matmul(
                p.as_mut(),
                Accum::Replace,
                a.subcols(start, len),
                b.subcols(start, len).transpose(),
                alpha,
                Par::Seq,
            );
            p
        })
        .collect();
    out.fill(0.0);
    for p in &partials {
        out += p;
    }
}

/// The lower Cholesky factorisation of a matrix that must be symmetric positive definite, with a
/// clear error naming it (`what`) otherwise.
pub fn cholesky(
    m: &faer::Mat<f64>,
    what: &str,
) -> crate::error::Result<faer::linalg::solvers::Llt<f64>> {
    use crate::error::Error;
    if m.nrows() != m.ncols() {
        return Err(Error::Dimension(format!(
            "{what} is {} × {}, not square",
            m.nrows(),
            m.ncols()
        )));
    }
    m.llt(faer::Side::Lower)
        .map_err(|e| Error::InvalidData(format!("{what} is not positive definite ({e:?})")))
}

/// ln det of the matrix factored by `llt`.
pub fn log_det(llt: &faer::linalg::solvers::Llt<f64>) -> f64 {
    let l = llt.L();
    2.0 * (0..l.nrows()).map(|i| l[(i, i)].ln()).sum::<f64>()
}

/// The symmetric gradient ḡ with d f = tr(ḡ dΣ) of a function of Σ through its lower Cholesky
/// factor L, given ∂f/∂L (`l_bar`, only the lower triangle is read): with B = Lᵀ L̄ and Φ(B) its
/// lower triangle with the diagonal halved, C = L⁻ᵀ Φ(B)ᵀ L⁻¹ and ḡ = ½(C + Cᵀ) (from
/// L⁻¹dL = Φ(L⁻¹ dΣ L⁻ᵀ)).
pub fn cholesky_backward(l: MatRef<'_, f64>, l_bar: &faer::Mat<f64>) -> faer::Mat<f64> {
    let d = l.nrows();
    let lower = faer::Mat::from_fn(d, d, |r, c| if r >= c { l_bar[(r, c)] } else { 0.0 });
    let b = l.transpose() * &lower;
    let phi_t = faer::Mat::from_fn(d, d, |r, c| match r.cmp(&c) {
        std::cmp::Ordering::Less => b[(c, r)],
        std::cmp::Ordering::Equal => 0.5 * b[(r, r)],
        std::cmp::Ordering::Greater => 0.0,
    });
    let mut l_inv = faer::Mat::<f64>::identity(d, d);
    faer::linalg::triangular_solve::solve_lower_triangular_in_place(l, l_inv.as_mut(), Par::Seq);
    let c = l_inv.transpose() * &phi_t * &l_inv;
    faer::Mat::from_fn(d, d, |r, k| 0.5 * (c[(r, k)] + c[(k, r)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use faer::Mat;

    #[test]
    fn blocked_products_equal_the_plain_ones() {
        let mut rng = Stream::new(4, &[]);
        let a = Mat::from_fn(7, 5, |_, _| rng.normal());
        let b = Mat::from_fn(5, 75, |_, _| rng.normal());
        let mut out = Mat::from_fn(7, 75, |_, _| 1.0);
        matmul_by_columns(out.as_mut(), a.as_ref(), b.as_ref(), 2.0, true);
        let expected = Mat::from_fn(7, 75, |_, _| 1.0) + (&a * &b) * faer::Scale(2.0);
        assert!((&out - &expected).norm_max() < 1e-12);
        let c = Mat::from_fn(3, 75, |_, _| rng.normal());
        let mut t = Mat::zeros(5, 3);
        matmul_transpose_by_columns(t.as_mut(), b.as_ref(), c.as_ref(), 0.5);
        let expected = (&b * c.transpose()) * faer::Scale(0.5);
        assert!((&t - &expected).norm_max() < 1e-12);
    }

    #[test]
    fn the_cholesky_backward_pass_matches_finite_differences() {
        // f(Σ) = Σ_ij w_ij L_ij with L = chol(Σ).
        let d = 4;
        let mut rng = crate::math::rng::Stream::new(4, &[]);
        let a = faer::Mat::from_fn(d, d, |_, _| rng.normal());
        let sigma = &a * a.transpose() + faer::Mat::<f64>::identity(d, d);
        let w = faer::Mat::from_fn(d, d, |_, _| rng.normal());
        let f = |s: &faer::Mat<f64>| {
            let llt = cholesky(s, "Σ").unwrap();
            let l = llt.L();
            (0..d)
                .flat_map(|r| (0..=r).map(move |c| (r, c)))
                .map(|(r, c)| w[(r, c)] * l[(r, c)])
                .sum::<f64>()
        };
        let llt = cholesky(&sigma, "Σ").unwrap();
        let g = cholesky_backward(llt.L(), &w);
        let h = 1e-6;
        for r in 0..d {
            for c in 0..=r {
                let (mut up, mut down) = (sigma.clone(), sigma.clone());
                for (m, delta) in [(&mut up, h), (&mut down, -h)] {
                    m[(r, c)] += delta;
                    if r != c {
                        m[(c, r)] += delta;
                    }
                }
                let numeric = (f(&up) - f(&down)) / (2.0 * h);
                let analytic = if r == c { g[(r, r)] } else { 2.0 * g[(r, c)] };
                assert!(
                    (numeric - analytic).abs() < 1e-7,
                    "{r}{c}: {numeric} vs {analytic}"
                );
            }
        }
    }
}
