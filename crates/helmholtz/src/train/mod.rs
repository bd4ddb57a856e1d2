//! Learning algorithms and the training loop.

pub mod amortized;
pub mod em;
pub mod lbfgs;
pub mod learner;
pub mod sngd;
pub mod sparse_coding;
pub mod trainer;
pub mod vae;
pub mod wake_sleep;

pub use learner::{HmStep, Learner};
pub use trainer::{
    Algorithm, Batch, Control, EpochRecord, Observer, Outcome, StepContext, StepStats, TrainState,
    Trainer,
};
pub use wake_sleep::{BatchStats, Variant, WakeSleep, WakeSleepConfig};
