//! Baselines on a flat objective in unconstrained coordinates: gradient descent, BFGS, and a
//! natural gradient with a given 2 × 2 Fisher.

use crate::error::{Error, Result};
use crate::optim::sngd::line_search::{LineSearch, search_along};

/// An objective with its gradient at a point (an error outside its domain).
pub type Objective<'a> = &'a (dyn Fn(&[f64]) -> Result<(f64, Vec<f64>)> + Sync);

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

    /// The estimate H, row by row (for a checkpoint).
    pub fn inverse_hessian(&self) -> Vec<f64> {
        self.inverse_hessian.iter().flatten().copied().collect()
    }

    /// Continues from an estimate H of `n` parameters stored by [`Bfgs::inverse_hessian`].
    pub fn from_inverse_hessian(n: usize, values: &[f64]) -> Result<Self> {
        if values.len() != n * n || values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Checkpoint(format!(
                "a BFGS estimate of {n} parameters needs {} finite values, got {}",
                n * n,
                values.len()
            )));
        }
        Ok(Bfgs {
            inverse_hessian: values.chunks(n.max(1)).map(<[f64]>::to_vec).collect(),
        })
    }

    /// One step from `x`.
    pub fn step(
        &mut self,
        x: &[f64],
        objective: Objective<'_>,
        search: LineSearch,
    ) -> Result<(Vec<f64>, f64)> {
        let (_, g) = objective(x)?;
        let direction = self.direction(&g);
        let (next, value) =
            search_along(x, &direction, search, |c| objective(c).ok().map(|(v, _)| v))
                .ok_or_else(|| Error::Diverged("BFGS: no valid step".into()))?;
        let (_, g_next) = objective(&next)?;
        let s: Vec<f64> = next.iter().zip(x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_next.iter().zip(&g).map(|(a, b)| a - b).collect();
        self.update(&s, &y);
        Ok((next, value))
    }

    /// The direction H g.
    pub(crate) fn direction(&self, g: &[f64]) -> Vec<f64> {
        let h = &self.inverse_hessian;
        (0..g.len())
            .map(|i| (0..g.len()).map(|j| h[i][j] * g[j]).sum())
            .collect()
    }

    /// The BFGS update with the step s and the gradient change y, skipped when sᵀy is not
    /// positive.
    pub(crate) fn update(&mut self, s: &[f64], y: &[f64]) {
        let h = &self.inverse_hessian;
        let n = s.len();
        let sy: f64 = s.iter().zip(y).map(|(a, b)| a * b).sum();
        if sy > 1e-300 {
            // H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ.
            let rho = 1.0 / sy;
            let hy = self.direction(y);
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
    }
}

/// One natural-gradient step with the 2 × 2 Fisher `f`: direction F⁻¹g.
pub fn ngd_step(
    u: &[f64],
    objective: Objective<'_>,
    f: &[[f64; 2]; 2],
    search: LineSearch,
) -> Result<(Vec<f64>, f64)> {
    let (_, g) = objective(u)?;
    let det = f[0][0] * f[1][1] - f[0][1] * f[1][0];
    if !(det.abs() > 0.0 && det.is_finite()) {
        return Err(Error::Diverged(format!(
            "NGD: singular Monte Carlo Fisher {f:?}"
        )));
    }
    let direction = [
        (f[1][1] * g[0] - f[0][1] * g[1]) / det,
        (f[0][0] * g[1] - f[1][0] * g[0]) / det,
    ];
    search_along(u, &direction, search, |c| objective(c).ok().map(|(v, _)| v))
        .ok_or_else(|| Error::Diverged("NGD: no valid step".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
