//! `helmholtz eval RUN`: the importance-sampling log-likelihood of a trained run.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use helmholtz::run::{Run, Slot, Split};

use crate::out;

/// Prints the mean log-likelihood of `split` (first `points` points) with `k` samples, from
/// checkpoint `slot`; for BiHM runs also log p* through its normaliser.
pub fn run(dir: &Path, k: usize, split: Split, points: Option<usize>, slot: Slot) -> Result<()> {
    let run = Run::open_checkpoint(dir, slot)?;
    let started = Instant::now();
    let ll = run.log_likelihood(split, k, points)?;
    out!(
        "{} log-likelihood {:.4} nats (NLL {:.4}), K = {k}, {:.1} s",
        split.name(),
        ll,
        -ll,
        started.elapsed().as_secs_f64()
    );
    if run.config.train.algorithm == helmholtz::train::Variant::Bihm {
        // The BiHM model is p* ∝ √(p q p*): log p* = log p̃* − log Z² (nrws.md §2.3).
        let started = Instant::now();
        let log_p_tilde = run.estimate(
            split,
            k,
            points,
            helmholtz::eval::Estimator::BihmUnnormalised,
        )?;
        let log_z2 = helmholtz::eval::bihm_log_z2(&run.model, 100_000, 10, run.config.seed)?;
        out!(
            "BiHM: log p̃* {log_p_tilde:.4}, log Z² {log_z2:.4} (10^5 dreams, 10 inner samples), log p* {:.4} (NLL {:.4}), {:.1} s",
            log_p_tilde - log_z2,
            log_z2 - log_p_tilde,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
