//! Reparameterised draws z = ξ + Lε of a skew-normal SN(ξ, Ω, η) with L = chol(Ω) and
//! ε ~ SN(0, I, a), a = Lᵀη: ε = δ|u₀| + v − k(|δ|²)(δᵀv)δ with δ = a/√(1 + |a|²),
//! k(s) = 1/(1 + √(1 − s)), u₀ ~ N(0, 1) and v ~ N(0, I), so that (I − δδᵀ)^{1/2} v has a closed
//! form and every draw is a smooth function of (ξ, Ω, η); the backward pass gives the gradient in
//! (ξ, Ω, η) of any function of the draws.

use faer::Mat;

use crate::dist::skew::{SkewGradient, SkewNormal};
use crate::error::Result;
use crate::math::linalg::{cholesky, cholesky_backward};
use crate::math::rng::Stream;

/// Reparameterised draws z = ξ + Lε of one skew-normal, with what the backward pass needs.
pub(crate) struct Draws {
    pub(crate) l: Mat<f64>,
    pub(crate) delta: Vec<f64>,
    pub(crate) root: f64,
    pub(crate) k: f64,
    pub(crate) dk: f64,
    pub(crate) u0: Vec<f64>,
    pub(crate) v: Vec<Vec<f64>>,
    pub(crate) eps: Vec<Vec<f64>>,
    pub(crate) z: Vec<Vec<f64>>,
}

impl Draws {
    pub(crate) fn new(q: &SkewNormal, samples: usize, rng: &mut Stream) -> Result<Self> {
        let d = q.dim();
        let llt = cholesky(&q.omega, "Ω")?;
        let l = llt.L().to_owned();
        let a: Vec<f64> = (0..d)
            .map(|c| (c..d).map(|r| l[(r, c)] * q.eta[r]).sum())
            .collect();
        let a2: f64 = a.iter().map(|v| v * v).sum();
        let root = (1.0 + a2).sqrt();
        let delta: Vec<f64> = a.iter().map(|v| v / root).collect();
        let sqrt_1ms = (1.0 - a2 / (1.0 + a2)).sqrt();
        let k = 1.0 / (1.0 + sqrt_1ms);
        let dk = k * k / (2.0 * sqrt_1ms);
        let mut draws = Draws {
            l,
            delta,
            root,
            k,
            dk,
            u0: Vec::with_capacity(samples),
            v: Vec::with_capacity(samples),
            eps: Vec::with_capacity(samples),
            z: Vec::with_capacity(samples),
        };
        for _ in 0..samples {
            let u0 = rng.normal().abs();
            let v: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            let dv: f64 = draws.delta.iter().zip(&v).map(|(x, y)| x * y).sum();
            let eps: Vec<f64> = (0..d)
                .map(|j| draws.delta[j] * u0 + v[j] - k * dv * draws.delta[j])
                .collect();
            let z: Vec<f64> = (0..d)
                .map(|r| q.xi[r] + (0..=r).map(|c| draws.l[(r, c)] * eps[c]).sum::<f64>())
                .collect();
            draws.u0.push(u0);
            draws.v.push(v);
            draws.eps.push(eps);
            draws.z.push(z);
        }
        Ok(draws)
    }

    /// The gradient in (ξ, Ω, η) of Σ_s ⟨upstream_s, z_s⟩ through the reparameterisation.
    pub(crate) fn backward(&self, q: &SkewNormal, upstream: &[Vec<f64>]) -> SkewGradient {
        let d = q.dim();
        let (l, delta, k, dk) = (&self.l, &self.delta, self.k, self.dk);
        let mut g_xi = vec![0.0; d];
        let mut l_bar = Mat::<f64>::zeros(d, d);
        let mut c_delta = vec![0.0; d];
        for (s, gz) in upstream.iter().enumerate() {
            let (eps, v, u0) = (&self.eps[s], &self.v[s], self.u0[s]);
            for r in 0..d {
                g_xi[r] += gz[r];
                for c in 0..=r {
                    l_bar[(r, c)] += gz[r] * eps[c];
                }
            }
            // b = Lᵀ gz, then through ε(δ).
            let b: Vec<f64> = (0..d)
                .map(|c| (c..d).map(|r| l[(r, c)] * gz[r]).sum())
                .collect();
            let bd: f64 = b.iter().zip(delta).map(|(x, y)| x * y).sum();
            let dv: f64 = delta.iter().zip(v).map(|(x, y)| x * y).sum();
            for j in 0..d {
                c_delta[j] +=
                    u0 * b[j] - k * (bd * v[j] + dv * b[j]) - 2.0 * dk * dv * bd * delta[j];
            }
        }
        // δ = a/√(1 + |a|²): J = (I − δδᵀ)/√(1 + |a|²); a = Lᵀη.
        let dc: f64 = delta.iter().zip(&c_delta).map(|(x, y)| x * y).sum();
        let c_a: Vec<f64> = (0..d)
            .map(|j| (c_delta[j] - delta[j] * dc) / self.root)
            .collect();
        let g_eta: Vec<f64> = (0..d)
            .map(|r| (0..=r).map(|c| l[(r, c)] * c_a[c]).sum())
            .collect();
        for r in 0..d {
            for c in 0..=r {
                l_bar[(r, c)] += q.eta[r] * c_a[c];
            }
        }
        SkewGradient {
            xi: g_xi,
            omega: cholesky_backward(l.as_ref(), &l_bar),
            eta: g_eta,
        }
    }
}
