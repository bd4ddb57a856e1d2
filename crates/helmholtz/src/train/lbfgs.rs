//! A full-batch L-BFGS solve as an [`Algorithm`]: the one-step case of the
//! [`Trainer`](super::Trainer). Its one step sees every point and runs the solver
//! ([`minimize_in_place`]) to its own stopping rule; each iteration is reported as it happens.
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use helmholtz::data::batches::IndicesOnly;
//! use helmholtz::optim::quasi_newton::LbfgsConfig;
//! use helmholtz::train::lbfgs::LbfgsSolve;
//! use helmholtz::train::trainer::*;
//!
//! // min (x − 3)² + 10 (y + 1)², from the origin, in one trainer step.
//! let f = |p: &[f64], g: &mut [f64]| {
//!     g[0] = 2.0 * (p[0] - 3.0);
//!     g[1] = 20.0 * (p[1] + 1.0);
//!     Ok((p[0] - 3.0).powi(2) + 10.0 * (p[1] + 1.0).powi(2))
//! };
//! let mut iterations = 0;
//! let mut solve = LbfgsSolve::new(f, LbfgsConfig::default(), |_, _| { iterations += 1; Ok(()) });
//! let mut point = vec![0.0, 0.0];
//! let trainer = Trainer { epochs: 1, batch_size: 1, ..Trainer::default() };
//! trainer.fit(&mut point, &mut solve, &IndicesOnly { n_points: 1 }, &mut TrainState::default(),
//!     &mut [], &mut NoCheckpoints, &AtomicBool::new(false))?;
//! assert!((point[0] - 3.0).abs() < 1e-6 && (point[1] + 1.0).abs() < 1e-6, "{point:?}");
//! assert!(solve.minimum().unwrap().iterations > 0);
//! # drop(solve);
//! # assert!(iterations > 0);
//! # Ok::<(), helmholtz::Error>(())
//! ```

use std::sync::atomic::AtomicBool;

use crate::data::batches::IndicesOnly;
use crate::error::{Error, Result};
use crate::optim::quasi_newton::{LbfgsConfig, Minimum, minimize_in_place};
use crate::train::trainer::{
    Algorithm, Batch, NoCheckpoints, Outcome, StepContext, StepStats, TrainState, Trainer,
};

/// One L-BFGS solve of `objective` (the value to minimise, its gradient written into the second
/// argument) from the model's current parameters; `on_iteration(iteration, value)` runs on the caller's thread after every
/// iteration (an error from it ends the solve's reporting and is returned).
pub struct LbfgsSolve<F, P> {
    objective: F,
    config: LbfgsConfig,
    on_iteration: P,
    minimum: Option<Minimum>,
}

impl<F, P> LbfgsSolve<F, P>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    P: FnMut(u64, f64) -> Result<()>,
{
    /// A solve with the given settings.
    pub fn new(objective: F, config: LbfgsConfig, on_iteration: P) -> Self {
        LbfgsSolve {
            objective,
            config,
            on_iteration,
            minimum: None,
        }
    }

    /// What the last solve found (its minimum, iterations and stopping reason).
    pub fn minimum(&self) -> Option<&Minimum> {
        self.minimum.as_ref()
    }
}

impl<F, P> Algorithm<Vec<f64>> for LbfgsSolve<F, P>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    P: FnMut(u64, f64) -> Result<()>,
{
    type Scalar = f64;

    fn step(
        &mut self,
        params: &mut Vec<f64>,
        batch: &Batch<'_, f64>,
        _: &StepContext,
    ) -> Result<StepStats> {
        let LbfgsSolve {
            objective,
            config,
            on_iteration,
            ..
        } = self;
        let mut point = params.clone();
        let minimum = minimize_in_place(objective, &mut point, config, on_iteration)?;
        *params = point;
        let points = batch.n_points().max(1);
        let stats = StepStats {
            objective_sum: -minimum.value * points as f64,
            points,
        };
        self.minimum = Some(minimum);
        Ok(stats)
    }
}

/// One L-BFGS solve of `objective` from `start` as a one-step run of the [`Trainer`]; returns
/// what it found. A diverged solve is an [`Error::Diverged`] with the solver's message.
pub fn solve<F, P>(
    objective: F,
    start: Vec<f64>,
    config: LbfgsConfig,
    on_iteration: P,
) -> Result<Minimum>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    P: FnMut(u64, f64) -> Result<()>,
{
    let mut solve = LbfgsSolve::new(objective, config, on_iteration);
    let mut params = start;
    let trainer = Trainer {
        epochs: 1,
        batch_size: 1,
        ..Trainer::default()
    };
    let outcome = trainer.fit(
        &mut params,
        &mut solve,
        &IndicesOnly { n_points: 1 },
        &mut TrainState::default(),
        &mut [],
        &mut NoCheckpoints,
        &AtomicBool::new(false),
    )?;
    if let Outcome::Diverged(message) = outcome {
        return Err(Error::Diverged(message));
    }
    solve
        .minimum
        .take()
        .ok_or_else(|| Error::Diverged("L-BFGS returned no parameters".into()))
}
