//! Models: named parameters, the SBN layer and the Helmholtz machine.

pub mod hm;
pub mod params;
pub mod sbn;
pub mod sparse_coding;

pub use hm::{HelmholtzMachine, Pass, WeightInit};
pub use params::{ParamSet, Tensor};
