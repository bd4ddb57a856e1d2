//! # helmholtz
//!
//! Variational learning of latent-variable generative models with information geometry.
//! This crate is the library; the `helmholtz` binary is a thin shell around it.

pub mod data;
pub mod error;
pub mod eval;
pub mod math;
pub mod models;
pub mod optim;
pub mod run;
pub mod train;

pub use error::{Error, Result};
