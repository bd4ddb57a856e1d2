//! Full-batch EM as an [`Algorithm`]: one step is one E- and M-step over every point, so an
//! epoch of the [`super::Trainer`] (with one batch) is one EM iteration. The models written
//! once each: [`EmModel::em_step`] of PPCA / factor analysis and of the mixtures (as
//! scikit-learn's `_base.py` writes the EM loop once and each mixture only its steps).

use std::sync::atomic::AtomicBool;

use faer::{Mat, MatRef};

use super::trainer::{
    Algorithm, Batch, Control, EpochRecord, NoCheckpoints, Observer, Outcome, StepContext,
    StepStats, TrainState, Trainer,
};
use crate::data::batches::IndicesOnly;
use crate::error::{Error, Result};
use crate::models::linear_gaussian::LinearGaussian;
use crate::models::mixture::Mixture;

/// A model with a closed-form EM step.
pub trait EmModel {
    /// One E-step and M-step on the points `x` (columns).
    fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<()>;
    /// The exact log-likelihood per point of `x`.
    fn log_likelihood(&self, x: MatRef<'_, f64>) -> Result<f64>;
}

impl EmModel for LinearGaussian {
    fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<()> {
        LinearGaussian::em_step(self, x)
    }

    fn log_likelihood(&self, x: MatRef<'_, f64>) -> Result<f64> {
        LinearGaussian::log_likelihood(self, x)
    }
}

impl EmModel for Mixture {
    fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<()> {
        Mixture::em_step(self, x).map(|_| ())
    }

    fn log_likelihood(&self, x: MatRef<'_, f64>) -> Result<f64> {
        Ok(self.responsibilities(x)?.1)
    }
}

/// Stops EM once the log-likelihood per point changes by less than `tol`.
struct Converged<'a> {
    x: MatRef<'a, f64>,
    tol: f64,
    log_likelihood: f64,
}

impl<M: EmModel> Observer<M> for Converged<'_> {
    fn on_epoch(
        &mut self,
        model: &M,
        _: &mut EpochRecord,
        _: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let ll = model.log_likelihood(self.x)?;
        let change = (ll - self.log_likelihood).abs();
        self.log_likelihood = ll;
        Ok(if change < self.tol {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}

/// EM on the [`Trainer`] (one full batch per epoch) until the log-likelihood per point changes
/// by less than `tol` from one step to the next, or `max_steps` steps; returns the model's
/// log-likelihood per point and the steps taken.
///
/// ```
/// use faer::Mat;
/// use helmholtz::models::mixture::{Family, Mixture};
/// use helmholtz::math::rng::Stream;
/// use helmholtz::train::em::{EmModel, fit};
/// let mut rng = Stream::new(0, &[]);
/// let x = Mat::from_fn(2, 400, |_, j| if j % 2 == 0 { -3.0 } else { 3.0 } + 0.5 * rng.normal());
/// let mut mixture = Mixture::init(x.as_ref(), 2, Family::DiagonalGaussian, 1)?;
/// let before = mixture.log_likelihood(x.as_ref())?;
/// let (ll, steps) = fit(&mut mixture, x.as_ref(), 1e-10, 500)?;
/// assert!(steps < 500 && ll > before, "{before} -> {ll} after {steps}");
/// // Two clusters of variance 0.25 in each coordinate: about −2 · ½(ln(2π·0.25) + 1) − ln 2.
/// assert!((ll - (-(2.0 * std::f64::consts::PI * 0.25).ln() - 1.0 - 2f64.ln())).abs() < 0.2, "{ll}");
/// # Ok::<(), helmholtz::Error>(())
/// ```
pub fn fit<M: EmModel>(
    model: &mut M,
    x: MatRef<'_, f64>,
    tol: f64,
    max_steps: usize,
) -> Result<(f64, usize)> {
    let n = x.ncols();
    let trainer = Trainer {
        epochs: max_steps,
        batch_size: n.max(1),
        objective_name: "log_likelihood",
        ..Trainer::default()
    };
    let mut converged = Converged {
        x,
        tol,
        log_likelihood: model.log_likelihood(x)?,
    };
    let mut state = TrainState::default();
    let outcome = trainer.fit(
        model,
        &mut Em { x: x.to_owned() },
        &IndicesOnly { n_points: n },
        &mut state,
        &mut [&mut converged],
        &mut NoCheckpoints,
        &AtomicBool::new(false),
    )?;
    if let Outcome::Diverged(message) = outcome {
        return Err(Error::Diverged(message));
    }
    Ok((converged.log_likelihood, state.step as usize))
}

/// EM on data it holds (train it with a [`crate::data::batches::IndicesOnly`] source and a
/// batch size of at least the number of points). Reports no objective: the log-likelihood is
/// evaluated by the run's observer after each step.
pub struct Em {
    /// The points, one per column.
    pub x: Mat<f64>,
}

impl<M: EmModel> Algorithm<M> for Em {
    type Scalar = f64;

    fn step(
        &mut self,
        model: &mut M,
        batch: &Batch<'_, f64>,
        _: &StepContext,
    ) -> Result<StepStats> {
        model.em_step(self.x.as_ref())?;
        Ok(StepStats {
            objective_sum: 0.0,
            points: batch.n_points(),
        })
    }
}
