//! Learning sparse codes with the entropy objective (entropy.md §2.6): full-batch L-BFGS on the
//! dictionary and every posterior jointly (the bars experiment), or on the posteriors alone with
//! the dictionary fixed (the ground-truth reference of the bars experiment).
//!
//! L-BFGS is argmin's, with a Moré–Thuente line search (strong Wolfe conditions), on
//! −L^H(θ) in f64.

use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient, IterState, KV, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use faer::MatRef;

use crate::error::{Error, Result};
use crate::models::sparse_coding::SparseCoding;
use crate::objectives::sparse_coding::{EntropyTerms, entropy_objective};

/// Settings of a full-batch L-BFGS fit.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbfgsConfig {
    /// Number of past steps kept (the authors use 200).
    #[serde(default = "default_history")]
    pub history: usize,
    /// Maximum number of L-BFGS iterations.
    #[serde(default = "default_max_iters")]
    pub max_iters: u64,
    /// Stop when the gradient norm falls below this.
    #[serde(default = "default_tol_grad")]
    pub tol_grad: f64,
    /// Stop when the objective changes by less than this between iterations.
    #[serde(default = "default_tol_cost")]
    pub tol_cost: f64,
}

fn default_history() -> usize {
    200
}
fn default_max_iters() -> u64 {
    20_000
}
fn default_tol_grad() -> f64 {
    1e-6
}
fn default_tol_cost() -> f64 {
    1e-12
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            history: default_history(),
            max_iters: default_max_iters(),
            tol_grad: default_tol_grad(),
            tol_cost: default_tol_cost(),
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

/// What is optimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The dictionary and the posteriors.
    All,
    /// The posteriors only (the dictionary stays fixed).
    Posteriors,
}

/// The outcome of a fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// The entropies and closed-form λ, σ² at the end.
    pub terms: EntropyTerms,
    /// L-BFGS iterations taken.
    pub iterations: u64,
    /// Objective evaluations (each with its gradient).
    pub evaluations: u64,
    /// Why it stopped.
    pub stopped: String,
}

/// −L^H over the optimised part of θ. The line search asks for the cost and the gradient at the
/// same points, so both come from one evaluation, cached for the last point.
struct Problem<'a> {
    template: &'a SparseCoding,
    x: MatRef<'a, f64>,
    beta: f64,
    offset: usize,
    last: Mutex<Option<Evaluation>>,
    evaluations: AtomicU64,
}

/// A point with its cost and gradient.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

impl Problem<'_> {
    /// (−L^H, −∇L^H) at p.
    fn evaluate(&self, p: &[f64]) -> Result<(f64, Vec<f64>)> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((point, cost, grad)) = last.as_ref()
            && point.as_slice() == p
        {
            return Ok((*cost, grad.clone()));
        }
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let mut model = self.template.clone();
        model.theta[self.offset..].copy_from_slice(p);
        let mut grad = vec![0.0; model.theta.len()];
        let terms = entropy_objective(&model, self.x, self.beta, Some(&mut grad))?;
        let cost = -terms.objective(self.beta);
        let grad: Vec<f64> = grad[self.offset..].iter().map(|g| -g).collect();
        *last = Some((p.to_vec(), cost, grad.clone()));
        Ok((cost, grad))
    }
}

impl CostFunction for Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> std::result::Result<f64, ArgminError> {
        Ok(self.evaluate(p)?.0)
    }
}

impl Gradient for Problem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, p: &Self::Param) -> std::result::Result<Vec<f64>, ArgminError> {
        Ok(self.evaluate(p)?.1)
    }
}

/// Forwards each iteration's objective to a callback.
struct Progress<F>(F);

impl<F: FnMut(u64, f64)> Observe<IterState<Vec<f64>, Vec<f64>, (), (), (), f64>> for Progress<F> {
    fn observe_iter(
        &mut self,
        state: &IterState<Vec<f64>, Vec<f64>, (), (), (), f64>,
        _kv: &KV,
    ) -> std::result::Result<(), ArgminError> {
        (self.0)(state.get_iter(), -state.get_cost());
        Ok(())
    }
}

/// Maximises L^H (prior entropy weighted by `beta`) over `target` with full-batch L-BFGS,
/// writing the result into `model`. `progress(iteration, objective)` is called after every
/// iteration.
pub fn fit_lbfgs(
    model: &mut SparseCoding,
    x: MatRef<'_, f64>,
    beta: f64,
    target: Target,
    config: &LbfgsConfig,
    progress: impl FnMut(u64, f64) + Send + Sync + 'static,
) -> Result<FitReport> {
    config.validate()?;
    if !(beta.is_finite() && beta > 0.0) {
        return Err(Error::Config(format!(
            "the annealing factor β must be positive, got {beta}"
        )));
    }
    let offset = match target {
        Target::All => 0,
        Target::Posteriors => model.dim * model.n_latents,
    };
    // Fails early, with the library's error, on bad data or a degenerate start.
    entropy_objective(model, x, beta, None)?;
    let start = model.theta[offset..].to_vec();
    let problem = Problem {
        template: model,
        x,
        beta,
        offset,
        last: Mutex::new(None),
        evaluations: AtomicU64::new(0),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), config.history)
        .with_tolerance_grad(config.tol_grad)
        .and_then(|s| s.with_tolerance_cost(config.tol_cost))
        .map_err(|e| Error::Config(format!("L-BFGS settings: {e}")))?;
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(start).max_iters(config.max_iters))
        .add_observer(Progress(progress), ObserverMode::Always)
        .run()
        .map_err(|e| Error::Diverged(format!("L-BFGS on the entropy objective: {e}")))?;
    let state = result.state();
    let best = state
        .get_best_param()
        .ok_or_else(|| Error::Diverged("L-BFGS returned no parameters".into()))?
        .clone();
    let iterations = state.get_iter();
    let evaluations = result.problem.problem.as_ref().map_or(0, |p| p.evaluations.load(Ordering::Relaxed));
    let stopped = state
        .get_termination_reason()
        .map_or_else(|| "not terminated".to_string(), |r| r.text().to_string());
    model.theta[offset..].copy_from_slice(&best);
    let terms = entropy_objective(model, x, beta, None)?;
    Ok(FitReport {
        terms,
        iterations,
        evaluations,
        stopped,
    })
}
