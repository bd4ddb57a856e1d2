//! Skew-elliptical targets for surrogate natural gradient descent (natgrad.md (b.4)): the
//! multivariate skew-normal of Azzalini in the (ξ, Ω, η) form the authors use, with η = α/ω the
//! shape over the scales, so that
//!
//! ln p(x) = ln 2 + ln N(x; ξ, Ω) + ln Φ(ηᵀ(x − ξ)).
//!
//! and the multivariate skew-t of Azzalini & Capitanio, SN/√(χ²_ν/ν), with r = x − ξ,
//! Q = rᵀΩ⁻¹r and k = ν + d:
//!
//! ln p(x) = ln 2 + ln t_d(r; Ω, ν) + ln T_k(ηᵀr √(k/(ν + Q))).
//!
//! Points are the rows of a matrix. Gradients of the mean negative log-likelihood are
//! hand-written: in ξ and η as vectors and in Ω as the symmetric g with d f = tr(g dΩ), the form
//! the Gaussian surrogate's chain rules take.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::math::linalg::{cholesky, log_det};
use crate::math::rng::Stream;
use crate::math::special::{
    d_ln_normal_cdf, d_ln_student_t_cdf, d_ln_student_t_cdf_dk, digamma, gamma_draw, ln_gamma,
    ln_normal_cdf, ln_student_t_cdf,
};

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

/// A multivariate skew-t ST(ξ, Ω, η, ν), ν > 0.
#[derive(Clone, Debug)]
pub struct SkewT {
    /// The skew-normal part (ξ, Ω, η).
    pub base: SkewNormal,
    /// Degrees of freedom ν.
    pub nu: f64,
}

impl SkewT {
    /// Checks the skew-normal part and ν > 0.
    pub fn new(xi: Vec<f64>, omega: Mat<f64>, eta: Vec<f64>, nu: f64) -> Result<Self> {
        if !(nu.is_finite() && nu > 0.0) {
            return Err(Error::InvalidData(format!(
                "skew-t degrees of freedom must be positive, got {nu}"
            )));
        }
        Ok(SkewT {
            base: SkewNormal::new(xi, omega, eta)?,
            nu,
        })
    }

    /// The mean negative log-likelihood of the rows of `x`.
    pub fn nll(&self, x: MatRef<'_, f64>) -> Result<f64> {
        Ok(self.evaluate(x, false)?.0)
    }

    /// The mean negative log-likelihood, its gradients in (ξ, Ω, η) and its derivative in ν.
    pub fn nll_gradient(&self, x: MatRef<'_, f64>) -> Result<(f64, SkewGradient, f64)> {
        let (value, gradient) = self.evaluate(x, true)?;
        let (g, g_nu) = gradient.expect("requested");
        Ok((value, g, g_nu))
    }

