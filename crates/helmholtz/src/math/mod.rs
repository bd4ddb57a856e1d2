//! Stable numerics, vectorisable Bernoulli kernels and seeded random streams.

pub mod linalg;
pub mod numerics;
pub mod rng;
pub mod special;

pub use numerics::{log_sigmoid, logsumexp, mean_and_sd, sigmoid, softplus};
