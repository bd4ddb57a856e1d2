//! `helmholtz eval RUN`: the importance-sampling log-likelihood of a trained run.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use helmholtz::eval::Estimator;
use helmholtz::run::{Run, Slot, Split};

use crate::out;

/// Prints the mean log-likelihood of `split` (first `points` points) with `k` samples, from
/// checkpoint `slot`; for BiHM runs also log p* through its normaliser.
pub fn run(dir: &Path, k: usize, split: Split, points: Option<usize>, slot: Slot) -> Result<()> {
    let run = Run::open_checkpoint(dir, slot)?;
    let started = Instant::now();
    let (ll, se) = run.estimate_with_error(split, k, points, Estimator::LogLikelihood)?;
    out!(
        "{} log-likelihood {:.4} ± {se:.4} nats (NLL {:.4}), K = {k}, {:.1} s",
        split.name(),
        ll,
        -ll,
        started.elapsed().as_secs_f64()
    );
    if run.config.train.algorithm == helmholtz::train::Variant::Bihm {
        // The BiHM model is p* ∝ √(p q p*): log p* = log p̃* − log Z² (nrws.md §2.3).
        let started = Instant::now();
        let (log_p_tilde, tilde_se) =
            run.estimate_with_error(split, k, points, Estimator::BihmUnnormalised)?;
        let (dreams, inner) = (run.config.eval.z_dreams, run.config.eval.z_inner);
        let (log_z2, z2_se) =
            helmholtz::eval::bihm_log_z2_with_error(&run.model, dreams, inner, run.config.seed)?;
        out!(
            "BiHM: log p̃* {log_p_tilde:.4} ± {tilde_se:.4}, log Z² {log_z2:.4} ± {z2_se:.4} ({dreams} dreams, {inner} inner samples: eval.z_dreams, eval.z_inner), log p* {:.4} (NLL {:.4}), {:.1} s",
            log_p_tilde - log_z2,
            log_z2 - log_p_tilde,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Prints the model's log-likelihood of the points in `file`: importance sampling with `k`
/// samples for a Helmholtz machine (first `points` points, checkpoint `slot`), the exact
/// log-likelihood (or the ELBO) per point for a fit run, the NLL of the fitted distribution for
/// an mle run, in the data's own units.
pub fn file(dir: &Path, file: &Path, k: usize, points: Option<usize>, slot: Slot) -> Result<()> {
    if helmholtz::run::mle::is_mle_run(dir) {
        if points.is_some() {
            anyhow::bail!(
                "--points applies to Helmholtz-machine runs; an mle run evaluates the whole file"
            );
        }
        return super::mle::eval(dir, file);
    }
    if helmholtz::run::fit::is_fit_run(dir) {
        if points.is_some() {
            anyhow::bail!(
                "--points applies to Helmholtz-machine runs; a fit run evaluates the whole file"
            );
        }
        let e = helmholtz::run::fit::evaluate_file(dir, file)?;
        match e.log_likelihood {
            Some(ll) => out!(
                "{}: {} points, log-likelihood {ll:.6} nats per point (NLL {:.6}), ELBO {:.6}",
                file.display(),
                e.points,
                -ll,
                e.elbo
            ),
            None => out!(
                "{}: {} points, ELBO {:.6} nats per point (a lower bound on the log-likelihood)",
                file.display(),
                e.points,
                e.elbo
            ),
        }
        if e.log_scale != 0.0 {
            out!(
                "(the run's transform is applied first; its Σ ln scale = {:.6} is subtracted, so these are in the file's own units)",
                e.log_scale
            );
        }
        return Ok(());
    }
    let run = Run::open_checkpoint(dir, slot)?;
    let started = Instant::now();
    let (ll, n) = run.log_likelihood_of_file(file, k, points)?;
    out!(
        "{}: {n} points, log-likelihood {:.4} nats (NLL {:.4}), K = {k}, {:.1} s",
        file.display(),
        ll,
        -ll,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
