//! Skew-elliptical targets for surrogate natural gradient descent (natgrad.md (b.4)): the
//! multivariate skew-normal of Azzalini in the (ξ, Ω, η) form the authors use, with η = α/ω the
//! shape over the scales, so that
//!
//! ln p(x) = ln 2 + ln N(x; ξ, Ω) + ln Φ(ηᵀ(x − ξ)).
//!
//! Points are the rows of a matrix. Gradients of the mean negative log-likelihood are
//! hand-written: in ξ and η as vectors and in Ω as the symmetric g with d f = tr(g dΩ), the form
//! the Gaussian surrogate's chain rules take.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::math::linalg::{cholesky, log_det};
use crate::math::rng::Stream;
use crate::math::special::{d_ln_normal_cdf, ln_normal_cdf};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A multivariate skew-normal SN(ξ, Ω, η).
#[derive(Clone, Debug)]
pub struct SkewNormal {
    /// Location ξ.
    pub xi: Vec<f64>,
    /// Scale matrix Ω (symmetric positive definite).
    pub omega: Mat<f64>,
    /// Shape over scale, η = α/ω.
    pub eta: Vec<f64>,
}

/// Gradients of a mean negative log-likelihood in (ξ, Ω, η).
#[derive(Clone, Debug)]
pub struct SkewGradient {
    /// ∂f/∂ξ.
    pub xi: Vec<f64>,
    /// The symmetric ∂f/∂Ω.
    pub omega: Mat<f64>,
    /// ∂f/∂η.
    pub eta: Vec<f64>,
}

/// Checks that `x` is a finite n × d batch with n ≥ 1.
pub(crate) fn check_batch(x: MatRef<'_, f64>, d: usize) -> Result<()> {
    if x.ncols() != d || x.nrows() == 0 {
        return Err(Error::Dimension(format!(
            "a batch of {} × {} points for a distribution of dimension {d}",
            x.nrows(),
            x.ncols()
        )));
    }
    for c in 0..d {
        for r in 0..x.nrows() {
            if !x[(r, c)].is_finite() {
                return Err(Error::InvalidData(format!(
                    "point {r} has a non-finite coordinate {c}"
                )));
            }
        }
    }
    Ok(())
}

impl SkewNormal {
    /// Checks dimensions, finiteness and a positive-definite Ω.
    pub fn new(xi: Vec<f64>, omega: Mat<f64>, eta: Vec<f64>) -> Result<Self> {
        let d = xi.len();
        if omega.nrows() != d || omega.ncols() != d || eta.len() != d {
            return Err(Error::Dimension(format!(
                "skew-normal with ξ of length {d}, Ω {} × {}, η of length {}",
                omega.nrows(),
                omega.ncols(),
                eta.len()
            )));
        }
        if xi.iter().chain(&eta).any(|v| !v.is_finite()) {
            return Err(Error::InvalidData("non-finite ξ or η".into()));
        }
        cholesky(&omega, "Ω")?;
        Ok(SkewNormal { xi, omega, eta })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.xi.len()
    }

    /// The mean negative log-likelihood of the rows of `x`.
    pub fn nll(&self, x: MatRef<'_, f64>) -> Result<f64> {
        Ok(self.evaluate(x, false)?.0)
    }

    /// The mean negative log-likelihood of the rows of `x` and its gradients.
    pub fn nll_gradient(&self, x: MatRef<'_, f64>) -> Result<(f64, SkewGradient)> {
        let (value, gradient) = self.evaluate(x, true)?;
        Ok((value, gradient.expect("requested")))
    }

