//! Run directories and the runs that train in them: resolved config, metrics, checkpoints that
//! resume bit-for-bit, evaluation, early stopping and the summary.
//!
//! ```text
//! runs/NAME/config.toml         resolved config
//! runs/NAME/metrics.jsonl       one JSON object per epoch or evaluation
//! runs/NAME/checkpoints/last/   params.safetensors, optimizer.safetensors, state.json
//! runs/NAME/checkpoints/best/   the same, at the best validation estimate
//! runs/NAME/history.jsonl       every resume and its overrides
//! runs/NAME/lock                held while a process works on the run
//! runs/NAME/summary.json        final metrics, timings and how the run ended
//! ```
//!
//! [`RunDir`] (`rundir.rs`) is the directory; [`Run`] (`hm/`) the Helmholtz-machine run;
//! `fit/` the entropy-sum fits; `mle/` the maximum-likelihood fits of distributions to data
//! files; `vi/` variational inference for Bayesian logistic regression. The papers'
//! sparse-coding runs live in `helmholtz-experiments`.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod fit;
mod hm;
pub mod mle;
pub mod rundir;
pub mod vi;

pub use config::{Config, Split, config_changes};
pub use data::{Points, RunData};
pub use hm::{BihmEstimate, Run, TestEstimate};
pub use rundir::{
    CHECKPOINT_STATE, CONFIG_FILE, DATA_FOLDER, HISTORY_FILE, LOCK_FILE, METRICS_FILE, RunDir,
    SUMMARY_FILE, read_metrics, relative_to_run,
};

pub use crate::train::trainer::{
    Control, EpochRecord, Observer, Outcome, Silent, Slot, StepRecord, TrainState,
};
