//! Surrogate natural gradient descent (So & Turner, AISTATS 2024; natgrad.md (b)): optimise a
//! target distribution through the parameters of an exponential-family surrogate whose natural
//! gradient is one ordinary gradient in dual coordinates.
//!
//! * **MLE form**: the state is the surrogate's mean parameters μ̃; the step is
//!   μ̃ ← μ̃ − β ∇_η̃ f(g(η̃)) at η̃ = η̃(μ̃) (with β = 1 and q = q̃ an exponential family, one step
//!   lands on the maximum-likelihood estimate).
//! * **VI form**: the state is η̃, the step η̃ ← η̃ − β ∇_μ̃ f.
//!
//! The step size β comes from a [`LineSearch`] that also keeps the iterate in the domain. Two
//! baselines share the harness: gradient descent and BFGS in unconstrained coordinates.

use crate::dist::exponential_family::ExponentialFamily;
use crate::error::{Error, Result};

/// An objective with its gradient at a point (an error outside its domain).
pub type Objective<'a> = &'a (dyn Fn(&[f64]) -> Result<(f64, Vec<f64>)> + Sync);

/// How the step size along a direction is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineSearch {
    /// A fixed step.
    Fixed(f64),
    /// Start at `start` and halve up to `halvings` times until the point is in the domain (the
    /// authors' validity backtracking; no decrease is required).
    Backtracking {
        /// First step.
        start: f64,
        /// Halvings at most.
        halvings: usize,
    },
    /// The best of `points` equally spaced steps in (0, 1] (the authors' NB line search).
    Grid {
        /// Number of grid points.
        points: usize,
    },
}

/// The point x − β d chosen by `search`, with its value; `evaluate` returns None outside the
/// domain. None when no candidate is valid.
pub fn search_along(
    x: &[f64],
    direction: &[f64],
    search: LineSearch,
    evaluate: impl Fn(&[f64]) -> Option<f64> + Sync,
) -> Option<(Vec<f64>, f64)> {
    let at =
        |beta: f64| -> Vec<f64> { x.iter().zip(direction).map(|(a, d)| a - beta * d).collect() };
    let valid = |beta: f64| -> Option<(Vec<f64>, f64)> {
        let point = at(beta);
        evaluate(&point)
            .filter(|v| v.is_finite())
            .map(|v| (point, v))
    };
    match search {
        LineSearch::Fixed(beta) => valid(beta),
        LineSearch::Backtracking { start, halvings } => {
            (0..=halvings).find_map(|k| valid(start / 2f64.powi(k as i32)))
        }
        LineSearch::Grid { points } => {
            use rayon::prelude::*;
            // Ties go to the smaller step, as a sequential scan would choose.
            (1..=points)
                .into_par_iter()
                .filter_map(|k| valid(k as f64 / points as f64).map(|found| (k, found)))
                .min_by(|a, b| a.1.1.total_cmp(&b.1.1).then(a.0.cmp(&b.0)))
                .map(|(_, found)| found)
        }
    }
}

/// One SNGD step in the MLE form from the surrogate mean parameters `mu`; `objective(η)` gives
/// f(g(η)) and ∇_η (an error outside the target's domain). Returns the new μ̃ and its value.
pub fn mle_step(
    family: &(dyn ExponentialFamily + Sync),
    mu: &[f64],
    objective: Objective<'_>,
    search: LineSearch,
) -> Result<(Vec<f64>, f64)> {
    let eta = family.natural_from_mean(mu)?;
    let (_, gradient) = objective(&eta)?;
    search_along(mu, &gradient, search, |candidate| {
        let eta = family.natural_from_mean(candidate).ok()?;
        objective(&eta).ok().map(|(v, _)| v)
    })
    .ok_or_else(|| Error::Diverged("SNGD: no step size keeps the surrogate in its domain".into()))
}

/// One step of gradient descent in unconstrained coordinates.
pub fn gd_step(x: &[f64], objective: Objective<'_>, search: LineSearch) -> Result<(Vec<f64>, f64)> {
    let (_, gradient) = objective(x)?;
    search_along(x, &gradient, search, |c| objective(c).ok().map(|(v, _)| v))
        .ok_or_else(|| Error::Diverged("GD: no valid step".into()))
}

/// BFGS with a dense inverse-Hessian estimate H (starting at I), direction H g, and the update
/// skipped when the curvature sᵀy is not positive.
#[derive(Clone, Debug)]
pub struct Bfgs {
    inverse_hessian: Vec<Vec<f64>>,
}

impl Bfgs {
    /// A fresh estimate for `n` parameters.
    pub fn new(n: usize) -> Self {
        Bfgs {
            inverse_hessian: (0..n)
                .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
                .collect(),
        }
    }

    /// One step from `x`.
    pub fn step(
        &mut self,
        x: &[f64],
        objective: Objective<'_>,
        search: LineSearch,
    ) -> Result<(Vec<f64>, f64)> {
        let (_, g) = objective(x)?;
        let h = &self.inverse_hessian;
        let n = x.len();
        let direction: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| h[i][j] * g[j]).sum())
            .collect();
        let (next, value) =
            search_along(x, &direction, search, |c| objective(c).ok().map(|(v, _)| v))
                .ok_or_else(|| Error::Diverged("BFGS: no valid step".into()))?;
        let (_, g_next) = objective(&next)?;
        let s: Vec<f64> = next.iter().zip(x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_next.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        if sy > 1e-300 {
            // H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ.
            let rho = 1.0 / sy;
            let hy: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| h[i][j] * y[j]).sum())
                .collect();
            let yhy: f64 = y.iter().zip(&hy).map(|(a, b)| a * b).sum();
            let mut updated = h.clone();
            for i in 0..n {
                for j in 0..n {
                    updated[i][j] += -rho * (s[i] * hy[j] + hy[i] * s[j])
                        + (rho * rho * yhy + rho) * s[i] * s[j];
                }
            }
            self.inverse_hessian = updated;
        }
        Ok((next, value))
    }
}

