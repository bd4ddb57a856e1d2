//! Quasi-Newton minimisation: L-BFGS with a strong-Wolfe line search on a function of a flat f64
//! vector that returns its value and gradient together, written in place.
//!
//! * [`LbfgsMemory`] keeps the last `history` steps s and gradient changes y in two buffers
//!   allocated once and used as a ring, with ρ = 1/(y·s) cached; the direction −Hg comes from the
//!   two-loop recursion (Nocedal & Wright, Algorithm 7.4) with H₀ = (s·y / y·y) I.
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

/// a·b with eight running sums (so that the loop vectorises), added in a fixed order.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            sums[k] += x[k] * y[k];
        }
    }
    ((sums[0] + sums[4]) + (sums[1] + sums[5])) + ((sums[2] + sums[6]) + (sums[3] + sums[7])) + tail
}

/// Values per block of the parallel vector operations of the recursion. The blocks do not
/// depend on the number of threads, and block sums are added in block order, so neither do the
/// results.
const BLOCK: usize = 8192;

/// a·b over blocks in parallel (vectors longer than one block), the block sums kept in
/// `partials` (one per block) and added in order.
fn dot_blocks(a: &[f64], b: &[f64], partials: &mut [f64]) -> f64 {
    use rayon::prelude::*;
    if a.len() <= BLOCK {
        return dot(a, b);
    }
    partials
        .par_iter_mut()
        .zip(a.par_chunks(BLOCK).zip(b.par_chunks(BLOCK)))
        .for_each(|(p, (a, b))| *p = dot(a, b));
    partials.iter().sum()
}

/// y += a x, over blocks in parallel for vectors longer than one block.
fn axpy_blocks(a: f64, x: &[f64], y: &mut [f64]) {
    use rayon::prelude::*;
    let axpy = |x: &[f64], y: &mut [f64]| y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
    if y.len() <= BLOCK {
        axpy(x, y);
    } else {
        y.par_chunks_mut(BLOCK)
            .zip(x.par_chunks(BLOCK))
            .for_each(|(y, x)| axpy(x, y));
    }
}

/// The L-BFGS memory: the last `history` pairs (s, y) in two ring buffers of `history × n`
/// values, with ρ = 1/(y·s) and y·y cached. Vectors longer than 8192 values are worked on in
/// blocks in parallel (rayon), in an order that does not depend on the number of threads. Pairs whose curvature y·s is not positive are skipped, so the
/// implied inverse Hessian stays positive definite.
#[derive(Clone, Debug)]
pub struct LbfgsMemory {
    n: usize,
    s: Vec<f64>,
    y: Vec<f64>,
    rho: Vec<f64>,
    /// y·y of each pair (for H₀).
    yy: Vec<f64>,
    alpha: Vec<f64>,
    /// Block sums of the parallel dot products.
    partials: Vec<f64>,
    /// Pairs held (≤ history).
    len: usize,
    /// Slot of the next pair.
    next: usize,
}

impl LbfgsMemory {
    /// An empty memory of `history` pairs of vectors of length `n`.
    pub fn new(n: usize, history: usize) -> Self {
        let history = history.max(1);
        LbfgsMemory {
            n,
            s: vec![0.0; n * history],
            y: vec![0.0; n * history],
            rho: vec![0.0; history],
            yy: vec![0.0; history],
            alpha: vec![0.0; history],
            partials: vec![0.0; n.div_ceil(BLOCK)],
            len: 0,
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
    }

    fn history(&self) -> usize {
        self.rho.len()
    }

    /// Slot of the i-th newest pair (0: the newest).
    fn slot(&self, i: usize) -> usize {
        (self.next + self.history() - 1 - i) % self.history()
    }

    /// Adds the pair s = x_new − x, y = g_new − g, written straight into its slot; returns
    /// false (and keeps the memory as it was) when y·s ≤ 10⁻¹⁰ ‖y‖ ‖s‖.
    pub fn push(&mut self, x_new: &[f64], x: &[f64], g_new: &[f64], g: &[f64]) -> bool {
        let n = self.n;
        let at = self.next * n;
        let (s, y) = (&mut self.s[at..at + n], &mut self.y[at..at + n]);
        let (mut ys, mut ss, mut yy) = (0.0, 0.0, 0.0);
        for i in 0..n {
            s[i] = x_new[i] - x[i];
            y[i] = g_new[i] - g[i];
            ys += y[i] * s[i];
            ss += s[i] * s[i];
            yy += y[i] * y[i];
        }
        let curved = ys > 1e-10 * (ss * yy).sqrt();
        if !curved {
            return false;
        }
        self.rho[self.next] = 1.0 / ys;
        self.yy[self.next] = yy;
        self.next = (self.next + 1) % self.history();
        self.len = (self.len + 1).min(self.history());
        true
    }

    /// d = −H g by the two-loop recursion, with H₀ = γI, γ = s·y / y·y of the newest pair (1
    /// when the memory is empty).
    pub fn direction(&mut self, g: &[f64], d: &mut [f64]) {
        let n = self.n;
        d.copy_from_slice(g);
        for i in 0..self.len {
            let k = self.slot(i);
            let (s, y) = (&self.s[k * n..(k + 1) * n], &self.y[k * n..(k + 1) * n]);
            let a = self.rho[k] * dot_blocks(s, d, &mut self.partials);
            self.alpha[k] = a;
            axpy_blocks(-a, y, d);
        }
        let gamma = if self.len > 0 {
            let k = self.slot(0);
            1.0 / (self.rho[k] * self.yy[k])
        } else {
            1.0
        };
        d.iter_mut().for_each(|d| *d *= gamma);
        for i in (0..self.len).rev() {
            let k = self.slot(i);
            let (s, y) = (&self.s[k * n..(k + 1) * n], &self.y[k * n..(k + 1) * n]);
            let b = self.rho[k] * dot_blocks(y, d, &mut self.partials);
            axpy_blocks(self.alpha[k] - b, s, d);
        }
        d.iter_mut().for_each(|d| *d = -*d);
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
    mut function: F,
    point: &mut Vec<f64>,
    config: &LbfgsConfig,
    mut progress: P,
) -> Result<Minimum>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    P: FnMut(u64, f64) -> Result<()>,
{
    config.validate()?;
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
    let mut memory = LbfgsMemory::new(n, config.history);
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

    /// The two-loop recursion applies the L-BFGS inverse Hessian, which for a memory that holds
    /// every pair is the dense BFGS inverse built from H₀ = γI by the same updates
    /// H ← (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ.
    #[test]
    fn the_two_loop_recursion_is_the_dense_bfgs_inverse() {
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
        let mut memory = LbfgsMemory::new(n, 4);
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
        let mut kept = LbfgsMemory::new(n, 4);
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

    /// Long vectors go through the blocked parallel recursion: the same direction for one and
    /// two threads, bit for bit, and the plain recursion's to rounding.
    #[test]
    fn the_blocked_recursion_does_not_depend_on_the_threads() {
        let n = 3 * BLOCK + 5;
        let mut rng = Stream::new(2, &[]);
        let mut memory = LbfgsMemory::new(n, 5);
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
        let config = LbfgsConfig {
            tol_grad: 1e-10,
            tol_cost: 0.0,
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
