//! The Student-t copula C(R, ν) of the SNGD paper (natgrad.md b.4): points u ∈ (0, 1)^d with
//! x_j = T_ν⁻¹(u_j) and
//!
//! ln c(u) = ln t_d(x; 0, R, ν) − Σ_j ln t_ν(x_j),
//!
//! where R is a correlation matrix. The gradient in ν goes through the quantiles,
//! ∂x/∂ν = −∂_ν T_ν(x)/t_ν(x), evaluated on the lower tail by symmetry so that points near
//! u = 1 keep their precision. Gradients in R use the symmetric g with d f = tr(g dR), and
//! [`cov2corr_backward`] carries them to the covariance Σ of the surrogate.

use faer::linalg::solvers::{DenseSolveCore, Solve};
use faer::{Mat, MatRef};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::math::linalg::{cholesky, log_det};
use crate::math::rng::Stream;
use crate::math::special::{
    d_ln_student_t_cdf_dk, digamma, gamma_draw, ln_gamma, ln_student_t_cdf, ln_student_t_pdf,
    student_t_quantile,
};

/// A Student-t copula with correlation matrix R and ν > 0 degrees of freedom.
#[derive(Clone, Debug)]
pub struct StudentTCopula {
    /// The correlation matrix (unit diagonal, positive definite).
    pub r: Mat<f64>,
    /// Degrees of freedom.
    pub nu: f64,
}

/// The correlation matrix of a covariance: R = D^{-1/2} Σ D^{-1/2}, D = diag Σ.
pub fn cov2corr(sigma: &Mat<f64>) -> Result<Mat<f64>> {
    let d = sigma.nrows();
    let scale: Vec<f64> = (0..d)
        .map(|j| {
            let v = sigma[(j, j)];
            if v > 0.0 && v.is_finite() {
                Ok(1.0 / v.sqrt())
            } else {
                Err(Error::InvalidData(format!(
                    "covariance diagonal entry {j} is {v}, not positive"
                )))
            }
        })
        .collect::<Result<_>>()?;
    Ok(Mat::from_fn(d, d, |a, b| {
        if a == b {
            1.0
        } else {
            sigma[(a, b)] * scale[a] * scale[b]
        }
    }))
}

/// The gradient in Σ of f(cov2corr(Σ)) from the symmetric gradient `g_r` in R:
/// ∂f/∂Σ_ab = g_ab/√(Σ_aa Σ_bb) − δ_ab Σ_j g_aj R_aj/Σ_aa.
pub fn cov2corr_backward(sigma: &Mat<f64>, g_r: &Mat<f64>) -> Result<Mat<f64>> {
    let r = cov2corr(sigma)?;
    let d = sigma.nrows();
    let scale: Vec<f64> = (0..d).map(|j| 1.0 / sigma[(j, j)].sqrt()).collect();
    Ok(Mat::from_fn(d, d, |a, b| {
        let mut g = g_r[(a, b)] * scale[a] * scale[b];
        if a == b {
            g -= (0..d).map(|j| g_r[(a, j)] * r[(a, j)]).sum::<f64>() / sigma[(a, a)];
        }
        g
    }))
}

/// ∂x/∂ν at x = T_ν⁻¹(u) with u fixed, from the tail that does not round to one.
fn d_quantile_d_nu(x: f64, nu: f64) -> f64 {
    let ln_pdf = ln_student_t_pdf(x, nu);
    if x <= 0.0 {
        -(ln_student_t_cdf(x, nu) - ln_pdf).exp() * d_ln_student_t_cdf_dk(x, nu)
    } else {
        (ln_student_t_cdf(-x, nu) - ln_pdf).exp() * d_ln_student_t_cdf_dk(-x, nu)
    }
}

