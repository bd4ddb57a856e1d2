//! Distributions written in the coordinates of a surrogate: the way to fit a distribution the
//! library does not ship, whose objective is known only as a value and a gradient (a Python
//! function, say), by SNGD without writing a [`Surrogated`] implementation of its own.
//!
//! Parametrise your distribution by a surrogate's standard coordinates and, where those do not
//! cover it, auxiliary parameters λ:
//!
//! * [`GaussianCoordinates`]: a mean m ∈ ℝᵈ and a symmetric positive definite Σ (the Gaussian
//!   surrogate, [`GaussianMixture::single`]), e.g. a log-normal (m, Σ of ln x) or a multivariate
//!   t (location m, scale Σ, λ = ln(ν − 2));
//! * [`GammaCoordinates`]: a shape α > 0 and a rate β > 0 (the Gamma surrogate,
//!   [`MeanCoordinates`]`<`[`Gamma`]`>`), e.g. a Weibull with k = α and scale α/β.
//!
//! Your target's gradient is taken in the same coordinates (∂f/∂m, the symmetric ∂f/∂Σ with
//! df = tr(∂f/∂Σ dΣ), ∂f/∂α, ∂f/∂β, ∂f/∂λ); the chain rule to the surrogate's dual coordinates,
//! and the natural gradient it makes, are done here. [`SngdMean`](crate::optim::sngd::SngdMean)
//! of either type then steps your target.
//!
//! ```
//! use helmholtz::dist::exponential_family::{ExponentialFamily, Gamma};
//! use helmholtz::dist::surrogate::MeanCoordinates;
//! use helmholtz::dist::surrogate_coordinates::{GammaCoordinates, GammaGradient};
//! use helmholtz::objectives::targets::Target;
//! use helmholtz::optim::sngd::{LineSearch, Method, SngdMean};
//!
//! // An exponential distribution with rate θ written as the Gamma of shape 1 and rate θ; its
//! // mean NLL on data with mean 2 is f = θ·2 − ln θ, minimised at θ = 1/2.
//! struct ExponentialNll;
//! impl Target for ExponentialNll {
//!     type Point = GammaCoordinates;
//!     type Gradient = GammaGradient;
//!     fn evaluate(&self, q: &GammaCoordinates) -> helmholtz::Result<(f64, GammaGradient)> {
//!         let g = GammaGradient { shape: 0.0, rate: 2.0 - 1.0 / q.rate, lambda: vec![] };
//!         Ok((2.0 * q.rate - q.rate.ln(), g))
//!     }
//! }
//! let start = Gamma.mean_from_natural(&Gamma::natural(1.0, 1.0))?;
//! let surrogate = MeanCoordinates { family: Gamma };
//! let mut sngd = SngdMean::<GammaCoordinates>::new(surrogate, start, vec![], 0.0, LineSearch::Grid { points: 1000 })?;
//! for _ in 0..20 {
//!     sngd.step(&ExponentialNll)?;
//! }
//! assert!((sngd.distribution()?.rate - 0.5).abs() < 1e-3);
//! # Ok::<(), helmholtz::Error>(())
//! ```

use faer::Mat;

use crate::dist::exponential_family::{ExponentialFamily, Gamma};
use crate::dist::surrogate::{
    GaussianMixture, Gaussians, GaussiansGradient, MeanCoordinates, Surrogated,
};
use crate::error::{Error, Result};

/// A distribution parametrised by a Gaussian's mean and covariance and auxiliary λ.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianCoordinates {
    /// m.
    pub mean: Vec<f64>,
    /// Σ, symmetric positive definite.
    pub covariance: Mat<f64>,
    /// The auxiliary parameters (empty when the Gaussian's coordinates cover the distribution).
    pub lambda: Vec<f64>,
}

/// A gradient in [`GaussianCoordinates`]: ∂f/∂m, the symmetric ∂f/∂Σ (df = tr(∂f/∂Σ dΣ) for
/// symmetric dΣ; a non-symmetric matrix G is taken as (G + Gᵀ)/2, the same first-order change
/// on symmetric dΣ) and ∂f/∂λ.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianGradient {
    /// ∂f/∂m.
    pub mean: Vec<f64>,
    /// ∂f/∂Σ.
    pub covariance: Mat<f64>,
    /// ∂f/∂λ.
    pub lambda: Vec<f64>,
}

impl Surrogated for GaussianCoordinates {
    type Surrogate = GaussianMixture;
    type Gradient = GaussianGradient;

