//! Full-batch EM as an [`Algorithm`]: one step is one E- and M-step over every point, so an
//! epoch of the [`super::Trainer`] (with one batch) is one EM iteration. The models written
//! once each: [`EmModel::em_step`] of PPCA / factor analysis and of the mixtures (as
//! scikit-learn's `_base.py` writes the EM loop once and each mixture only its steps).

use faer::{Mat, MatRef};

use super::trainer::{Algorithm, Batch, StepContext, StepStats};
use crate::error::Result;
use crate::models::linear_gaussian::LinearGaussian;
use crate::models::mixture::Mixture;

/// A model with a closed-form EM step.
pub trait EmModel {
    /// One E-step and M-step on the points `x` (columns).
    fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<()>;
}

impl EmModel for LinearGaussian {
    fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<()> {
        LinearGaussian::em_step(self, x)
    }
}

impl EmModel for Mixture {
    fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<()> {
        Mixture::em_step(self, x).map(|_| ())
    }
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
