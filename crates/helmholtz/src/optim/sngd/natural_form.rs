//! SNGD in the natural-parameter (VI) form (natgrad.md b.3): the state is the surrogate's natural
//! parameters η̃, the step η̃ ← η̃ − β ∇_μ̃ f, the auxiliary λ by Adam.

use crate::dist::surrogate::Surrogate;
use crate::error::Result;
use crate::optim::sngd::form::{Form, Sngd};

/// The natural-parameter form: the state moves in η̃ along ∇_μ̃ f.
pub struct NaturalForm;

impl Form for NaturalForm {
    fn coordinates<S: Surrogate>(surrogate: &S, point: &S::Point) -> Result<Vec<f64>> {
        surrogate.natural(point)
    }

    fn direction<S: Surrogate>(
        surrogate: &S,
        point: &S::Point,
        g: &S::Gradient,
    ) -> Result<Vec<f64>> {
        surrogate.gradient_in_mean(point, g)
    }

    fn point<S: Surrogate>(surrogate: &S, theta: &[f64]) -> Option<S::Point> {
        surrogate.point_from_natural(theta)
    }
}

/// SNGD, natural-parameter form, for a distribution `P` optimised through its surrogate.
pub type SngdNatural<P> = Sngd<P, NaturalForm>;

#[cfg(test)]
mod tests {
    use faer::Mat;
    use faer::linalg::solvers::DenseSolveCore;

    use super::*;
    use crate::dist::skew::SkewGradient;
    use crate::dist::skew_mixture::{SkewMixture, SkewMixtureGradient};
    use crate::dist::surrogate::{GaussianMixture, Gaussians};
    use crate::math::linalg::{cholesky, log_det};
    use crate::objectives::targets::Target;
    use crate::optim::sngd::{LineSearch, Method};

    /// f = KL(q(k, z) ‖ p*(k, z)) between the Gaussian parts of a mixture (η ignored) and a
    /// member p* of the joint family.
    struct KlToMember {
        weights: [f64; 3],
        means: [[f64; 2]; 3],
        covariances: Vec<Mat<f64>>,
    }

    impl Target for KlToMember {
        type Point = SkewMixture;
        type Gradient = SkewMixtureGradient;

        fn evaluate(&self, q: &SkewMixture) -> Result<(f64, SkewMixtureGradient)> {
            let mut value = 0.0;
            let mut weights = Vec::new();
            let mut components = Vec::new();
            for k in 0..3 {
                let c = &q.components[k];
                let s_star = cholesky(&self.covariances[k], "Ω*")?.inverse();
                let s = cholesky(&c.omega, "Ω")?.inverse();
                let diff: Vec<f64> = (0..2).map(|r| c.xi[r] - self.means[k][r]).collect();
                let p = q.weights[k];
                let trace: f64 = (0..2)
                    .map(|r| {
                        (0..2)
                            .map(|j| s_star[(r, j)] * c.omega[(j, r)])
                            .sum::<f64>()
                    })
                    .sum();
                let maha: f64 = (0..2)
                    .map(|r| {
                        (0..2)
                            .map(|j| diff[r] * s_star[(r, j)] * diff[j])
                            .sum::<f64>()
                    })
                    .sum();
                let ln_det = |m: &Mat<f64>| -> Result<f64> { Ok(log_det(&cholesky(m, "m")?)) };
                let kl =
                    0.5 * (trace + maha - 2.0 + ln_det(&self.covariances[k])? - ln_det(&c.omega)?);
                value += p * (p.ln() - self.weights[k].ln() + kl);
                weights.push(p.ln() + 1.0 - self.weights[k].ln() + kl);
                components.push(SkewGradient {
                    xi: (0..2)
                        .map(|r| p * (0..2).map(|j| s_star[(r, j)] * diff[j]).sum::<f64>())
                        .collect(),
                    omega: Mat::from_fn(2, 2, |r, j| 0.5 * p * (s_star[(r, j)] - s[(r, j)])),
                    eta: vec![0.0; 2],
                });
            }
            Ok((
                value,
                SkewMixtureGradient {
                    weights,
                    components,
                },
            ))
        }
    }

    /// The VI form on the joint exponential family of a Gaussian mixture: for
    /// f = KL(q(k, z) ‖ p*(k, z)) with p* in the family, ∇_μ f = η − η*, so one step of size
    /// one lands on p* exactly (weights, means and covariances).
    #[test]
    fn one_mixture_step_of_size_one_lands_on_the_target_family_member() {
        let target = KlToMember {
            weights: [0.2, 0.5, 0.3],
            means: [[1.0, -0.5], [0.0, 2.0], [-1.5, 0.3]],
            covariances: [0.5, 1.5, 0.8]
                .iter()
                .map(|&a| Mat::from_fn(2, 2, |r, c| if r == c { a } else { 0.2 }))
                .collect(),
        };
        let start = Gaussians {
            weights: vec![1.0 / 3.0; 3],
            means: vec![vec![0.01, -0.02], vec![0.0, 0.01], vec![-0.01, 0.0]],
            covariances: vec![Mat::<f64>::identity(2, 2) * faer::Scale(0.01); 3],
        };
        let surrogate = GaussianMixture {
            components: 3,
            dim: 2,
            min_weight: 1e-3,
        };
        let mut sngd = SngdNatural::<SkewMixture>::new(
            surrogate,
            start,
            vec![0.0; 6],
            0.01,
            LineSearch::Fixed(1.0),
        )
        .unwrap();
        sngd.step(&target).unwrap();
        let next = sngd.distribution().unwrap();
        for k in 0..3 {
            let want = target.weights[k];
            assert!((next.weights[k] - want).abs() < 1e-10, "{:?}", next.weights);
            for r in 0..2 {
                assert!((next.components[k].xi[r] - target.means[k][r]).abs() < 1e-9);
                for j in 0..2 {
                    let want = target.covariances[k][(r, j)];
                    assert!((next.components[k].omega[(r, j)] - want).abs() < 1e-9);
                }
            }
        }
    }
}
