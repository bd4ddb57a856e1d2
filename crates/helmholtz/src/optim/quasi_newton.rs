//! Quasi-Newton minimisation: L-BFGS with a strong-Wolfe line search on a function of a flat f64
//! vector that returns its value and gradient together, written in place.
//!
//! * [`LbfgsMemory`] keeps the last `history` steps s and gradient changes y in one buffer
//!   allocated once and used as a ring, with the small matrices SᵀY and YᵀY; the direction −Hg
//!   comes from the compact form of the L-BFGS matrix (Byrd, Nocedal & Schnabel 1994), the same
//!   matrix as the two-loop recursion's (Nocedal & Wright, Algorithm 7.4), with
//!   H₀ = (s·y / y·y) I, in two passes over the memory. The pairs are stored in f64 or, with
//!   [`HistoryPrecision::F32`], in f32 (every product is still formed in f64).
//! * [`line_search`] finds a step with the strong Wolfe conditions (c₁ = 10⁻⁴, c₂ = 0.9) by
//!   bracketing and zooming with safeguarded cubic interpolation (Algorithms 3.5 and 3.6).
//! * A line search that takes more than [`LINE_SEARCH_EVALUATIONS`] evaluations, or whose bracket
//!   collapses without a decrease (a kink or a flat direction), ends the minimisation at the best
//!   point, and the stopping reason says so.
//!
//! Nothing is allocated per iteration: the iterate, its gradient, the trial and the bracket's
//! best point live in buffers made once per minimisation.

use crate::error::{Error, Result};

/// Settings of a full-batch L-BFGS fit.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbfgsConfig {
    /// Number of past steps kept (20; the authors use 200).
    #[serde(default = "defaults::history")]
    pub history: usize,
    /// Maximum number of L-BFGS iterations.
    #[serde(default = "defaults::max_iters")]
    pub max_iters: u64,
    /// Stop when the gradient norm falls below this.
    #[serde(default = "defaults::tol_grad")]
    pub tol_grad: f64,
    /// Stop when the objective changes by less than this between iterations.
    #[serde(default = "defaults::tol_cost")]
    pub tol_cost: f64,
    /// How the memory stores its pairs: "f64" (the default) or "f32".
    #[serde(default)]
    pub history_precision: HistoryPrecision,
}

/// The defaults of [`LbfgsConfig`], shared with the configs that embed its fields.
pub mod defaults {
    /// History 20 (the authors' bars script keeps 200; in f64, 20 reaches the same optimum on
    /// the bars with a fifth of the work per iteration, docs/BENCHMARKS.md).
    pub fn history() -> usize {
        20
    }
    /// At most 20,000 iterations.
    pub fn max_iters() -> u64 {
        20_000
    }
    /// Gradient-norm tolerance.
    pub fn tol_grad() -> f64 {
        1e-6
    }
    /// Objective-change tolerance.
    pub fn tol_cost() -> f64 {
        1e-12
    }
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            history: defaults::history(),
            max_iters: defaults::max_iters(),
            tol_grad: defaults::tol_grad(),
            tol_cost: defaults::tol_cost(),
            history_precision: HistoryPrecision::default(),
        }
    }
}

impl LbfgsConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.history == 0
            || self.max_iters == 0
            || self.tol_grad.is_nan()
            || self.tol_grad < 0.0
            || self.tol_cost.is_nan()
            || self.tol_cost < 0.0
        {
            return Err(Error::Config(format!(
                "L-BFGS needs history ≥ 1, max_iters ≥ 1 and non-negative tolerances, got {self:?}"
            )));
        }
        Ok(())
    }
}

/// Where a minimisation ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Minimum {
    /// The best point found.
    pub param: Vec<f64>,
    /// Its value.
    pub value: f64,
    /// L-BFGS iterations taken.
    pub iterations: u64,
    /// Function evaluations (each with its gradient).
    pub evaluations: u64,
    /// Why it stopped.
    pub stopped: String,
}

/// Evaluations one line search may take before the minimisation stops at its best point.
pub const LINE_SEARCH_EVALUATIONS: u64 = 200;

/// Sufficient-decrease constant of the line search.
const C1: f64 = 1e-4;
/// Curvature constant of the line search (0.9: the usual choice for quasi-Newton directions).
const C2: f64 = 0.9;

/// How the L-BFGS memory stores its pairs: every product with them is computed in f64 either
/// way; f32 halves the memory and the bytes each direction streams, and rounds each stored
/// value to 24 bits (docs/BENCHMARKS.md measures its effect on the fits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryPrecision {
    /// Single precision.
    F32,
    /// Double precision (the default).
    #[default]
    F64,
}

/// A type the memory stores its pairs in (f32 or f64), read back widened to f64.
pub trait HistoryElement: Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    /// Whether this is f32 (the AVX2 loads convert).
    const SINGLE: bool;
    /// The value as f64 (exact).
    fn widen(self) -> f64;
    /// The nearest value of this type.
    fn narrow(v: f64) -> Self;
}

impl HistoryElement for f64 {
    const SINGLE: bool = false;
    #[inline(always)]
    fn widen(self) -> f64 {
        self
    }
    #[inline(always)]
    fn narrow(v: f64) -> Self {
        v
    }
}

impl HistoryElement for f32 {
    const SINGLE: bool = true;
    #[inline(always)]
    fn widen(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn narrow(v: f64) -> Self {
        v as f32
    }
}

/// a·b with eight running sums (so that the loop vectorises), added in a fixed order.
#[inline(always)]
fn dot<A: HistoryElement, B: HistoryElement>(a: &[A], b: &[B]) -> f64 {
    let mut sums = [0.0; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x.widen() * y.widen())
        .sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            sums[k] += x[k].widen() * y[k].widen();
        }
    }
    fold(&sums) + tail
}

/// The eight running sums of [`dot`] added in its fixed order.
#[inline(always)]
fn fold(sums: &[f64; 8]) -> f64 {
    ((sums[0] + sums[4]) + (sums[1] + sums[5])) + ((sums[2] + sums[6]) + (sums[3] + sums[7]))
}

/// (a·b, a·c) in one pass over a, each with eight running sums as in [`dot`].
#[inline(always)]
fn dot2<A: HistoryElement, B: HistoryElement, C: HistoryElement>(
    a: &[A],
    b: &[B],
    c: &[C],
) -> (f64, f64) {
    let (mut sb, mut sc) = ([0.0; 8], [0.0; 8]);
    let (a8, b8, c8) = (a.chunks_exact(8), b.chunks_exact(8), c.chunks_exact(8));
    let (mut tb, mut tc) = (0.0, 0.0);
    for ((x, y), z) in a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .zip(c8.remainder())
    {
        tb += x.widen() * y.widen();
        tc += x.widen() * z.widen();
    }
    for ((x, y), z) in a8.zip(b8).zip(c8) {
        for k in 0..8 {
            sb[k] += x[k].widen() * y[k].widen();
            sc[k] += x[k].widen() * z[k].widen();
        }
    }
    (fold(&sb) + tb, fold(&sc) + tc)
}

