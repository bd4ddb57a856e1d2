//! [`check_gradient`]: a gradient against central differences of its function, the check to
//! run on a target you write before handing it to a method.
//!
//! ```
//! use helmholtz::objectives::targets::check_gradient;
//!
//! // f(x) = x₀² x₁ + sin x₁ and its gradient.
//! let f = |x: &[f64]| Ok(x[0] * x[0] * x[1] + x[1].sin());
//! let x = [1.5f64, -0.3];
//! let right = [2.0 * x[0] * x[1], x[0] * x[0] + x[1].cos()];
//! assert!(check_gradient(f, &x, &right, 1e-5)?.passes(1e-6));
//! let wrong = [2.0 * x[0] * x[1], x[0] * x[0]];
//! let report = check_gradient(f, &x, &wrong, 1e-5)?;
//! assert!(!report.passes(1e-6));
//! assert_eq!(report.worst().0, 1);
//! # Ok::<(), helmholtz::Error>(())
//! ```

use crate::error::{Error, Result};

/// One coordinate of a gradient check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coordinate {
    /// The gradient's value.
    pub analytic: f64,
    /// (f(x + h eᵢ) − f(x − h eᵢ)) / 2h.
    pub numeric: f64,
    /// |analytic − numeric| / (1 + |numeric|).
    pub error: f64,
}

/// The result of [`check_gradient`], one entry per coordinate.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientCheck {
    /// Per coordinate.
    pub coordinates: Vec<Coordinate>,
}

impl GradientCheck {
    /// The coordinate with the largest error, and its entry.
    pub fn worst(&self) -> (usize, Coordinate) {
        self.coordinates
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.error.total_cmp(&b.1.error))
            .unwrap_or((
                0,
                Coordinate {
                    analytic: 0.0,
                    numeric: 0.0,
                    error: 0.0,
                },
            ))
    }

    /// Whether every coordinate's error is at most `tolerance`.
    pub fn passes(&self, tolerance: f64) -> bool {
        self.coordinates.iter().all(|c| c.error <= tolerance)
    }

    /// `Ok` when [`GradientCheck::passes`], else an error naming the worst coordinate.
    pub fn require(&self, tolerance: f64) -> Result<()> {
        if self.passes(tolerance) {
            return Ok(());
        }
        let (i, c) = self.worst();
        Err(Error::InvalidData(format!(
            "the gradient disagrees with central differences at coordinate {i}: analytic {}, numeric {} (relative error {:.3e} > {tolerance:.1e})",
            c.analytic, c.numeric, c.error
        )))
    }
}

/// Compares `gradient` (the analytic gradient of `value` at `x`) with central differences of
/// step `h` in each coordinate. The error of coordinate i is |gᵢ − nᵢ| / (1 + |nᵢ|): relative for
/// large derivatives, absolute near zero. With f smooth and h ≈ 1e-5, a correct gradient gives
/// errors near 1e-8 and a wrong one errors near its mistake; see [`GradientCheck::require`].
///
/// A target's point is usually not a flat vector: flatten the coordinates you check (for a
/// symmetric matrix, move both (j, k) and (k, j), whose derivative is then 2g_jk).
pub fn check_gradient(
    value: impl Fn(&[f64]) -> Result<f64>,
    x: &[f64],
    gradient: &[f64],
    h: f64,
) -> Result<GradientCheck> {
    if gradient.len() != x.len() {
        return Err(Error::Config(format!(
            "check_gradient: {} gradient entries for a point of {} coordinates",
            gradient.len(),
            x.len()
        )));
    }
    if !(h.is_finite() && h > 0.0) {
        return Err(Error::Config(format!(
            "check_gradient: the step h must be positive and finite, got {h}"
        )));
    }
    let mut moved = x.to_vec();
    let mut coordinates = Vec::with_capacity(x.len());
    for (i, &analytic) in gradient.iter().enumerate() {
        moved[i] = x[i] + h;
        let up = value(&moved)?;
        moved[i] = x[i] - h;
        let down = value(&moved)?;
        moved[i] = x[i];
        let numeric = (up - down) / (2.0 * h);
        if !numeric.is_finite() {
            return Err(Error::InvalidData(format!(
                "check_gradient: the function is not finite within {h} of coordinate {i} ({up}, {down})"
            )));
        }
        coordinates.push(Coordinate {
            analytic,
            numeric,
            error: (analytic - numeric).abs() / (1.0 + numeric.abs()),
        });
    }
    Ok(GradientCheck { coordinates })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::negative_binomial::Counts;

    /// The shipped NB gradient passes, the same gradient with one sign flipped fails at that
    /// coordinate, and bad arguments are errors.
    #[test]
    fn the_negative_binomial_gradient_passes_and_a_flipped_sign_fails() {
        let counts = Counts::new(&[0, 3, 7, 12, 40, 2, 9]).unwrap();
        let x = [0.7, -0.4];
        let f = |u: &[f64]| counts.nll_unconstrained(u).map(|(v, _)| v);
        let (_, g) = counts.nll_unconstrained(&x).unwrap();
        let report = check_gradient(f, &x, &g, 1e-5).unwrap();
        assert!(report.passes(1e-7), "{report:?}");
        report.require(1e-7).unwrap();
        let flipped = [g[0], -g[1]];
        let report = check_gradient(f, &x, &flipped, 1e-5).unwrap();
        assert_eq!(report.worst().0, 1);
        let err = report.require(1e-7).unwrap_err().to_string();
        assert!(err.contains("coordinate 1"), "{err}");
        assert!(check_gradient(f, &x, &g[..1], 1e-5).is_err());
        assert!(check_gradient(f, &x, &g, 0.0).is_err());
        assert!(check_gradient(|_| Ok(f64::NAN), &x, &g, 1e-5).is_err());
    }
}
