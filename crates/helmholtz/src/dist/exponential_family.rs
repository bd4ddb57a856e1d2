//! Exponential families q(x) = h(x) exp(η·T(x) − A(η)) in natural (η) and mean (μ = ∇A(η))
//! coordinates (natgrad.md (b), (c)). The surrogate natural gradient rests on the duality
//! F(η) = ∂μ/∂η: the natural gradient with respect to η is the ordinary gradient with respect
//! to μ, and vice versa.

use faer::Mat;
use faer::linalg::solvers::{DenseSolveCore, Solve};

use crate::error::{Error, Result};
use crate::math::linalg::{cholesky, log_det};
use crate::math::special::{digamma, ln_gamma, trigamma};

/// An exponential family with its two coordinate systems.
pub trait ExponentialFamily {
    /// Number of natural (= mean) parameters.
    fn n_params(&self) -> usize;
    /// T(x).
    fn sufficient_statistics(&self, x: &[f64]) -> Vec<f64>;
    /// A(η); an error outside the natural domain.
    fn log_partition(&self, eta: &[f64]) -> Result<f64>;
    /// μ = ∇A(η); an error outside the natural domain.
    fn mean_from_natural(&self, eta: &[f64]) -> Result<Vec<f64>>;
    /// η with ∇A(η) = μ; an error outside the mean domain.
    fn natural_from_mean(&self, mu: &[f64]) -> Result<Vec<f64>>;
    /// Entropy of the member with natural parameters η.
    fn entropy(&self, eta: &[f64]) -> Result<f64>;
}

/// The Gamma family with shape α and rate β: T(x) = (ln x, x), η = (α − 1, −β),
/// A(η) = ln Γ(η₁ + 1) − (η₁ + 1) ln(−η₂), μ = (ψ(α) − ln β, α/β).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gamma;

impl Gamma {
    /// (α, β) from η, checked.
    pub fn shape_rate(eta: &[f64]) -> Result<(f64, f64)> {
        let (alpha, beta) = (eta[0] + 1.0, -eta[1]);
        if !(alpha > 0.0 && beta > 0.0 && alpha.is_finite() && beta.is_finite()) {
            return Err(Error::InvalidData(format!(
                "Gamma natural parameters {eta:?} are outside the domain (α > 0, β > 0)"
            )));
        }
        Ok((alpha, beta))
    }

    /// η from (α, β).
    pub fn natural(alpha: f64, beta: f64) -> [f64; 2] {
        [alpha - 1.0, -beta]
    }
}

/// Newton iterations of the mean-to-natural map.
const NEWTON_STEPS: usize = 100;

impl ExponentialFamily for Gamma {
    fn n_params(&self) -> usize {
        2
    }

    fn sufficient_statistics(&self, x: &[f64]) -> Vec<f64> {
        vec![x[0].ln(), x[0]]
    }

    fn log_partition(&self, eta: &[f64]) -> Result<f64> {
        let (alpha, beta) = Self::shape_rate(eta)?;
        Ok(ln_gamma(alpha) - alpha * beta.ln())
    }

    fn mean_from_natural(&self, eta: &[f64]) -> Result<Vec<f64>> {
        let (alpha, beta) = Self::shape_rate(eta)?;
        Ok(vec![digamma(alpha) - beta.ln(), alpha / beta])
    }

