//! Distributions: closed-form entropies of the exponential-family members the models use.
//!
//! These are the terms of the "ELBO = sum of entropies" identity (entropy.md §1): at stationary
//! points of models whose prior and observable distributions are exponential families with a
//! constant base measure, the ELBO equals the mean entropy of q minus the prior entropy minus
//! the expected entropy of the observable distribution.

pub mod copula;
pub mod exponential_family;
pub mod negative_binomial;
pub mod skew;
pub mod skew_mixture;
pub mod surrogate;
pub mod surrogate_coordinates;

/// The ELBO beside its entropy decomposition: mean posterior entropy − prior entropy − expected
/// entropy of the observable distribution. At stationary points of the models the identity covers,
/// `gap()` is zero.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EntropySum {
    /// The ELBO per point.
    pub elbo: f64,
    /// (1/N) Σ_n H\[q_n\].
    pub posterior: f64,
    /// H[p(z)].
    pub prior: f64,
    /// (1/N) Σ_n E_{q_n} H[p(x|z)].
    pub observable: f64,
    /// Deeper models' longer sum: (1/N) Σ_n E_{q_n} H[p(h_l | h_{l+1})] for each latent level
    /// between the data and the top (empty for one latent level).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intermediate: Vec<f64>,
}

impl EntropySum {
    /// The decomposition of `elbo` into the three entropies.
    pub fn new(elbo: f64, posterior: f64, prior: f64, observable: f64) -> Self {
        EntropySum {
            elbo,
            posterior,
            prior,
            observable,
            intermediate: Vec::new(),
        }
    }

    /// The same decomposition with the conditional entropies of intermediate latent levels.
    pub fn with_intermediate(mut self, intermediate: Vec<f64>) -> Self {
        self.intermediate = intermediate;
        self
    }

    /// posterior − prior − observable (− each intermediate level).
    pub fn entropy_sum(&self) -> f64 {
        self.posterior - self.prior - self.observable - self.intermediate.iter().sum::<f64>()
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

/// What the ELBO = entropy-sum identity needs of a training setup (entropy.md §1.2, §4): the
/// observation variance (or scale) and the prior parameters must be learned, and the objective
/// must be the plain ELBO (β = 1, no KL annealing, no scaled entropies).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Conditions {
    /// The observation variance or scale is learned (not fixed, e.g. σ² = 1).
    pub learned_observation_variance: bool,
    /// The prior's parameters that have stationary values are learned.
    pub learned_prior: bool,
    /// The weight on the KL or prior term (1 for the ELBO).
    pub beta: f64,
    /// A KL-annealing schedule is active.
    pub kl_annealing: bool,
    /// The generative parameters ascend the ELBO (not, e.g., a K-sample importance-weighted
    /// bound, whose stationary points are not the ELBO's).
    pub generative_on_elbo: bool,
    /// Variances (or covariances) that the training held at a floor instead of their stationary
    /// value: there the update is not the ELBO's (0 for a regular fit).
    #[serde(skip_serializing_if = "is_zero")]
    pub floored_variances: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Conditions {
    /// The plain ELBO of a model whose variances and prior are learned.
    pub fn plain() -> Self {
        Conditions {
            learned_observation_variance: true,
            learned_prior: true,
            beta: 1.0,
            kl_annealing: false,
            generative_on_elbo: true,
            floored_variances: 0,
        }
    }

    /// `None` if the identity applies at stationary points, otherwise why it does not.
    pub fn violation(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if !self.learned_observation_variance {
            reasons.push("the observation variance is fixed".to_string());
        }
        if !self.learned_prior {
            reasons.push("the prior's parameters are fixed".to_string());
        }
        if self.beta != 1.0 {
            reasons.push(format!(
                "the objective weights the prior term by β = {}",
                self.beta
            ));
        }
        if self.kl_annealing {
            reasons.push("KL annealing is active".to_string());
        }
        if !self.generative_on_elbo {
            reasons.push(
                "the generative parameters are trained on an importance-weighted bound, not the ELBO"
                    .to_string(),
            );
        }
        if self.floored_variances > 0 {
            reasons.push(format!(
                "{} variance(s) are held at the variance floor (a component has no spread along \
                 some coordinate), where the update is not the ELBO's",
                self.floored_variances
            ));
        }
        (!reasons.is_empty()).then(|| {
            format!(
                "ELBO = entropy sum does not apply: {} (the theorem needs the plain ELBO with learned variances)",
                reasons.join(", ")
            )
        })
    }
}

/// A convergence criterion from the identity: stop once |ELBO − entropy sum| / |ELBO| has stayed
/// below `tolerance` for `window` consecutive observations. It refuses to decide (never stops)
/// when the identity does not apply.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GapCriterion {
    /// Relative-gap tolerance.
    pub tolerance: f64,
    /// Consecutive observations below the tolerance.
    pub window: usize,
    below: usize,
}

impl GapCriterion {
    /// A criterion with the given tolerance and window (≥ 1).
    pub fn new(tolerance: f64, window: usize) -> Self {
        GapCriterion {
            tolerance,
            window: window.max(1),
            below: 0,
        }
    }

    /// Records one observation; true when training may stop.
    pub fn observe(&mut self, sum: &EntropySum, conditions: &Conditions) -> bool {
        if conditions.violation().is_some() || !sum.relative_gap().is_finite() {
            self.below = 0;
            return false;
        }
        if sum.relative_gap() < self.tolerance {
            self.below += 1;
        } else {
            self.below = 0;
        }
        self.below >= self.window
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

    #[test]
    fn the_conditions_name_what_breaks_the_identity() {
        assert!(Conditions::plain().violation().is_none());
        let fixed = Conditions {
            learned_observation_variance: false,
            beta: 2.0,
            ..Conditions::plain()
        };
        let message = fixed.violation().unwrap();
        assert!(message.contains("observation variance is fixed") && message.contains("β = 2"));
        let floored = Conditions {
            floored_variances: 3,
            ..Conditions::plain()
        };
        assert!(
            floored
                .violation()
                .unwrap()
                .contains("3 variance(s) are held at the variance floor")
        );
    }

    #[test]
    fn the_gap_criterion_needs_a_whole_window_below_the_tolerance() {
        let sum = |gap: f64| EntropySum::new(-10.0 + gap, 1.0, 2.0, 9.0);
        let mut criterion = GapCriterion::new(1e-6, 3);
        let plain = Conditions::plain();
        assert!(!criterion.observe(&sum(1e-3), &plain));
        assert!(!criterion.observe(&sum(1e-8), &plain));
        assert!(!criterion.observe(&sum(1e-8), &plain));
        assert!(!criterion.observe(&sum(1e-4), &plain)); // the window restarts
        for _ in 0..2 {
            assert!(!criterion.observe(&sum(0.0), &plain));
        }
        assert!(criterion.observe(&sum(0.0), &plain));
        // It never stops when the identity does not apply.
        let mut refusing = GapCriterion::new(1e-6, 1);
        let annealed = Conditions {
            kl_annealing: true,
            ..Conditions::plain()
        };
        assert!(!refusing.observe(&sum(0.0), &annealed));
    }

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