/// AVX2 builds of [`dot`] and [`dot2`]: the same eight running sums, each a product rounded and
/// then added (no fused multiply-add), folded in the same order, so that they return the same
/// values bit for bit.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::HistoryElement;
    use std::arch::x86_64::*;

    /// Four values from `p` widened to f64.
    ///
    /// # Safety
    /// `p` points at four readable values.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load<T: HistoryElement>(p: *const T) -> __m256d {
        // SAFETY: the caller's; T is f32 when SINGLE and f64 otherwise.
        unsafe {
            if T::SINGLE {
                _mm256_cvtps_pd(_mm_loadu_ps(p.cast()))
            } else {
                _mm256_loadu_pd(p.cast())
            }
        }
    }

    /// The running sums in lanes 0–3 and 4–7, added as [`super::fold`] adds them.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn fold(lo: __m256d, hi: __m256d) -> f64 {
        let mut v = [0.0; 4];
        // SAFETY: `v` holds four values.
        unsafe { _mm256_storeu_pd(v.as_mut_ptr(), _mm256_add_pd(lo, hi)) };
        (v[0] + v[1]) + (v[2] + v[3])
    }

    /// a·b.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn dot<A: HistoryElement, B: HistoryElement>(a: &[A], b: &[B]) -> f64 {
        let n = a.len();
        assert_eq!(b.len(), n);
        let body = n / 8 * 8;
        let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let (a_, b_) = (a.as_ptr(), b.as_ptr());
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 ≤ body ≤ n, the length of both slices.
            unsafe {
                lo = _mm256_add_pd(lo, _mm256_mul_pd(load(a_.add(i)), load(b_.add(i))));
                hi = _mm256_add_pd(hi, _mm256_mul_pd(load(a_.add(i + 4)), load(b_.add(i + 4))));
            }
        }
        let tail: f64 = a[body..]
            .iter()
            .zip(&b[body..])
            .map(|(x, y)| x.widen() * y.widen())
            .sum();
        fold(lo, hi) + tail
    }

    /// (a·b, a·c).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn dot2<A: HistoryElement, B: HistoryElement, C: HistoryElement>(
        a: &[A],
        b: &[B],
        c: &[C],
    ) -> (f64, f64) {
        let n = a.len();
        assert!(b.len() == n && c.len() == n);
        let body = n / 8 * 8;
        let zero = _mm256_setzero_pd();
        let (mut b_lo, mut b_hi, mut c_lo, mut c_hi) = (zero, zero, zero, zero);
        let (a_, b_, c_) = (a.as_ptr(), b.as_ptr(), c.as_ptr());
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 ≤ body ≤ n, the length of the three slices.
            unsafe {
                let (x_lo, x_hi) = (load(a_.add(i)), load(a_.add(i + 4)));
                b_lo = _mm256_add_pd(b_lo, _mm256_mul_pd(x_lo, load(b_.add(i))));
                b_hi = _mm256_add_pd(b_hi, _mm256_mul_pd(x_hi, load(b_.add(i + 4))));
                c_lo = _mm256_add_pd(c_lo, _mm256_mul_pd(x_lo, load(c_.add(i))));
                c_hi = _mm256_add_pd(c_hi, _mm256_mul_pd(x_hi, load(c_.add(i + 4))));
            }
        }
        let (mut tb, mut tc) = (0.0, 0.0);
        for ((x, y), z) in a[body..].iter().zip(&b[body..]).zip(&c[body..]) {
            tb += x.widen() * y.widen();
            tc += x.widen() * z.widen();
        }
        (fold(b_lo, b_hi) + tb, fold(c_lo, c_hi) + tc)
    }
}

/// Values per block of the parallel passes over the memory. The blocks do not depend on the
/// number of threads, and block sums are added in block order, so neither do the results.
const BLOCK: usize = 8192;

/// Values per chunk: the memory is stored chunk by chunk, each chunk holding that stretch of
/// every pair's s and y side by side, so that a pass over the memory reads one sequential
/// stream while the gradient's chunk stays in L1.
const CHUNK: usize = 1024;

/// Chunks per block.
const CHUNKS_PER_BLOCK: usize = BLOCK / CHUNK;

/// Dot products of one pass over the memory, per held pair i: s_i·g, y_i·g, and, while the
/// newest pair's products are pending, s_i·y_new, s_new·y_i and y_i·y_new.
const DOTS: usize = 5;

/// The L-BFGS memory: the last `history` pairs (s, y) in one buffer allocated once and used as
/// a ring, with the small matrices SᵀY and YᵀY of the held pairs. The direction −Hg uses the
/// compact form of the L-BFGS inverse Hessian (Byrd, Nocedal & Schnabel 1994, eq. 3.1):
///
/// H = γI + [S γY] M [Sᵀ; γYᵀ],  M = [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]],
///
/// with R the upper triangle of SᵀY and D its diagonal, the pairs oldest first. It is the
/// matrix the two-loop recursion applies, but a direction takes two passes over the memory (the
/// products Sᵀg, Yᵀg and the newest pair's entries of SᵀY and YᵀY in one, the combination
/// γg + S p + Y q in the other) where the recursion takes 2·history dependent ones, each a
/// synchronisation of the threads. Each pass runs over blocks of the vectors in parallel
/// (rayon), in an order that does not depend on the number of threads. Pairs whose curvature
/// y·s is not positive are refused, so the implied inverse Hessian stays positive definite.
#[derive(Clone, Debug)]
pub struct LbfgsMemory<T: HistoryElement = f64> {
    n: usize,
    /// Chunk c of slot k's s at `(2 (c·history + k)) · CHUNK`, its y right after it, stored as
    /// T.
    pairs: Vec<T>,
    /// s_i·y_j by slots (row i, column j), `history × history`.
    sy: Vec<f64>,
    /// y_i·y_j by slots, `history × history`.
    yy: Vec<f64>,
    /// Whether the newest pair's products with the older pairs are still to be computed (they
    /// are, in the next direction's first pass).
    pending: bool,
    /// Block sums of the first pass: `blocks × history × DOTS`.
    partials: Vec<f64>,
    /// The small buffers of one direction, allocated once.
    small: Small,
    /// Pairs held (≤ history).
    len: usize,
    /// Pairs the memory can hold.
    history: usize,
    /// Slot of the next pair.
    next: usize,
}

