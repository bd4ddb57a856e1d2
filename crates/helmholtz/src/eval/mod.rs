//! Evaluation: log-likelihood estimates and exact computations for small models.

pub mod entropy;
pub mod likelihood;
pub mod sparseness;

pub use likelihood::{
    Estimator, IsConfig, bihm_log_z2, bihm_log_z2_with_error, exact_kl_from, exact_log_likelihood,
    importance_log_likelihood, importance_log_likelihood_and_bihm,
};
