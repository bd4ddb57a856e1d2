//! Quasi-Newton minimisation through argmin: L-BFGS with a Moré–Thuente line search (strong Wolfe
//! conditions) on a function of a flat f64 vector that returns its value and gradient together.
//! The line search asks for both at the same points, so the last evaluation is cached.

use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient, IterState, KV, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The function, with the cache of its last evaluation and an evaluation counter.
struct Problem<F> {
    function: F,
    last: Mutex<Option<Evaluation>>,
    /// Shared with the caller: argmin does not hand the problem back after the run.
    evaluations: Arc<AtomicU64>,
}

impl<F: Fn(&[f64]) -> Result<(f64, Vec<f64>)>> Problem<F> {
    fn evaluate(&self, p: &[f64]) -> Result<(f64, Vec<f64>)> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((point, value, grad)) = last.as_ref()
            && point.as_slice() == p
        {
            return Ok((*value, grad.clone()));
        }
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let (value, grad) = (self.function)(p)?;
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

/// Forwards each iteration's value to a callback.
struct Progress<G>(G);

impl<G: FnMut(u64, f64)> Observe<IterState<Vec<f64>, Vec<f64>, (), (), (), f64>> for Progress<G> {
    fn observe_iter(
        &mut self,
        state: &IterState<Vec<f64>, Vec<f64>, (), (), (), f64>,
        _kv: &KV,
    ) -> std::result::Result<(), ArgminError> {
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
    let evaluations = Arc::new(AtomicU64::new(0));
    let problem = Problem {
        function,
        last: Mutex::new(None),
        evaluations: Arc::clone(&evaluations),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), config.history)
        .with_tolerance_grad(config.tol_grad)
        .and_then(|s| s.with_tolerance_cost(config.tol_cost))
        .map_err(|e| Error::Config(format!("L-BFGS settings: {e}")))?;
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(start).max_iters(config.max_iters))
        .add_observer(Progress(progress), ObserverMode::Always)
        .run()
        .map_err(|e| Error::Diverged(format!("L-BFGS: {e}")))?;
    let state = result.state();
    let param = state
        .get_best_param()
        .ok_or_else(|| Error::Diverged("L-BFGS returned no parameters".into()))?
        .clone();
    Ok(Minimum {
        param,
        value: state.get_best_cost(),
        iterations: state.get_iter(),
        evaluations: evaluations.load(Ordering::Relaxed),
        stopped: state
            .get_termination_reason()
            .map_or_else(|| "not terminated".to_string(), |r| r.text().to_string()),
    })
}