impl<T: HistoryElement> LbfgsMemory<T> {
    /// An empty memory of `history` pairs of vectors of length `n`.
    pub fn new(n: usize, history: usize) -> Self {
        let history = history.max(1);
        LbfgsMemory {
            n,
            pairs: vec![T::default(); 2 * history * n.div_ceil(CHUNK) * CHUNK],
            sy: vec![0.0; history * history],
            yy: vec![0.0; history * history],
            pending: false,
            partials: vec![0.0; n.div_ceil(BLOCK).max(1) * history * DOTS],
            small: Small::new(history),
            len: 0,
            history,
            next: 0,
        }
    }

    /// Pairs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every pair.
    pub fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
        self.pending = false;
    }

    /// Age of the pair in slot k (0: the newest); held when below `len`.
    fn age(&self, k: usize) -> usize {
        (self.next + 2 * self.history - 1 - k) % self.history
    }

    /// Slot of the i-th newest pair (0: the newest).
    fn slot(&self, i: usize) -> usize {
        (self.next + self.history - 1 - i) % self.history
    }

    /// Adds the pair s = x_new − x, y = g_new − g, written straight into its slot (rounded to
    /// T); returns false (and keeps the memory as it was) when y·s ≤ 10⁻¹⁰ ‖y‖ ‖s‖ for the
    /// pair as stored. Its products with the older pairs are left to the next
    /// [`direction`](Self::direction).
    pub fn push(&mut self, x_new: &[f64], x: &[f64], g_new: &[f64], g: &[f64]) -> bool {
        let n = self.n;
        let (mut ys, mut ss, mut yy) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let s = T::narrow(x_new[i] - x[i]).widen();
            let y = T::narrow(g_new[i] - g[i]).widen();
            ys += y * s;
            ss += s * s;
            yy += y * y;
        }
        let curved = ys > 1e-10 * (ss * yy).sqrt();
        if !curved {
            return false;
        }
        if self.pending {
            // Two pushes without a direction between them: the previous pair's products are
            // computed now, before the slot of its oldest partner is reused.
            let zero = vec![0.0; n];
            self.first_pass(&zero, &mut [], &mut []);
        }
        let (h, k) = (self.history, self.next);
        for (c, lo) in (0..n).step_by(CHUNK).enumerate() {
            let hi = (lo + CHUNK).min(n);
            let at = offset(c, k, self.history);
            let (s, y) = self.pairs[at..at + 2 * CHUNK].split_at_mut(CHUNK);
            for i in lo..hi {
                s[i - lo] = T::narrow(x_new[i] - x[i]);
                y[i - lo] = T::narrow(g_new[i] - g[i]);
            }
        }
        self.sy[k * h + k] = ys;
        self.yy[k * h + k] = yy;
        self.next = (k + 1) % h;
        self.len = (self.len + 1).min(h);
        self.pending = self.len > 1;
        true
    }

    /// One pass over the memory: a_i = s_i·g and b_i = y_i·g for the held pairs (by age, 0 the
    /// newest), and the pending products of the newest pair, which it stores in SᵀY and YᵀY.
    /// `a` and `b` may be empty (no gradient wanted).
    fn first_pass(&mut self, g: &[f64], a: &mut [f64], b: &mut [f64]) {
        use rayon::prelude::*;
        let (n, h, m) = (self.n, self.history, self.len);
        let mut held = std::mem::take(&mut self.small.held);
        let mut sums = std::mem::take(&mut self.small.sums);
        // Held slots in memory order, with their ages.
        held.clear();
        held.extend((0..h).map(|k| (k, self.age(k))).filter(|&(_, age)| age < m));
        let newest = self.slot(0);
        let pending = self.pending;
        let mut partials = std::mem::take(&mut self.partials);
        let stride = h * DOTS;
        let blocks = n.div_ceil(BLOCK);
        let job = FirstPass {
            pairs: &self.pairs,
            g,
            n,
            history: h,
            newest,
            held: &held,
            pending,
        };
        partials[..blocks * stride]
            .par_chunks_mut(stride)
            .enumerate()
            .for_each(|(block, out)| job.block(block, out));
        sums.clear();
        sums.resize(m * DOTS, 0.0);
        for out in partials[..blocks * stride].chunks(stride) {
            sums.iter_mut().zip(out).for_each(|(t, v)| *t += v);
        }
        self.partials = partials;
        for &(k, age) in &held {
            let o = &sums[age * DOTS..(age + 1) * DOTS];
            if let (Some(a), Some(b)) = (a.get_mut(age), b.get_mut(age)) {
                *a = o[0];
                *b = o[1];
            }
            if pending && age > 0 {
                self.sy[k * h + newest] = o[2];
                self.sy[newest * h + k] = o[3];
                self.yy[k * h + newest] = o[4];
                self.yy[newest * h + k] = o[4];
            }
        }
        self.pending = false;
        self.small.held = held;
        self.small.sums = sums;
    }

    /// d = −H g with the compact form, H₀ = γI, γ = s·y / y·y of the newest pair (1 when the
    /// memory is empty).
    pub fn direction(&mut self, g: &[f64], d: &mut [f64]) {
        use rayon::prelude::*;
        let (h, m) = (self.history, self.len);
        if m == 0 {
            d.iter_mut().zip(g).for_each(|(d, g)| *d = -g);
            return;
        }
        // Sᵀg and Yᵀg by age, then turned oldest first.
        let (mut a, mut b) = (
            std::mem::take(&mut self.small.a),
            std::mem::take(&mut self.small.b),
        );
        a.clear();
        a.resize(m, 0.0);
        b.clear();
        b.resize(m, 0.0);
        self.first_pass(g, &mut a, &mut b);
        a.reverse();
        b.reverse();
        let mut slots = std::mem::take(&mut self.small.slots);
        let mut p = std::mem::take(&mut self.small.p);
        let mut weights = std::mem::take(&mut self.small.weights);
        slots.clear();
        slots.extend((0..m).rev().map(|i| self.slot(i)));
        let sy = |i: usize, j: usize| self.sy[slots[i] * h + slots[j]];
        let yy = |i: usize, j: usize| self.yy[slots[i] * h + slots[j]];
        let newest = m - 1;
        let gamma = sy(newest, newest) / yy(newest, newest);
        // q = R⁻¹ a (R upper triangular: R_ij = s_i·y_j, i ≤ j).
        let mut q = a;
        for i in (0..m).rev() {
            let t = (i + 1..m).fold(q[i], |t, j| t - sy(i, j) * q[j]);
            q[i] = t / sy(i, i);
        }
        // p = R⁻ᵀ ((D + γ YᵀY) q − γ b).
        p.clear();
        p.extend((0..m).map(|i| {
            let yyq: f64 = (0..m).map(|j| yy(i, j) * q[j]).sum();
            sy(i, i) * q[i] + gamma * (yyq - b[i])
        }));
        for i in 0..m {
            let t = (0..i).fold(p[i], |t, j| t - sy(j, i) * p[j]);
            p[i] = t / sy(i, i);
        }
        // d = −(γ g + S p − γ Y q), over blocks in parallel, the pairs oldest first (so that
        // the result does not depend on where the ring starts).
        weights.clear();
        weights.extend((0..m).map(|i| (slots[i], -p[i], gamma * q[i])));
        let job = SecondPass {
            pairs: &self.pairs,
            history: h,
            weights: &weights,
            gamma,
        };
        d.par_chunks_mut(BLOCK)
            .zip(g.par_chunks(BLOCK))
            .enumerate()
            .for_each(|(block, (d, g))| job.block(block, g, d));
        self.small.slots = slots;
        self.small.p = p;
        self.small.weights = weights;
        self.small.a = q;
        self.small.b = b;
    }
}

