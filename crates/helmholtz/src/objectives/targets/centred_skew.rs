//! The skew-normal through the Gaussian of its own mean and covariance: SNGD's surrogate in
//! the centred coordinates (m, S, β) instead of the paper's N(ξ, Ω) with λ = η.
//!
//! With Lin's β = Ωη/√(1 + ηᵀΩη) (x = ξ + |w|β + v, w ~ N(0, 1), v ~ N(0, Ω − ββᵀ)), the mean
//! and covariance are m = ξ + cβ and S = Ω − c²ββᵀ, c = √(2/π). The surrogate is N(m, S) and
//! λ = β. In the direct coordinates the location ξ and the shape η are strongly correlated
//! (the skew shifts the mean): their estimates trade off along a ridge, and a method that steps
//! the two blocks separately crawls along it. The mean and covariance are nearly orthogonal to
//! the shape (Azzalini's centred parametrisation; Arellano-Valle & Azzalini 2008), so SNGD's
//! block step converges in far fewer steps (docs/MLE.md).
//!
//! From (m, S, β): μ = m − cβ and V = S − (1 − c²)ββᵀ are Lin's coordinates
//! ([`SkewNormal::from_lin_coordinates`]); the domain is V positive definite. Gradients pull
//! back through Lin's: G_m = G_μ, G_S = G_V and G_β = G_β^Lin − c G_μ − 2(1 − c²) G_V β.

use faer::Mat;

use crate::dist::skew::{SkewGradient, SkewNormal};
use crate::dist::surrogate::{GaussianMixture, Gaussians, GaussiansGradient, Surrogated};
use crate::error::{Error, Result};
use crate::objectives::targets::Target;

/// c = √(2/π) = E|w| for w ~ N(0, 1).
const C: f64 = 0.797_884_560_802_865_4;

/// A skew-normal optimised in the centred coordinates (m, S, β) (see the module's notes).
#[derive(Clone, Debug)]
pub struct CentredSkewNormal(pub SkewNormal);

impl CentredSkewNormal {
    /// The centred coordinates (m, S, β) of a skew-normal.
    pub fn coordinates(q: &SkewNormal) -> (Vec<f64>, Mat<f64>, Vec<f64>) {
        let (mu, v, beta) = q.lin_coordinates();
        let d = mu.len();
        let m = (0..d).map(|r| mu[r] + C * beta[r]).collect();
        let k = 1.0 - C * C;
        let s = Mat::from_fn(d, d, |r, c| v[(r, c)] + k * beta[r] * beta[c]);
        (m, s, beta)
    }
}

impl Surrogated for CentredSkewNormal {
    type Surrogate = GaussianMixture;
    type Gradient = SkewGradient;

    fn from_surrogate(
        surrogate: &GaussianMixture,
        point: &Gaussians,
        lambda: &[f64],
    ) -> Result<Self> {
        let (m, s) = surrogate.single_gaussian(point, "a skew-normal")?;
        let d = m.len();
        if lambda.len() != d {
            return Err(Error::Dimension(format!(
                "the centred skew-normal's β has {} entries for dimension {d}",
                lambda.len()
            )));
        }
        let mu = (0..d).map(|r| m[r] - C * lambda[r]).collect();
        let k = 1.0 - C * C;
        let v = Mat::from_fn(d, d, |r, c| s[(r, c)] - k * lambda[r] * lambda[c]);
        Ok(CentredSkewNormal(SkewNormal::from_lin_coordinates(
            mu, &v, lambda,
        )?))
    }

    fn pull_back(
        &self,
        _surrogate: &GaussianMixture,
        _point: &Gaussians,
        lambda: &[f64],
        g: &SkewGradient,
    ) -> Result<(GaussiansGradient, Vec<f64>)> {
        let (g_mu, g_v, g_beta) = self.0.gradient_in_lin_coordinates(g)?;
        let d = g_mu.len();
        let k = 1.0 - C * C;
        let g_lambda = (0..d)
            .map(|r| {
                g_beta[r]
                    - C * g_mu[r]
                    - 2.0 * k * (0..d).map(|c| g_v[(r, c)] * lambda[c]).sum::<f64>()
            })
            .collect();
        Ok((GaussiansGradient::single(g_mu, g_v), g_lambda))
    }
}

/// A skew-normal target `T` seen in the centred coordinates.
pub struct Centred<T>(pub T);

impl<T: Target<Point = SkewNormal, Gradient = SkewGradient>> Target for Centred<T> {
    type Point = CentredSkewNormal;
    type Gradient = SkewGradient;

    fn evaluate(&self, q: &CentredSkewNormal) -> Result<(f64, SkewGradient)> {
        self.0.evaluate(&q.0)
    }

