//! Distributions: closed-form entropies of the exponential-family members the models use.
//!
//! These are the terms of the "ELBO = sum of entropies" identity (entropy.md §1): at stationary
//! points of models whose prior and observable distributions are exponential families with a
//! constant base measure, the ELBO equals the mean entropy of q minus the prior entropy minus
//! the expected entropy of the observable distribution.

/// The ELBO beside its entropy decomposition: mean posterior entropy − prior entropy − expected
/// entropy of the observable distribution. At stationary points of the models the identity covers,
/// `gap()` is zero.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EntropySum {
    /// The ELBO per point.
    pub elbo: f64,
    /// (1/N) Σ_n H[q_n].
    pub posterior: f64,
    /// H[p(z)].
    pub prior: f64,
    /// (1/N) Σ_n E_{q_n} H[p(x|z)].
    pub observable: f64,
}

impl EntropySum {
    /// The decomposition of `elbo` into the three entropies.
    pub fn new(elbo: f64, posterior: f64, prior: f64, observable: f64) -> Self {
        EntropySum {
            elbo,
            posterior,
            prior,
            observable,
        }
    }

    /// posterior − prior − observable.
    pub fn entropy_sum(&self) -> f64 {
        self.posterior - self.prior - self.observable
    }

    /// ELBO − entropy sum.
    pub fn gap(&self) -> f64 {
        self.elbo - self.entropy_sum()
    }

    /// |gap| / |ELBO|.
    pub fn relative_gap(&self) -> f64 {
        self.gap().abs() / self.elbo.abs()
    }
}

/// ln(2πe).
pub const LN_2PI_E: f64 = 2.837_877_066_409_345_5;

/// Entropy of a d-dimensional Gaussian with covariance of log-determinant `log_det`:
/// ½ (d ln(2πe) + ln det Σ).
pub fn gaussian_entropy(dim: usize, log_det: f64) -> f64 {
    0.5 * (dim as f64 * LN_2PI_E + log_det)
}

/// Entropy of a Bernoulli distribution with P(1) = `p` (0 at p ∈ {0, 1}).
pub fn bernoulli_entropy(p: f64) -> f64 {
    let term = |v: f64| if v > 0.0 { -v * v.ln() } else { 0.0 };
    term(p) + term(1.0 - p)
}

/// Entropy of a categorical distribution with probabilities `p` (zeros contribute nothing).
pub fn categorical_entropy(p: &[f64]) -> f64 {
    p.iter().filter(|&&v| v > 0.0).map(|&v| -v * v.ln()).sum()
}

/// Entropy of a Laplace distribution with scale `lambda`: 1 + ln(2λ).
pub fn laplace_entropy(lambda: f64) -> f64 {
    1.0 + (2.0 * lambda).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;

    /// −E log p by Monte Carlo against the closed form.
    #[test]
    fn closed_forms_match_monte_carlo() {
        let mut rng = Stream::new(3, &[]);
        let n = 400_000;
        // Gaussian, 1-D with variance 2.5.
        let var: f64 = 2.5;
        let mc = (0..n)
            .map(|_| {
                let z = var.sqrt() * rng.normal();
                0.5 * (2.0 * std::f64::consts::PI * var).ln() + z * z / (2.0 * var)
            })
            .sum::<f64>()
            / n as f64;
        assert!((mc - gaussian_entropy(1, var.ln())).abs() < 5e-3, "{mc}");
        // Laplace with scale 0.7: |z| is exponential with mean λ.
        let lambda: f64 = 0.7;
        let mc = (0..n)
            .map(|_| {
                let z = -lambda * (1.0 - rng.uniform_f64()).ln();
                (2.0 * lambda).ln() + z / lambda
            })
            .sum::<f64>()
            / n as f64;
        assert!((mc - laplace_entropy(lambda)).abs() < 5e-3, "{mc}");
        assert!((bernoulli_entropy(0.5) - std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(bernoulli_entropy(0.0), 0.0);
        assert!((categorical_entropy(&[0.25; 4]) - 4f64.ln()).abs() < 1e-15);
        assert!((categorical_entropy(&[0.3, 0.7]) - bernoulli_entropy(0.3)).abs() < 1e-15);
    }
}
