//! Quasi-Newton minimisation through argmin: L-BFGS with a Moré–Thuente line search (strong Wolfe
//! conditions) on a function of a flat f64 vector that returns its value and gradient together.
//! The line search asks for both at the same points, so the last evaluation is cached.
//!
//! argmin runs each line search without a bound on its evaluations; at a kink of the function
//! (|μ| of a posterior whose scale has collapsed, say) it can halve its step forever. A line
//! search that takes more than [`LINE_SEARCH_EVALUATIONS`] evaluations ends the minimisation at
//! the best iterate (or, if argmin gives up on it, the best point evaluated), and the stopping
//! reason says so.

use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient, IterState, KV, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// A point with its value and gradient.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// Evaluations one line search may take before the minimisation stops at its best point.
pub const LINE_SEARCH_EVALUATIONS: u64 = 200;

/// What the caller keeps of a run: argmin does not hand the problem back after it.
#[derive(Default)]
struct Tally {
    evaluations: AtomicU64,
    /// Evaluations since the last completed iteration (reset by the observer).
    since_iteration: AtomicU64,
    iterations: AtomicU64,
    stalled: AtomicBool,
    /// The lowest value seen and where.
    best: Mutex<Option<(Vec<f64>, f64)>>,
}

/// The function, with the cache of its last evaluation and the tally.
struct Problem<F> {
    function: F,
    last: Mutex<Option<Evaluation>>,
    tally: Arc<Tally>,
}

impl<F: Fn(&[f64]) -> Result<(f64, Vec<f64>)>> Problem<F> {
    fn evaluate(&self, p: &[f64]) -> Result<(f64, Vec<f64>)> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((point, value, grad)) = last.as_ref()
            && point.as_slice() == p
        {
            return Ok((*value, grad.clone()));
        }
        let tally = &self.tally;
        tally.evaluations.fetch_add(1, Ordering::Relaxed);
        if tally.since_iteration.fetch_add(1, Ordering::Relaxed) >= LINE_SEARCH_EVALUATIONS {
            tally.stalled.store(true, Ordering::Relaxed);
            return Err(Error::Diverged("the line search stalled".into()));
        }
        let (value, grad) = (self.function)(p)?;
        let mut best = tally.best.lock().unwrap_or_else(|e| e.into_inner());
        if value.is_finite() && best.as_ref().is_none_or(|(_, b)| value < *b) {
            *best = Some((p.to_vec(), value));
        }
        *last = Some((p.to_vec(), value, grad.clone()));
        Ok((value, grad))
    }
}

impl<F: Fn(&[f64]) -> Result<(f64, Vec<f64>)>> CostFunction for Problem<F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> std::result::Result<f64, ArgminError> {
        Ok(self.evaluate(p)?.0)
    }
}

impl<F: Fn(&[f64]) -> Result<(f64, Vec<f64>)>> Gradient for Problem<F> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, p: &Self::Param) -> std::result::Result<Vec<f64>, ArgminError> {
        Ok(self.evaluate(p)?.1)
    }
}

/// The stopping reason of a stalled line search.
fn stalled() -> String {
    format!(
        "a line search made no progress in {LINE_SEARCH_EVALUATIONS} evaluations (a kink or a flat direction); the best point found is kept"
    )
}

/// Forwards each iteration's value to a callback, and restarts the line search's count.
struct Progress<G>(G, Arc<Tally>);

impl<G: FnMut(u64, f64)> Observe<IterState<Vec<f64>, Vec<f64>, (), (), (), f64>> for Progress<G> {
    fn observe_iter(
        &mut self,
        state: &IterState<Vec<f64>, Vec<f64>, (), (), (), f64>,
        _kv: &KV,
    ) -> std::result::Result<(), ArgminError> {
        self.1.since_iteration.store(0, Ordering::Relaxed);
        self.1.iterations.store(state.get_iter(), Ordering::Relaxed);
        (self.0)(state.get_iter(), state.get_cost());
        Ok(())
    }
}

/// Minimises `function` (value and gradient at a point) from `start` with L-BFGS.
/// `progress(iteration, value)` is called after every iteration.
pub fn minimize(
    function: impl Fn(&[f64]) -> Result<(f64, Vec<f64>)>,
    start: Vec<f64>,
    config: &LbfgsConfig,
    progress: impl FnMut(u64, f64) + Send + Sync + 'static,
) -> Result<Minimum> {
    config.validate()?;
    let tally = Arc::new(Tally::default());
    let problem = Problem {
        function,
        last: Mutex::new(None),
        tally: Arc::clone(&tally),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), config.history)
        .with_tolerance_grad(config.tol_grad)
        .and_then(|s| s.with_tolerance_cost(config.tol_cost))
        .map_err(|e| Error::Config(format!("L-BFGS settings: {e}")))?;
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(start).max_iters(config.max_iters))
        .add_observer(Progress(progress, Arc::clone(&tally)), ObserverMode::Always)
        .run();
    let evaluations = tally.evaluations.load(Ordering::Relaxed);
    let result = match result {
        Ok(result) => result,
        Err(_) if tally.stalled.load(Ordering::Relaxed) => {
            let best = tally.best.lock().unwrap_or_else(|e| e.into_inner()).take();
            let (param, value) =
                best.ok_or_else(|| Error::Diverged("L-BFGS: no finite value".into()))?;
            return Ok(Minimum {
                param,
                value,
                iterations: tally.iterations.load(Ordering::Relaxed),
                evaluations,
                stopped: stalled(),
            });
        }
        Err(e) => return Err(Error::Diverged(format!("L-BFGS: {e}"))),
    };
    let state = result.state();
    let param = state
        .get_best_param()
        .ok_or_else(|| Error::Diverged("L-BFGS returned no parameters".into()))?
        .clone();
    Ok(Minimum {
        param,
        value: state.get_best_cost(),
        iterations: state.get_iter(),
        evaluations,
        stopped: if tally.stalled.load(Ordering::Relaxed) {
            stalled()
        } else {
            state
                .get_termination_reason()
                .map_or_else(|| "not terminated".to_string(), |r| r.text().to_string())
        },
    })
}