    fn from_surrogate(
        surrogate: &GaussianMixture,
        point: &Gaussians,
        lambda: &[f64],
    ) -> Result<Self> {
        let (mean, covariance) = surrogate.single_gaussian(point, "GaussianCoordinates")?;
        Ok(GaussianCoordinates {
            mean: mean.to_vec(),
            covariance: covariance.clone(),
            lambda: lambda.to_vec(),
        })
    }

    fn pull_back(
        &self,
        surrogate: &GaussianMixture,
        _point: &Gaussians,
        lambda: &[f64],
        g: &GaussianGradient,
    ) -> Result<(GaussiansGradient, Vec<f64>)> {
        let d = surrogate.dim;
        let (rows, cols) = (g.covariance.nrows(), g.covariance.ncols());
        if g.mean.len() != d || (rows, cols) != (d, d) || g.lambda.len() != lambda.len() {
            return Err(Error::Dimension(format!(
                "a gradient of {} mean values, a {rows} × {cols} covariance block and {} λ values for a Gaussian of dimension {d} with {} λ",
                g.mean.len(),
                g.lambda.len(),
                lambda.len()
            )));
        }
        let symmetric = Mat::from_fn(d, d, |r, c| {
            0.5 * (g.covariance[(r, c)] + g.covariance[(c, r)])
        });
        Ok((
            GaussiansGradient::single(g.mean.clone(), symmetric),
            g.lambda.clone(),
        ))
    }
}

/// A distribution parametrised by a Gamma's shape α and rate β and auxiliary λ.
#[derive(Clone, Debug, PartialEq)]
pub struct GammaCoordinates {
    /// α > 0.
    pub shape: f64,
    /// β > 0.
    pub rate: f64,
    /// The auxiliary parameters (empty when (α, β) cover the distribution).
    pub lambda: Vec<f64>,
}

/// A gradient in [`GammaCoordinates`]: ∂f/∂α, ∂f/∂β, ∂f/∂λ.
#[derive(Clone, Debug, PartialEq)]
pub struct GammaGradient {
    /// ∂f/∂α.
    pub shape: f64,
    /// ∂f/∂β.
    pub rate: f64,
    /// ∂f/∂λ.
    pub lambda: Vec<f64>,
}

impl Surrogated for GammaCoordinates {
    type Surrogate = MeanCoordinates<Gamma>;
    type Gradient = GammaGradient;

    fn from_surrogate(
        surrogate: &MeanCoordinates<Gamma>,
        mu: &Vec<f64>,
        lambda: &[f64],
    ) -> Result<Self> {
        let (shape, rate) = Gamma::shape_rate(&surrogate.family.natural_from_mean(mu)?)?;
        Ok(GammaCoordinates {
            shape,
            rate,
            lambda: lambda.to_vec(),
        })
    }