/// The buffers of one direction in the history's dimension, kept between directions so that
/// an iteration allocates nothing.
#[derive(Clone, Debug)]
struct Small {
    /// Held slots in memory order, with their ages.
    held: Vec<(usize, usize)>,
    /// The first pass's sums, by age.
    sums: Vec<f64>,
    /// Sᵀg (then R⁻¹Sᵀg) and Yᵀg, oldest pair first.
    a: Vec<f64>,
    b: Vec<f64>,
    /// Slots, oldest pair first.
    slots: Vec<usize>,
    p: Vec<f64>,
    /// (slot, weight of s, weight of y), oldest pair first.
    weights: Vec<(usize, f64, f64)>,
}

impl Small {
    fn new(history: usize) -> Self {
        Small {
            held: Vec::with_capacity(history),
            sums: Vec::with_capacity(history * DOTS),
            a: Vec::with_capacity(history),
            b: Vec::with_capacity(history),
            slots: Vec::with_capacity(history),
            p: Vec::with_capacity(history),
            weights: Vec::with_capacity(history),
        }
    }
}

/// Offset of chunk c of slot k's s in a memory of `history` pairs (its y follows it).
fn offset(c: usize, k: usize, history: usize) -> usize {
    2 * (c * history + k) * CHUNK
}

/// What the first pass over the memory reads.
struct FirstPass<'a, T> {
    pairs: &'a [T],
    g: &'a [f64],
    n: usize,
    history: usize,
    newest: usize,
    /// Held slots in memory order, with their ages.
    held: &'a [(usize, usize)],
    pending: bool,
}

impl<T: HistoryElement> FirstPass<'_, T> {
    /// One block's sums (`history × DOTS`, by age) into `out`; an AVX2 + FMA build of the same
    /// code where the CPU has it (the same sums, in the same order).
    fn block(&self, block: usize, out: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if crate::math::numerics::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { self.block_avx2(block, out) };
            return;
        }
        self.block_generic(block, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn block_avx2(&self, block: usize, out: &mut [f64]) {
        // SAFETY (both): the caller checked that the CPU has AVX2.
        self.block_with(
            block,
            out,
            |a, b| avx2::dot(a, b),
            |a, b| avx2::dot(a, b),
            |a, b, c| avx2::dot2(a, b, c),
        );
    }

    fn block_generic(&self, block: usize, out: &mut [f64]) {
        self.block_with(block, out, dot, dot, dot2);
    }

    #[inline(always)]
    fn block_with(
        &self,
        block: usize,
        out: &mut [f64],
        dot: impl Fn(&[T], &[T]) -> f64,
        dot_g: impl Fn(&[T], &[f64]) -> f64,
        dot2: impl Fn(&[T], &[f64], &[T]) -> (f64, f64),
    ) {
        let (n, h) = (self.n, self.history);
        out.iter_mut().for_each(|v| *v = 0.0);
        let chunks = n.div_ceil(CHUNK);
        for c in block * CHUNKS_PER_BLOCK..((block + 1) * CHUNKS_PER_BLOCK).min(chunks) {
            let lo = c * CHUNK;
            let len = CHUNK.min(n - lo);
            let gc = &self.g[lo..lo + len];
            let at = offset(c, self.newest, h);
            let s_new = &self.pairs[at..at + len];
            let y_new = &self.pairs[at + CHUNK..at + CHUNK + len];
            for &(k, age) in self.held {
                let at = offset(c, k, h);
                let si = &self.pairs[at..at + len];
                let yi = &self.pairs[at + CHUNK..at + CHUNK + len];
                let o = &mut out[age * DOTS..(age + 1) * DOTS];
                if self.pending {
                    let (sg, syn) = dot2(si, gc, y_new);
                    let (yg, yyn) = dot2(yi, gc, y_new);
                    o[0] += sg;
                    o[1] += yg;
                    o[2] += syn;
                    o[3] += dot(s_new, yi);
                    o[4] += yyn;
                } else {
                    o[0] += dot_g(si, gc);
                    o[1] += dot_g(yi, gc);
                }
            }
        }
    }
}

/// What the second pass over the memory reads: d = −γg + Σ (w_s s + w_y y) over the pairs in
/// `weights` (slot, w_s, w_y), in their order.
struct SecondPass<'a, T> {
    pairs: &'a [T],
    history: usize,
    weights: &'a [(usize, f64, f64)],
    gamma: f64,
}

impl<T: HistoryElement> SecondPass<'_, T> {
    /// One block of d; an AVX2 + FMA build of the same code where the CPU has it.
    fn block(&self, block: usize, g: &[f64], d: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if crate::math::numerics::has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            unsafe { self.block_avx2(block, g, d) };
            return;
        }
        self.block_generic(block, g, d);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn block_avx2(&self, block: usize, g: &[f64], d: &mut [f64]) {
        self.block_generic(block, g, d);
    }

    #[inline(always)]
    fn block_generic(&self, block: usize, g: &[f64], d: &mut [f64]) {
        for (i, (d, g)) in d.chunks_mut(CHUNK).zip(g.chunks(CHUNK)).enumerate() {
            let c = block * CHUNKS_PER_BLOCK + i;
            let len = d.len();
            d.iter_mut().zip(g).for_each(|(d, g)| *d = -self.gamma * g);
            for &(k, ws, wy) in self.weights {
                let at = offset(c, k, self.history);
                let si = &self.pairs[at..at + len];
                let yi = &self.pairs[at + CHUNK..at + CHUNK + len];
                for ((d, s), y) in d.iter_mut().zip(si).zip(yi) {
                    *d += ws * s.widen() + wy * y.widen();
                }
            }
        }
    }
}

/// A point of the line search: step α, value φ(α) and slope φ'(α).
#[derive(Clone, Copy, Debug)]
struct Probe {
    alpha: f64,
    value: f64,
    slope: f64,
}

/// How a line search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// A step with the strong Wolfe conditions: the trial buffers hold it.
    Wolfe,
    /// No Wolfe step within the evaluations, but a decrease: the best buffers hold it.
    Decrease,
    /// No decrease found.
    Failed,
}

