//! Variational inference on Bayesian logistic regression (natgrad.md b.5): the authors'
//! synthetic data, and runs of SNGD in the VI form (natural parameters of the MVN(ξ, Ω)
//! surrogate, λ by Adam), the two Adam parametrisations and the MCEF natural gradient with a
//! skew-normal, skew-t or skew-normal-mixture family: 10 draws per step, the negative ELBO with
//! 100 draws (the same for every method) at every evaluation.

use faer::Mat;

use helmholtz::data::batches::IndicesOnly;
use helmholtz::dist::skew::{SkewNormal, SkewT};
use helmholtz::dist::skew_mixture::SkewMixture;
use helmholtz::error::{Error, Result};
use helmholtz::math::rng::{Stream, ids};
use helmholtz::models::logistic_regression::LogisticRegression;
use helmholtz::objectives::targets::Target;
use helmholtz::objectives::targets::logistic_vi::{
    Noise, SkewMixtureElbo, SkewNormalElbo, SkewTElbo,
};
use helmholtz::optim::sngd::{AdamRoot, Method, MixtureStart, SkewStart, SngdNatural};

use crate::sngd::skew::{SkewMethod, skew_t_lambda, sngd_natural};
use crate::sngd::{Progress, SkewSettings, SkewTrace, drive};

/// Draws per training step (the authors' 10).
pub const TRAIN_DRAWS: usize = 10;
/// Draws per evaluation (the authors' 100).
pub const EVAL_DRAWS: usize = 100;
/// Mixture weights are kept at or above this (the authors' clip for VI).
pub const MIN_WEIGHT: f64 = 1e-3;
/// The start's scale: Ω = 0.01 I.
const OMEGA_SCALE: f64 = 0.01;

