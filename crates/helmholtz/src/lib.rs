//! # helmholtz
//!
//! Variational learning of latent-variable generative models with information geometry.
//! This crate is the library; the `helmholtz` binary is a thin shell around it.
//!
//! Train a Helmholtz machine by reweighted wake-sleep on the embedded digits and estimate its
//! log-likelihood by importance sampling:
//!
//! ```
//! use helmholtz::data::{binarize_fixed, embedded_digits_splits};
//! use helmholtz::eval::{IsConfig, importance_log_likelihood};
//! use helmholtz::models::{HelmholtzMachine, WeightInit};
//! use helmholtz::optim::{Optimizer, OptimizerConfig, Schedule, Update};
//! use helmholtz::train::{Variant, WakeSleep, WakeSleepConfig};
//!
//! let digits = binarize_fixed(&embedded_digits_splits().train, 0);
//! let x = digits.range(0, 100).to_columns(); // 64 × 100, one image per column
//! let mut model = HelmholtzMachine::new(&[64, 16, 4], WeightInit::GlorotNormal, -1.0, 0)?;
//! let mut rws = WakeSleep::new(WakeSleepConfig {
//!     variant: Variant::Rws,
//!     k: 5,
//!     wake_fraction: 0.5,
//!     q_baseline: true,
//!     chunk_points: 25,
//! })?;
//! let adam = OptimizerConfig::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
//! let mut optimizer = Optimizer::new(adam, 3e-3, Schedule::Constant, &model.params)?;
//! let mut grads = model.params.zeros_like();
//! let before = importance_log_likelihood(&model, &x, 100, 0, IsConfig::new(100, 1))?;
//! for step in 0..200 {
//!     rws.gradient(&model, &x, 100, 0, step, &mut grads)?;
//!     optimizer.update(&mut model.params, &grads);
//! }
//! let after = importance_log_likelihood(&model, &x, 100, 0, IsConfig::new(100, 1))?;
//! let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
//! assert!(mean(&after) > mean(&before) + 1.0);
//! # Ok::<(), helmholtz::Error>(())
//! ```

#![warn(missing_docs)]

pub mod data;
pub mod dist;
pub mod error;
pub mod eval;
pub mod geometry;
pub mod math;
pub mod memory;
pub mod models;
pub mod objectives;
pub mod optim;
pub mod prelude;
pub mod run;
pub mod train;

pub use error::{Error, Result};
