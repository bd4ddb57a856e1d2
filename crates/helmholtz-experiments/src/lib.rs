//! # helmholtz-experiments
//!
//! The papers' reproductions on the public API of [`helmholtz`]: their synthetic tasks with the
//! authors' constants (sizes, starts, learning rates, draws), the harnesses that run each method
//! on each task and record traces, and the tables. The library holds the reusable parts (targets,
//! surrogates, methods, the run directory); the `helmholtz` binary parses arguments, calls these
//! and draws.
//!
//! - [`sparse`]: sparse coding with entropy-based ELBOs (bars, patches, denoising);
//! - [`nrws_vs_rws`]: RWS against natural RWS, BiHM and NBiHM;
//! - [`fisher_rao_elbo`]: the Fisher–Rao gradient of the ELBO on small models;
//! - [`sngd`]: surrogate natural gradient descent.
//!
//! Run SNGD and Adam on a small skew-normal task and compare their held-out NLL:
//!
//! ```
//! use helmholtz_experiments::sngd::SkewSettings;
//! use helmholtz_experiments::sngd::skew::{SkewMethod, run_skew_normal, skew_normal_task};
//!
//! let task = skew_normal_task(5, 500, 200, 0)?;
//! let settings = SkewSettings {
//!     iterations: 50,
//!     batch: 100,
//!     eval_every: 10,
//!     lr_theta: 0.1,
//!     lr_lambda: 0.01,
//!     lr_adam: 0.01,
//!     seed: 0,
//! };
//! let sngd = run_skew_normal(&task, SkewMethod::Sngd, &settings, &mut |_, _| {})?;
//! let adam = run_skew_normal(&task, SkewMethod::AdamCovariance, &settings, &mut |_, _| {})?;
//! assert!(sngd.best().1 < adam.best().1);
//! # Ok::<(), helmholtz::Error>(())
//! ```

#![warn(missing_docs)]

pub mod fisher_rao_elbo;
pub mod nrws_vs_rws;
pub mod sngd;
pub mod sparse;
