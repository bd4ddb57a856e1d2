//! What a user imports: `use helmholtz::prelude::*;` brings the models, the learning steps,
//! THE training loop and its observers, the optimizers, the data sources and the estimators.
//!
//! ```
//! use helmholtz::prelude::*;
//! let model = HelmholtzMachine::new(&[16, 8, 2], WeightInit::GlorotNormal, -1.0, 0)?;
//! let rws = WakeSleep::new(WakeSleepConfig::default())?;
//! let step = HmStep::new(rws, Optimizer::adam(3e-3, &model.params)?, &model);
//! let trainer = Trainer { epochs: 2, batch_size: 10, ..Trainer::default() };
//! # let _ = (step, trainer);
//! # Ok::<(), helmholtz::Error>(())
//! ```

pub use crate::data::batches::{BatchSource, Columns, IndicesOnly, Minibatches};
pub use crate::data::{Dataset, binarize_fixed, embedded_digits_splits};
pub use crate::error::{Error, Result};
pub use crate::eval::{IsConfig, importance_log_likelihood};
pub use crate::math::rng::Stream;
pub use crate::models::linear_gaussian::LinearGaussian;
pub use crate::models::mixture::Mixture;
pub use crate::models::vae::{GaussianVae, VaeKind};
pub use crate::models::{HelmholtzMachine, ParamSet, WeightInit};
pub use crate::optim::natural::{FisherPreconditioner, NaturalConfig};
pub use crate::optim::{
    Adam, Identity, Optimizer, OptimizerConfig, Preconditioner, Schedule, Sgd, Update,
};
pub use crate::run::{Run, RunDir};
pub use crate::train::em::{Em, EmModel};
pub use crate::train::trainer::{
    Algorithm, Batch, CheckpointStore, Control, DivergenceGuard, EpochRecord, NoCheckpoints,
    Observer, Outcome, Silent, Slot, StepContext, StepRecord, StepStats, TrainState, Trainer,
};
pub use crate::train::vae::VaeStep;
pub use crate::train::{
    GradientStep, HmLearner, HmStep, Natural, Variant, WakeSleep, WakeSleepConfig,
};