    /// The Gamma's natural parameters are (α − 1, −β): ∂f/∂η₁ = ∂f/∂α, ∂f/∂η₂ = −∂f/∂β.
    fn pull_back(
        &self,
        _surrogate: &MeanCoordinates<Gamma>,
        _mu: &Vec<f64>,
        lambda: &[f64],
        g: &GammaGradient,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        if g.lambda.len() != lambda.len() {
            return Err(Error::Dimension(format!(
                "a gradient of {} λ values for {} λ",
                g.lambda.len(),
                lambda.len()
            )));
        }
        Ok((vec![g.shape, -g.rate], g.lambda.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::surrogate::Surrogate;
    use crate::math::rng::Stream;
    use crate::math::special::{digamma, gamma_draw, ln_gamma};
    use crate::objectives::targets::Target;
    use crate::optim::sngd::{LineSearch, Method, SngdMean};

    /// The mean NLL of points (rows) under N(m, Σ), written in the Gaussian's coordinates, with
    /// ∂f/∂m = −Σ⁻¹(x̄ − m) and ∂f/∂Σ = ½Σ⁻¹ − ½Σ⁻¹ S Σ⁻¹ (S the scatter about m).
    struct GaussianNll {
        points: Mat<f64>,
    }

    impl Target for GaussianNll {
        type Point = GaussianCoordinates;
        type Gradient = GaussianGradient;
        fn evaluate(&self, q: &GaussianCoordinates) -> Result<(f64, GaussianGradient)> {
            let (n, d) = (self.points.nrows(), self.points.ncols());
            use faer::linalg::solvers::DenseSolveCore;
            let precision = crate::math::linalg::cholesky(&q.covariance, "Σ")?.inverse();
            let log_det =
                crate::math::linalg::log_det(&crate::math::linalg::cholesky(&q.covariance, "Σ")?);
            let centred = Mat::from_fn(n, d, |i, j| self.points[(i, j)] - q.mean[j]);
            let scatter = centred.transpose() * &centred * (1.0 / n as f64);
            let quadratic: f64 = (0..d)
                .flat_map(|r| (0..d).map(move |c| (r, c)))
                .map(|(r, c)| precision[(r, c)] * scatter[(c, r)])
                .sum();
            let value = 0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det + quadratic);
            let mean_gap: Vec<f64> = (0..d)
                .map(|j| (0..n).map(|i| centred[(i, j)]).sum::<f64>() / n as f64)
                .collect();
            let g_mean = (0..d)
                .map(|r| -(0..d).map(|c| precision[(r, c)] * mean_gap[c]).sum::<f64>())
                .collect();
            let inner = &precision * &scatter * &precision;
            let g_cov = Mat::from_fn(d, d, |r, c| 0.5 * precision[(r, c)] - 0.5 * inner[(r, c)]);
            Ok((
                value,
                GaussianGradient {
                    mean: g_mean,
                    covariance: g_cov,
                    lambda: Vec::new(),
                },
            ))
        }
    }

    /// natgrad.md b.3: the target is the surrogate, so one mean-form step of size 1 lands on the
    /// maximum-likelihood estimate, the sample mean and (1/n) scatter.
    #[test]
    fn one_unit_step_lands_on_the_gaussian_mle() {
        let mut rng = Stream::new(9, &[]);
        let points = Mat::from_fn(400, 2, |_, j| {
            rng.normal() * (1.0 + j as f64) + 3.0 * j as f64
        });
        let target = GaussianNll {
            points: points.clone(),
        };
        let start = Gaussians::single(vec![0.0, 0.0], Mat::identity(2, 2));
        let mut sngd = SngdMean::<GaussianCoordinates>::new(
            GaussianMixture::single(2),
            start,
            Vec::new(),
            0.0,
            LineSearch::Fixed(1.0),
        )
        .unwrap();
        sngd.step(&target).unwrap();
        let q = sngd.distribution().unwrap();
        let n = points.nrows() as f64;
        let mean: Vec<f64> = (0..2)
            .map(|j| (0..400).map(|i| points[(i, j)]).sum::<f64>() / n)
            .collect();
        for j in 0..2 {
            assert!((q.mean[j] - mean[j]).abs() < 1e-10, "{:?} {mean:?}", q.mean);
            for k in 0..2 {
                let s: f64 = (0..400)
                    .map(|i| (points[(i, j)] - mean[j]) * (points[(i, k)] - mean[k]))
                    .sum::<f64>()
                    / n;
                assert!((q.covariance[(j, k)] - s).abs() < 1e-10);
            }
        }
        let (_, g) = target.evaluate(&q).unwrap();
        assert!(g.mean.iter().all(|v| v.abs() < 1e-9));
    }

    /// The same for the Gamma written in (α, β): f = ln Γ(α) − α ln β − (α − 1) mean ln x + β x̄.
    #[test]
    fn one_unit_step_lands_on_the_gamma_mle() {
        let mut rng = Stream::new(3, &[]);
        let data: Vec<f64> = (0..3000).map(|_| gamma_draw(2.5, &mut rng) / 4.0).collect();
        let n = data.len() as f64;
        let (mean_ln, mean) = (
            data.iter().map(|x| x.ln()).sum::<f64>() / n,
            data.iter().sum::<f64>() / n,
        );
        struct GammaNll(f64, f64);
        impl Target for GammaNll {
            type Point = GammaCoordinates;
            type Gradient = GammaGradient;
            fn evaluate(&self, q: &GammaCoordinates) -> Result<(f64, GammaGradient)> {
                let (a, b) = (q.shape, q.rate);
                let value = ln_gamma(a) - a * b.ln() - (a - 1.0) * self.0 + b * self.1;
                let g = GammaGradient {
                    shape: digamma(a) - b.ln() - self.0,
                    rate: -a / b + self.1,
                    lambda: Vec::new(),
                };
                Ok((value, g))
            }
        }
        let surrogate = MeanCoordinates { family: Gamma };
        let start = Gamma.mean_from_natural(&Gamma::natural(1.0, 1.0)).unwrap();
        let mut sngd = SngdMean::<GammaCoordinates>::new(
            surrogate,
            start,
            Vec::new(),
            0.0,
            LineSearch::Fixed(1.0),
        )
        .unwrap();
        sngd.step(&GammaNll(mean_ln, mean)).unwrap();
        let mu = sngd.point();
        assert!((mu[0] - mean_ln).abs() < 1e-12 && (mu[1] - mean).abs() < 1e-12);
        let q = sngd.distribution().unwrap();
        let (_, g) = GammaNll(mean_ln, mean).evaluate(&q).unwrap();
        assert!(g.shape.abs() < 1e-9 && g.rate.abs() < 1e-9, "{g:?}");
    }

    /// f(m, Σ, λ) = sin(m₀) m₁ + tr(A Σ) + (ln det Σ)² + λ₀ m₀ + λ₀²: the MLE-form direction
    /// pulled back from the gradient in (m, Σ) is the gradient of f in the surrogate's natural
    /// parameters, checked along random symmetric directions by central differences; the λ
    /// part passes through, and a wrong-shaped gradient is refused.
    #[test]
    fn the_pulled_back_gradient_is_the_natural_parameter_gradient() {
        let a = Mat::from_fn(2, 2, |r, c| [[0.3, -0.2], [0.5, 1.1]][r][c]);
        let f = |q: &GaussianCoordinates| -> (f64, GaussianGradient) {
            let (m, s, l) = (&q.mean, &q.covariance, &q.lambda);
            let det = s[(0, 0)] * s[(1, 1)] - s[(0, 1)] * s[(1, 0)];
            let ld = det.ln();
            let inverse = Mat::from_fn(2, 2, |r, c| {
                let adj = [[s[(1, 1)], -s[(0, 1)]], [-s[(1, 0)], s[(0, 0)]]];
                adj[r][c] / det
            });
            let value = m[0].sin() * m[1]
                + (0..2)
                    .map(|r| (0..2).map(|c| a[(r, c)] * s[(c, r)]).sum::<f64>())
                    .sum::<f64>()
                + ld * ld
                + l[0] * m[0]
                + l[0] * l[0];
            // d tr(AΣ) = tr(A dΣ): as a gradient, Aᵀ (symmetrised by pull_back);
            // d (ln det Σ)² = 2 ln det Σ tr(Σ⁻¹ dΣ).
            let g = GaussianGradient {
                mean: vec![m[0].cos() * m[1] + l[0], m[0].sin()],
                covariance: Mat::from_fn(2, 2, |r, c| a[(c, r)] + 2.0 * ld * inverse[(r, c)]),
                lambda: vec![m[0] + 2.0 * l[0]],
            };
            (value, g)
        };
        let surrogate = GaussianMixture::single(2);
        let point = Gaussians::single(
            vec![0.4, -0.7],
            Mat::from_fn(2, 2, |r, c| if r == c { 1.3 } else { 0.4 }),
        );
        let lambda = vec![0.25];
        let q = GaussianCoordinates::from_surrogate(&surrogate, &point, &lambda).unwrap();
        let (_, g) = f(&q);
        let (pulled, g_lambda) = q.pull_back(&surrogate, &point, &lambda, &g).unwrap();
        assert_eq!(g_lambda, g.lambda);
        let direction = surrogate.gradient_in_natural(&point, &pulled).unwrap();
        let eta = surrogate.natural(&point).unwrap();
        let value_at = |eta: &[f64]| {
            let p = surrogate.point_from_natural(eta).unwrap();
            f(&GaussianCoordinates::from_surrogate(&surrogate, &p, &lambda).unwrap()).0
        };
        let mut rng = Stream::new(1, &[]);
        for _ in 0..5 {
            // η = (η₁ ∈ ℝ², η₂ column-major 2 × 2): a symmetric η₂ direction.
            let mut v: Vec<f64> = (0..6).map(|_| rng.normal()).collect();
            v[4] = v[3];
            let h = 1e-6;
            let plus: Vec<f64> = eta.iter().zip(&v).map(|(e, d)| e + h * d).collect();
            let minus: Vec<f64> = eta.iter().zip(&v).map(|(e, d)| e - h * d).collect();
            let numeric = (value_at(&plus) - value_at(&minus)) / (2.0 * h);
            let analytic: f64 = direction.iter().zip(&v).map(|(a, b)| a * b).sum();
            assert!(
                (numeric - analytic).abs() < 1e-6 * (1.0 + numeric.abs()),
                "{numeric} {analytic}"
            );
        }
        let short = GaussianGradient {
            mean: vec![0.0],
            ..g.clone()
        };
        let err = q
            .pull_back(&surrogate, &point, &lambda, &short)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 mean values"), "{err}");
    }
}
