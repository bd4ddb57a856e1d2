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
//!
//! (Over 700 lines on purpose: the skew-normal and the skew-t share their gradient machinery;
//! the last 330 lines are tests.)

use faer::linalg::solvers::{DenseSolveCore, Solve};
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

    /// Σ_i c_i (−ln p(x_i)) and its gradients, for any weights c (one per row).
    pub fn weighted_nll_gradient(
        &self,
        x: MatRef<'_, f64>,
        weights: &[f64],
    ) -> Result<(f64, SkewGradient)> {
        if weights.len() != x.nrows() {
            return Err(Error::Dimension(format!(
                "{} weights for {} points",
                weights.len(),
                x.nrows()
            )));
        }
        let (value, gradient) = self.evaluate_weighted(x, Some(weights), true)?;
        Ok((value, gradient.expect("requested")))
    }

    /// ln p(x_i) for each row and ∇_x ln p(x_i) = −Ω⁻¹(x_i − ξ) + (ln Φ)′(ηᵀ(x_i − ξ)) η as rows.
    pub fn log_density_rows(&self, x: MatRef<'_, f64>) -> Result<(Vec<f64>, Mat<f64>)> {
        let d = self.dim();
        check_batch(x, d)?;
        let llt = cholesky(&self.omega, "Ω")?;
        let r = Mat::from_fn(x.nrows(), d, |i, j| x[(i, j)] - self.xi[j]);
        let z = llt.solve(r.transpose());
        let constant = std::f64::consts::LN_2 - 0.5 * (d as f64 * LN_2PI + log_det(&llt));
        let mut values = Vec::with_capacity(x.nrows());
        let mut gradient = Mat::zeros(x.nrows(), d);
        for i in 0..x.nrows() {
            let t: f64 = (0..d).map(|j| r[(i, j)] * self.eta[j]).sum();
            let quadratic: f64 = (0..d).map(|j| z[(j, i)] * r[(i, j)]).sum();
            values.push(constant - 0.5 * quadratic + ln_normal_cdf(t));
            let w = d_ln_normal_cdf(t);
            for j in 0..d {
                gradient[(i, j)] = -z[(j, i)] + w * self.eta[j];
            }
        }
        Ok((values, gradient))
    }

    fn evaluate(&self, x: MatRef<'_, f64>, gradient: bool) -> Result<(f64, Option<SkewGradient>)> {
        self.evaluate_weighted(x, None, gradient)
    }

    /// f = Σ c_i[−ln 2 + ½ d ln 2π + ½ ln det Ω + ½ rᵀSr − ln Φ(ηᵀr)], r = x − ξ, S = Ω⁻¹,
    /// c_i = 1/n unless weights are given; with Z = R S: ∂ξ = −Σ c_i z_i + (Σ c_i w_i) η,
    /// ∂Ω = ½ (Σ c_i) S − ½ Σ c_i z_i z_iᵀ, ∂η = −Σ c_i w_i r_i, w = (ln Φ)′(ηᵀr).
    fn evaluate_weighted(
        &self,
        x: MatRef<'_, f64>,
        weights: Option<&[f64]>,
        gradient: bool,
    ) -> Result<(f64, Option<SkewGradient>)> {
        let d = self.dim();
        check_batch(x, d)?;
        let n = x.nrows();
        let c: Vec<f64> = match weights {
            Some(w) => w.to_vec(),
            None => vec![1.0 / n as f64; n],
        };
        let c_total: f64 = c.iter().sum();
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
            total += c[i] * (0.5 * quadratic - ln_normal_cdf(ti));
        }
        let value =
            c_total * (-std::f64::consts::LN_2 + 0.5 * (d as f64 * LN_2PI + log_det(&llt))) + total;
        if !gradient {
            return Ok((value, None));
        }
        let w: Vec<f64> = t.iter().map(|&ti| d_ln_normal_cdf(ti)).collect();
        let weighted_w: f64 = w.iter().zip(&c).map(|(a, b)| a * b).sum();
        let g_xi = (0..d)
            .map(|j| -(0..n).map(|i| c[i] * z[(i, j)]).sum::<f64>() + weighted_w * self.eta[j])
            .collect();
        let cz = Mat::from_fn(n, d, |i, j| c[i] * z[(i, j)]);
        let ztz = z.transpose() * &cz;
        let g_omega = Mat::from_fn(d, d, |a, b| {
            // ½ (Σ c) S and ½ ZᵀCZ, symmetrised against rounding.
            0.25 * c_total * (precision[(a, b)] + precision[(b, a)])
                - 0.25 * (ztz[(a, b)] + ztz[(b, a)])
        });
        let g_eta = (0..d)
            .map(|j| -(0..n).map(|i| c[i] * r[(i, j)] * w[i]).sum::<f64>())
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

    /// The entropy H = ½ ln det(2πeΩ) − h(a), a = √(ηᵀΩη), h(a) = E_{z~N(0,1)}[2Φ(az) ln 2Φ(az)]
    /// (the one-dimensional expectation by quadrature), with its gradients in Ω (symmetric) and
    /// η: ∂H/∂Ω = ½S − h′(a) ηηᵀ/(2a), ∂H/∂η = −h′(a) Ωη/a.
    pub fn entropy(&self) -> Result<(f64, Mat<f64>, Vec<f64>)> {
        let d = self.dim();
        let llt = cholesky(&self.omega, "Ω")?;
        let precision = llt.inverse();
        let omega_eta: Vec<f64> = (0..d)
            .map(|r| (0..d).map(|c| self.omega[(r, c)] * self.eta[c]).sum())
            .collect();
        let a = omega_eta
            .iter()
            .zip(&self.eta)
            .map(|(x, y)| x * y)
            .sum::<f64>()
            .max(0.0)
            .sqrt();
        let (h, dh) = skew_entropy_correction(a);
        let ratio = if a > 1e-12 { dh / a } else { 0.0 };
        let value = 0.5 * (d as f64 * crate::dist::LN_2PI_E + log_det(&llt)) - h;
        let g_omega = Mat::from_fn(d, d, |r, c| {
            0.25 * (precision[(r, c)] + precision[(c, r)]) - 0.5 * ratio * self.eta[r] * self.eta[c]
        });
        let g_eta = omega_eta.iter().map(|v| -ratio * v).collect();
        Ok((value, g_omega, g_eta))
    }

    /// Lin, Khan & Schmidt's coordinates (μ, V, β) of the minimal conditional exponential-family
    /// form x | w ~ N(μ + |w|β, V), w ~ N(0, 1): μ = ξ, β = Ωη/√(1 + ηᵀΩη), V = Ω − ββᵀ.
    pub fn lin_coordinates(&self) -> (Vec<f64>, Mat<f64>, Vec<f64>) {
        let d = self.dim();
        let beta = self.beta();
        let v = Mat::from_fn(d, d, |r, c| self.omega[(r, c)] - beta[r] * beta[c]);
        (self.xi.clone(), v, beta)
    }

    /// The skew-normal with Lin coordinates (μ, V, β): Ω = V + ββᵀ, η = V⁻¹β/√(1 + βᵀV⁻¹β).
    pub fn from_lin_coordinates(mu: Vec<f64>, v: &Mat<f64>, beta: &[f64]) -> Result<Self> {
        let d = mu.len();
        let llt = cholesky(v, "V")?;
        let p = llt.solve(Mat::from_fn(d, 1, |r, _| beta[r]));
        let s: f64 = (0..d).map(|r| p[(r, 0)] * beta[r]).sum();
        let scale = 1.0 / (1.0 + s).sqrt();
        let omega = Mat::from_fn(d, d, |r, c| v[(r, c)] + beta[r] * beta[c]);
        SkewNormal::new(mu, omega, (0..d).map(|r| scale * p[(r, 0)]).collect())
    }

    /// Gradients in (ξ, Ω, η) carried to Lin's (μ, V, β): G_μ = G_ξ; Ω = V + ββᵀ gives G_V = G_Ω
    /// and G_β = 2G_Ωβ; η = κp with p = V⁻¹β, s = βᵀp, κ = (1 + s)^{−½} adds, with q = V⁻¹G_η and
    /// ρ = ½(1 + s)^{−3/2} G_η·p, G_β += κq − 2ρp and G_V += −½κ(qpᵀ + pqᵀ) + ρppᵀ.
    pub fn gradient_in_lin_coordinates(
        &self,
        g: &SkewGradient,
    ) -> Result<(Vec<f64>, Mat<f64>, Vec<f64>)> {
        let d = self.dim();
        let (_, v, beta) = self.lin_coordinates();
        let llt = cholesky(&v, "V")?;
        let solve = |x: &[f64]| -> Vec<f64> {
            let m = llt.solve(Mat::from_fn(d, 1, |r, _| x[r]));
            (0..d).map(|r| m[(r, 0)]).collect()
        };
        let p = solve(&beta);
        let q = solve(&g.eta);
        let s: f64 = p.iter().zip(&beta).map(|(a, b)| a * b).sum();
        let kappa = 1.0 / (1.0 + s).sqrt();
        let rho = 0.5 * kappa.powi(3) * g.eta.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>();
        let g_beta = (0..d)
            .map(|r| {
                2.0 * (0..d).map(|c| g.omega[(r, c)] * beta[c]).sum::<f64>() + kappa * q[r]
                    - 2.0 * rho * p[r]
            })
            .collect();
        let g_v = Mat::from_fn(d, d, |r, c| {
            g.omega[(r, c)] - 0.5 * kappa * (q[r] * p[c] + p[r] * q[c]) + rho * p[r] * p[c]
        });
        Ok((g.xi.clone(), g_v, g_beta))
    }
}

