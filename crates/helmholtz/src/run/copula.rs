//! The Student-t copula MLE task of the SNGD paper (natgrad.md b.5): u from C(R, ν = 5) with
//! R = cov2corr(WᵀW/d + 1e-4 I), minibatches of 100, held-out NLL. SNGD steps the mean
//! parameter Σ of a zero-mean MVN(0, Σ) surrogate, R = cov2corr(Σ), with λ = ln(ν − 2) by Adam;
//! the baselines are Adam on (W, λ) with Σ = WᵀW or Σ⁻¹ = WᵀW. All share the skew-normal
//! tasks' loop, settings and trace.

use faer::Mat;
use faer::linalg::solvers::DenseSolveCore;

use crate::dist::copula::{StudentTCopula, cov2corr, cov2corr_backward};
use crate::dist::exponential_family::MultivariateGaussian;
use crate::error::{Error, Result};
use crate::math::linalg::cholesky;
use crate::math::rng::{Stream, ids};
use crate::optim::sngd::Adam;
use crate::run::skew_normal::{
    SkewMethod, SkewSettings, SkewTrace, Stepper, backtrack, drive_minibatch,
};

/// The smallest ν the parametrisation ν = 2 + e^λ allows (finite variance).
const MIN_NU: f64 = 2.0;

/// Training points, held-out points and the copula they came from.
pub struct CopulaTask {
    /// Training points in (0, 1)^d as rows.
    pub train: Mat<f64>,
    /// Held-out points.
    pub test: Mat<f64>,
    /// The generating copula.
    pub truth: StudentTCopula,
}

/// The authors' task: R = cov2corr(WᵀW/d + 1e-4 I) with W standard normal, ν = 5.
pub fn copula_task(dim: usize, train: usize, test: usize, seed: u64) -> Result<CopulaTask> {
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
    Ok(CopulaTask {
        train: all.subrows(0, train).to_owned(),
        test: all.subrows(train, test).to_owned(),
        truth,
    })
}

/// The optimiser state of one copula run.
enum CopulaOptimiser {
    /// The surrogate's mean parameter Σ and λ = ln(ν − 2) with its Adam.
    Sngd {
        sigma: Mat<f64>,
        lambda: Vec<f64>,
        adam: Adam,
    },
    /// (W column-major, λ) with Σ = WᵀW, or Σ⁻¹ = WᵀW when `precision`.
    Adam {
        dim: usize,
        precision: bool,
        params: Vec<f64>,
        adam: Adam,
    },
}

/// The copula's gradient: symmetric in R and in ν.
struct CopulaGradient {
    r: Mat<f64>,
    nu: f64,
}

impl CopulaOptimiser {
    /// The authors' start: R = cov2corr(I + WᵀW) with W ~ N(0, 0.01²), ν = 50.
    fn new(method: SkewMethod, dim: usize, settings: &SkewSettings) -> Result<Self> {
        let mut rng = Stream::new(settings.seed, &[ids::INIT]);
        let w = Mat::from_fn(dim, dim, |_, _| 0.01 * rng.normal());
        let r = cov2corr(&(Mat::<f64>::identity(dim, dim) + w.transpose() * &w))?;
        let lambda = (50.0 - MIN_NU).ln();
        Ok(match method {
            SkewMethod::Sngd => CopulaOptimiser::Sngd {
                sigma: r,
                lambda: vec![lambda],
                adam: Adam::new(1, settings.lr_lambda)?,
            },
            SkewMethod::AdamCovariance | SkewMethod::AdamPrecision => {
                let precision = method == SkewMethod::AdamPrecision;
                let target = if precision {
                    cholesky(&r, "R")?.inverse()
                } else {
                    r
                };
                // WᵀW = target with W = Lᵀ.
                let llt = cholesky(&target, "R")?;
                let l = llt.L();
                let mut params: Vec<f64> = (0..dim * dim).map(|k| l[(k / dim, k % dim)]).collect();
                params.push(lambda);
                CopulaOptimiser::Adam {
                    dim,
                    precision,
                    adam: Adam::new(params.len(), settings.lr_adam)?,
                    params,
                }
            }
            SkewMethod::Mcef => {
                return Err(Error::Config(
                    "MCEF is a skew-normal baseline; the copula runs SNGD and Adam".into(),
                ));
            }
        })
    }

