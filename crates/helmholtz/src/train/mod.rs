//! Learning algorithms and the training loop.

pub mod wake_sleep;

pub use wake_sleep::{BatchStats, Variant, WakeSleep, WakeSleepConfig};
