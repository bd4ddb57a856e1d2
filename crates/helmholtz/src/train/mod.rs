//! Learning algorithms and the training loop.

pub mod amortized;
pub mod learner;
pub mod sparse_coding;
pub mod vae;
pub mod wake_sleep;

pub use learner::Learner;
pub use wake_sleep::{BatchStats, Variant, WakeSleep, WakeSleepConfig};
