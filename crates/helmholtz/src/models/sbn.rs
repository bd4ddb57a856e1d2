//! The sigmoid belief net (SBN) layer: n_out Bernoulli units conditioned on n_in parents.
//!
//! p(s_i = 1 | h) = σ(a_i) with a = W h + b, and
//! log p(s | h) = Σ_i s_i a_i − softplus(a_i) (nrws.md §1.1).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::math::numerics::{bernoulli_terms, sum_f32};

/// Views a contiguous column-major buffer as a matrix.
#[inline]
pub fn view(data: &[f32], nrows: usize, ncols: usize) -> MatRef<'_, f32> {
    MatRef::from_column_major_slice(&data[..nrows * ncols], nrows, ncols)
}

/// Views a contiguous column-major buffer as a mutable matrix.
#[inline]
pub fn view_mut(data: &mut [f32], nrows: usize, ncols: usize) -> MatMut<'_, f32> {
    MatMut::from_column_major_slice_mut(&mut data[..nrows * ncols], nrows, ncols)
}

/// Shape of an SBN layer; the parameters live in the model's `ParamSet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SbnShape {
    /// Number of parent units (inputs).
    pub n_in: usize,
    /// Number of Bernoulli units (outputs).
    pub n_out: usize,
}

/// Pre-activations `out = W h + b` for `n` columns of parents `h` (n_in × n).
pub fn preactivation(shape: SbnShape, w: &[f32], b: &[f32], h: &[f32], n: usize, out: &mut [f32]) {
    let out_len = shape.n_out * n;
    for column in out[..out_len].chunks_exact_mut(shape.n_out) {
        column.copy_from_slice(b);
    }
    matmul(
        view_mut(out, shape.n_out, n),
        Accum::Add,
        view(w, shape.n_out, shape.n_in),
        view(h, shape.n_in, n),
        1.0f32,
        Par::Seq,
    );
}

/// Scores (and optionally samples) `n` columns of a Bernoulli layer.
///
/// On entry `a` holds pre-activations (n_out × n). With `uniforms`, `s` receives samples; without,
/// `s` holds observed values. Adds log p(s_j | ·) to `log_probs[j]` and leaves the score
/// s − σ(a) in `a`.
pub fn score_columns(
    n_out: usize,
    a: &mut [f32],
    s: &mut [f32],
    uniforms: Option<&[f32]>,
    log_probs: &mut [f64],
) {
    let n = log_probs.len();
    let len = n_out * n;
    TERMS.with_borrow_mut(|terms| {
        if terms.len() < len {
            terms.resize(len, 0.0);
        }
        let terms = &mut terms[..len];
        bernoulli_terms(
            &mut a[..len],
            &mut s[..len],
            uniforms.map(|u| &u[..len]),
            terms,
        );
        for (log_p, column) in log_probs.iter_mut().zip(terms.chunks_exact(n_out)) {
            *log_p += sum_f32(column);
        }
    });
}

thread_local! {
    /// Per-thread scratch for the elementwise log-probability terms (grows once, then reused).
    static TERMS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Accumulates the gradient of Σ_j c_j log p(s_j | h_j) with respect to W and b:
/// dW += (δ diag(c)) hᵀ and db += δ c, where δ = s − σ(a) is the score left by
/// [`score_columns`]. `delta` is scaled by `c` in place.
#[allow(clippy::too_many_arguments)]
pub fn accumulate_gradient(
    shape: SbnShape,
    delta: &mut [f32],
    h: &[f32],
    coefficients: &[f32],
    n: usize,
    grad_w: &mut [f32],
    grad_b: &mut [f32],
) {
    for (column, &c) in delta[..shape.n_out * n]
        .chunks_exact_mut(shape.n_out)
        .zip(coefficients)
    {
        for (d, g) in column.iter_mut().zip(grad_b.iter_mut()) {
            *d *= c;
            *g += *d;
        }
    }
    matmul(
        view_mut(grad_w, shape.n_out, shape.n_in),
        Accum::Add,
        view(delta, shape.n_out, n),
        view(h, shape.n_in, n).transpose(),
        1.0f32,
        Par::Seq,
    );
}