    fn value(&self, q: &CentredSkewNormal) -> Result<f64> {
        self.0.value(&q.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::objectives::targets::skew_normal::SkewNormalNll;

    fn truth() -> SkewNormal {
        let omega = Mat::from_fn(3, 3, |a, b| match a.abs_diff(b) {
            0 => [1.0, 2.0, 0.5][a],
            1 => 0.3,
            _ => 0.0,
        });
        SkewNormal::new(vec![1.0, -1.0, 0.5], omega, vec![2.0, -1.0, 0.5]).unwrap()
    }

    /// (m, S) are the skew-normal's mean and covariance (against the sample moments of 400 000
    /// draws, within 5 standard errors), and the coordinates round-trip.
    #[test]
    fn centred_coordinates_are_the_moments_and_round_trip() {
        let q = truth();
        let (m, s, beta) = CentredSkewNormal::coordinates(&q);
        let n = 400_000;
        let x = q.sample(n, &mut Stream::new(4, &[])).unwrap();
        for j in 0..3 {
            let mean = (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64;
            let se = (s[(j, j)] / n as f64).sqrt();
            assert!(
                (mean - m[j]).abs() < 5.0 * se,
                "mean {j}: {mean} vs {}",
                m[j]
            );
            for k in 0..3 {
                let cov = (0..n)
                    .map(|i| (x[(i, j)] - m[j]) * (x[(i, k)] - m[k]))
                    .sum::<f64>()
                    / n as f64;
                let se = ((s[(j, j)] * s[(k, k)] + s[(j, k)].powi(2)) / n as f64).sqrt();
                assert!((cov - s[(j, k)]).abs() < 5.0 * se, "cov {j}{k}");
            }
        }
        let back = CentredSkewNormal::from_surrogate(
            &GaussianMixture::single(3),
            &Gaussians::single(m, s),
            &beta,
        )
        .unwrap()
        .0;
        for j in 0..3 {
            assert!((back.xi[j] - q.xi[j]).abs() < 1e-12);
            assert!((back.eta[j] - q.eta[j]).abs() < 1e-10);
            for k in 0..3 {
                assert!((back.omega[(j, k)] - q.omega[(j, k)]).abs() < 1e-12);
            }
        }
    }

    /// The pulled-back gradient in (m, S, β) matches central differences of the NLL as a
    /// function of the centred coordinates (S moved symmetrically).
    #[test]
    fn centred_gradients_match_finite_differences() {
        let q = truth();
        let x = q.sample(300, &mut Stream::new(5, &[])).unwrap();
        let target = Centred(SkewNormalNll { points: x.as_ref() });
        let (m, s, beta) = CentredSkewNormal::coordinates(&q);
        let surrogate = GaussianMixture::single(3);
        let f = |m: &[f64], s: &Mat<f64>, b: &[f64]| {
            let p = CentredSkewNormal::from_surrogate(
                &surrogate,
                &Gaussians::single(m.to_vec(), s.clone()),
                b,
            )
            .unwrap();
            target.value(&p).unwrap()
        };
        let point = Gaussians::single(m.clone(), s.clone());
        let p = CentredSkewNormal::from_surrogate(&surrogate, &point, &beta).unwrap();
        let (_, g) = target.evaluate(&p).unwrap();
        let (gs, gb) = p.pull_back(&surrogate, &point, &beta, &g).unwrap();
        let h = 1e-6;
        let close = |analytic: f64, numeric: f64, what: &str| {
            assert!(
                (analytic - numeric).abs() < 1e-6 * (1.0 + analytic.abs()),
                "{what}: {analytic} vs {numeric}"
            );
        };
        for j in 0..3 {
            let shift = |v: &[f64], by: f64| {
                let mut v = v.to_vec();
                v[j] += by;
                v
            };
            let numeric = (f(&shift(&m, h), &s, &beta) - f(&shift(&m, -h), &s, &beta)) / (2.0 * h);
            close(gs.means[0][j], numeric, "m");
            let numeric = (f(&m, &s, &shift(&beta, h)) - f(&m, &s, &shift(&beta, -h))) / (2.0 * h);
            close(gb[j], numeric, "β");
            for k in 0..3 {
                let moved = |by: f64| {
                    let mut t = s.clone();
                    t[(j, k)] += by;
                    if j != k {
                        t[(k, j)] += by;
                    }
                    t
                };
                let numeric = (f(&m, &moved(h), &beta) - f(&m, &moved(-h), &beta)) / (2.0 * h);
                let analytic = if j == k {
                    gs.covariances[0][(j, k)]
                } else {
                    2.0 * gs.covariances[0][(j, k)]
                };
                close(analytic, numeric, "S");
            }
        }
    }
}