    /// Solves ψ(α) − ln α = μ₁ − ln μ₂ (< 0 in the mean domain μ₂ > 0, μ₁ < ln μ₂) by Newton's
    /// method from the left of the root, where the increasing concave left side makes the
    /// iterates rise monotonically to it; then β = α/μ₂.
    fn natural_from_mean(&self, mu: &[f64]) -> Result<Vec<f64>> {
        let (m1, m2) = (mu[0], mu[1]);
        if !(m2 > 0.0 && m2.is_finite() && m1 < m2.ln()) {
            return Err(Error::InvalidData(format!(
                "Gamma mean parameters {mu:?} are outside the domain (μ₂ > 0, μ₁ < ln μ₂)"
            )));
        }
        let c = m1 - m2.ln();
        let residual = |a: f64| digamma(a) - a.ln() - c;
        let mut alpha = 2.0;
        while residual(alpha) > 0.0 {
            alpha /= 2.0;
        }
        for _ in 0..NEWTON_STEPS {
            let r = residual(alpha);
            let step = r / (trigamma(alpha) - 1.0 / alpha);
            alpha -= step;
            if step.abs() <= 1e-15 * alpha {
                break;
            }
        }
        Ok(Gamma::natural(alpha, alpha / m2).to_vec())
    }

    fn entropy(&self, eta: &[f64]) -> Result<f64> {
        let (alpha, beta) = Self::shape_rate(eta)?;
        Ok(alpha - beta.ln() + ln_gamma(alpha) + (1.0 - alpha) * digamma(alpha))
    }
}

/// The multivariate Gaussian N(m, Σ) of dimension d as an exponential family: T(x) = (x, x xᵀ),
/// η = (S m, −½ S) with S = Σ⁻¹, μ = (m, Σ + m mᵀ),
/// A(η) = −¼ η₁ᵀ η₂⁻¹ η₁ − ½ ln det(−2η₂) + (d/2) ln 2π. Parameter vectors hold the first block,
/// then the d × d second block column-major. Domains are checked by Cholesky factorisations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultivariateGaussian {
    /// d.
    pub dim: usize,
}

impl MultivariateGaussian {
    fn split(&self, params: &[f64]) -> Result<(Vec<f64>, Mat<f64>)> {
        let d = self.dim;
        if params.len() != d + d * d {
            return Err(Error::Dimension(format!(
                "{} parameters for a Gaussian of dimension {d}",
                params.len()
            )));
        }
        Ok((
            params[..d].to_vec(),
            Mat::from_fn(d, d, |r, c| {
                0.5 * (params[d + c * d + r] + params[d + r * d + c])
            }),
        ))
    }

    fn join(first: &[f64], second: &Mat<f64>) -> Vec<f64> {
        let mut out = first.to_vec();
        for c in 0..second.ncols() {
            out.extend((0..second.nrows()).map(|r| second[(r, c)]));
        }
        out
    }
}

/// Chain rules from the standard parameters (m, Σ) of a Gaussian surrogate to its two dual
/// coordinate systems, for a function f(m, Σ) with gradients g_m and the symmetric g_Σ (so that
/// df = g_mᵀdm + tr(g_Σ dΣ)). These are the two natural gradients SNGD needs; no Fisher is formed.
impl MultivariateGaussian {
    /// ∇_η f = (Σ g_m, Σ g_m mᵀ + m g_mᵀ Σ + 2 Σ g_Σ Σ): the natural gradient in mean coordinates
    /// (the MLE-form direction). From m = Σ η₁ and Σ = −½ η₂⁻¹: dΣ = 2 Σ dη₂ Σ and
    /// dm = Σ dη₁ + 2 Σ dη₂ m; the second block is symmetrised.
    pub fn gradient_in_natural(
        m: &[f64],
        sigma: &Mat<f64>,
        g_m: &[f64],
        g_sigma: &Mat<f64>,
    ) -> (Vec<f64>, Mat<f64>) {
        let d = m.len();
        let s_gm = sigma * Mat::from_fn(d, 1, |r, _| g_m[r]);
        let s_g_s = sigma * g_sigma * sigma;
        let first: Vec<f64> = (0..d).map(|r| s_gm[(r, 0)]).collect();
        let second = Mat::from_fn(d, d, |r, c| {
            first[r] * m[c] + m[r] * first[c] + s_g_s[(r, c)] + s_g_s[(c, r)]
        });
        (first, second)
    }