/// Buffers of one minimisation: the trial point and the best point of the bracket, each with
/// its gradient.
struct Work {
    x_trial: Vec<f64>,
    g_trial: Vec<f64>,
    x_best: Vec<f64>,
    g_best: Vec<f64>,
}

/// Safeguarded cubic interpolation of the minimiser between `a` and `b` (N&W eq. 3.59), kept
/// within the middle 80 % of the interval; bisection where the cubic has no minimiser.
fn cubic(a: Probe, b: Probe) -> f64 {
    let (lo, hi) = (a.alpha.min(b.alpha), a.alpha.max(b.alpha));
    let width = hi - lo;
    let d1 = a.slope + b.slope - 3.0 * (a.value - b.value) / (a.alpha - b.alpha);
    let radicand = d1 * d1 - a.slope * b.slope;
    let mut alpha = f64::NAN;
    if radicand >= 0.0 && b.value.is_finite() && b.slope.is_finite() {
        let d2 = (b.alpha - a.alpha).signum() * radicand.sqrt();
        alpha =
            b.alpha - (b.alpha - a.alpha) * (b.slope + d2 - d1) / (b.slope - a.slope + 2.0 * d2);
    }
    if !(alpha.is_finite() && alpha >= lo + 0.1 * width && alpha <= hi - 0.1 * width) {
        alpha = 0.5 * (lo + hi);
    }
    alpha
}

/// A strong-Wolfe line search along `d` from `x` (value `f0`, slope `slope0` < 0), starting at
/// step `alpha0`. Each evaluation writes x + αd and its gradient into the work's trial buffers;
/// the best point with a sufficient decrease is kept in its best buffers. Returns how it ended,
/// the probe of the point it ended at, and the evaluations it made (at most `max_evaluations`).
#[allow(clippy::too_many_arguments)]
fn line_search<F>(
    function: &mut F,
    x: &[f64],
    d: &[f64],
    f0: f64,
    slope0: f64,
    alpha0: f64,
    max_evaluations: u64,
    work: &mut Work,
) -> Result<(Search, Probe, u64)>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
{
    let mut evaluations = 0;
    let mut evaluate = |alpha: f64, work: &mut Work| -> Result<Probe> {
        for ((t, x), d) in work.x_trial.iter_mut().zip(x).zip(d) {
            *t = x + alpha * d;
        }
        let value = function(&work.x_trial, &mut work.g_trial)?;
        let slope = dot(&work.g_trial, d);
        Ok(Probe {
            alpha,
            value,
            slope,
        })
    };
    let start = Probe {
        alpha: 0.0,
        value: f0,
        slope: slope0,
    };
    let sufficient = |p: &Probe| p.value <= f0 + C1 * p.alpha * slope0;
    let curvature = |p: &Probe| p.slope.abs() <= -C2 * slope0;
    // The best point with a sufficient decrease (α = 0: none yet).
    let mut best = start;
    let keep = |work: &mut Work| {
        std::mem::swap(&mut work.x_trial, &mut work.x_best);
        std::mem::swap(&mut work.g_trial, &mut work.g_best);
    };
    let ended = |best: Probe| {
        if best.alpha > 0.0 {
            (Search::Decrease, best)
        } else {
            (Search::Failed, best)
        }
    };
    // Bracketing (Algorithm 3.5).
    let mut previous = start;
    let mut alpha = alpha0;
    let (mut lo, mut hi);
    loop {
        if evaluations >= max_evaluations {
            let (search, probe) = ended(best);
            return Ok((search, probe, evaluations));
        }
        let trial = evaluate(alpha, work)?;
        evaluations += 1;
        if !sufficient(&trial) || (previous.alpha > 0.0 && trial.value >= previous.value) {
            (lo, hi) = (previous, trial);
            break;
        }
        if curvature(&trial) {
            return Ok((Search::Wolfe, trial, evaluations));
        }
        keep(work);
        best = trial;
        if trial.slope >= 0.0 {
            (lo, hi) = (trial, previous);
            break;
        }
        previous = trial;
        alpha = if alpha.is_finite() {
            4.0 * alpha
        } else {
            alpha
        };
        if !alpha.is_finite() {
            let (search, probe) = ended(best);
            return Ok((search, probe, evaluations));
        }
    }
    // Zoom (Algorithm 3.6): lo has a sufficient decrease and the lowest value so far; the
    // minimiser lies between lo and hi.
    loop {
        let width = (hi.alpha - lo.alpha).abs();
        if evaluations >= max_evaluations || width <= 1e-16 * lo.alpha.abs().max(hi.alpha.abs()) {
            let (search, probe) = ended(best);
            return Ok((search, probe, evaluations));
        }
        let alpha = cubic(lo, hi);
        let trial = evaluate(alpha, work)?;
        evaluations += 1;
        if !sufficient(&trial) || trial.value >= lo.value {
            hi = trial;
        } else {
            if curvature(&trial) {
                return Ok((Search::Wolfe, trial, evaluations));
            }
            keep(work);
            best = trial;
            if trial.slope * (hi.alpha - lo.alpha) >= 0.0 {
                hi = lo;
            }
            lo = trial;
        }
    }
}

/// The stopping reason of a stalled line search.
fn stalled(evaluations: u64) -> String {
    format!(
        "a line search made no progress in {evaluations} evaluations (a kink or a flat direction); the best point found is kept"
    )
}

/// Minimises `function` (value and gradient at a point) from `start` with L-BFGS.
/// `progress(iteration, value)` is called after every iteration.
pub fn minimize(
    function: impl Fn(&[f64]) -> Result<(f64, Vec<f64>)>,
    start: Vec<f64>,
    config: &LbfgsConfig,
    mut progress: impl FnMut(u64, f64),
) -> Result<Minimum> {
    let mut point = start;
    let in_place = |p: &[f64], g: &mut [f64]| -> Result<f64> {
        let (value, grad) = function(p)?;
        if grad.len() != g.len() {
            return Err(Error::Dimension(format!(
                "the objective returned a gradient of {} values for {} parameters",
                grad.len(),
                g.len()
            )));
        }
        g.copy_from_slice(&grad);
        Ok(value)
    };
    minimize_in_place(in_place, &mut point, config, |i, value| {
        progress(i, value);
        Ok(())
    })
}

/// Minimises `function`, which writes the gradient at a point into its second argument and
/// returns the value, from `point`, which ends at the best point found. `progress(iteration,
/// value)` runs after every iteration; an error from it stops the minimisation (at the last
/// iterate) and is returned. An error from `function` is returned as [`Error::Diverged`].
pub fn minimize_in_place<F, P>(
    function: F,
    point: &mut Vec<f64>,
    config: &LbfgsConfig,
    progress: P,
) -> Result<Minimum>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    P: FnMut(u64, f64) -> Result<()>,
{
    config.validate()?;
    match config.history_precision {
        HistoryPrecision::F64 => minimize_with::<f64, F, P>(function, point, config, progress),
        HistoryPrecision::F32 => minimize_with::<f32, F, P>(function, point, config, progress),
    }
}

