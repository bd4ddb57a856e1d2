//! The Student-t copula MLE task of the SNGD paper (natgrad.md b.5): u from C(R, ν = 5) with
//! R = cov2corr(WᵀW/d + 1e-4 I), minibatches of 100, held-out NLL. SNGD steps the mean parameter
//! Σ of a zero-mean MVN(0, Σ) surrogate, R = cov2corr(Σ), with λ = ln(ν − 2) by Adam; the
//! baselines are Adam on (W, λ) with Σ = WᵀW or Σ⁻¹ = WᵀW.

use faer::Mat;

use helmholtz::dist::copula::{StudentTCopula, cov2corr};
use helmholtz::dist::surrogate::{GaussianMixture, Gaussians};
use helmholtz::error::{Error, Result};
use helmholtz::math::rng::{Stream, ids};
use helmholtz::objectives::targets::copula::{CopulaGradient, CopulaNll};
use helmholtz::optim::sngd::starts::copula_start;
use helmholtz::optim::sngd::{AdamRoot, Method, SngdMean};

use crate::sngd::skew::{SkewMethod, SkewTask};
use crate::sngd::{Progress, SkewSettings, SkewTrace, drive_minibatch};

/// The authors' task: R = cov2corr(WᵀW/d + 1e-4 I) with W standard normal, ν = 5.
pub fn copula_task(
    dim: usize,
    train: usize,
    test: usize,
    seed: u64,
) -> Result<SkewTask<StudentTCopula>> {
    if dim == 0 || train == 0 || test == 0 {
        return Err(Error::Config(format!(
            "the copula task needs a positive dimension and point counts, got d = {dim}, \
             {train} training and {test} held-out points"
        )));
    }
    let mut rng = Stream::new(seed, &[ids::SYNTHETIC]);
    let w = Mat::from_fn(dim, dim, |_, _| rng.normal());
    let sigma = w.transpose() * &w * faer::Scale(1.0 / dim as f64)
        + Mat::<f64>::identity(dim, dim) * faer::Scale(1e-4);
    let truth = StudentTCopula::new(cov2corr(&sigma)?, 5.0)?;
    let all = truth.sample(train + test, &mut rng)?;
    Ok(SkewTask {
        train: all.subrows(0, train).to_owned(),
        test: all.subrows(train, test).to_owned(),
        truth,
    })
}

/// Runs `method` (SNGD, or Adam in either square root) on `task` with minibatches drawn with
/// replacement; `progress(steps, held-out NLL)` at every evaluation.
pub fn run_copula(
    task: &SkewTask<StudentTCopula>,
    method: SkewMethod,
    settings: &SkewSettings,
    progress: Progress<'_>,
) -> Result<SkewTrace> {
    fn run<M: Method<Point = StudentTCopula, Gradient = CopulaGradient>>(
        start: impl FnOnce(usize) -> Result<M>,
        task: &SkewTask<StudentTCopula>,
        method: SkewMethod,
        settings: &SkewSettings,
        progress: Progress<'_>,
    ) -> Result<SkewTrace> {
        drive_minibatch(
            start,
            method,
            settings,
            (&task.train, &task.test),
            |c, x| c.nll(x),
            |m, batch| m.step(&CopulaNll { points: batch }),
            progress,
        )
    }
    match method {
        SkewMethod::Sngd => run(
            |d| {
                let (r, lambda) = copula_start(d, settings.seed)?;
                SngdMean::<StudentTCopula>::new(
                    GaussianMixture::single(d),
                    Gaussians::single(vec![0.0; d], r),
                    vec![lambda],
                    settings.lr_lambda,
                    settings.backtracking(),
                )
            },
            task,
            method,
            settings,
            progress,
        ),
        SkewMethod::AdamCovariance | SkewMethod::AdamPrecision => run(
            |d| {
                let (r, lambda) = copula_start(d, settings.seed)?;
                let root = method.root();
                // WᵀW = R (or R⁻¹) with W = Lᵀ.
                let w = AdamRoot::<StudentTCopula>::root_of(&r, root)?;
                AdamRoot::<StudentTCopula>::new(
                    GaussianMixture::single(d),
                    root,
                    vec![0.0],
                    &[vec![0.0; d]],
                    &[w],
                    &[lambda],
                    settings.lr_adam,
                )
            },
            task,
            method,
            settings,
            progress,
        ),
        SkewMethod::Mcef => Err(Error::Config(
            "MCEF is a skew-normal baseline; the copula runs SNGD and Adam".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sngd::assert_sngd_leads;

    /// SNGD reaches the best held-out NLL of both Adam baselines in at most half their steps on
    /// a small copula, and every method improves on its start.
    #[test]
    fn sngd_leads_adam_on_a_small_copula() {
        let task = copula_task(8, 400, 200, 0).unwrap();
        let settings = SkewSettings {
            iterations: 200,
            batch: 50,
            eval_every: 10,
            lr_theta: 0.1,
            lr_lambda: 0.1,
            lr_adam: 0.01,
            seed: 0,
        };
        assert_sngd_leads(
            |method| run_copula(&task, method, &settings, &mut |_, _| {}).unwrap(),
            &[SkewMethod::AdamCovariance, SkewMethod::AdamPrecision],
            2,
            0.1,
        );
    }

    #[test]
    fn a_bad_copula_task_is_an_error() {
        assert!(copula_task(0, 10, 10, 0).is_err());
        let task = copula_task(3, 20, 10, 0).unwrap();
        let settings = SkewSettings {
            iterations: 5,
            batch: 0,
            eval_every: 1,
            lr_theta: 0.1,
            lr_lambda: 0.1,
            lr_adam: 0.01,
            seed: 0,
        };
        assert!(run_copula(&task, SkewMethod::Sngd, &settings, &mut |_, _| {}).is_err());
        let settings = SkewSettings {
            batch: 5,
            ..settings
        };
        assert!(run_copula(&task, SkewMethod::Mcef, &settings, &mut |_, _| {}).is_err());
    }
}