    /// f = −ln 2 + ½ d ln 2π + ½ ln det Ω + mean[½ rᵀSr − ln Φ(ηᵀr)], r = x − ξ, S = Ω⁻¹;
    /// with Z = R S: ∂ξ = −mean Z + mean(w) η, ∂Ω = ½ S − ½ ZᵀZ/n, ∂η = −Rᵀw/n, w = (ln Φ)′(ηᵀr).
    fn evaluate(&self, x: MatRef<'_, f64>, gradient: bool) -> Result<(f64, Option<SkewGradient>)> {
        let d = self.dim();
        check_batch(x, d)?;
        let n = x.nrows();
        let llt = cholesky(&self.omega, "Ω")?;
        let precision = llt.inverse();
        let r = Mat::from_fn(n, d, |i, j| x[(i, j)] - self.xi[j]);
        let z = &r * &precision;
        let t: Vec<f64> = (0..n)
            .map(|i| (0..d).map(|j| r[(i, j)] * self.eta[j]).sum())
            .collect();
        let mut total = 0.0;
        for (i, &ti) in t.iter().enumerate() {
            let quadratic: f64 = (0..d).map(|j| z[(i, j)] * r[(i, j)]).sum();
            total += 0.5 * quadratic - ln_normal_cdf(ti);
        }
        let value =
            -std::f64::consts::LN_2 + 0.5 * (d as f64 * LN_2PI + log_det(&llt)) + total / n as f64;
        if !gradient {
            return Ok((value, None));
        }
        let inv_n = 1.0 / n as f64;
        let w: Vec<f64> = t.iter().map(|&ti| d_ln_normal_cdf(ti)).collect();
        let mean_w = w.iter().sum::<f64>() * inv_n;
        let g_xi = (0..d)
            .map(|j| -(0..n).map(|i| z[(i, j)]).sum::<f64>() * inv_n + mean_w * self.eta[j])
            .collect();
        let ztz = z.transpose() * &z;
        let g_omega = Mat::from_fn(d, d, |a, b| {
            // ½ S, symmetrised against rounding.
            0.25 * (precision[(a, b)] + precision[(b, a)]) - 0.5 * ztz[(a, b)] * inv_n
        });
        let g_eta = (0..d)
            .map(|j| -(0..n).map(|i| r[(i, j)] * w[i]).sum::<f64>() * inv_n)
            .collect();
        Ok((
            value,
            Some(SkewGradient {
                xi: g_xi,
                omega: g_omega,
                eta: g_eta,
            }),
        ))
    }

    /// n draws as rows: x = ξ + |w| β + v with β = Ωη/√(1 + ηᵀΩη), w ~ N(0, 1) and
    /// v ~ N(0, Ω − ββᵀ).
    pub fn sample(&self, n: usize, rng: &mut Stream) -> Result<Mat<f64>> {
        let d = self.dim();
        let beta = self.beta();
        let v = Mat::from_fn(d, d, |a, b| self.omega[(a, b)] - beta[a] * beta[b]);
        let llt = cholesky(&v, "Ω − ββᵀ")?;
        let l = llt.L();
        let noise = Mat::from_fn(n, d, |_, _| rng.normal());
        let mut x = &noise * l.transpose();
        for i in 0..n {
            let w = rng.normal().abs();
            for j in 0..d {
                x[(i, j)] += self.xi[j] + w * beta[j];
            }
        }
        Ok(x)
    }

    /// β = Ωη/√(1 + ηᵀΩη).
    fn beta(&self) -> Vec<f64> {
        let d = self.dim();
        let omega_eta: Vec<f64> = (0..d)
            .map(|a| (0..d).map(|b| self.omega[(a, b)] * self.eta[b]).sum())
            .collect();
        let scale = (1.0
            + omega_eta
                .iter()
                .zip(&self.eta)
                .map(|(x, y)| x * y)
                .sum::<f64>())
        .sqrt();
        omega_eta.iter().map(|v| v / scale).collect()
    }

