//! Stable numerics and seeded random streams.

pub mod rng;