/// The authors' synthetic set: x ~ N(0, I) (n × d), z ~ N(0, I), y ~ Bernoulli(σ((2x − 1)z)),
/// modelled as logistic regression on x (as in their code).
pub fn logistic_task(dim: usize, n: usize, seed: u64) -> Result<LogisticRegression> {
    if dim == 0 || n == 0 {
        return Err(Error::Config(format!(
            "logistic regression needs a positive dimension and point count, got d = {dim}, n = {n}"
        )));
    }
    let mut rng = Stream::new(seed, &[ids::SYNTHETIC]);
    let x = Mat::from_fn(n, dim, |_, _| rng.normal());
    let z: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
    let y = (0..n)
        .map(|i| {
            let logit: f64 = (0..dim).map(|j| (2.0 * x[(i, j)] - 1.0) * z[j]).sum();
            if rng.uniform_f64() < helmholtz::math::sigmoid(logit) {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    LogisticRegression::new(x, y)
}

/// VI has no data: each step's batch is one placeholder point (the target draws its own noise).
const NO_DATA: IndicesOnly = IndicesOnly { n_points: 1 };

/// The noise of step `step` (training) or of the evaluation after `step` steps.
fn noise(settings: &SkewSettings, stream: u64, step: usize) -> Noise {
    Noise {
        seed: settings.seed,
        ids: vec![stream, step as u64],
    }
}

/// The VI loop: a target with [`TRAIN_DRAWS`] per step from `target(model, draws, noise)`, and
/// the same target with [`EVAL_DRAWS`] at every evaluation (the same draws for every method).
fn drive_vi<'a, M, T>(
    method: M,
    which: SkewMethod,
    settings: &SkewSettings,
    model: &'a LogisticRegression,
    target: impl Fn(&'a LogisticRegression, usize, Noise) -> T,
    progress: Progress<'_>,
) -> Result<SkewTrace>
where
    M: Method<Point = T::Point, Gradient = T::Gradient>,
    T: Target,
{
    drive(
        method,
        which,
        &SkewSettings {
            batch: 1,
            ..*settings
        },
        &NO_DATA,
        |q, step| target(model, EVAL_DRAWS, noise(settings, ids::EVAL, step)).value(q),
        |m, _, step| {
            m.step(&target(
                model,
                TRAIN_DRAWS,
                noise(settings, ids::TRAIN, step),
            ))
        },
        progress,
    )
}

/// Runs `method` (learning rates from `settings`: SNGD's `lr_theta` and `lr_lambda`, Adam's
/// `lr_adam`, MCEF's `lr_theta`) with a skew-normal family from the authors' start ξ, η ~
/// N(0, 0.01²), Ω = 0.01 I. Evaluations use the same draws for every method.
pub fn run_skew_vi(
    model: &LogisticRegression,
    method: SkewMethod,
    settings: &SkewSettings,
    progress: Progress<'_>,
) -> Result<SkewTrace> {
    let start = SkewStart::new(model.dim(), OMEGA_SCALE, settings.seed);
    let target = |model, draws, noise| SkewNormalElbo {
        model,
        draws,
        noise,
    };
    match method {
        SkewMethod::Sngd => {
            let sngd = sngd_natural::<SkewNormal>(&start, start.eta.clone(), settings)?;
            drive_vi(sngd, method, settings, model, target, progress)
        }
        SkewMethod::AdamCovariance | SkewMethod::AdamPrecision => {
            let adam = start.adam::<SkewNormal>(method, &start.eta, settings.lr_adam)?;
            drive_vi(adam, method, settings, model, target, progress)
        }
        SkewMethod::Mcef => {
            let mcef = start.mcef(settings.backtracking())?;
            drive_vi(mcef, method, settings, model, target, progress)
        }
    }
}

/// Runs `method` (SNGD or Adam) with a skew-t variational family from the skew-normal start and
/// ν = 50 (λ = (η, ln(ν − 2)) by Adam).
pub fn run_skew_t_vi(
    model: &LogisticRegression,
    method: SkewMethod,
    settings: &SkewSettings,
    progress: Progress<'_>,
) -> Result<SkewTrace> {
    if method == SkewMethod::Mcef {
        return Err(Error::Config(
            "MCEF is a skew-normal baseline; the skew-t runs SNGD and Adam".into(),
        ));
    }
    let start = SkewStart::new(model.dim(), OMEGA_SCALE, settings.seed);
    let target = |model, draws, noise| SkewTElbo {
        model,
        draws,
        noise,
    };
    if method == SkewMethod::Sngd {
        let sngd = sngd_natural::<SkewT>(&start, skew_t_lambda(&start), settings)?;
        drive_vi(sngd, method, settings, model, target, progress)
    } else {
        let adam = start.adam::<SkewT>(method, &skew_t_lambda(&start), settings.lr_adam)?;
        drive_vi(adam, method, settings, model, target, progress)
    }
}

/// The authors' start of a `components`-component mixture: equal weights, ξ_k, η_k ~
/// N(0, 0.01²), Ω_k = 0.01 I, weights clipped at [`MIN_WEIGHT`].
fn mixture_start(components: usize, dim: usize, seed: u64) -> MixtureStart {
    MixtureStart {
        components,
        dim,
        omega_scale: OMEGA_SCALE,
        min_weight: MIN_WEIGHT,
        seed,
    }
}

/// SNGD on a `components`-component mixture from the authors' start (one stream for ξ_k, η_k).
pub(crate) fn mixture_sngd(
    components: usize,
    dim: usize,
    settings: &SkewSettings,
) -> Result<SngdNatural<SkewMixture>> {
    mixture_start(components, dim, settings.seed).sngd(settings.lr_lambda, settings.backtracking())
}

/// Adam on a mixture: logits 0, component k from the skew-normal start of seed `seed + k`.
pub(crate) fn mixture_adam(
    method: SkewMethod,
    components: usize,
    dim: usize,
    settings: &SkewSettings,
) -> Result<AdamRoot<SkewMixture>> {
    mixture_start(components, dim, settings.seed).adam(method, settings.lr_adam)
}

/// Runs `method` (SNGD or Adam) with a `components`-component skew-normal mixture: the negative
/// ELBO with 10 draws per component per step and 100 per evaluation (the same for every
/// method).
pub fn run_mixture_vi(
    model: &LogisticRegression,
    method: SkewMethod,
    components: usize,
    settings: &SkewSettings,
    progress: Progress<'_>,
) -> Result<SkewTrace> {
    if components == 0 {
        return Err(Error::Config(
            "a mixture needs at least one component".into(),
        ));
    }
    let target = |model, draws, noise| SkewMixtureElbo {
        model,
        draws,
        noise,
    };
    match method {
        SkewMethod::Sngd => {
            let sngd = mixture_sngd(components, model.dim(), settings)?;
            drive_vi(sngd, method, settings, model, target, progress)
        }
        SkewMethod::AdamCovariance | SkewMethod::AdamPrecision => {
            let adam = mixture_adam(method, components, model.dim(), settings)?;
            drive_vi(adam, method, settings, model, target, progress)
        }
        SkewMethod::Mcef => Err(Error::Config(
            "MCEF is a single skew-normal baseline; mixtures run SNGD and Adam".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// −ln p(y) of a two-dimensional task by the midpoint rule on [−8, 8]², step 0.01.
    fn negative_log_evidence(model: &LogisticRegression) -> f64 {
        let (step, half) = (0.01, 8.0);
        let cells = (2.0 * half / step) as usize;
        let mut evidence = 0.0;
        for a in 0..cells {
            for b in 0..cells {
                let z = [
                    -half + step * (a as f64 + 0.5),
                    -half + step * (b as f64 + 0.5),
                ];
                let ln_prior =
                    -0.5 * (z[0] * z[0] + z[1] * z[1]) - (2.0 * std::f64::consts::PI).ln();
                evidence += (ln_prior + model.log_likelihood(&z).0).exp() * step * step;
            }
        }
        -evidence.ln()
    }

    /// The settings of the evidence-gap tests: 400 steps, one evaluation, seed 5.
    fn gap_settings(lr_theta: f64, lr_adam: f64) -> SkewSettings {
        SkewSettings {
            iterations: 400,
            batch: TRAIN_DRAWS,
            eval_every: 400,
            lr_theta,
            lr_lambda: 0.03,
            lr_adam,
            seed: 5,
        }
    }

    /// −ELBO is at least −ln p(y) (less `below` of Monte Carlo noise) and within 0.1 nats of it.
    fn assert_near_evidence(method: SkewMethod, value: f64, bound: f64, below: f64) {
        let name = method.name();
        assert!(
            value > bound - below,
            "{name}: −ELBO {value} below −ln p(y) {bound}"
        );
        assert!(
            value < bound + 0.1,
            "{name}: −ELBO {value}, −ln p(y) {bound}"
        );
    }

    /// Runs `method` for `settings.iterations` training steps on `target` and returns where it
    /// ends.
    fn final_point<'a, M, T>(
        method: M,
        which: SkewMethod,
        settings: &SkewSettings,
        model: &'a LogisticRegression,
        target: impl Fn(&'a LogisticRegression, usize, Noise) -> T,
    ) -> M::Point
    where
        M: Method<Point = T::Point, Gradient = T::Gradient>,
        T: Target,
        M::Point: Clone,
    {
        let mut last = None;
        let trace = drive(
            method,
            which,
            &SkewSettings {
                batch: 1,
                ..*settings
            },
            &NO_DATA,
            |q, _| {
                last = Some(q.clone());
                Ok(0.0)
            },
            |m, _, step| {
                m.step(&target(
                    model,
                    TRAIN_DRAWS,
                    noise(settings, ids::TRAIN, step),
                ))
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert!(trace.stopped.is_none(), "{trace:?}");
        last.unwrap()
    }

    /// The ELBO bounds the log evidence: on a two-dimensional posterior (evidence by quadrature
    /// on a grid) every method must end with −ELBO ≥ −ln p(y) (estimated with many draws), and
    /// SNGD, Adam and MCEF must all close the gap to within 0.1 nats, which a wrong gradient or
    /// a wrong step direction would not.
    #[test]
    fn every_method_closes_the_gap_to_the_log_evidence() {
        let model = logistic_task(2, 30, 4).unwrap();
        let bound = negative_log_evidence(&model);
        let target = |model, draws, noise| SkewNormalElbo {
            model,
            draws,
            noise,
        };
        for (method, lr_theta, lr_adam) in [
            (SkewMethod::Sngd, 0.1, 0.0),
            (SkewMethod::AdamCovariance, 0.0, 0.03),
            (SkewMethod::Mcef, 0.1, 0.0),
        ] {
            let settings = gap_settings(lr_theta, lr_adam);
            let start = SkewStart::new(2, OMEGA_SCALE, settings.seed);
            let q = match method {
                SkewMethod::Sngd => {
                    let m = sngd_natural::<SkewNormal>(&start, start.eta.clone(), &settings);
                    final_point(m.unwrap(), method, &settings, &model, target)
                }
                SkewMethod::Mcef => {
                    let m = start.mcef(settings.backtracking()).unwrap();
                    final_point(m, method, &settings, &model, target)
                }
                _ => {
                    let m = start.adam::<SkewNormal>(method, &start.eta, settings.lr_adam);
                    final_point(m.unwrap(), method, &settings, &model, target)
                }
            };
            let (value, _) = model
                .negative_elbo(&q, 20_000, &mut Stream::new(6, &[]))
                .unwrap();
            assert_near_evidence(method, value, bound, 0.02);
        }
    }

    /// On a two-dimensional posterior (log evidence by quadrature) both methods fit a
    /// two-component mixture whose −ELBO ends within 0.1 nats of −ln p(y) and not below it.
    #[test]
    fn mixture_vi_closes_the_gap_to_the_log_evidence() {
        let model = logistic_task(2, 30, 4).unwrap();
        let bound = negative_log_evidence(&model);
        let target = |model, draws, noise| SkewMixtureElbo {
            model,
            draws,
            noise,
        };
        for (method, lr_theta, lr_adam) in [
            (SkewMethod::Sngd, 0.1, 0.0),
            (SkewMethod::AdamCovariance, 0.0, 0.03),
        ] {
            let settings = gap_settings(lr_theta, lr_adam);
            let q = if method == SkewMethod::Sngd {
                let m = mixture_sngd(2, 2, &settings).unwrap();
                final_point(m, method, &settings, &model, target)
            } else {
                let m = mixture_adam(method, 2, 2, &settings).unwrap();
                final_point(m, method, &settings, &model, target)
            };
            let (value, _) = model
                .mixture_negative_elbo(&q, 20_000, &mut Stream::new(6, &[]))
                .unwrap();
            assert_near_evidence(method, value, bound, 0.02);
        }
    }

    /// With a skew-t family both SNGD and Adam end within 0.1 nats of −ln p(y) on a
    /// two-dimensional posterior, and not below it.
    #[test]
    fn skew_t_vi_closes_the_gap_to_the_log_evidence() {
        let model = logistic_task(2, 30, 4).unwrap();
        let bound = negative_log_evidence(&model);
        let target = |model, draws, noise| SkewTElbo {
            model,
            draws,
            noise,
        };
        for (method, lr_theta, lr_adam) in [
            (SkewMethod::Sngd, 0.1, 0.0),
            (SkewMethod::AdamCovariance, 0.0, 0.03),
        ] {
            let settings = gap_settings(lr_theta, lr_adam);
            let start = SkewStart::new(2, OMEGA_SCALE, settings.seed);
            let q = if method == SkewMethod::Sngd {
                let m = sngd_natural::<SkewT>(&start, skew_t_lambda(&start), &settings);
                final_point(m.unwrap(), method, &settings, &model, target)
            } else {
                let m = start.adam::<SkewT>(method, &skew_t_lambda(&start), settings.lr_adam);
                final_point(m.unwrap(), method, &settings, &model, target)
            };
            let (value, _, _) = model
                .skew_t_negative_elbo(&q, 5000, &mut Stream::new(6, &[]))
                .unwrap();
            assert_near_evidence(method, value, bound, 0.03);
        }
    }
}
