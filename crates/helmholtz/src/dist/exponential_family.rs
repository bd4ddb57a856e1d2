//! Exponential families q(x) = h(x) exp(η·T(x) − A(η)) in natural (η) and mean (μ = ∇A(η))
//! coordinates (natgrad.md (b), (c)). The surrogate natural gradient rests on the duality
//! F(η) = ∂μ/∂η: the natural gradient with respect to η is the ordinary gradient with respect
//! to μ, and vice versa.

use crate::error::{Error, Result};
use crate::math::special::{digamma, ln_gamma, trigamma};

/// An exponential family with its two coordinate systems.
pub trait ExponentialFamily {
    /// Number of natural (= mean) parameters.
    fn n_params(&self) -> usize;
    /// T(x).
    fn sufficient_statistics(&self, x: &[f64]) -> Vec<f64>;
    /// A(η); an error outside the natural domain.
    fn log_partition(&self, eta: &[f64]) -> Result<f64>;
    /// μ = ∇A(η); an error outside the natural domain.
    fn mean_from_natural(&self, eta: &[f64]) -> Result<Vec<f64>>;
    /// η with ∇A(η) = μ; an error outside the mean domain.
    fn natural_from_mean(&self, mu: &[f64]) -> Result<Vec<f64>>;
    /// Entropy of the member with natural parameters η.
    fn entropy(&self, eta: &[f64]) -> Result<f64>;
}

/// The Gamma family with shape α and rate β: T(x) = (ln x, x), η = (α − 1, −β),
/// A(η) = ln Γ(η₁ + 1) − (η₁ + 1) ln(−η₂), μ = (ψ(α) − ln β, α/β).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gamma;

impl Gamma {
    /// (α, β) from η, checked.
    pub fn shape_rate(eta: &[f64]) -> Result<(f64, f64)> {
        let (alpha, beta) = (eta[0] + 1.0, -eta[1]);
        if !(alpha > 0.0 && beta > 0.0 && alpha.is_finite() && beta.is_finite()) {
            return Err(Error::InvalidData(format!(
                "Gamma natural parameters {eta:?} are outside the domain (α > 0, β > 0)"
            )));
        }
        Ok((alpha, beta))
    }

    /// η from (α, β).
    pub fn natural(alpha: f64, beta: f64) -> [f64; 2] {
        [alpha - 1.0, -beta]
    }
}

/// Newton iterations of the mean-to-natural map.
const NEWTON_STEPS: usize = 100;

impl ExponentialFamily for Gamma {
    fn n_params(&self) -> usize {
        2
    }

    fn sufficient_statistics(&self, x: &[f64]) -> Vec<f64> {
        vec![x[0].ln(), x[0]]
    }

    fn log_partition(&self, eta: &[f64]) -> Result<f64> {
        let (alpha, beta) = Self::shape_rate(eta)?;
        Ok(ln_gamma(alpha) - alpha * beta.ln())
    }

    fn mean_from_natural(&self, eta: &[f64]) -> Result<Vec<f64>> {
        let (alpha, beta) = Self::shape_rate(eta)?;
        Ok(vec![digamma(alpha) - beta.ln(), alpha / beta])
    }

    /// Solves ψ(α) − ln α = μ₁ − ln μ₂ (< 0 in the mean domain μ₂ > 0, μ₁ < ln μ₂) by Newton's
    /// method from the left of the root, where the increasing concave left side makes the
    /// iterates rise monotonically to it; then β = α/μ₂.
    fn natural_from_mean(&self, mu: &[f64]) -> Result<Vec<f64>> {
        let (m1, m2) = (mu[0], mu[1]);
        if !(m2 > 0.0 && m2.is_finite() && m1 < m2.ln()) {
            return Err(Error::InvalidData(format!(
                "Gamma mean parameters {mu:?} are outside the domain (μ₂ > 0, μ₁ < ln μ₂)"
            )));
        }
        let c = m1 - m2.ln();
        let residual = |a: f64| digamma(a) - a.ln() - c;
        let mut alpha = 2.0;
        while residual(alpha) > 0.0 {
            alpha /= 2.0;
        }
        for _ in 0..NEWTON_STEPS {
            let r = residual(alpha);
            let step = r / (trigamma(alpha) - 1.0 / alpha);
            alpha -= step;
            if step.abs() <= 1e-15 * alpha {
                break;
            }
        }
        Ok(Gamma::natural(alpha, alpha / m2).to_vec())
    }

    fn entropy(&self, eta: &[f64]) -> Result<f64> {
        let (alpha, beta) = Self::shape_rate(eta)?;
        Ok(alpha - beta.ln() + ln_gamma(alpha) + (1.0 - alpha) * digamma(alpha))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::math::special::gamma_draw;

    #[test]
    fn gamma_coordinates_round_trip_and_mu_is_the_gradient_of_a() {
        for (alpha, beta) in [
            (0.05, 3.0),
            (0.7, 0.2),
            (2.5, 1.0),
            (80.0, 0.01),
            (5000.0, 7.0),
        ] {
            let eta = Gamma::natural(alpha, beta);
            let mu = Gamma.mean_from_natural(&eta).unwrap();
            let back = Gamma.natural_from_mean(&mu).unwrap();
            assert!(
                (back[0] - eta[0]).abs() < 1e-9 * alpha.max(1.0),
                "{eta:?} → {back:?}"
            );
            assert!(
                (back[1] - eta[1]).abs() < 1e-9 * beta.max(1.0),
                "{eta:?} → {back:?}"
            );
            for k in 0..2 {
                let h = 1e-6 * eta[k].abs().max(1e-3);
                let mut up = eta;
                up[k] += h;
                let mut down = eta;
                down[k] -= h;
                let numeric = (Gamma.log_partition(&up).unwrap()
                    - Gamma.log_partition(&down).unwrap())
                    / (2.0 * h);
                assert!(
                    (numeric - mu[k]).abs() < 1e-5 * (1.0 + mu[k].abs()),
                    "∂A/∂η{k}"
                );
            }
        }
        assert!(Gamma.natural_from_mean(&[1.0, 2.0]).is_err()); // μ₁ ≥ ln μ₂
        assert!(Gamma.natural_from_mean(&[0.0, -1.0]).is_err());
        assert!(Gamma.mean_from_natural(&[-1.5, -1.0]).is_err());
    }

    #[test]
    fn the_gamma_entropy_matches_monte_carlo() {
        let (alpha, beta) = (2.5, 1.5);
        let eta = Gamma::natural(alpha, beta);
        let a = Gamma.log_partition(&eta).unwrap();
        let mut rng = Stream::new(1, &[]);
        let n = 200_000;
        let mc: f64 = (0..n)
            .map(|_| {
                let x = gamma_draw(alpha, &mut rng) / beta;
                let t = Gamma.sufficient_statistics(&[x]);
                -(eta[0] * t[0] + eta[1] * t[1] - a)
            })
            .sum::<f64>()
            / n as f64;
        assert!((mc - Gamma.entropy(&eta).unwrap()).abs() < 0.01);
    }
}