    /// ∇_μ f = (g_m − 2 g_Σ m, g_Σ): the natural gradient in natural coordinates (the VI-form
    /// direction), from m = μ₁ and Σ = μ₂ − μ₁μ₁ᵀ.
    pub fn gradient_in_mean(m: &[f64], g_m: &[f64], g_sigma: &Mat<f64>) -> (Vec<f64>, Mat<f64>) {
        let d = m.len();
        let first = (0..d)
            .map(|r| g_m[r] - 2.0 * (0..d).map(|c| g_sigma[(r, c)] * m[c]).sum::<f64>())
            .collect();
        (first, g_sigma.clone())
    }

    /// The parameter vector of blocks `first` and `second` (the layout of this family).
    pub fn params(first: &[f64], second: &Mat<f64>) -> Vec<f64> {
        Self::join(first, second)
    }
}

impl ExponentialFamily for MultivariateGaussian {
    fn n_params(&self) -> usize {
        self.dim + self.dim * self.dim
    }

    fn sufficient_statistics(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim;
        let outer = Mat::from_fn(d, d, |r, c| x[r] * x[c]);
        Self::join(x, &outer)
    }

    fn log_partition(&self, eta: &[f64]) -> Result<f64> {
        let (eta1, eta2) = self.split(eta)?;
        let precision = &eta2 * faer::Scale(-2.0);
        let llt = cholesky(&precision, "−2η₂")?;
        // −¼ η₁ᵀ η₂⁻¹ η₁ = ½ η₁ᵀ S⁻¹ η₁.
        let solved = llt.solve(Mat::from_fn(self.dim, 1, |r, _| eta1[r]));
        let quadratic: f64 = (0..self.dim).map(|r| eta1[r] * solved[(r, 0)]).sum();
        let d = self.dim as f64;
        Ok(0.5 * quadratic - 0.5 * log_det(&llt) + 0.5 * d * (2.0 * std::f64::consts::PI).ln())
    }

    fn mean_from_natural(&self, eta: &[f64]) -> Result<Vec<f64>> {
        let (eta1, eta2) = self.split(eta)?;
        let precision = &eta2 * faer::Scale(-2.0);
        let llt = cholesky(&precision, "−2η₂")?;
        let sigma = llt.inverse();
        let m = llt.solve(Mat::from_fn(self.dim, 1, |r, _| eta1[r]));
        let m: Vec<f64> = (0..self.dim).map(|r| m[(r, 0)]).collect();
        let second = Mat::from_fn(self.dim, self.dim, |r, c| sigma[(r, c)] + m[r] * m[c]);
        Ok(Self::join(&m, &second))
    }

    fn natural_from_mean(&self, mu: &[f64]) -> Result<Vec<f64>> {
        let (m, second) = self.split(mu)?;
        let sigma = Mat::from_fn(self.dim, self.dim, |r, c| second[(r, c)] - m[r] * m[c]);
        let llt = cholesky(&sigma, "μ₂ − μ₁μ₁ᵀ (the covariance)")?;
        let precision = llt.inverse();
        let eta1 = llt.solve(Mat::from_fn(self.dim, 1, |r, _| m[r]));
        let eta1: Vec<f64> = (0..self.dim).map(|r| eta1[(r, 0)]).collect();
        Ok(Self::join(&eta1, &(&precision * faer::Scale(-0.5))))
    }

    fn entropy(&self, eta: &[f64]) -> Result<f64> {
        let (_, eta2) = self.split(eta)?;
        let llt = cholesky(&(&eta2 * faer::Scale(-2.0)), "−2η₂")?;
        let d = self.dim as f64;
        Ok(0.5 * (d * crate::dist::LN_2PI_E - log_det(&llt)))
    }
}

/// A mixture of K members of `F` as a joint exponential family over (z, x) (natgrad.md b.4):
/// T(z, x) = (1[z = k] for k < K, 1[z = k] T_F(x) for all k). Natural parameters
/// (θ_1..θ_{K−1}, η_1..η_K) with θ_k = ln p_k − A_F(η_k) − ln p_K + A_F(η_K); mean parameters
/// (p_1..p_{K−1}, p_1 μ_1..p_K μ_K); A = ln Σ_k exp(θ_k + A_F(η_k)) with θ_K = 0. A point is
/// (z, x...) with the component index z as its first coordinate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mixture<F> {
    /// The component family.
    pub family: F,
    /// Number of components K ≥ 1.
    pub components: usize,
}

