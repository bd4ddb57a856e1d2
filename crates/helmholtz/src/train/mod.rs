//! Learning algorithms and the training loop.

pub mod amortized;
pub mod em;
pub mod hm_step;
pub mod lbfgs;
pub mod natural;
pub mod sngd;
pub mod sparse_coding;
pub mod trainer;
pub mod vae;
pub mod wake_sleep;

pub use hm_step::{HmLearner, HmStep};
pub use natural::{GradientStep, Natural};
pub use trainer::{
    Algorithm, Batch, Control, EpochRecord, Observer, Outcome, StepContext, StepStats, TrainState,
    Trainer,
};
pub use wake_sleep::{BatchStats, Variant, WakeSleep, WakeSleepConfig};