    /// With Z = R S, Q_i = z_i·r_i, t_i = ηᵀr_i, s_i = √(k/(ν + Q_i)), u_i = t_i s_i and
    /// a_i = ∂ ln p/∂Q_i = −(k + L′_i u_i)/(2(ν + Q_i)) (L′ = ∂ ln T_k/∂u):
    /// ∂ ln p/∂r_i = 2 a_i z_i + L′_i s_i η, ∂ ln p/∂Ω = −½S − a_i z_i z_iᵀ,
    /// ∂ ln p/∂η = L′_i s_i r_i, and in ν the digamma terms, the ln(1 + Q/ν) terms, u's own
    /// dependence on ν and ∂ ln T_k/∂k.
    #[allow(clippy::type_complexity)]
    fn evaluate(
        &self,
        x: MatRef<'_, f64>,
        gradient: bool,
    ) -> Result<(f64, Option<(SkewGradient, f64)>)> {
        let SkewNormal { xi, omega, eta } = &self.base;
        let (nu, d) = (self.nu, xi.len());
        check_batch(x, d)?;
        let n = x.nrows();
        let k = nu + d as f64;
        let llt = cholesky(omega, "Ω")?;
        let precision = llt.inverse();
        let r = Mat::from_fn(n, d, |i, j| x[(i, j)] - xi[j]);
        let z = &r * &precision;
        let constant = std::f64::consts::LN_2 + ln_gamma(0.5 * k)
            - ln_gamma(0.5 * nu)
            - 0.5 * d as f64 * (nu * std::f64::consts::PI).ln()
            - 0.5 * log_det(&llt);
        let inv_n = 1.0 / n as f64;
        let mut total = 0.0;
        let mut a = vec![0.0; n];
        let mut ls = vec![0.0; n];
        let mut g_nu = 0.0;
        let d_constant = 0.5 * digamma(0.5 * k) - 0.5 * digamma(0.5 * nu) - 0.5 * d as f64 / nu;
        for i in 0..n {
            let q: f64 = (0..d).map(|j| z[(i, j)] * r[(i, j)]).sum();
            let t: f64 = (0..d).map(|j| r[(i, j)] * eta[j]).sum();
            let s = (k / (nu + q)).sqrt();
            let u = t * s;
            let log1p = (q / nu).ln_1p();
            total += constant - 0.5 * k * log1p + ln_student_t_cdf(u, k);
            if gradient {
                let l_u = d_ln_student_t_cdf(u, k);
                a[i] = -(k + l_u * u) / (2.0 * (nu + q));
                ls[i] = l_u * s;
                g_nu -= d_constant - 0.5 * log1p
                    + 0.5 * k * q / (nu * (nu + q))
                    + l_u * u * 0.5 * (1.0 / k - 1.0 / (nu + q))
                    + d_ln_student_t_cdf_dk(u, k);
            }
        }
        let value = -total * inv_n;
        if !gradient {
            return Ok((value, None));
        }
        let mean_ls = ls.iter().sum::<f64>() * inv_n;
        let g_xi = (0..d)
            .map(|j| (0..n).map(|i| 2.0 * a[i] * z[(i, j)]).sum::<f64>() * inv_n + mean_ls * eta[j])
            .collect();
        let az = Mat::from_fn(n, d, |i, j| a[i] * z[(i, j)]);
        let zaz = z.transpose() * &az;
        let g_omega = Mat::from_fn(d, d, |p, q| {
            0.25 * (precision[(p, q)] + precision[(q, p)]) + zaz[(p, q)] * inv_n
        });
        let g_eta = (0..d)
            .map(|j| -(0..n).map(|i| ls[i] * r[(i, j)]).sum::<f64>() * inv_n)
            .collect();
        Ok((
            value,
            Some((
                SkewGradient {
                    xi: g_xi,
                    omega: g_omega,
                    eta: g_eta,
                },
                g_nu * inv_n,
            )),
        ))
    }

    /// n draws as rows: ξ + y/√w with y ~ SN(0, Ω, η) and w ~ χ²_ν/ν.
    pub fn sample(&self, n: usize, rng: &mut Stream) -> Result<Mat<f64>> {
        let d = self.base.dim();
        let centred = SkewNormal {
            xi: vec![0.0; d],
            ..self.base.clone()
        };
        let mut y = centred.sample(n, rng)?;
        for i in 0..n {
            let w = gamma_draw(0.5 * self.nu, rng) / (0.5 * self.nu);
            let scale = 1.0 / w.sqrt();
            for j in 0..d {
                y[(i, j)] = self.base.xi[j] + scale * y[(i, j)];
            }
        }
        Ok(y)
    }