impl StudentTCopula {
    /// Checks a square, symmetric, unit-diagonal, positive-definite R and a finite ν > 0.
    pub fn new(r: Mat<f64>, nu: f64) -> Result<Self> {
        let d = r.nrows();
        if d == 0 || r.ncols() != d {
            return Err(Error::Dimension(format!(
                "a copula correlation matrix must be square and non-empty, got {} × {}",
                r.nrows(),
                r.ncols()
            )));
        }
        for a in 0..d {
            let off = (r[(a, a)] - 1.0).abs();
            if off.is_nan() || off > 1e-9 {
                return Err(Error::InvalidData(format!(
                    "correlation matrix diagonal entry {a} is {}, not 1",
                    r[(a, a)]
                )));
            }
            for b in 0..a {
                let gap = (r[(a, b)] - r[(b, a)]).abs();
                if gap.is_nan() || gap > 1e-9 {
                    return Err(Error::InvalidData(format!(
                        "correlation matrix is not symmetric at ({a}, {b})"
                    )));
                }
            }
        }
        cholesky(&r, "R")?;
        if !(nu.is_finite() && nu > 0.0) {
            return Err(Error::InvalidData(format!(
                "copula degrees of freedom must be positive, got {nu}"
            )));
        }
        Ok(StudentTCopula { r, nu })
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.r.nrows()
    }

    /// `n` points: x = z/√(w), z ~ N(0, R), w ~ Gamma(ν/2, rate ν/2), u_j = T_ν(x_j).
    pub fn sample(&self, n: usize, rng: &mut Stream) -> Result<Mat<f64>> {
        let d = self.dim();
        let llt = cholesky(&self.r, "R")?;
        let noise = Mat::from_fn(n, d, |_, _| rng.normal());
        let mut x = &noise * llt.L().transpose();
        for i in 0..n {
            let w = gamma_draw(0.5 * self.nu, rng) / (0.5 * self.nu);
            for j in 0..d {
                let t = x[(i, j)] / w.sqrt();
                x[(i, j)] = ln_student_t_cdf(t, self.nu).exp();
            }
        }
        Ok(x)
    }