impl<F: ExponentialFamily> Mixture<F> {
    fn check(&self, params: &[f64]) -> Result<()> {
        if self.components == 0 || params.len() != self.n_params() {
            return Err(Error::Dimension(format!(
                "{} parameters for a mixture of {} components with {} each",
                params.len(),
                self.components,
                self.family.n_params()
            )));
        }
        Ok(())
    }

    /// The component block k of a parameter vector.
    pub fn component<'a>(&self, params: &'a [f64], k: usize) -> &'a [f64] {
        let m = self.family.n_params();
        let start = self.components - 1 + k * m;
        &params[start..start + m]
    }

    /// The weights p and the per-component A_F(η_k) from natural parameters.
    pub fn weights(&self, eta: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check(eta)?;
        let big_k = self.components;
        let a: Vec<f64> = (0..big_k)
            .map(|k| self.family.log_partition(self.component(eta, k)))
            .collect::<Result<_>>()?;
        let w: Vec<f64> = (0..big_k)
            .map(|k| if k + 1 < big_k { eta[k] } else { 0.0 } + a[k])
            .collect();
        let top = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = w.iter().map(|v| (v - top).exp()).sum();
        Ok((w.iter().map(|v| (v - top).exp() / total).collect(), a))
    }
}

impl<F: ExponentialFamily> ExponentialFamily for Mixture<F> {
    fn n_params(&self) -> usize {
        self.components - 1 + self.components * self.family.n_params()
    }

    fn sufficient_statistics(&self, x: &[f64]) -> Vec<f64> {
        let (z, rest) = (x[0] as usize, &x[1..]);
        let m = self.family.n_params();
        let mut t = vec![0.0; self.n_params()];
        if z + 1 < self.components {
            t[z] = 1.0;
        }
        let start = self.components - 1 + z * m;
        t[start..start + m].copy_from_slice(&self.family.sufficient_statistics(rest));
        t
    }

    fn log_partition(&self, eta: &[f64]) -> Result<f64> {
        let (p, a) = self.weights(eta)?;
        // ln Σ exp(w_k) = w_K − ln p_K with w_K = A_F(η_K).
        let last = self.components - 1;
        Ok(a[last] - p[last].ln())
    }

    fn mean_from_natural(&self, eta: &[f64]) -> Result<Vec<f64>> {
        let (p, _) = self.weights(eta)?;
        let mut mu = p[..self.components - 1].to_vec();
        for (k, pk) in p.iter().enumerate() {
            let component = self.family.mean_from_natural(self.component(eta, k))?;
            mu.extend(component.iter().map(|v| pk * v));
        }
        Ok(mu)
    }