    /// The mean ξ + b_ν β for ν > 1, b_ν = √(ν/π) Γ((ν − 1)/2)/Γ(ν/2).
    pub fn mean(&self) -> Result<Vec<f64>> {
        if self.nu <= 1.0 {
            return Err(Error::InvalidData(format!(
                "the skew-t mean needs ν > 1, got {}",
                self.nu
            )));
        }
        let nu = self.nu;
        let b = (nu / std::f64::consts::PI).sqrt()
            * (ln_gamma(0.5 * (nu - 1.0)) - ln_gamma(0.5 * nu)).exp();
        Ok(self
            .base
            .xi
            .iter()
            .zip(self.base.beta())
            .map(|(x, beta)| x + b * beta)
            .collect())
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

    #[test]
    fn skew_t_gradients_match_finite_differences() {
        let mut rng = Stream::new(12, &[]);
        let d = 3;
        let base = random_skew_normal(d, &mut rng);
        let target = SkewT { base, nu: 4.5 };
        let x = Mat::from_fn(25, d, |_, _| 2.5 * rng.normal());
        let (_, g, g_nu) = target.nll_gradient(x.as_ref()).unwrap();
        let h = 1e-5;
        let check = |numeric: f64, analytic: f64, what: &str| {
            assert!(
                (numeric - analytic).abs() < 1e-6 * (1.0 + analytic.abs()),
                "{what}: {numeric} vs {analytic}"
            );
        };
        let value = |t: &SkewT| t.nll(x.as_ref()).unwrap();
        for j in 0..d {
            let mut up = target.clone();
            let mut down = target.clone();
            up.base.xi[j] += h;
            down.base.xi[j] -= h;
            check((value(&up) - value(&down)) / (2.0 * h), g.xi[j], "ξ");
            let mut up = target.clone();
            let mut down = target.clone();
            up.base.eta[j] += h;
            down.base.eta[j] -= h;
            check((value(&up) - value(&down)) / (2.0 * h), g.eta[j], "η");
            for k in 0..=j {
                let (mut up, mut down) = (target.clone(), target.clone());
                for (t, delta) in [(&mut up, h), (&mut down, -h)] {
                    t.base.omega[(j, k)] += delta;
                    if j != k {
                        t.base.omega[(k, j)] += delta;
                    }
                }
                let analytic = if j == k {
                    g.omega[(j, j)]
                } else {
                    2.0 * g.omega[(j, k)]
                };
                check((value(&up) - value(&down)) / (2.0 * h), analytic, "Ω");
            }
        }
        let (mut up, mut down) = (target.clone(), target.clone());
        up.nu += h;
        down.nu -= h;
        check((value(&up) - value(&down)) / (2.0 * h), g_nu, "ν");
    }

    #[test]
    fn the_skew_t_density_integrates_to_one_and_draws_match_its_mean() {
        let base = SkewNormal::new(vec![0.5], Mat::from_fn(1, 1, |_, _| 2.0), vec![-3.0]).unwrap();
        let target = SkewT { base, nu: 5.0 };
        let step = 2e-3;
        let grid = Mat::from_fn(200_000, 1, |i, _| -200.0 + step * i as f64);
        let (mut mass, mut first) = (0.0, 0.0);
        for i in 0..grid.nrows() {
            let p = (-target.nll(grid.as_ref().subrows(i, 1)).unwrap()).exp();
            mass += p * step;
            first += grid[(i, 0)] * p * step;
        }
        assert!((mass - 1.0).abs() < 1e-6, "{mass}");
        assert!((first - target.mean().unwrap()[0]).abs() < 1e-4, "{first}");
        let mut rng = Stream::new(6, &[]);
        let target = SkewT {
            base: random_skew_normal(3, &mut rng),
            nu: 8.0,
        };
        let draws = target.sample(200_000, &mut rng).unwrap();
        for (j, expected) in target.mean().unwrap().iter().enumerate() {
            let mean = (0..draws.nrows()).map(|i| draws[(i, j)]).sum::<f64>() / 200_000.0;
            assert!((mean - expected).abs() < 0.015, "{j}: {mean} vs {expected}");
        }
        assert!(SkewT::new(vec![0.0], Mat::from_fn(1, 1, |_, _| 1.0), vec![0.0], -1.0).is_err());
    }
}