    /// The mean E x = ξ + √(2/π) β.
    pub fn mean(&self) -> Vec<f64> {
        let b = (2.0 / std::f64::consts::PI).sqrt();
        self.xi
            .iter()
            .zip(self.beta())
            .map(|(x, beta)| x + b * beta)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_skew_normal(d: usize, rng: &mut Stream) -> SkewNormal {
        let w = Mat::from_fn(d, d, |_, _| rng.normal());
        let omega = w.transpose() * &w * faer::Scale(1.0 / d as f64)
            + Mat::<f64>::identity(d, d) * faer::Scale(0.3);
        SkewNormal::new(
            (0..d).map(|_| rng.normal()).collect(),
            omega,
            (0..d).map(|_| 2.0 * rng.normal()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn skew_normal_gradients_match_finite_differences() {
        let mut rng = Stream::new(11, &[]);
        let d = 4;
        let target = random_skew_normal(d, &mut rng);
        let x = Mat::from_fn(30, d, |_, _| 2.0 * rng.normal());
        let (_, g) = target.nll_gradient(x.as_ref()).unwrap();
        let h = 1e-6;
        let check = |numeric: f64, analytic: f64, what: &str| {
            assert!(
                (numeric - analytic).abs() < 1e-6 * (1.0 + analytic.abs()),
                "{what}: {numeric} vs {analytic}"
            );
        };
        for j in 0..d {
            for (which, analytic) in [(0, g.xi[j]), (1, g.eta[j])] {
                let shifted = |delta: f64| {
                    let mut t = target.clone();
                    if which == 0 {
                        t.xi[j] += delta;
                    } else {
                        t.eta[j] += delta;
                    }
                    t.nll(x.as_ref()).unwrap()
                };
                check((shifted(h) - shifted(-h)) / (2.0 * h), analytic, "ξ/η");
            }
            for k in 0..=j {
                let shifted = |delta: f64| {
                    let mut t = target.clone();
                    t.omega[(j, k)] += delta;
                    if j != k {
                        t.omega[(k, j)] += delta;
                    }
                    t.nll(x.as_ref()).unwrap()
                };
                let analytic = if j == k {
                    g.omega[(j, j)]
                } else {
                    2.0 * g.omega[(j, k)]
                };
                check((shifted(h) - shifted(-h)) / (2.0 * h), analytic, "Ω");
            }
        }
    }

    #[test]
    fn the_skew_normal_density_integrates_to_one_and_draws_match_its_mean() {
        // d = 1 by quadrature: ∫ p = 1 and ∫ x p = ξ + √(2/π) β.
        let target =
            SkewNormal::new(vec![0.5], Mat::from_fn(1, 1, |_, _| 2.0), vec![-3.0]).unwrap();
        let step = 1e-3;
        let grid = Mat::from_fn(30_000, 1, |i, _| -15.0 + step * i as f64);
        let (mut mass, mut first) = (0.0, 0.0);
        for i in 0..grid.nrows() {
            let p = (-target.nll(grid.as_ref().subrows(i, 1)).unwrap()).exp();
            mass += p * step;
            first += grid[(i, 0)] * p * step;
        }
        assert!((mass - 1.0).abs() < 1e-6, "{mass}");
        assert!((first - target.mean()[0]).abs() < 1e-6, "{first}");
        // d = 3: the sample mean of 200,000 draws.
        let mut rng = Stream::new(5, &[]);
        let target = random_skew_normal(3, &mut rng);
        let draws = target.sample(200_000, &mut rng).unwrap();
        for (j, expected) in target.mean().iter().enumerate() {
            let mean = (0..draws.nrows()).map(|i| draws[(i, j)]).sum::<f64>() / 200_000.0;
            assert!((mean - expected).abs() < 0.01, "{j}: {mean} vs {expected}");
        }
    }

    #[test]
    fn bad_skew_normal_input_is_refused() {
        let omega = Mat::<f64>::identity(2, 2);
        assert!(SkewNormal::new(vec![0.0; 2], omega.clone(), vec![0.0; 3]).is_err());
        assert!(SkewNormal::new(vec![0.0; 2], -omega.clone(), vec![0.0; 2]).is_err());
        let target = SkewNormal::new(vec![0.0; 2], omega, vec![0.0; 2]).unwrap();
        assert!(target.nll(Mat::<f64>::zeros(3, 3).as_ref()).is_err());
        assert!(
            target
                .nll(Mat::from_fn(1, 2, |_, _| f64::NAN).as_ref())
                .is_err()
        );
    }
}
