//! Objectives: closed-form and Monte Carlo ELBOs and entropy sums.

pub mod sparse_coding;
pub mod sparse_low_rank;
pub mod targets;