    fn check(&self, u: MatRef<'_, f64>) -> Result<()> {
        if u.ncols() != self.dim() || u.nrows() == 0 {
            return Err(Error::Dimension(format!(
                "a batch of {} × {} points for a copula of dimension {}",
                u.nrows(),
                u.ncols(),
                self.dim()
            )));
        }
        for i in 0..u.nrows() {
            for j in 0..u.ncols() {
                let v = u[(i, j)];
                if !(v > 0.0 && v < 1.0) {
                    return Err(Error::InvalidData(format!(
                        "copula point {i} has coordinate {j} = {v}, outside (0, 1)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The mean negative log-density of the rows of `u`.
    pub fn nll(&self, u: MatRef<'_, f64>) -> Result<f64> {
        Ok(self.evaluate(u, false)?.0)
    }

    /// The mean negative log-density with its gradients: the symmetric g_R (d f = tr(g_R dR))
    /// and ∂f/∂ν (through the quantiles).
    pub fn nll_gradient(&self, u: MatRef<'_, f64>) -> Result<(f64, Mat<f64>, f64)> {
        self.evaluate(u, true)
    }

    fn evaluate(&self, u: MatRef<'_, f64>, gradient: bool) -> Result<(f64, Mat<f64>, f64)> {
        self.check(u)?;
        let (n, d) = (u.nrows(), self.dim());
        let (nu, df) = (self.nu, self.dim() as f64);
        let llt = cholesky(&self.r, "R")?;
        let ln_det = log_det(&llt);
        let constant = ln_gamma(0.5 * (nu + df))
            - ln_gamma(0.5 * nu)
            - 0.5 * df * (nu * std::f64::consts::PI).ln()
            - 0.5 * ln_det
            - df * (ln_gamma(0.5 * (nu + 1.0))
                - ln_gamma(0.5 * nu)
                - 0.5 * (nu * std::f64::consts::PI).ln());
        let x: Vec<f64> = (0..n * d)
            .into_par_iter()
            .map(|k| student_t_quantile(u[(k / d, k % d)], nu))
            .collect();
        let x = Mat::from_fn(n, d, |i, j| x[i * d + j]);
        let solved = llt.solve(x.transpose()); // R⁻¹x per column
        let scale = 1.0 / n as f64;
        let mut value = 0.0;
        let mut g_r = Mat::<f64>::zeros(d, d);
        let mut g_nu = 0.0;
        let direct_joint =
            0.5 * digamma(0.5 * (nu + df)) - 0.5 * digamma(0.5 * nu) - df / (2.0 * nu);
        let direct_marginal = 0.5 * digamma(0.5 * (nu + 1.0)) - 0.5 * digamma(0.5 * nu) - 0.5 / nu;
        let dx_dnu: Vec<f64> = if gradient {
            (0..n * d)
                .into_par_iter()
                .map(|k| d_quantile_d_nu(x[(k / d, k % d)], nu))
                .collect()
        } else {
            Vec::new()
        };
        for i in 0..n {
            let q: f64 = (0..d).map(|j| x[(i, j)] * solved[(j, i)]).sum();
            let mut ln_c = constant - 0.5 * (nu + df) * (q / nu).ln_1p();
            for j in 0..d {
                ln_c += 0.5 * (nu + 1.0) * (x[(i, j)] * x[(i, j)] / nu).ln_1p();
            }
            value -= ln_c * scale;
            if !gradient {
                continue;
            }
            let w = (nu + df) / (nu + q);
            for a in 0..d {
                for b in 0..d {
                    g_r[(a, b)] -= 0.5 * w * solved[(a, i)] * solved[(b, i)] * scale;
                }
            }
            // −∂ ln c/∂ν at fixed x, then through x(ν).
            let mut g =
                -(direct_joint - 0.5 * (q / nu).ln_1p() + (nu + df) * q / (2.0 * nu * (nu + q)));
            for j in 0..d {
                let xj = x[(i, j)];
                let x2 = xj * xj;
                g += direct_marginal - 0.5 * (x2 / nu).ln_1p()
                    + (nu + 1.0) * x2 / (2.0 * nu * (nu + x2));
                let d_x = w * solved[(j, i)] - (nu + 1.0) * xj / (nu + x2);
                g += d_x * dx_dnu[i * d + j];
            }
            g_nu += g * scale;
        }
        if gradient {
            let inverse = llt.inverse();
            for a in 0..d {
                for b in 0..d {
                    g_r[(a, b)] += 0.25 * (inverse[(a, b)] + inverse[(b, a)]);
                }
            }
        }
        Ok((value, g_r, g_nu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copula() -> StudentTCopula {
        let mut rng = Stream::new(1, &[]);
        let w = Mat::from_fn(3, 3, |_, _| rng.normal());
        let sigma = w.transpose() * &w + Mat::<f64>::identity(3, 3);
        StudentTCopula::new(cov2corr(&sigma).unwrap(), 4.5).unwrap()
    }

    /// In one dimension the copula is uniform: ln c = 0 for every u and ν.
    #[test]
    fn a_one_dimensional_copula_is_uniform() {
        let c = StudentTCopula::new(Mat::from_fn(1, 1, |_, _| 1.0), 3.0).unwrap();
        let u = Mat::from_fn(5, 1, |i, _| 0.01 + 0.245 * i as f64);
        let (v, g_r, g_nu) = c.nll_gradient(u.as_ref()).unwrap();
        assert!(v.abs() < 1e-10 && g_nu.abs() < 1e-6, "{v} {g_nu}");
        assert!(g_r[(0, 0)].is_finite());
    }

    /// With R = I and ν → ∞ the copula density tends to one; at ν = 1e6 it is within 1e-4.
    #[test]
    fn the_copula_matches_its_limits_and_draws_are_uniform_margins() {
        let c = StudentTCopula::new(Mat::<f64>::identity(2, 2), 1e6).unwrap();
        let u = Mat::from_fn(4, 2, |i, j| 0.1 + 0.2 * i as f64 + 0.05 * j as f64);
        assert!(c.nll(u.as_ref()).unwrap().abs() < 1e-4);
        // Margins of draws are uniform: mean ½ and variance 1/12.
        let c = copula();
        let draws = c.sample(40_000, &mut Stream::new(2, &[])).unwrap();
        for j in 0..3 {
            let m: f64 = (0..40_000).map(|i| draws[(i, j)]).sum::<f64>() / 40_000.0;
            let v: f64 = (0..40_000)
                .map(|i| (draws[(i, j)] - m).powi(2))
                .sum::<f64>()
                / 40_000.0;
            assert!(
                (m - 0.5).abs() < 0.006 && (v - 1.0 / 12.0).abs() < 0.003,
                "{m} {v}"
            );
        }
        // The density integrates to one over (0, 1)²: midpoint rule on a 150 × 150 grid.
        let c2 = StudentTCopula::new(
            Mat::from_fn(2, 2, |a, b| if a == b { 1.0 } else { 0.6 }),
            4.0,
        )
        .unwrap();
        let m = 150;
        let u = Mat::from_fn(m * m, 2, |k, j| {
            let idx = if j == 0 { k / m } else { k % m };
            (idx as f64 + 0.5) / m as f64
        });
        let mut total = 0.0;
        for k in 0..m * m {
            total += (-c2.nll(u.as_ref().subrows(k, 1)).unwrap()).exp();
        }
        let integral = total / (m * m) as f64;
        assert!((integral - 1.0).abs() < 0.005, "{integral}");
    }

    #[test]
    fn copula_gradients_match_finite_differences() {
        let c = copula();
        let u = c.sample(6, &mut Stream::new(3, &[])).unwrap();
        let (_, g_r, g_nu) = c.nll_gradient(u.as_ref()).unwrap();
        let value = |c: &StudentTCopula| c.nll(u.as_ref()).unwrap();
        let h = 1e-6;
        for a in 0..3 {
            for b in 0..a {
                let (mut up, mut down) = (c.clone(), c.clone());
                for (t, delta) in [(&mut up, h), (&mut down, -h)] {
                    t.r[(a, b)] += delta;
                    t.r[(b, a)] += delta;
                }
                let numeric = (value(&up) - value(&down)) / (2.0 * h);
                assert!(
                    (numeric - 2.0 * g_r[(a, b)]).abs() < 1e-6,
                    "R{a}{b}: {numeric} vs {}",
                    2.0 * g_r[(a, b)]
                );
            }
        }
        let h = 1e-4;
        let (mut up, mut down) = (c.clone(), c.clone());
        up.nu += h;
        down.nu -= h;
        let numeric = (value(&up) - value(&down)) / (2.0 * h);
        assert!((numeric - g_nu).abs() < 1e-5, "ν: {numeric} vs {g_nu}");
        // Through cov2corr.
        let mut rng = Stream::new(4, &[]);
        let w = Mat::from_fn(3, 3, |_, _| rng.normal());
        let sigma = w.transpose() * &w + Mat::<f64>::identity(3, 3);
        let at = |s: &Mat<f64>| {
            StudentTCopula::new(cov2corr(s).unwrap(), c.nu)
                .unwrap()
                .nll(u.as_ref())
                .unwrap()
        };
        let (_, g_r, _) = StudentTCopula::new(cov2corr(&sigma).unwrap(), c.nu)
            .unwrap()
            .nll_gradient(u.as_ref())
            .unwrap();
        let g_sigma = cov2corr_backward(&sigma, &g_r).unwrap();
        let h = 1e-6;
        for a in 0..3 {
            for b in 0..=a {
                let (mut up, mut down) = (sigma.clone(), sigma.clone());
                for (t, delta) in [(&mut up, h), (&mut down, -h)] {
                    t[(a, b)] += delta;
                    if a != b {
                        t[(b, a)] += delta;
                    }
                }
                let numeric = (at(&up) - at(&down)) / (2.0 * h);
                let analytic = if a == b {
                    g_sigma[(a, a)]
                } else {
                    2.0 * g_sigma[(a, b)]
                };
                assert!(
                    (numeric - analytic).abs() < 1e-6,
                    "Σ{a}{b}: {numeric} vs {analytic}"
                );
            }
        }
    }

    #[test]
    fn bad_copula_input_is_an_error() {
        assert!(StudentTCopula::new(Mat::from_fn(2, 2, |_, _| 1.0), 3.0).is_err());
        assert!(StudentTCopula::new(Mat::<f64>::identity(2, 2) * faer::Scale(2.0), 3.0).is_err());
        assert!(StudentTCopula::new(Mat::<f64>::identity(2, 2), 0.0).is_err());
        let c = copula();
        assert!(c.nll(Mat::from_fn(2, 3, |_, _| 1.0).as_ref()).is_err());
        assert!(c.nll(Mat::from_fn(2, 2, |_, _| 0.5).as_ref()).is_err());
        assert!(c.nll(Mat::from_fn(2, 3, |_, _| f64::NAN).as_ref()).is_err());
    }
}