/// h(a) = E_{z~N(0,1)}[2Φ(az) ln 2Φ(az)] and h′(a) = E[2φ(az) z (ln 2Φ(az) + 1)] by the
/// trapezoid rule on [−12, 12], with a step fine enough for the kink of width 1/a.
fn skew_entropy_correction(a: f64) -> (f64, f64) {
    let step = 0.005f64.min(0.05 / a.max(1e-12)).max(2e-5);
    let n = (24.0 / step).ceil() as usize;
    let step = 24.0 / n as f64;
    let ln_root_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let (mut h, mut dh) = (0.0, 0.0);
    for i in 0..=n {
        let z = -12.0 + step * i as f64;
        let weight =
            if i == 0 || i == n { 0.5 } else { 1.0 } * step * (-0.5 * z * z - ln_root_2pi).exp();
        let az = a * z;
        let l = std::f64::consts::LN_2 + ln_normal_cdf(az);
        h += weight * l.exp() * l;
        dh += weight * 2.0 * (-0.5 * az * az - ln_root_2pi).exp() * z * (l + 1.0);
    }
    (h, dh)
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

    /// ln p(x_i) for each row and ∇_x ln p(x_i) = 2a_i z_i + L′_i s_i η as rows (the notation
    /// of the gradient above), with one factorisation of Ω.
    pub fn log_density_rows(&self, x: MatRef<'_, f64>) -> Result<(Vec<f64>, Mat<f64>)> {
        let SkewNormal { xi, omega, eta } = &self.base;
        let (nu, d) = (self.nu, xi.len());
        check_batch(x, d)?;
        let k = nu + d as f64;
        let llt = cholesky(omega, "Ω")?;
        let constant = std::f64::consts::LN_2 + ln_gamma(0.5 * k)
            - ln_gamma(0.5 * nu)
            - 0.5 * d as f64 * (nu * std::f64::consts::PI).ln()
            - 0.5 * log_det(&llt);
        let r = Mat::from_fn(x.nrows(), d, |i, j| x[(i, j)] - xi[j]);
        let z = llt.solve(r.transpose());
        let mut values = Vec::with_capacity(x.nrows());
        let mut gradient = Mat::zeros(x.nrows(), d);
        for i in 0..x.nrows() {
            let q: f64 = (0..d).map(|m| z[(m, i)] * r[(i, m)]).sum();
            let t: f64 = (0..d).map(|m| r[(i, m)] * eta[m]).sum();
            let s = (k / (nu + q)).sqrt();
            let u = t * s;
            values.push(constant - 0.5 * k * (q / nu).ln_1p() + ln_student_t_cdf(u, k));
            let l_u = d_ln_student_t_cdf(u, k);
            let a = -(k + l_u * u) / (2.0 * (nu + q));
            for j in 0..d {
                gradient[(i, j)] = 2.0 * a * z[(j, i)] + l_u * s * eta[j];
            }
        }
        Ok((values, gradient))
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

/// Test check: the gradient `g` of `value` at `q` in (ξ, Ω, η) against central differences of
/// step `h`, each within `tol` · (1 + |analytic|); Ω moves symmetrically, so an off-diagonal
/// difference is 2g.
#[cfg(test)]
pub(crate) fn assert_skew_gradient(
    q: &SkewNormal,
    g: &SkewGradient,
    value: impl Fn(&SkewNormal) -> f64,
    h: f64,
    tol: f64,
    label: &str,
) {
    let check = |moved: &dyn Fn(&mut SkewNormal, f64), analytic: f64, what: String| {
        let (mut up, mut down) = (q.clone(), q.clone());
        moved(&mut up, h);
        moved(&mut down, -h);
        let numeric = (value(&up) - value(&down)) / (2.0 * h);
        assert!(
            (numeric - analytic).abs() < tol * (1.0 + analytic.abs()),
            "{label} {what}: {numeric} vs {analytic}"
        );
    };
    for j in 0..q.dim() {
        check(&|t, delta| t.xi[j] += delta, g.xi[j], format!("ξ{j}"));
        check(&|t, delta| t.eta[j] += delta, g.eta[j], format!("η{j}"));
        for k in 0..=j {
            let analytic = if j == k {
                g.omega[(j, j)]
            } else {
                2.0 * g.omega[(j, k)]
            };
            let moved = |t: &mut SkewNormal, delta: f64| {
                t.omega[(j, k)] += delta;
                if j != k {
                    t.omega[(k, j)] += delta;
                }
            };
            check(&moved, analytic, format!("Ω{j}{k}"));
        }
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

    /// Per-row log densities are the single-row NLLs, their x-gradients match central
    /// differences, and weights 1/n reproduce the mean NLL and its gradient while doubling the
    /// weights doubles both.
    #[test]
    fn per_row_densities_and_weighted_gradients_agree_with_the_mean_forms() {
        let mut rng = Stream::new(12, &[]);
        let d = 3;
        let target = random_skew_normal(d, &mut rng);
        let x = Mat::from_fn(5, d, |_, _| rng.normal());
        let (values, grad_x) = target.log_density_rows(x.as_ref()).unwrap();
        let h = 1e-6;
        for i in 0..5 {
            let single = -target.nll(x.as_ref().subrows(i, 1)).unwrap();
            assert!((values[i] - single).abs() < 1e-12);
            for j in 0..d {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[(i, j)] += h;
                down[(i, j)] -= h;
                let numeric = (target.nll(down.as_ref().subrows(i, 1)).unwrap()
                    - target.nll(up.as_ref().subrows(i, 1)).unwrap())
                    / (2.0 * h);
                assert!((numeric - grad_x[(i, j)]).abs() < 1e-6, "x{i}{j}");
            }
        }
        let (mean, g) = target.nll_gradient(x.as_ref()).unwrap();
        let (twice, g2) = target.weighted_nll_gradient(x.as_ref(), &[0.4; 5]).unwrap();
        assert!((twice - 2.0 * mean).abs() < 1e-12);
        for j in 0..d {
            assert!((g2.xi[j] - 2.0 * g.xi[j]).abs() < 1e-12);
            assert!((g2.eta[j] - 2.0 * g.eta[j]).abs() < 1e-12);
            for k in 0..d {
                assert!((g2.omega[(j, k)] - 2.0 * g.omega[(j, k)]).abs() < 1e-12);
            }
        }
        assert!(target.weighted_nll_gradient(x.as_ref(), &[1.0; 4]).is_err());
    }

    #[test]
    fn skew_normal_gradients_match_finite_differences() {
        let mut rng = Stream::new(11, &[]);
        let d = 4;
        let target = random_skew_normal(d, &mut rng);
        let x = Mat::from_fn(30, d, |_, _| 2.0 * rng.normal());
        let (_, g) = target.nll_gradient(x.as_ref()).unwrap();
        assert_skew_gradient(
            &target,
            &g,
            |t| t.nll(x.as_ref()).unwrap(),
            1e-6,
            1e-6,
            "skew-normal",
        );
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
        let with_base = |base: &SkewNormal| {
            value(&SkewT {
                base: base.clone(),
                nu: target.nu,
            })
        };
        assert_skew_gradient(&target.base, &g, with_base, h, 1e-6, "skew-t");
        let (mut up, mut down) = (target.clone(), target.clone());
        up.nu += h;
        down.nu -= h;
        check((value(&up) - value(&down)) / (2.0 * h), g_nu, "ν");
        // Per-row log densities are the single-row NLLs; their x-gradients match differences.
        let (values, grad_x) = target.log_density_rows(x.as_ref()).unwrap();
        for i in 0..3 {
            let row = |x: &Mat<f64>| target.nll(x.as_ref().subrows(i, 1)).unwrap();
            assert!((values[i] + row(&x)).abs() < 1e-12);
            for j in 0..d {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[(i, j)] += h;
                down[(i, j)] -= h;
                check((row(&down) - row(&up)) / (2.0 * h), grad_x[(i, j)], "x");
            }
        }
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

    #[test]
    fn the_skew_normal_entropy_and_its_gradients_are_right() {
        let mut rng = Stream::new(21, &[]);
        let target = random_skew_normal(3, &mut rng);
        let (h, g_omega, g_eta) = target.entropy().unwrap();
        // Against Monte Carlo of −ln p.
        let draws = target.sample(200_000, &mut rng).unwrap();
        let mc = target.nll(draws.as_ref()).unwrap();
        assert!((mc - h).abs() < 0.01, "{mc} vs {h}");
        // At η = 0 it is the Gaussian entropy.
        let gaussian = SkewNormal {
            eta: vec![0.0; 3],
            ..target.clone()
        };
        let det = gaussian.omega.determinant();
        let closed = 0.5 * (3.0 * crate::dist::LN_2PI_E + det.ln());
        assert!((gaussian.entropy().unwrap().0 - closed).abs() < 1e-10);
        let value = |t: &SkewNormal| t.entropy().unwrap().0;
        let hstep = 1e-5;
        for j in 0..3 {
            let (mut up, mut down) = (target.clone(), target.clone());
            up.eta[j] += hstep;
            down.eta[j] -= hstep;
            let numeric = (value(&up) - value(&down)) / (2.0 * hstep);
            assert!(
                (numeric - g_eta[j]).abs() < 1e-6,
                "η{j}: {numeric} vs {}",
                g_eta[j]
            );
            for k in 0..=j {
                let (mut up, mut down) = (target.clone(), target.clone());
                for (t, delta) in [(&mut up, hstep), (&mut down, -hstep)] {
                    t.omega[(j, k)] += delta;
                    if j != k {
                        t.omega[(k, j)] += delta;
                    }
                }
                let analytic = if j == k {
                    g_omega[(j, j)]
                } else {
                    2.0 * g_omega[(j, k)]
                };
                let numeric = (value(&up) - value(&down)) / (2.0 * hstep);
                assert!(
                    (numeric - analytic).abs() < 1e-6,
                    "Ω{j}{k}: {numeric} vs {analytic}"
                );
            }
        }
    }

    #[test]
    fn lin_coordinates_round_trip_and_carry_gradients() {
        let mut rng = Stream::new(22, &[]);
        let d = 3;
        let target = random_skew_normal(d, &mut rng);
        let (mu, v, beta) = target.lin_coordinates();
        let back = SkewNormal::from_lin_coordinates(mu.clone(), &v, &beta).unwrap();
        for j in 0..d {
            assert!((back.eta[j] - target.eta[j]).abs() < 1e-10);
            for k in 0..d {
                assert!((back.omega[(j, k)] - target.omega[(j, k)]).abs() < 1e-10);
            }
        }
        // f = nll on a batch, as a function of (μ, V, β).
        let x = Mat::from_fn(20, d, |_, _| 2.0 * rng.normal());
        let (_, g) = target.nll_gradient(x.as_ref()).unwrap();
        let (g_mu, g_v, g_beta) = target.gradient_in_lin_coordinates(&g).unwrap();
        let f = |mu: &[f64], v: &Mat<f64>, beta: &[f64]| {
            SkewNormal::from_lin_coordinates(mu.to_vec(), v, beta)
                .unwrap()
                .nll(x.as_ref())
                .unwrap()
        };
        let h = 1e-6;
        for j in 0..d {
            let (mut up, mut down) = (mu.clone(), mu.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (f(&up, &v, &beta) - f(&down, &v, &beta)) / (2.0 * h);
            assert!((numeric - g_mu[j]).abs() < 1e-6, "μ{j}");
            let (mut up, mut down) = (beta.clone(), beta.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (f(&mu, &v, &up) - f(&mu, &v, &down)) / (2.0 * h);
            assert!(
                (numeric - g_beta[j]).abs() < 1e-6 * (1.0 + g_beta[j].abs()),
                "β{j}: {numeric} vs {}",
                g_beta[j]
            );
            for k in 0..=j {
                let (mut up, mut down) = (v.clone(), v.clone());
                for (m, delta) in [(&mut up, h), (&mut down, -h)] {
                    m[(j, k)] += delta;
                    if j != k {
                        m[(k, j)] += delta;
                    }
                }
                let analytic = if j == k {
                    g_v[(j, j)]
                } else {
                    2.0 * g_v[(j, k)]
                };
                let numeric = (f(&mu, &up, &beta) - f(&mu, &down, &beta)) / (2.0 * h);
                assert!(
                    (numeric - analytic).abs() < 1e-6 * (1.0 + analytic.abs()),
                    "V{j}{k}: {numeric} vs {analytic}"
                );
            }
        }
    }
}
