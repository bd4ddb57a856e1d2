//! Models: named parameters, the SBN layer and the Helmholtz machine, sparse coding, and the
//! small MLP with the amortized Gaussian encoder built on it.

pub mod encoder;
pub mod hm;
pub mod linear_gaussian;
pub mod logistic_regression;
pub mod mixture;
pub mod mlp;
pub mod params;
pub mod sbn;
pub mod sbn_exact;
pub mod sparse_coding;
pub mod vae;

pub use hm::{HelmholtzMachine, Pass, WeightInit};
pub use params::{ParamSet, Tensor};