    /// Σ of the current state.
    fn sigma(&self) -> Result<Mat<f64>> {
        match self {
            CopulaOptimiser::Sngd { sigma, .. } => Ok(sigma.clone()),
            CopulaOptimiser::Adam {
                dim,
                precision,
                params,
                ..
            } => {
                let w = Mat::from_fn(*dim, *dim, |r, c| params[c * dim + r]);
                let wtw = w.transpose() * &w;
                if *precision {
                    Ok(cholesky(&wtw, "WᵀW")?.inverse())
                } else {
                    Ok(wtw)
                }
            }
        }
    }
}

impl Stepper for CopulaOptimiser {
    type Point = StudentTCopula;
    type Gradient = CopulaGradient;

    fn distribution(&self) -> Result<StudentTCopula> {
        let lambda = match self {
            CopulaOptimiser::Sngd { lambda, .. } => lambda[0],
            CopulaOptimiser::Adam { params, .. } => params[params.len() - 1],
        };
        StudentTCopula::new(cov2corr(&self.sigma()?)?, MIN_NU + lambda.exp())
    }

    fn step(&mut self, current: &StudentTCopula, g: &CopulaGradient, lr_theta: f64) -> Result<()> {
        let sigma = self.sigma()?;
        let g_sigma = cov2corr_backward(&sigma, &g.r)?;
        let g_lambda = g.nu * (current.nu - MIN_NU);
        let d = sigma.nrows();
        match self {
            CopulaOptimiser::Sngd {
                sigma: state,
                lambda,
                adam,
            } => {
                // Mean parameter Σ, gradient in the natural parameter −½Σ⁻¹: 2Σ g_Σ Σ.
                let zero = vec![0.0; d];
                let (_, n2) =
                    MultivariateGaussian::gradient_in_natural(&zero, &sigma, &zero, &g_sigma);
                *state = backtrack(
                    lr_theta,
                    |beta| {
                        let next = Mat::from_fn(d, d, |r, c| sigma[(r, c)] - beta * n2[(r, c)]);
                        cholesky(&next, "Σ").ok().map(|_| next)
                    },
                    "SNGD",
                )?;
                adam.descend(lambda, &[g_lambda])
            }
            CopulaOptimiser::Adam {
                precision,
                params,
                adam,
                ..
            } => {
                let w = Mat::from_fn(d, d, |r, c| params[c * d + r]);
                // Σ = WᵀW: ∂W = 2W g_Σ; Σ⁻¹ = WᵀW: ∂W = 2W g_S with g_S = −Σ g_Σ Σ.
                let inner = if *precision {
                    -(&sigma * &g_sigma * &sigma)
                } else {
                    g_sigma
                };
                let g_w = &w * &inner * faer::Scale(2.0);
                let mut gradient: Vec<f64> = (0..d * d).map(|k| g_w[(k % d, k / d)]).collect();
                gradient.push(g_lambda);
                adam.descend(params, &gradient)
            }
        }
    }
}

/// Runs `method` (SNGD, or Adam in either square root) on `task` with minibatches drawn with
/// replacement; `progress(steps, held-out NLL)` at every evaluation.
pub fn run_copula(
    task: &CopulaTask,
    method: SkewMethod,
    settings: &SkewSettings,
    mut progress: impl FnMut(usize, f64),
) -> Result<SkewTrace> {
    drive_minibatch(
        |d| CopulaOptimiser::new(method, d, settings),
        method,
        settings,
        (&task.train, &task.test),
        |c, x| c.nll(x),
        |c, x| {
            let (value, r, nu) = c.nll_gradient(x)?;
            Ok((value, CopulaGradient { r, nu }))
        },
        &mut progress,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::skew_normal::assert_sngd_leads;

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
            |method| run_copula(&task, method, &settings, |_, _| {}).unwrap(),
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
        assert!(run_copula(&task, SkewMethod::Sngd, &settings, |_, _| {}).is_err());
        let settings = SkewSettings {
            batch: 5,
            ..settings
        };
        assert!(run_copula(&task, SkewMethod::Mcef, &settings, |_, _| {}).is_err());
    }
}