/// [`minimize_in_place`] with the memory stored as T.
fn minimize_with<T, F, P>(
    mut function: F,
    point: &mut Vec<f64>,
    config: &LbfgsConfig,
    mut progress: P,
) -> Result<Minimum>
where
    T: HistoryElement,
    F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    P: FnMut(u64, f64) -> Result<()>,
{
    let n = point.len();
    let diverged = |e: Error| match e {
        Error::Diverged(m) => Error::Diverged(format!("L-BFGS: {m}")),
        other => Error::Diverged(format!("L-BFGS: {other}")),
    };
    let mut g = vec![0.0; n];
    let mut f = function(point, &mut g).map_err(diverged)?;
    if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return Err(Error::Diverged(format!(
            "L-BFGS: the objective is not finite at the start (value {f})"
        )));
    }
    let mut memory = LbfgsMemory::<T>::new(n, config.history);
    let mut d = vec![0.0; n];
    let mut work = Work {
        x_trial: vec![0.0; n],
        g_trial: vec![0.0; n],
        x_best: vec![0.0; n],
        g_best: vec![0.0; n],
    };
    let mut evaluations = 1;
    let mut iterations = 0;
    let stopped = loop {
        let norm = dot(&g, &g).sqrt();
        if norm <= config.tol_grad {
            break format!("gradient norm {norm:.3e} below tol_grad");
        }
        if iterations >= config.max_iters {
            break "maximum number of iterations reached".to_string();
        }
        memory.direction(&g, &mut d);
        let mut slope = dot(&g, &d);
        let descending = slope < 0.0;
        if !descending {
            // Not a descent direction (rounding in a long memory): restart from −g.
            memory.clear();
            d.iter_mut().zip(&g).for_each(|(d, g)| *d = -g);
            slope = -norm * norm;
        }
        let alpha0 = if memory.is_empty() {
            (1.0 / norm).min(1.0)
        } else {
            1.0
        };
        let (search, probe, used) = line_search(
            &mut function,
            point,
            &d,
            f,
            slope,
            alpha0,
            LINE_SEARCH_EVALUATIONS,
            &mut work,
        )
        .map_err(diverged)?;
        evaluations += used;
        let (x_new, g_new) = match search {
            Search::Wolfe => (&mut work.x_trial, &mut work.g_trial),
            Search::Decrease => (&mut work.x_best, &mut work.g_best),
            Search::Failed => break stalled(used),
        };
        memory.push(x_new, point, g_new, &g);
        std::mem::swap(point, x_new);
        std::mem::swap(&mut g, g_new);
        let previous = f;
        f = probe.value;
        iterations += 1;
        progress(iterations, f)?;
        if search == Search::Decrease {
            break stalled(used);
        }
        if (previous - f).abs() < config.tol_cost {
            break format!(
                "objective change {:.3e} below tol_cost",
                (previous - f).abs()
            );
        }
    };
    Ok(Minimum {
        param: point.clone(),
        value: f,
        iterations,
        evaluations,
        stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use faer::Mat;

    /// The compact form applies the L-BFGS inverse Hessian, which for a memory that holds
    /// every pair is the dense BFGS inverse built from H₀ = γI by the same updates
    /// H ← (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ.
    #[test]
    fn the_compact_form_is_the_dense_bfgs_inverse() {
        let n = 6;
        let mut rng = Stream::new(1, &[]);
        // A positive-definite quadratic's Hessian.
        let a = Mat::from_fn(n, n, |_, _| rng.normal());
        let hessian = &a * a.transpose() + Mat::<f64>::identity(n, n);
        // A random step s and its gradient change y = H s on the quadratic.
        let random_pair = |rng: &mut Stream| {
            let s: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let y: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| hessian[(i, j)] * s[j]).sum())
                .collect();
            (s, y)
        };
        let mut memory = LbfgsMemory::<f64>::new(n, 4);
        let mut pairs = Vec::new();
        for _ in 0..4 {
            let (s, y) = random_pair(&mut rng);
            let zero = vec![0.0; n];
            assert!(memory.push(&s, &zero, &y, &zero));
            pairs.push((s, y));
        }
        let (s_last, y_last) = pairs.last().unwrap();
        let gamma = dot(s_last, y_last) / dot(y_last, y_last);
        let mut h = Mat::<f64>::identity(n, n) * faer::Scale(gamma);
        for (s, y) in &pairs {
            let rho = 1.0 / dot(s, y);
            let s = Mat::from_fn(n, 1, |i, _| s[i]);
            let y = Mat::from_fn(n, 1, |i, _| y[i]);
            let left = Mat::<f64>::identity(n, n) - &s * y.transpose() * faer::Scale(rho);
            h = &left * &h * left.transpose() + &s * s.transpose() * faer::Scale(rho);
        }
        let g: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mut d = vec![0.0; n];
        memory.direction(&g, &mut d);
        for i in 0..n {
            let dense: f64 = -(0..n).map(|j| h[(i, j)] * g[j]).sum::<f64>();
            assert!(
                (d[i] - dense).abs() < 1e-10 * (1.0 + dense.abs()),
                "{i}: {} vs {dense}",
                d[i]
            );
        }
        // The ring drops the oldest pair: with history 4, a fifth pair replaces the first.
        let (s, y) = random_pair(&mut rng);
        let zero = vec![0.0; n];
        assert!(memory.push(&s, &zero, &y, &zero));
        assert_eq!(memory.len(), 4);
        let mut kept = LbfgsMemory::<f64>::new(n, 4);
        for (s, y) in pairs[1..]
            .iter()
            .chain(std::iter::once(&(s.clone(), y.clone())))
        {
            kept.push(s, &zero, y, &zero);
        }
        let (mut d1, mut d2) = (vec![0.0; n], vec![0.0; n]);
        memory.direction(&g, &mut d1);
        kept.direction(&g, &mut d2);
        assert_eq!(d1, d2);
        // A pair without positive curvature is refused.
        let before = memory.len();
        let negative: Vec<f64> = s.iter().map(|v| -v).collect();
        assert!(!memory.push(&s, &zero, &negative, &zero));
        assert_eq!(memory.len(), before);
    }

    /// Long vectors go through the blocked parallel passes: the same direction for one and
    /// two threads, bit for bit, and the plain two-loop recursion's to rounding.
    #[test]
    fn the_blocked_passes_do_not_depend_on_the_threads() {
        let n = 3 * BLOCK + 5;
        let mut rng = Stream::new(2, &[]);
        let mut memory = LbfgsMemory::<f64>::new(n, 5);
        let zero = vec![0.0; n];
        let mut pairs = Vec::new();
        for _ in 0..7 {
            let s: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let y: Vec<f64> = s
                .iter()
                .map(|v| v * (1.5 + rng.uniform_f64()) + 0.01 * rng.normal())
                .collect();
            assert!(memory.push(&s, &zero, &y, &zero));
            pairs.push((s, y));
        }
        let g: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let direction = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut d = vec![0.0; n];
            let mut memory = memory.clone();
            pool.install(|| memory.direction(&g, &mut d));
            d
        };
        let (one, two) = (direction(1), direction(2));
        assert_eq!(one, two);
        // The plain two-loop recursion over the newest five pairs.
        let naive = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let kept = &pairs[2..];
        let mut q = g.clone();
        let mut alphas = vec![0.0; kept.len()];
        for (i, (s, y)) in kept.iter().enumerate().rev() {
            alphas[i] = naive(s, &q) / naive(y, s);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= alphas[i] * y);
        }
        let (s, y) = kept.last().unwrap();
        let gamma = naive(s, y) / naive(y, y);
        q.iter_mut().for_each(|q| *q *= gamma);
        for (i, (s, y)) in kept.iter().enumerate() {
            let b = naive(y, &q) / naive(y, s);
            q.iter_mut()
                .zip(s)
                .for_each(|(q, s)| *q += (alphas[i] - b) * s);
        }
        for (d, q) in one.iter().zip(&q) {
            assert!((d + q).abs() < 1e-9 * (1.0 + q.abs()), "{d} vs {}", -q);
        }
    }

    /// A pair refused for its curvature leaves a full memory as it was (it used to overwrite
    /// the oldest pair's vectors); two pushes without a direction between them give the
    /// direction of pushes each followed by one, bit for bit.
    #[test]
    fn refused_and_consecutive_pushes_keep_the_memory() {
        let n = BLOCK + 3 * CHUNK + 7;
        let mut rng = Stream::new(3, &[]);
        let pairs: Vec<(Vec<f64>, Vec<f64>)> = (0..5)
            .map(|_| {
                let s: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
                let y = s.iter().map(|v| v * (1.0 + rng.uniform_f64())).collect();
                (s, y)
            })
            .collect();
        let g: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let zero = vec![0.0; n];
        let (mut stepwise, mut batched) =
            (LbfgsMemory::<f64>::new(n, 3), LbfgsMemory::<f64>::new(n, 3));
        let mut d = vec![0.0; n];
        for (s, y) in &pairs {
            assert!(stepwise.push(s, &zero, y, &zero));
            stepwise.direction(&g, &mut d);
            assert!(batched.push(s, &zero, y, &zero));
        }
        let mut e = vec![0.0; n];
        batched.direction(&g, &mut e);
        assert_eq!(d, e);
        let (s, _) = &pairs[0];
        let negative: Vec<f64> = s.iter().map(|v| -v).collect();
        assert!(!stepwise.push(s, &zero, &negative, &zero));
        stepwise.direction(&g, &mut e);
        assert_eq!(d, e);
    }

    /// The AVX2 builds of the dot products and of both passes return what the portable code
    /// returns, bit for bit, at every length modulo the eight running sums.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_passes_match_the_portable_ones() {
        if !crate::math::numerics::has_avx2_fma() {
            return;
        }
        let mut rng = Stream::new(4, &[]);
        for n in [0, 1, 7, 8, 9, 15, 16, 1000] {
            let v: Vec<Vec<f64>> = (0..3)
                .map(|_| (0..n).map(|_| rng.normal()).collect())
                .collect();
            // SAFETY: the CPU has AVX2 (checked above).
            let (one, two) = unsafe { (avx2::dot(&v[0], &v[1]), avx2::dot2(&v[0], &v[1], &v[2])) };
            assert_eq!(one.to_bits(), dot(&v[0], &v[1]).to_bits(), "{n}");
            let (b, c) = dot2(&v[0], &v[1], &v[2]);
            assert_eq!(
                (two.0.to_bits(), two.1.to_bits()),
                (b.to_bits(), c.to_bits()),
                "{n}"
            );
        }
        avx2_passes_match::<f64>(&mut rng);
        avx2_passes_match::<f32>(&mut rng);
    }

    /// Both passes over a memory stored as T, AVX2 against portable, bit for bit.
    #[cfg(target_arch = "x86_64")]
    fn avx2_passes_match<T: HistoryElement>(rng: &mut Stream) {
        let n = BLOCK + 2 * CHUNK + 13;
        let mut memory = LbfgsMemory::<T>::new(n, 4);
        let zero = vec![0.0; n];
        for _ in 0..6 {
            let s: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let y: Vec<f64> = s.iter().map(|v| v * (1.0 + rng.uniform_f64())).collect();
            memory.push(&s, &zero, &y, &zero);
        }
        let g: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let held: Vec<(usize, usize)> = (0..4).map(|k| (k, memory.age(k))).collect();
        for pending in [true, false] {
            let job = FirstPass {
                pairs: &memory.pairs,
                g: &g,
                n,
                history: 4,
                newest: memory.slot(0),
                held: &held,
                pending,
            };
            for block in 0..2 {
                let (mut fast, mut plain) = (vec![0.0; 4 * DOTS], vec![0.0; 4 * DOTS]);
                job.block(block, &mut fast);
                job.block_generic(block, &mut plain);
                assert_eq!(fast, plain);
            }
        }
        let weights: Vec<(usize, f64, f64)> =
            (0..4).map(|k| (k, rng.normal(), rng.normal())).collect();
        let job = SecondPass {
            pairs: &memory.pairs,
            history: 4,
            weights: &weights,
            gamma: 0.7,
        };
        for block in 0..2 {
            let end = ((block + 1) * BLOCK).min(n);
            let g = &g[block * BLOCK..end];
            let (mut fast, mut plain) = (vec![0.0; g.len()], vec![0.0; g.len()]);
            job.block(block, g, &mut fast);
            job.block_generic(block, g, &mut plain);
            assert_eq!(fast, plain);
        }
    }

    /// A memory stored in f32 gives the direction of the same pairs stored in f64 to the
    /// rounding of its stored values (relative 1e-6 here), and is the f64 direction of the
    /// pairs rounded to f32 to rounding.
    #[test]
    fn an_f32_memory_gives_the_f64_direction_to_its_rounding() {
        let n = 2 * BLOCK + 37;
        let mut rng = Stream::new(5, &[]);
        let (mut single, mut double, mut rounded) = (
            LbfgsMemory::<f32>::new(n, 6),
            LbfgsMemory::<f64>::new(n, 6),
            LbfgsMemory::<f64>::new(n, 6),
        );
        let zero = vec![0.0; n];
        let g: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let (mut d32, mut d64, mut d_rounded) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for _ in 0..9 {
            let s: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let y: Vec<f64> = s
                .iter()
                .map(|v| v * (1.0 + 3.0 * rng.uniform_f64()) + 0.1 * rng.normal())
                .collect();
            let round = |v: &[f64]| v.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>();
            assert!(single.push(&s, &zero, &y, &zero));
            assert!(double.push(&s, &zero, &y, &zero));
            assert!(rounded.push(&round(&s), &zero, &round(&y), &zero));
            single.direction(&g, &mut d32);
            double.direction(&g, &mut d64);
            rounded.direction(&g, &mut d_rounded);
            let norm = dot(&d64, &d64).sqrt();
            let gap: Vec<f64> = d32.iter().zip(&d64).map(|(a, b)| a - b).collect();
            assert!(dot(&gap, &gap).sqrt() < 1e-6 * norm);
            for (a, b) in d32.iter().zip(&d_rounded) {
                assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    /// On a quadratic with exact line searches L-BFGS with a full memory ends in n steps; with
    /// Wolfe steps it still converges fast. Rosenbrock's valley from (−1.2, 1) is the classic
    /// test of the line search.
    #[test]
    fn lbfgs_minimises_a_quadratic_and_rosenbrock() {
        let n = 20;
        let diagonal: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 * 5.0).collect();
        let quadratic = |x: &[f64], g: &mut [f64]| {
            let mut f = 0.0;
            for i in 0..x.len() {
                g[i] = diagonal[i] * (x[i] - 1.0);
                f += 0.5 * diagonal[i] * (x[i] - 1.0).powi(2);
            }
            Ok(f)
        };
        for history_precision in [HistoryPrecision::F64, HistoryPrecision::F32] {
            let config = LbfgsConfig {
                tol_grad: 1e-10,
                tol_cost: 0.0,
                history_precision,
                ..LbfgsConfig::default()
            };
            let mut x = vec![0.0; n];
            let minimum = minimize_in_place(quadratic, &mut x, &config, |_, _| Ok(())).unwrap();
            assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-9), "{x:?}");
            assert!(minimum.iterations < 60, "{minimum:?}");
            assert!(minimum.stopped.contains("tol_grad"), "{}", minimum.stopped);

            let rosenbrock = |x: &[f64]| {
                let (a, b) = (x[0], x[1]);
                Ok((
                    (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2),
                    vec![
                        -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
                        200.0 * (b - a * a),
                    ],
                ))
            };
            let mut seen = 0;
            let minimum = minimize(rosenbrock, vec![-1.2, 1.0], &config, |_, _| seen += 1).unwrap();
            assert!((minimum.param[0] - 1.0).abs() < 1e-8 && (minimum.param[1] - 1.0).abs() < 1e-8);
            assert!(
                minimum.iterations < 100 && minimum.evaluations < 200,
                "{minimum:?}"
            );
            assert_eq!(seen, minimum.iterations);
        }
    }

    /// Each line search ends at a point with the strong Wolfe conditions, checked on a
    /// non-convex function; a function that only rises along the direction ends the search
    /// without a step.
    #[test]
    fn line_searches_meet_the_strong_wolfe_conditions_or_report_failure() {
        // φ along x: a sum of bumps with a decreasing trend.
        let mut f = |x: &[f64], g: &mut [f64]| {
            g[0] = -1.0 + 3.0 * (3.0 * x[0]).cos();
            Ok(-x[0] + (3.0 * x[0]).sin())
        };
        let mut work = Work {
            x_trial: vec![0.0],
            g_trial: vec![0.0],
            x_best: vec![0.0],
            g_best: vec![0.0],
        };
        for start in [0.1, 0.7, 1.5, 2.4] {
            let mut g0 = [0.0];
            let f0 = f(&[start], &mut g0).unwrap();
            let d = [-g0[0].signum()];
            let slope0 = g0[0] * d[0];
            for alpha0 in [1e-3, 1.0, 50.0] {
                let (search, probe, used) =
                    line_search(&mut f, &[start], &d, f0, slope0, alpha0, 200, &mut work).unwrap();
                assert_eq!(search, Search::Wolfe, "start {start}, α₀ {alpha0}");
                assert!(probe.value <= f0 + C1 * probe.alpha * slope0);
                assert!(probe.slope.abs() <= -C2 * slope0);
                assert!(used <= 200);
                let mut g = [0.0];
                assert_eq!(f(&work.x_trial, &mut g).unwrap(), probe.value);
            }
        }
        // A direction that only climbs (a wrong slope): no decrease, reported as a failure.
        let mut climbing = |x: &[f64], g: &mut [f64]| {
            g[0] = 1.0;
            Ok(x[0])
        };
        let (search, _, used) =
            line_search(&mut climbing, &[0.0], &[1.0], 0.0, -1.0, 1.0, 50, &mut work).unwrap();
        assert_eq!(search, Search::Failed);
        assert!(used <= 50);
    }

    /// At a kink where the gradient points uphill on both sides (|x| at 0, with the gradient
    /// +1 there) no step decreases the value: the minimisation stops at once, within the line
    /// search's evaluation cap, keeps the point and says why.
    #[test]
    fn a_line_search_without_a_decrease_stops_at_the_best_point() {
        let kink = |x: &[f64]| Ok((x[0].abs(), vec![if x[0] >= 0.0 { 1.0 } else { -1.0 }]));
        let minimum = minimize(kink, vec![0.0], &LbfgsConfig::default(), |_, _| {}).unwrap();
        assert!(
            minimum.stopped.contains("no progress"),
            "{}",
            minimum.stopped
        );
        assert_eq!(
            (minimum.param[0], minimum.value, minimum.iterations),
            (0.0, 0.0, 0)
        );
        assert!(minimum.evaluations <= 1 + LINE_SEARCH_EVALUATIONS);
    }

    /// An error from the progress callback stops the minimisation and is returned; an error from
    /// the function is a divergence.
    #[test]
    fn errors_stop_the_minimisation() {
        let f = |x: &[f64]| Ok((x[0] * x[0], vec![2.0 * x[0]]));
        let stop = minimize_in_place(
            |x: &[f64], g: &mut [f64]| {
                g[0] = 2.0 * x[0] - 1.0;
                Ok(x[0] * x[0] - x[0])
            },
            &mut vec![5.0],
            &LbfgsConfig::default(),
            |_, _| Err(Error::Interrupted("stop".into())),
        );
        assert!(matches!(stop, Err(Error::Interrupted(_))), "{stop:?}");
        let failing = minimize(
            |_: &[f64]| Err::<(f64, Vec<f64>), _>(Error::InvalidData("bad".into())),
            vec![1.0],
            &LbfgsConfig::default(),
            |_, _| {},
        );
        assert!(matches!(failing, Err(Error::Diverged(_))));
        assert!(minimize(f, vec![1.0], &LbfgsConfig::default(), |_, _| {}).is_ok());
    }
}