    fn natural_from_mean(&self, mu: &[f64]) -> Result<Vec<f64>> {
        self.check(mu)?;
        let big_k = self.components;
        let mut p = mu[..big_k - 1].to_vec();
        p.push(1.0 - p.iter().sum::<f64>());
        if p.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
            return Err(Error::InvalidData(format!(
                "mixture weights {p:?} outside the open simplex"
            )));
        }
        let mut etas = Vec::with_capacity(big_k);
        let mut a = Vec::with_capacity(big_k);
        for (k, pk) in p.iter().enumerate() {
            let component: Vec<f64> = self.component(mu, k).iter().map(|v| v / pk).collect();
            let eta = self.family.natural_from_mean(&component)?;
            a.push(self.family.log_partition(&eta)?);
            etas.push(eta);
        }
        let last = big_k - 1;
        let mut eta: Vec<f64> = (0..last)
            .map(|k| p[k].ln() - a[k] - p[last].ln() + a[last])
            .collect();
        for e in etas {
            eta.extend(e);
        }
        Ok(eta)
    }

    fn entropy(&self, eta: &[f64]) -> Result<f64> {
        let (p, _) = self.weights(eta)?;
        let mut h = 0.0;
        for (k, pk) in p.iter().enumerate() {
            h += pk * (self.family.entropy(self.component(eta, k))? - pk.ln());
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::math::special::gamma_draw;

    #[test]
    fn gamma_coordinates_round_trip_and_mu_is_the_gradient_of_a() {
        for (alpha, beta) in [
            (0.05, 3.0),
            (0.7, 0.2),
            (2.5, 1.0),
            (80.0, 0.01),
            (5000.0, 7.0),
        ] {
            let eta = Gamma::natural(alpha, beta);
            let mu = Gamma.mean_from_natural(&eta).unwrap();
            let back = Gamma.natural_from_mean(&mu).unwrap();
            assert!(
                (back[0] - eta[0]).abs() < 1e-9 * alpha.max(1.0),
                "{eta:?} → {back:?}"
            );
            assert!(
                (back[1] - eta[1]).abs() < 1e-9 * beta.max(1.0),
                "{eta:?} → {back:?}"
            );
            for k in 0..2 {
                let h = 1e-6 * eta[k].abs().max(1e-3);
                let mut up = eta;
                up[k] += h;
                let mut down = eta;
                down[k] -= h;
                let numeric = (Gamma.log_partition(&up).unwrap()
                    - Gamma.log_partition(&down).unwrap())
                    / (2.0 * h);
                assert!(
                    (numeric - mu[k]).abs() < 1e-5 * (1.0 + mu[k].abs()),
                    "∂A/∂η{k}"
                );
            }
        }
        assert!(Gamma.natural_from_mean(&[1.0, 2.0]).is_err()); // μ₁ ≥ ln μ₂
        assert!(Gamma.natural_from_mean(&[0.0, -1.0]).is_err());
        assert!(Gamma.mean_from_natural(&[-1.5, -1.0]).is_err());
    }

    #[test]
    fn the_gamma_entropy_matches_monte_carlo() {
        let (alpha, beta) = (2.5, 1.5);
        let eta = Gamma::natural(alpha, beta);
        let a = Gamma.log_partition(&eta).unwrap();
        let mut rng = Stream::new(1, &[]);
        let n = 200_000;
        let mc: f64 = (0..n)
            .map(|_| {
                let x = gamma_draw(alpha, &mut rng) / beta;
                let t = Gamma.sufficient_statistics(&[x]);
                -(eta[0] * t[0] + eta[1] * t[1] - a)
            })
            .sum::<f64>()
            / n as f64;
        assert!((mc - Gamma.entropy(&eta).unwrap()).abs() < 0.01);
    }

    /// f(m, Σ) = aᵀm + (bᵀm)² + tr(BΣ) + ½ ln det Σ + (mᵀΣm)/4 with its gradients.
    fn test_function(
        m: &[f64],
        sigma: &Mat<f64>,
        a: &[f64],
        b: &[f64],
        bm: &Mat<f64>,
    ) -> (f64, Vec<f64>, Mat<f64>) {
        let d = m.len();
        let bdot: f64 = b.iter().zip(m).map(|(x, y)| x * y).sum();
        let sm: Vec<f64> = (0..d)
            .map(|r| (0..d).map(|c| sigma[(r, c)] * m[c]).sum())
            .collect();
        let msm: f64 = m.iter().zip(&sm).map(|(x, y)| x * y).sum();
        let llt = sigma.llt(faer::Side::Lower).unwrap();
        let value = a.iter().zip(m).map(|(x, y)| x * y).sum::<f64>()
            + bdot * bdot
            + (0..d).map(|r| (bm * sigma)[(r, r)]).sum::<f64>()
            + 0.5 * log_det(&llt)
            + 0.25 * msm;
        let g_m = (0..d)
            .map(|r| a[r] + 2.0 * bdot * b[r] + 0.5 * sm[r])
            .collect();
        let inverse = llt.inverse();
        let g_sigma = Mat::from_fn(d, d, |r, c| {
            0.5 * (bm[(r, c)] + bm[(c, r)]) + 0.5 * inverse[(r, c)] + 0.25 * m[r] * m[c]
        });
        (value, g_m, g_sigma)
    }

    /// Both chain rules against central differences of f through η ↦ (m, Σ) and μ ↦ (m, Σ).
    #[test]
    fn the_gaussian_chain_rules_match_finite_differences() {
        let d = 4;
        let family = MultivariateGaussian { dim: d };
        let mut rng = Stream::new(3, &[]);
        let w = Mat::from_fn(d, d, |_, _| rng.normal());
        let sigma = &w * w.transpose() + Mat::<f64>::identity(d, d);
        let m: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let a: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let b: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let bm = Mat::from_fn(d, d, |_, _| rng.normal());
        let standard = |p: &[f64]| -> (Vec<f64>, Mat<f64>) {
            let (m, sigma) = family.split(p).unwrap();
            (m, sigma)
        };
        let f_of_mean = |mu: &[f64]| {
            let (m, second) = standard(mu);
            let sigma = Mat::from_fn(d, d, |r, c| second[(r, c)] - m[r] * m[c]);
            test_function(&m, &sigma, &a, &b, &bm).0
        };
        let f_of_natural = |eta: &[f64]| f_of_mean(&family.mean_from_natural(eta).unwrap());
        let (_, g_m, g_sigma) = test_function(&m, &sigma, &a, &b, &bm);
        let mu = MultivariateGaussian::params(
            &m,
            &Mat::from_fn(d, d, |r, c| sigma[(r, c)] + m[r] * m[c]),
        );
        let eta = family.natural_from_mean(&mu).unwrap();
        let (n1, n2) = MultivariateGaussian::gradient_in_natural(&m, &sigma, &g_m, &g_sigma);
        let (m1, m2) = MultivariateGaussian::gradient_in_mean(&m, &g_m, &g_sigma);
        for (point, f, analytic) in [
            (
                &eta,
                &f_of_natural as &dyn Fn(&[f64]) -> f64,
                MultivariateGaussian::params(&n1, &n2),
            ),
            (&mu, &f_of_mean, MultivariateGaussian::params(&m1, &m2)),
        ] {
            for k in 0..point.len() {
                // Perturb a symmetric pair together: the derivative is the sum of both entries.
                let (r, c) = if k < d {
                    (k, k)
                } else {
                    ((k - d) % d, (k - d) / d)
                };
                let mirror = if k < d || r == c {
                    None
                } else {
                    Some(d + r * d + c)
                };
                let h = 1e-6;
                let (mut up, mut down) = (point.clone(), point.clone());
                up[k] += h;
                down[k] -= h;
                if let Some(j) = mirror {
                    up[j] += h;
                    down[j] -= h;
                }
                let numeric = (f(&up) - f(&down)) / (2.0 * h);
                let expected = analytic[k] + mirror.map_or(0.0, |j| analytic[j]);
                assert!(
                    (numeric - expected).abs() < 1e-5 * (1.0 + expected.abs()),
                    "{k}: {numeric} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn gaussian_coordinates_round_trip_and_mu_is_the_gradient_of_a() {
        let mut rng = Stream::new(7, &[]);
        for d in [1, 3, 40] {
            let family = MultivariateGaussian { dim: d };
            let a = Mat::from_fn(d, d, |_, _| rng.normal());
            let sigma = &a * a.transpose() + Mat::<f64>::identity(d, d) * faer::Scale(0.5);
            let m: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            let mu = MultivariateGaussian::join(
                &m,
                &Mat::from_fn(d, d, |r, c| sigma[(r, c)] + m[r] * m[c]),
            );
            let eta = family.natural_from_mean(&mu).unwrap();
            let back = family.mean_from_natural(&eta).unwrap();
            let worst = mu
                .iter()
                .zip(&back)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-8, "d = {d}: {worst}");
            if d == 3 {
                // ∂A/∂η = μ by central differences (a perturbed off-diagonal entry moves both
                // symmetric entries by half as much, so the derivative is μ there too).
                for k in 0..eta.len() {
                    let h = 1e-6;
                    let (mut up, mut down) = (eta.clone(), eta.clone());
                    up[k] += h;
                    down[k] -= h;
                    let numeric = (family.log_partition(&up).unwrap()
                        - family.log_partition(&down).unwrap())
                        / (2.0 * h);
                    assert!(
                        (numeric - mu[k]).abs() < 1e-5,
                        "{k}: {numeric} vs {}",
                        mu[k]
                    );
                }
                // Entropy ½ ln det(2πe Σ).
                let det = sigma.determinant();
                let h = family.entropy(&eta).unwrap();
                assert!((h - 0.5 * (3.0 * crate::dist::LN_2PI_E + det.ln())).abs() < 1e-10);
            }
        }
        let family = MultivariateGaussian { dim: 2 };
        assert!(
            family
                .natural_from_mean(&[0.0, 0.0, -1.0, 0.0, 0.0, 1.0])
                .is_err()
        );
        assert!(
            family
                .mean_from_natural(&[0.0, 0.0, 1.0, 0.0, 0.0, 1.0])
                .is_err()
        );
        assert!(family.log_partition(&[0.0; 5]).is_err());
    }

    #[test]
    fn gamma_mixture_coordinates_round_trip_and_mu_is_the_gradient_of_a() {
        let family = Mixture {
            family: Gamma,
            components: 3,
        };
        let mut eta = vec![0.4, -1.1];
        for (alpha, beta) in [(2.0, 0.5), (0.7, 3.0), (40.0, 0.02)] {
            eta.extend(Gamma::natural(alpha, beta));
        }
        let mu = family.mean_from_natural(&eta).unwrap();
        let back = family.natural_from_mean(&mu).unwrap();
        for (a, b) in eta.iter().zip(&back) {
            assert!(
                (a - b).abs() < 1e-8 * a.abs().max(1.0),
                "{eta:?} → {back:?}"
            );
        }
        for k in 0..eta.len() {
            let h = 1e-6;
            let (mut up, mut down) = (eta.clone(), eta.clone());
            up[k] += h;
            down[k] -= h;
            let numeric = (family.log_partition(&up).unwrap()
                - family.log_partition(&down).unwrap())
                / (2.0 * h);
            assert!(
                (numeric - mu[k]).abs() < 1e-5 * (1.0 + mu[k].abs()),
                "{k}: {numeric} vs {}",
                mu[k]
            );
        }
        // The entropy against Monte Carlo over (z, x).
        let a = family.log_partition(&eta).unwrap();
        let (p, _) = family.weights(&eta).unwrap();
        let mut rng = Stream::new(9, &[]);
        let n = 200_000;
        let mut total = 0.0;
        for _ in 0..n {
            let u = rng.uniform_f64();
            let z = p
                .iter()
                .scan(0.0, |c, v| {
                    *c += v;
                    Some(*c)
                })
                .position(|c| u < c)
                .unwrap_or(2);
            let (alpha, beta) = Gamma::shape_rate(family.component(&eta, z)).unwrap();
            let x = gamma_draw(alpha, &mut rng) / beta;
            let t = family.sufficient_statistics(&[z as f64, x]);
            total -= t.iter().zip(&eta).map(|(a, b)| a * b).sum::<f64>() - a;
        }
        assert!((total / n as f64 - family.entropy(&eta).unwrap()).abs() < 0.02);
        assert!(
            family
                .natural_from_mean(&[0.7, 0.6, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
                .is_err()
        );
        assert!(family.log_partition(&[0.0; 3]).is_err());
    }
}