/// Adam in f64 on a flat parameter vector, for the auxiliary parameters λ of SNGD and the Adam
/// baselines (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, as the authors' JAX optimiser).
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    first: Vec<f64>,
    second: Vec<f64>,
    step: i32,
}

impl Adam {
    /// A fresh optimiser for `n` parameters.
    pub fn new(n: usize, lr: f64) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::Config(format!(
                "Adam learning rate must be positive, got {lr}"
            )));
        }
        Ok(Adam {
            lr,
            first: vec![0.0; n],
            second: vec![0.0; n],
            step: 0,
        })
    }

    /// One descent step x ← x − lr m̂/(√v̂ + ε); a non-finite gradient is refused before x is
    /// touched.
    pub fn descend(&mut self, x: &mut [f64], gradient: &[f64]) -> Result<()> {
        if x.len() != self.first.len() || gradient.len() != x.len() {
            return Err(Error::Dimension(format!(
                "Adam for {} parameters given {} and a gradient of {}",
                self.first.len(),
                x.len(),
                gradient.len()
            )));
        }
        if let Some(k) = gradient.iter().position(|g| !g.is_finite()) {
            return Err(Error::Diverged(format!(
                "Adam: non-finite gradient entry {k}"
            )));
        }
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        self.step += 1;
        let (c1, c2) = (1.0 - B1.powi(self.step), 1.0 - B2.powi(self.step));
        for (k, g) in gradient.iter().enumerate() {
            self.first[k] = B1 * self.first[k] + (1.0 - B1) * g;
            self.second[k] = B2 * self.second[k] + (1.0 - B2) * g * g;
            x[k] -= self.lr * (self.first[k] / c1) / ((self.second[k] / c2).sqrt() + 1e-8);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::exponential_family::Gamma;
    use crate::math::rng::Stream;
    use crate::math::special::gamma_draw;

    /// natgrad.md b.3: with β = 1 and the target equal to the surrogate, one MLE-form step lands
    /// on the maximum-likelihood estimate (the sample's mean sufficient statistics).
    #[test]
    fn one_step_of_size_one_lands_on_the_gamma_mle() {
        let mut rng = Stream::new(5, &[]);
        let data: Vec<f64> = (0..2000).map(|_| gamma_draw(3.0, &mut rng) / 2.0).collect();
        let n = data.len() as f64;
        let t_bar = [
            data.iter().map(|x| x.ln()).sum::<f64>() / n,
            data.iter().sum::<f64>() / n,
        ];
        // f(η) = A(η) − η·T̄ (the mean NLL without the base measure), ∇_η f = μ(η) − T̄.
        let objective = |eta: &[f64]| -> Result<(f64, Vec<f64>)> {
            let a = Gamma.log_partition(eta)?;
            let mu = Gamma.mean_from_natural(eta)?;
            Ok((
                a - eta[0] * t_bar[0] - eta[1] * t_bar[1],
                vec![mu[0] - t_bar[0], mu[1] - t_bar[1]],
            ))
        };
        let start = Gamma.mean_from_natural(&Gamma::natural(0.7, 5.0)).unwrap();
        let (mu, _) = mle_step(&Gamma, &start, &objective, LineSearch::Fixed(1.0)).unwrap();
        assert!((mu[0] - t_bar[0]).abs() < 1e-12 && (mu[1] - t_bar[1]).abs() < 1e-12);
        // The gradient vanishes there: it is the MLE.
        let eta = Gamma.natural_from_mean(&mu).unwrap();
        let (_, g) = objective(&eta).unwrap();
        assert!(g.iter().all(|v| v.abs() < 1e-9), "{g:?}");
    }

    #[test]
    fn bfgs_minimises_a_quadratic_in_its_dimension() {
        let objective = |x: &[f64]| -> Result<(f64, Vec<f64>)> {
            Ok((
                2.0 * x[0] * x[0] + 0.5 * x[1] * x[1] + x[0] * x[1] - x[0],
                vec![4.0 * x[0] + x[1] - 1.0, x[1] + x[0]],
            ))
        };
        let mut bfgs = Bfgs::new(2);
        let mut x = vec![3.0, -2.0];
        for _ in 0..20 {
            x = bfgs
                .step(&x, &objective, LineSearch::Grid { points: 1000 })
                .unwrap()
                .0;
        }
        // Minimum at 4x + y = 1, x + y = 0: x = 1/3, y = −1/3.
        assert!(
            (x[0] - 1.0 / 3.0).abs() < 1e-3 && (x[1] + 1.0 / 3.0).abs() < 1e-3,
            "{x:?}"
        );
        assert!(search_along(&[0.0], &[1.0], LineSearch::Fixed(1.0), |_| None).is_none());
    }

    #[test]
    fn adam_minimises_a_badly_scaled_quadratic_and_refuses_bad_gradients() {
        let mut adam = Adam::new(2, 0.05).unwrap();
        let mut x = vec![3.0, -2.0];
        for _ in 0..2000 {
            let g = [200.0 * (x[0] - 1.0), 0.02 * (x[1] + 1.0)];
            adam.descend(&mut x, &g).unwrap();
        }
        assert!(
            (x[0] - 1.0).abs() < 1e-2 && (x[1] + 1.0).abs() < 1e-1,
            "{x:?}"
        );
        assert!(adam.descend(&mut x, &[f64::NAN, 0.0]).is_err());
        assert!(adam.descend(&mut x, &[0.0]).is_err());
        assert!(Adam::new(2, 0.0).is_err());
    }
}
