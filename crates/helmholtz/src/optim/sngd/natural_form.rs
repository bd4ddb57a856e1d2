//! SNGD in the natural-parameter (VI) form (natgrad.md b.3): the state is the surrogate's natural
//! parameters η̃, the step η̃ ← η̃ − β ∇_μ̃ f, the auxiliary λ by Adam.

use crate::dist::surrogate::{Surrogate, Surrogated};
use crate::error::{Error, Result};
use crate::objectives::targets::Target;
use crate::optim::sngd::{Adam, LineSearch, Method, Step, finite_objective, search_step};

/// SNGD, natural-parameter form, for a distribution `P` optimised through its surrogate.
pub struct SngdNatural<P: Surrogated> {
    surrogate: P::Surrogate,
    point: <P::Surrogate as Surrogate>::Point,
    lambda: Vec<f64>,
    adam: Option<Adam>,
    search: LineSearch,
}

impl<P: Surrogated> SngdNatural<P> {
    /// Starts at the surrogate member `point` with auxiliary parameters `lambda` (stepped by
    /// Adam with learning rate `lr_lambda`; unused when λ is empty); β comes from `search`.
    pub fn new(
        surrogate: P::Surrogate,
        point: <P::Surrogate as Surrogate>::Point,
        lambda: Vec<f64>,
        lr_lambda: f64,
        search: LineSearch,
    ) -> Result<Self> {
        let adam = if lambda.is_empty() {
            None
        } else {
            Some(Adam::new(lambda.len(), lr_lambda)?)
        };
        Ok(SngdNatural {
            surrogate,
            point,
            lambda,
            adam,
            search,
        })
    }

    /// The current surrogate member.
    pub fn point(&self) -> &<P::Surrogate as Surrogate>::Point {
        &self.point
    }
}

impl<P: Surrogated> Method for SngdNatural<P> {
    type Point = P;
    type Gradient = P::Gradient;

    fn distribution(&self) -> Result<P> {
        P::from_surrogate(&self.surrogate, &self.point, &self.lambda)
    }

    fn step<T>(&mut self, target: &T) -> Result<Step>
    where
        T: Target<Point = P, Gradient = P::Gradient>,
    {
        let q = self.distribution()?;
        let (value, g) = finite_objective(target, &q)?;
        let (g_surrogate, g_lambda) =
            q.pull_back(&self.surrogate, &self.point, &self.lambda, &g)?;
        let eta = self.surrogate.natural(&self.point)?;
        // η̃ ← η̃ − β ∇_μ̃ f.
        let direction = self.surrogate.gradient_in_mean(&self.point, &g_surrogate)?;
        let (surrogate, lambda, search) = (&self.surrogate, &self.lambda, self.search);
        let (next, searched) = search_step(search, |beta| {
            let candidate: Vec<f64> = eta
                .iter()
                .zip(&direction)
                .map(|(a, d)| a - beta * d)
                .collect();
            let point = surrogate.point_from_natural(&candidate)?;
            let value = if search.needs_values() {
                let q = P::from_surrogate(surrogate, &point, lambda).ok()?;
                target.value(&q).ok()?
            } else {
                0.0
            };
            Some((point, value))
        })
        .ok_or_else(|| Error::Diverged(format!("SNGD: no step size {}", surrogate.domain())))?;
        self.point = next;
        if let Some(adam) = &mut self.adam {
            adam.descend(&mut self.lambda, &g_lambda)?;
        }
        Ok(Step {
            value,
            searched: search.needs_values().then_some(searched),
        })
    }
}

#[cfg(test)]
mod tests {
    use faer::Mat;
    use faer::linalg::solvers::DenseSolveCore;

    use super::*;
    use crate::dist::skew::SkewGradient;
    use crate::dist::skew_mixture::{SkewMixture, SkewMixtureGradient};
    use crate::dist::surrogate::{GaussianMixture, Gaussians};
    use crate::math::linalg::{cholesky, log_det};

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
