//! Variational inference with a skew-normal family on Bayesian logistic regression (natgrad.md
//! b.5): prior N(0, I), likelihood Π σ(y_i x_iᵀz) with y ∈ {−1, 1}, the negative ELBO estimated
//! with reparameterised draws (the log-likelihood term), the prior term in closed form from the
//! skew-normal's mean and covariance, and the entropy by one-dimensional quadrature. One harness
//! runs SNGD in the VI form (natural parameters of the MVN(ξ, Ω) surrogate, η by Adam), the two
//! Adam parametrisations and the MCEF natural gradient.
//!
//! Draws are z = ξ + Lε with L = chol(Ω) and ε ~ SN(0, I, a), a = Lᵀη:
//! ε = δ|u₀| + v − k(|δ|²)(δᵀv)δ with δ = a/√(1 + |a|²), k(s) = 1/(1 + √(1 − s)), u₀ ~ N(0, 1)
//! and v ~ N(0, I), so that (I − δδᵀ)^{1/2} v has a closed form and every draw is a smooth
//! function of (ξ, Ω, η).

use faer::Mat;
use faer::linalg::solvers::{DenseSolveCore, Solve};

use crate::dist::exponential_family::MultivariateGaussian;
use crate::dist::skew::{SkewGradient, SkewNormal, SkewT};
use crate::error::{Error, Result};
use crate::math::linalg::{cholesky, cholesky_backward, log_det};
use crate::math::rng::{Stream, ids};
use crate::math::special::{gamma_draw_d_shape, gamma_quantile};
use crate::optim::sngd::Adam;
use crate::run::skew_normal::{
    SkewMethod, SkewOptimiser, SkewSettings, SkewTrace, SngdForm, Stepper, backtrack, drive,
    natural_to_standard,
};
use crate::run::skew_t::SkewTOptimiser;

/// Features and ±1 labels of a logistic-regression data set.
pub struct LogisticTask {
    /// Features, one row per point.
    pub x: Mat<f64>,
    /// Labels in {−1, 1}.
    pub y: Vec<f64>,
}

/// The authors' synthetic set: x ~ N(0, I) (n × d), z ~ N(0, I), y ~ Bernoulli(σ((2x − 1)z)),
/// modelled as logistic regression on x (as in their code).
pub fn logistic_task(dim: usize, n: usize, seed: u64) -> Result<LogisticTask> {
    if dim == 0 || n == 0 {
        return Err(Error::Config(format!(
            "logistic regression needs a positive dimension and point count, got d = {dim}, n = {n}"
        )));
    }
    let mut rng = Stream::new(seed, &[ids::SYNTHETIC]);
    let x = Mat::from_fn(n, dim, |_, _| rng.normal());
    let z: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
    let y = (0..n)
        .map(|i| {
            let logit: f64 = (0..dim).map(|j| (2.0 * x[(i, j)] - 1.0) * z[j]).sum();
            if rng.uniform_f64() < crate::math::sigmoid(logit) {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    Ok(LogisticTask { x, y })
}

/// ln σ(t), stable for large |t|.
fn ln_sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        -(-t).exp().ln_1p()
    } else {
        t - t.exp().ln_1p()
    }
}

/// Reparameterised draws z = ξ + Lε of one skew-normal, with what the backward pass needs.
struct Draws {
    l: Mat<f64>,
    delta: Vec<f64>,
    root: f64,
    k: f64,
    dk: f64,
    u0: Vec<f64>,
    v: Vec<Vec<f64>>,
    eps: Vec<Vec<f64>>,
    z: Vec<Vec<f64>>,
}

impl Draws {
    fn new(q: &SkewNormal, samples: usize, rng: &mut Stream) -> Result<Self> {
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
    fn backward(&self, q: &SkewNormal, upstream: &[Vec<f64>]) -> SkewGradient {
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

impl LogisticTask {
    /// Σ_i ln σ(y_i x_iᵀz) and its gradient in z.
    fn log_likelihood(&self, z: &[f64]) -> (f64, Vec<f64>) {
        let (n, d) = (self.x.nrows(), self.x.ncols());
        let mut value = 0.0;
        let mut gradient = vec![0.0; d];
        for i in 0..n {
            let t = self.y[i] * (0..d).map(|j| self.x[(i, j)] * z[j]).sum::<f64>();
            value += ln_sigmoid(t);
            let weight = self.y[i] * crate::math::sigmoid(-t);
            for (j, g) in gradient.iter_mut().enumerate() {
                *g += weight * self.x[(i, j)];
            }
        }
        (value, gradient)
    }

    /// The negative ELBO of q and its gradients in (ξ, Ω, η), with `samples` draws from `rng`.
    pub fn negative_elbo(
        &self,
        q: &SkewNormal,
        samples: usize,
        rng: &mut Stream,
    ) -> Result<(f64, SkewGradient)> {
        let d = q.dim();
        if d != self.x.ncols() || samples == 0 {
            return Err(Error::Dimension(format!(
                "a {d}-dimensional q with {samples} draws for {} features",
                self.x.ncols()
            )));
        }
        let draws = Draws::new(q, samples, rng)?;
        let scale = 1.0 / samples as f64;
        let mut value = 0.0;
        let mut upstream = Vec::with_capacity(samples);
        for z in &draws.z {
            let (ll, g) = self.log_likelihood(z);
            value -= ll * scale;
            // Upstream gradient of −F/S at z.
            upstream.push(g.iter().map(|v| -v * scale).collect::<Vec<f64>>());
        }
        let SkewGradient {
            xi: mut g_xi,
            omega: mut g_omega,
            eta: mut g_eta,
        } = draws.backward(q, &upstream);
        // Prior: ½ E zᵀz + (d/2) ln 2π, E zᵀz = tr Ω + |ξ|² + 2c ξᵀβ with β = Ωη/τ.
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let omega_eta: Vec<f64> = (0..d)
            .map(|r| (0..d).map(|j| q.omega[(r, j)] * q.eta[j]).sum())
            .collect();
        let tau = (1.0
            + omega_eta
                .iter()
                .zip(&q.eta)
                .map(|(x, y)| x * y)
                .sum::<f64>())
        .sqrt();
        let xi_beta: f64 = q.xi.iter().zip(&omega_eta).map(|(x, y)| x * y).sum::<f64>() / tau;
        let trace: f64 = (0..d).map(|r| q.omega[(r, r)]).sum();
        let xi2: f64 = q.xi.iter().map(|v| v * v).sum();
        value += 0.5 * (trace + xi2 + 2.0 * c * xi_beta)
            + 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
        // ∂(wᵀβ) with w = cξ: in η, Ωw/τ − (wᵀΩη)Ωη/τ³; in Ω, ½(wηᵀ + ηwᵀ)/τ − (wᵀΩη)ηηᵀ/(2τ³).
        let w_omega_eta = c * xi_beta * tau;
        let omega_xi: Vec<f64> = (0..d)
            .map(|r| (0..d).map(|j| q.omega[(r, j)] * q.xi[j]).sum())
            .collect();
        for r in 0..d {
            g_xi[r] += q.xi[r] + c * omega_eta[r] / tau;
            g_eta[r] += c * omega_xi[r] / tau - w_omega_eta * omega_eta[r] / tau.powi(3);
            for j in 0..d {
                g_omega[(r, j)] += 0.5 * c * (q.xi[r] * q.eta[j] + q.eta[r] * q.xi[j]) / tau
                    - 0.5 * w_omega_eta * q.eta[r] * q.eta[j] / tau.powi(3)
                    + if r == j { 0.5 } else { 0.0 };
            }
        }
        // Entropy: −H.
        let (h, h_omega, h_eta) = q.entropy()?;
        value -= h;
        for r in 0..d {
            g_eta[r] -= h_eta[r];
            for j in 0..d {
                g_omega[(r, j)] -= h_omega[(r, j)];
            }
        }
        Ok((
            value,
            SkewGradient {
                xi: g_xi,
                omega: g_omega,
                eta: g_eta,
            },
        ))
    }
}

impl LogisticTask {
    /// The negative ELBO of a skew-t q and its gradients in (ξ, Ω, η) and ν: draws
    /// z = ξ + Lε/√w with ε the skew-normal construction above and w = G/a, G = P⁻¹(a, U) a
    /// Gamma(a = ν/2) quantile, so every draw is smooth in ν (∂G/∂a implicit); ln q and the prior
    /// at the draws (no closed-form skew-t entropy), the score terms of ln q included.
    pub fn skew_t_negative_elbo(
        &self,
        q: &SkewT,
        samples: usize,
        rng: &mut Stream,
    ) -> Result<(f64, SkewGradient, f64)> {
        let d = q.base.dim();
        if d != self.x.ncols() || samples == 0 {
            return Err(Error::Dimension(format!(
                "a {d}-dimensional q with {samples} draws for {} features",
                self.x.ncols()
            )));
        }
        let draws = Draws::new(&q.base, samples, rng)?;
        let a = 0.5 * q.nu;
        let mut scale = Vec::with_capacity(samples);
        let mut d_scale = Vec::with_capacity(samples);
        for _ in 0..samples {
            let u = rng.uniform_f64().clamp(1e-300, 1.0 - 1e-16);
            let g = gamma_quantile(a, u);
            let w = g / a;
            let dw_dnu = 0.5 * (gamma_draw_d_shape(g, a) / a - g / (a * a));
            scale.push(1.0 / w.sqrt());
            d_scale.push(-0.5 * w.powf(-1.5) * dw_dnu);
        }
        let centred: Vec<Vec<f64>> = draws
            .z
            .iter()
            .map(|z| z.iter().zip(&q.base.xi).map(|(a, b)| a - b).collect())
            .collect();
        let points = Mat::from_fn(samples, d, |s, j| q.base.xi[j] + scale[s] * centred[s][j]);
        let (ln_q, grad_x) = q.log_density_rows(points.as_ref())?;
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        let inv = 1.0 / samples as f64;
        let mut value = 0.0;
        let mut g_xi = vec![0.0; d];
        let mut g_nu = 0.0;
        let mut upstream = Vec::with_capacity(samples);
        for s in 0..samples {
            let z: Vec<f64> = (0..d).map(|j| points[(s, j)]).collect();
            let (ll, g_ll) = self.log_likelihood(&z);
            value += inv
                * (-ll
                    + 0.5 * z.iter().map(|v| v * v).sum::<f64>()
                    + 0.5 * d as f64 * ln_2pi
                    + ln_q[s]);
            let gz: Vec<f64> = (0..d)
                .map(|j| inv * (-g_ll[j] + z[j] + grad_x[(s, j)]))
                .collect();
            for j in 0..d {
                g_xi[j] += gz[j];
                g_nu += gz[j] * centred[s][j] * d_scale[s];
            }
            upstream.push(gz.iter().map(|v| v * scale[s]).collect::<Vec<f64>>());
        }
        let mut g = draws.backward(&q.base, &upstream);
        g.xi = g_xi;
        // Score terms: (1/S) Σ ∂θ ln q(z_s) at fixed draws = −∇θ of the mean NLL of the draws.
        let (_, score, score_nu) = q.nll_gradient(points.as_ref())?;
        for j in 0..d {
            g.xi[j] -= score.xi[j];
            g.eta[j] -= score.eta[j];
            for m in 0..d {
                g.omega[(j, m)] -= score.omega[(j, m)];
            }
        }
        Ok((value, g, g_nu - score_nu))
    }
}

/// Runs `method` (SNGD or Adam) with a skew-t variational family on `task` from the skew-normal
/// start and ν = 50 (λ = ln(ν − 2) by Adam); 10 draws per step, 100 per evaluation.
pub fn run_skew_t_vi(
    task: &LogisticTask,
    method: SkewMethod,
    settings: &SkewSettings,
    mut progress: impl FnMut(usize, f64),
) -> Result<SkewTrace> {
    let state = SkewTOptimiser::new(method, SngdForm::Vi, task.x.ncols(), 0.01, settings)?;
    drive_vi(
        state,
        method,
        settings,
        |q, draws, rng| {
            let (value, g, g_nu) = task.skew_t_negative_elbo(q, draws, rng)?;
            Ok((value, (g, g_nu)))
        },
        &mut progress,
    )
}

/// The VI tasks' loop: `objective(q, draws, rng)` with [`TRAIN_DRAWS`] per step and
/// [`EVAL_DRAWS`] per evaluation, the evaluation draws the same for every method.
fn drive_vi<S: Stepper>(
    state: S,
    method: SkewMethod,
    settings: &SkewSettings,
    objective: impl Fn(&S::Point, usize, &mut Stream) -> Result<(f64, S::Gradient)>,
    progress: &mut impl FnMut(usize, f64),
) -> Result<SkewTrace> {
    if settings.eval_every == 0 {
        return Err(Error::Config(
            "the evaluation interval must be positive".into(),
        ));
    }
    drive(
        state,
        method,
        settings,
        |q, step| {
            let mut rng = Stream::new(settings.seed, &[ids::EVAL, step as u64]);
            Ok(objective(q, EVAL_DRAWS, &mut rng)?.0)
        },
        |q, step| {
            let mut rng = Stream::new(settings.seed, &[ids::TRAIN, step as u64]);
            objective(q, TRAIN_DRAWS, &mut rng)
        },
        progress,
    )
}

/// A mixture Σ_k p_k SN(ξ_k, Ω_k, η_k) of skew-normals.
#[derive(Clone, Debug)]
pub struct SkewMixture {
    /// Weights on the open simplex.
    pub weights: Vec<f64>,
    /// The components, all of one dimension.
    pub components: Vec<SkewNormal>,
}

/// Gradients of an objective of a [`SkewMixture`]: in the weights as free coordinates, and per
/// component.
#[derive(Clone, Debug)]
pub struct SkewMixtureGradient {
    /// ∂f/∂p_k.
    pub weights: Vec<f64>,
    /// Per component, in (ξ_k, Ω_k, η_k).
    pub components: Vec<SkewGradient>,
}

impl SkewMixture {
    /// Checks matching lengths, one dimension and weights on the open simplex.
    pub fn new(weights: Vec<f64>, components: Vec<SkewNormal>) -> Result<Self> {
        if weights.is_empty() || weights.len() != components.len() {
            return Err(Error::Dimension(format!(
                "{} weights for {} components",
                weights.len(),
                components.len()
            )));
        }
        let d = components[0].dim();
        if components.iter().any(|c| c.dim() != d) {
            return Err(Error::Dimension(
                "mixture components of different dimensions".into(),
            ));
        }
        if weights.iter().any(|&p| !(p > 0.0 && p.is_finite()))
            || (weights.iter().sum::<f64>() - 1.0).abs() > 1e-9
        {
            return Err(Error::InvalidData(format!(
                "mixture weights {weights:?} are not a point of the open simplex"
            )));
        }
        Ok(SkewMixture {
            weights,
            components,
        })
    }
}

impl LogisticTask {
    /// The negative ELBO of a skew-normal mixture and its gradients: `samples` reparameterised
    /// draws from each component, weighted by p_k (so the estimate is exact in the weights), and
    /// ln q(z) evaluated at the draws (no closed-form mixture entropy). The gradient is that of
    /// the estimate with the draws' noise fixed, including the score terms of ln q.
    pub fn mixture_negative_elbo(
        &self,
        q: &SkewMixture,
        samples: usize,
        rng: &mut Stream,
    ) -> Result<(f64, SkewMixtureGradient)> {
        let big_k = q.components.len();
        let d = q.components[0].dim();
        if d != self.x.ncols() || samples == 0 {
            return Err(Error::Dimension(format!(
                "a {d}-dimensional q with {samples} draws for {} features",
                self.x.ncols()
            )));
        }
        let draws: Vec<Draws> = q
            .components
            .iter()
            .map(|c| Draws::new(c, samples, rng))
            .collect::<Result<_>>()?;
        let points = Mat::from_fn(big_k * samples, d, |i, j| {
            draws[i / samples].z[i % samples][j]
        });
        let densities: Vec<(Vec<f64>, Mat<f64>)> = q
            .components
            .iter()
            .map(|c| c.log_density_rows(points.as_ref()))
            .collect::<Result<_>>()?;
        let ln_p: Vec<f64> = q.weights.iter().map(|p| p.ln()).collect();
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        let mut value = 0.0;
        let mut g_weights = vec![0.0; big_k];
        let mut upstream: Vec<Vec<Vec<f64>>> = vec![Vec::with_capacity(samples); big_k];
        let mut score_weights = vec![vec![0.0; big_k * samples]; big_k];
        for i in 0..big_k * samples {
            let (k, z) = (i / samples, &draws[i / samples].z[i % samples]);
            let a: Vec<f64> = (0..big_k).map(|j| ln_p[j] + densities[j].0[i]).collect();
            let top = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ln_q = top + a.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
            let resp: Vec<f64> = a.iter().map(|v| (v - ln_q).exp()).collect();
            let (ll, g_ll) = self.log_likelihood(z);
            let g =
                -ll + 0.5 * z.iter().map(|v| v * v).sum::<f64>() + 0.5 * d as f64 * ln_2pi + ln_q;
            let c = q.weights[k] / samples as f64;
            value += c * g;
            g_weights[k] += g / samples as f64;
            let grad_z: Vec<f64> = (0..d)
                .map(|col| {
                    -g_ll[col]
                        + z[col]
                        + (0..big_k)
                            .map(|j| resp[j] * densities[j].1[(i, col)])
                            .sum::<f64>()
                })
                .collect();
            upstream[k].push(grad_z.iter().map(|v| c * v).collect());
            for j in 0..big_k {
                g_weights[j] += c * resp[j] / q.weights[j];
                score_weights[j][i] = c * resp[j];
            }
        }
        let mut components = Vec::with_capacity(big_k);
        for k in 0..big_k {
            let mut g = draws[k].backward(&q.components[k], &upstream[k]);
            // + Σ_i c_i ∂ ln SN_k(z_i)/∂θ_k = − ∂ Σ_i c_i (−ln SN_k(z_i)).
            let (_, score) =
                q.components[k].weighted_nll_gradient(points.as_ref(), &score_weights[k])?;
            for j in 0..d {
                g.xi[j] -= score.xi[j];
                g.eta[j] -= score.eta[j];
                for m in 0..d {
                    g.omega[(j, m)] -= score.omega[(j, m)];
                }
            }
            components.push(g);
        }
        Ok((
            value,
            SkewMixtureGradient {
                weights: g_weights,
                components,
            },
        ))
    }
}

/// Draws per training step and per evaluation (the authors' 10 and 100).
pub const TRAIN_DRAWS: usize = 10;
/// Draws per evaluation.
pub const EVAL_DRAWS: usize = 100;

/// Runs `method` (learning rates from `settings`: SNGD's `lr_theta` and `lr_lambda`, Adam's
/// `lr_adam`, MCEF's `lr_theta`) from the authors' start ξ, η ~ N(0, 0.01²), Ω = 0.01 I.
/// Evaluations use the same draws for every method.
pub fn run_skew_vi(
    task: &LogisticTask,
    method: SkewMethod,
    settings: &SkewSettings,
    mut progress: impl FnMut(usize, f64),
) -> Result<SkewTrace> {
    let state = SkewOptimiser::new(method, SngdForm::Vi, task.x.ncols(), 0.01, settings)?;
    drive_vi(
        state,
        method,
        settings,
        |q, draws, rng| task.negative_elbo(q, draws, rng),
        &mut progress,
    )
}

/// Mixture weights are kept at or above this (the authors' clip for VI).
const MIN_WEIGHT: f64 = 1e-3;

/// The optimiser of a skew-normal mixture: SNGD on the mixture of MVN(ξ_k, Ω_k) as one joint
/// exponential family over (component, z), stepping its natural parameters with the gradient in
/// its mean parameters (p_k, p_k ξ_k, p_k(Ω_k + ξ_k ξ_kᵀ)) and η_k by Adam; or Adam on
/// (softmax logits, ξ_k, W_k, η_k).
enum MixtureOptimiser {
    Sngd {
        weights: Vec<f64>,
        xi: Vec<Vec<f64>>,
        omega: Vec<Mat<f64>>,
        eta: Vec<Vec<f64>>,
        adams: Vec<Adam>,
    },
    Adam {
        logits: Vec<f64>,
        adam: Adam,
        parts: Vec<SkewOptimiser>,
    },
}

/// The MVN log-partition up to its constant: ½ ξᵀΩ⁻¹ξ + ½ ln det Ω.
fn gaussian_log_partition(xi: &[f64], omega: &Mat<f64>) -> Result<f64> {
    let llt = cholesky(omega, "Ω")?;
    let solved = llt.solve(Mat::from_fn(xi.len(), 1, |r, _| xi[r]));
    let quadratic: f64 = (0..xi.len()).map(|r| xi[r] * solved[(r, 0)]).sum();
    Ok(0.5 * quadratic + 0.5 * log_det(&llt))
}

fn clip_weights(weights: &mut [f64]) {
    for p in weights.iter_mut() {
        *p = p.max(MIN_WEIGHT);
    }
    let total: f64 = weights.iter().sum();
    for p in weights.iter_mut() {
        *p /= total;
    }
}

impl MixtureOptimiser {
    /// The authors' start: equal weights, ξ_k, η_k ~ N(0, 0.01²), Ω_k = 0.01 I.
    fn new(
        method: SkewMethod,
        components: usize,
        dim: usize,
        settings: &SkewSettings,
    ) -> Result<Self> {
        if components == 0 {
            return Err(Error::Config(
                "a mixture needs at least one component".into(),
            ));
        }
        Ok(match method {
            SkewMethod::Sngd => {
                let mut rng = Stream::new(settings.seed, &[ids::INIT]);
                let mut xi = Vec::new();
                let mut eta = Vec::new();
                let mut adams = Vec::new();
                for _ in 0..components {
                    xi.push((0..dim).map(|_| 0.01 * rng.normal()).collect());
                    eta.push((0..dim).map(|_| 0.01 * rng.normal()).collect());
                    adams.push(Adam::new(dim, settings.lr_lambda)?);
                }
                MixtureOptimiser::Sngd {
                    weights: vec![1.0 / components as f64; components],
                    xi,
                    omega: vec![Mat::<f64>::identity(dim, dim) * faer::Scale(0.01); components],
                    eta,
                    adams,
                }
            }
            SkewMethod::AdamCovariance | SkewMethod::AdamPrecision => {
                let parts = (0..components)
                    .map(|k| {
                        let seeded = SkewSettings {
                            seed: settings.seed.wrapping_add(k as u64),
                            ..*settings
                        };
                        SkewOptimiser::new(method, SngdForm::Vi, dim, 0.01, &seeded)
                    })
                    .collect::<Result<_>>()?;
                MixtureOptimiser::Adam {
                    logits: vec![0.0; components],
                    adam: Adam::new(components, settings.lr_adam)?,
                    parts,
                }
            }
            SkewMethod::Mcef => {
                return Err(Error::Config(
                    "MCEF is a single skew-normal baseline; mixtures run SNGD and Adam".into(),
                ));
            }
        })
    }
}

impl Stepper for MixtureOptimiser {
    type Point = SkewMixture;
    type Gradient = SkewMixtureGradient;

    fn distribution(&self) -> Result<SkewMixture> {
        match self {
            MixtureOptimiser::Sngd {
                weights,
                xi,
                omega,
                eta,
                ..
            } => SkewMixture::new(
                weights.clone(),
                (0..weights.len())
                    .map(|k| SkewNormal::new(xi[k].clone(), omega[k].clone(), eta[k].clone()))
                    .collect::<Result<_>>()?,
            ),
            MixtureOptimiser::Adam { logits, parts, .. } => {
                let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = logits.iter().map(|v| (v - top).exp()).sum();
                SkewMixture::new(
                    logits.iter().map(|v| (v - top).exp() / total).collect(),
                    parts
                        .iter()
                        .map(SkewOptimiser::distribution)
                        .collect::<Result<_>>()?,
                )
            }
        }
    }

    fn step(
        &mut self,
        current: &SkewMixture,
        g: &SkewMixtureGradient,
        lr_theta: f64,
    ) -> Result<()> {
        let big_k = current.weights.len();
        match self {
            MixtureOptimiser::Sngd {
                weights,
                xi,
                omega,
                eta,
                adams,
            } => {
                let d = xi[0].len();
                // Gradients in each component's (m₁, m₂) = (ξ, Ω + ξξᵀ), then in the mixture's
                // mean parameters (p_k m₁, p_k m₂) and p_k.
                let mut scaled = Vec::with_capacity(big_k);
                let mut g_p = Vec::with_capacity(big_k);
                let mut precision = Vec::with_capacity(big_k);
                let mut s_xi = Vec::with_capacity(big_k);
                let mut a = Vec::with_capacity(big_k);
                for k in 0..big_k {
                    let p = weights[k];
                    let (g1, g2) = MultivariateGaussian::gradient_in_mean(
                        &xi[k],
                        &g.components[k].xi,
                        &g.components[k].omega,
                    );
                    let mut inner: f64 = (0..d).map(|r| g1[r] * xi[k][r]).sum();
                    for r in 0..d {
                        for c in 0..d {
                            inner += g2[(r, c)] * (omega[k][(r, c)] + xi[k][r] * xi[k][c]);
                        }
                    }
                    g_p.push(g.weights[k] - inner / p);
                    scaled.push((
                        g1.iter().map(|v| v / p).collect::<Vec<f64>>(),
                        &g2 * faer::Scale(1.0 / p),
                    ));
                    let s = cholesky(&omega[k], "Ω")?.inverse();
                    s_xi.push(
                        (0..d)
                            .map(|r| (0..d).map(|c| s[(r, c)] * xi[k][c]).sum())
                            .collect::<Vec<f64>>(),
                    );
                    precision.push(s);
                    a.push(gaussian_log_partition(&xi[k], &omega[k])?);
                }
                let last = big_k - 1;
                // θ_k = ln p_k − A_k − ln p_K + A_K, stepped with ∂f/∂p_k − ∂f/∂p_K.
                let theta: Vec<f64> = (0..last)
                    .map(|k| weights[k].ln() - a[k] - weights[last].ln() + a[last])
                    .collect();
                let (next_xi, next_omega, next_weights) = backtrack(
                    lr_theta,
                    |beta| {
                        let mut nx = Vec::with_capacity(big_k);
                        let mut no = Vec::with_capacity(big_k);
                        let mut log_w = Vec::with_capacity(big_k);
                        for k in 0..big_k {
                            let (m, sigma) = natural_to_standard(
                                &precision[k],
                                &s_xi[k],
                                &scaled[k].0,
                                &scaled[k].1,
                                beta,
                            )?;
                            let a_next = gaussian_log_partition(&m, &sigma).ok()?;
                            let t = if k < last {
                                theta[k] - beta * (g_p[k] - g_p[last])
                            } else {
                                0.0
                            };
                            log_w.push(t + a_next);
                            nx.push(m);
                            no.push(sigma);
                        }
                        let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let total: f64 = log_w.iter().map(|v| (v - top).exp()).sum();
                        let mut w: Vec<f64> =
                            log_w.iter().map(|v| (v - top).exp() / total).collect();
                        clip_weights(&mut w);
                        w.iter().all(|v| v.is_finite()).then_some((nx, no, w))
                    },
                    "SNGD",
                )?;
                *xi = next_xi;
                *omega = next_omega;
                *weights = next_weights;
                for k in 0..big_k {
                    adams[k].descend(&mut eta[k], &g.components[k].eta)?;
                }
                Ok(())
            }
            MixtureOptimiser::Adam {
                logits,
                adam,
                parts,
            } => {
                // p = softmax(w): ∂f/∂w_k = p_k (g_k − Σ_j p_j g_j).
                let p = &current.weights;
                let mean: f64 = p.iter().zip(&g.weights).map(|(a, b)| a * b).sum();
                let g_w: Vec<f64> = (0..big_k).map(|k| p[k] * (g.weights[k] - mean)).collect();
                adam.descend(logits, &g_w)?;
                for (k, part) in parts.iter_mut().enumerate() {
                    part.step(&current.components[k], &g.components[k], lr_theta)?;
                }
                Ok(())
            }
        }
    }
}

/// Runs `method` (SNGD or Adam) with a `components`-component skew-normal mixture on `task`:
/// the negative ELBO from [`LogisticTask::mixture_negative_elbo`] with 10 draws per component
/// per step and 100 per evaluation (the same for every method).
pub fn run_mixture_vi(
    task: &LogisticTask,
    method: SkewMethod,
    components: usize,
    settings: &SkewSettings,
    mut progress: impl FnMut(usize, f64),
) -> Result<SkewTrace> {
    let state = MixtureOptimiser::new(method, components, task.x.ncols(), settings)?;
    drive_vi(
        state,
        method,
        settings,
        |q, draws, rng| task.mixture_negative_elbo(q, draws, rng),
        &mut progress,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::skew::assert_skew_gradient;

    /// −ln p(y) of a two-dimensional task by the midpoint rule on [−8, 8]², step 0.01.
    fn negative_log_evidence(task: &LogisticTask) -> f64 {
        let (step, half) = (0.01, 8.0);
        let cells = (2.0 * half / step) as usize;
        let mut evidence = 0.0;
        for a in 0..cells {
            for b in 0..cells {
                let z = [
                    -half + step * (a as f64 + 0.5),
                    -half + step * (b as f64 + 0.5),
                ];
                let ln_prior =
                    -0.5 * (z[0] * z[0] + z[1] * z[1]) - (2.0 * std::f64::consts::PI).ln();
                evidence += (ln_prior + task.log_likelihood(&z).0).exp() * step * step;
            }
        }
        -evidence.ln()
    }

    /// The settings of the evidence-gap tests: 400 steps, one evaluation, seed 5.
    fn gap_settings(lr_theta: f64, lr_adam: f64) -> SkewSettings {
        SkewSettings {
            iterations: 400,
            batch: TRAIN_DRAWS,
            eval_every: 400,
            lr_theta,
            lr_lambda: 0.03,
            lr_adam,
            seed: 5,
        }
    }

    /// −ELBO is at least −ln p(y) (less `below` of Monte Carlo noise) and within 0.1 nats of it.
    fn assert_near_evidence(method: SkewMethod, value: f64, bound: f64, below: f64) {
        let name = method.name();
        assert!(
            value > bound - below,
            "{name}: −ELBO {value} below −ln p(y) {bound}"
        );
        assert!(
            value < bound + 0.1,
            "{name}: −ELBO {value}, −ln p(y) {bound}"
        );
    }

    /// Runs `state` for `settings.iterations` steps and returns where it ends.
    fn final_point<S: Stepper>(
        state: S,
        method: SkewMethod,
        settings: &SkewSettings,
        gradient: impl FnMut(&S::Point, usize) -> Result<(f64, S::Gradient)>,
    ) -> S::Point
    where
        S::Point: Clone,
    {
        let mut last = None;
        let trace = drive(
            state,
            method,
            settings,
            |q, _| {
                last = Some(q.clone());
                Ok(0.0)
            },
            gradient,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(trace.stopped.is_none(), "{trace:?}");
        last.unwrap()
    }

    /// With the draws fixed the estimate is a smooth function of (ξ, Ω, η): its gradient must
    /// match central differences.
    #[test]
    fn the_negative_elbo_gradient_matches_finite_differences() {
        let task = logistic_task(3, 20, 1).unwrap();
        let mut rng = Stream::new(2, &[]);
        let w = Mat::from_fn(3, 3, |_, _| rng.normal());
        let q = SkewNormal::new(
            vec![0.3, -0.2, 0.5],
            w.transpose() * &w * faer::Scale(0.2) + Mat::<f64>::identity(3, 3) * faer::Scale(0.1),
            vec![1.5, -0.7, 0.4],
        )
        .unwrap();
        let value = |q: &SkewNormal| {
            task.negative_elbo(q, 4, &mut Stream::new(9, &[]))
                .unwrap()
                .0
        };
        let (_, g) = task.negative_elbo(&q, 4, &mut Stream::new(9, &[])).unwrap();
        assert_skew_gradient(&q, &g, value, 1e-6, 1e-5, "skew-normal");
    }

    /// The prior and entropy terms in closed form against the plain Monte Carlo ELBO
    /// E[−ln p(y, z) + ln q(z)] with many draws from the skew-normal's own sampler (a different
    /// construction from the reparameterised draws): the prior term within four standard errors
    /// of its Monte Carlo mean, and the whole estimate within four standard errors of the
    /// difference of two independent means.
    #[test]
    fn the_negative_elbo_matches_plain_monte_carlo() {
        let task = logistic_task(3, 20, 1).unwrap();
        let q = SkewNormal::new(
            vec![0.3, -0.2, 0.5],
            Mat::from_fn(3, 3, |r, c| if r == c { 0.5 } else { 0.1 }),
            vec![1.5, -0.7, 0.4],
        )
        .unwrap();
        let n = 200_000;
        let mut rng = Stream::new(3, &[]);
        let draws = q.sample(n, &mut rng).unwrap();
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        let (mut total, mut total2, mut half_norm, mut half_norm2) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            let z: Vec<f64> = (0..3).map(|j| draws[(i, j)]).collect();
            let norm = 0.5 * z.iter().map(|v| v * v).sum::<f64>();
            let ln_q = -q.nll(draws.as_ref().subrows(i, 1)).unwrap();
            let t = -task.log_likelihood(&z).0 + norm + 1.5 * ln_2pi + ln_q;
            total += t;
            total2 += t * t;
            half_norm += norm;
            half_norm2 += norm * norm;
        }
        let nf = n as f64;
        let standard_error = |sum: f64, sum2: f64| ((sum2 / nf - (sum / nf).powi(2)) / nf).sqrt();
        // E ½zᵀz = ½(tr Ω + |ξ|² + 2ξᵀ(E z − ξ)).
        let mean = q.mean();
        let closed = 0.5
            * ((0..3)
                .map(|j| q.omega[(j, j)] + q.xi[j] * (2.0 * mean[j] - q.xi[j]))
                .sum::<f64>());
        let se = standard_error(half_norm, half_norm2);
        assert!(
            (half_norm / nf - closed).abs() < 4.0 * se,
            "{} vs {closed}",
            half_norm / nf
        );
        let (estimate, _) = task.negative_elbo(&q, n, &mut rng).unwrap();
        let se = standard_error(total, total2) * 2f64.sqrt();
        assert!(
            (total / nf - estimate).abs() < 4.0 * se,
            "{} vs {estimate} (se {se})",
            total / nf
        );
        assert!(se < 0.03, "the check is too loose: standard error {se}");
    }

    /// The ELBO bounds the log evidence: on a two-dimensional posterior (evidence by quadrature
    /// on a grid) every method must end with −ELBO ≥ −ln p(y) (estimated with many draws), and
    /// SNGD, Adam and MCEF must all close the gap to within 0.1 nats, which a wrong gradient or
    /// a wrong step direction would not.
    #[test]
    fn every_method_closes_the_gap_to_the_log_evidence() {
        let task = logistic_task(2, 30, 4).unwrap();
        let bound = negative_log_evidence(&task);
        for (method, lr_theta, lr_adam) in [
            (SkewMethod::Sngd, 0.1, 0.0),
            (SkewMethod::AdamCovariance, 0.0, 0.03),
            (SkewMethod::Mcef, 0.1, 0.0),
        ] {
            let settings = gap_settings(lr_theta, lr_adam);
            let state = SkewOptimiser::new(method, SngdForm::Vi, 2, 0.01, &settings).unwrap();
            let q = final_point(state, method, &settings, |q, step| {
                let mut rng = Stream::new(settings.seed, &[ids::TRAIN, step as u64]);
                task.negative_elbo(q, TRAIN_DRAWS, &mut rng)
            });
            let (value, _) = task
                .negative_elbo(&q, 20_000, &mut Stream::new(6, &[]))
                .unwrap();
            assert_near_evidence(method, value, bound, 0.02);
        }
    }

    /// The mixture estimate with its draws fixed is smooth in every parameter: its gradient
    /// (reparameterisation plus the score terms of ln q) must match central differences, the
    /// weights moved along the simplex.
    #[test]
    fn the_mixture_negative_elbo_gradient_matches_finite_differences() {
        let task = logistic_task(2, 15, 3).unwrap();
        let component = |xi: [f64; 2], a: f64, eta: [f64; 2]| {
            SkewNormal::new(
                xi.to_vec(),
                Mat::from_fn(2, 2, |r, c| if r == c { a } else { 0.1 }),
                eta.to_vec(),
            )
            .unwrap()
        };
        let q = SkewMixture::new(
            vec![0.3, 0.7],
            vec![
                component([0.2, -0.4], 0.5, [1.0, -0.5]),
                component([-0.3, 0.1], 0.8, [-0.6, 0.9]),
            ],
        )
        .unwrap();
        let value = |q: &SkewMixture| {
            task.mixture_negative_elbo(q, 3, &mut Stream::new(5, &[]))
                .unwrap()
                .0
        };
        let (_, g) = task
            .mixture_negative_elbo(&q, 3, &mut Stream::new(5, &[]))
            .unwrap();
        let h = 1e-6;
        let check = |numeric: f64, analytic: f64, what: String| {
            assert!(
                (numeric - analytic).abs() < 1e-5 * (1.0 + analytic.abs()),
                "{what}: {numeric} vs {analytic}"
            );
        };
        let (mut up, mut down) = (q.clone(), q.clone());
        up.weights = vec![0.3 + h, 0.7 - h];
        down.weights = vec![0.3 - h, 0.7 + h];
        check(
            (value(&up) - value(&down)) / (2.0 * h),
            g.weights[0] - g.weights[1],
            "p".into(),
        );
        for k in 0..2 {
            let with_component = |c: &SkewNormal| {
                let mut moved = q.clone();
                moved.components[k] = c.clone();
                value(&moved)
            };
            let label = format!("component {k}");
            assert_skew_gradient(
                &q.components[k],
                &g.components[k],
                with_component,
                h,
                1e-5,
                &label,
            );
        }
        // One component: the mixture estimate agrees with the closed-form-entropy estimate in
        // expectation (many draws).
        let single = SkewMixture::new(vec![1.0], vec![q.components[0].clone()]).unwrap();
        let (mixture, _) = task
            .mixture_negative_elbo(&single, 100_000, &mut Stream::new(6, &[]))
            .unwrap();
        let (closed, _) = task
            .negative_elbo(&q.components[0], 100_000, &mut Stream::new(7, &[]))
            .unwrap();
        assert!((mixture - closed).abs() < 0.03, "{mixture} vs {closed}");
    }

    /// The VI form of SNGD on the joint exponential family of a Gaussian mixture: for
    /// f = KL(q(k, z) ‖ p*(k, z)) with p* in the family, ∇_μ f = η − η*, so one step of size
    /// one lands on p* exactly (weights, means and covariances).
    #[test]
    fn one_mixture_sngd_step_of_size_one_lands_on_the_target_family_member() {
        let settings = SkewSettings {
            iterations: 1,
            batch: 1,
            eval_every: 1,
            lr_theta: 1.0,
            lr_lambda: 0.01,
            lr_adam: 0.01,
            seed: 0,
        };
        let mut state = MixtureOptimiser::new(SkewMethod::Sngd, 3, 2, &settings).unwrap();
        let target_p = [0.2f64, 0.5, 0.3];
        let target_xi = [[1.0, -0.5], [0.0, 2.0], [-1.5, 0.3]];
        let target_omega: Vec<Mat<f64>> = [0.5, 1.5, 0.8]
            .iter()
            .map(|&a| Mat::from_fn(2, 2, |r, c| if r == c { a } else { 0.2 }))
            .collect();
        let q = state.distribution().unwrap();
        let mut components = Vec::new();
        let mut weights = Vec::new();
        for k in 0..3 {
            let c = &q.components[k];
            let s_star = cholesky(&target_omega[k], "Ω*").unwrap().inverse();
            let s = cholesky(&c.omega, "Ω").unwrap().inverse();
            let diff: Vec<f64> = (0..2).map(|r| c.xi[r] - target_xi[k][r]).collect();
            let p = q.weights[k];
            // KL(N(ξ, Ω) ‖ N(ξ*, Ω*)).
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
            let ln_det = |m: &Mat<f64>| log_det(&cholesky(m, "m").unwrap());
            let kl = 0.5 * (trace + maha - 2.0 + ln_det(&target_omega[k]) - ln_det(&c.omega));
            weights.push(p.ln() + 1.0 - target_p[k].ln() + kl);
            components.push(SkewGradient {
                xi: (0..2)
                    .map(|r| p * (0..2).map(|j| s_star[(r, j)] * diff[j]).sum::<f64>())
                    .collect(),
                omega: Mat::from_fn(2, 2, |r, j| 0.5 * p * (s_star[(r, j)] - s[(r, j)])),
                eta: vec![0.0; 2],
            });
        }
        let g = SkewMixtureGradient {
            weights,
            components,
        };
        state.step(&q, &g, 1.0).unwrap();
        let next = state.distribution().unwrap();
        for k in 0..3 {
            assert!(
                (next.weights[k] - target_p[k]).abs() < 1e-10,
                "{:?}",
                next.weights
            );
            for r in 0..2 {
                assert!((next.components[k].xi[r] - target_xi[k][r]).abs() < 1e-9);
                for j in 0..2 {
                    let want = target_omega[k][(r, j)];
                    assert!((next.components[k].omega[(r, j)] - want).abs() < 1e-9);
                }
            }
        }
    }

    /// On a two-dimensional posterior (log evidence by quadrature) both methods fit a
    /// two-component mixture whose −ELBO ends within 0.1 nats of −ln p(y) and not below it.
    #[test]
    fn mixture_vi_closes_the_gap_to_the_log_evidence() {
        let task = logistic_task(2, 30, 4).unwrap();
        let bound = negative_log_evidence(&task);
        for (method, lr_theta, lr_adam) in [
            (SkewMethod::Sngd, 0.1, 0.0),
            (SkewMethod::AdamCovariance, 0.0, 0.03),
        ] {
            let settings = gap_settings(lr_theta, lr_adam);
            let state = MixtureOptimiser::new(method, 2, 2, &settings).unwrap();
            let q = final_point(state, method, &settings, |q, step| {
                let mut rng = Stream::new(settings.seed, &[ids::TRAIN, step as u64]);
                task.mixture_negative_elbo(q, TRAIN_DRAWS, &mut rng)
            });
            let (value, _) = task
                .mixture_negative_elbo(&q, 20_000, &mut Stream::new(6, &[]))
                .unwrap();
            assert_near_evidence(method, value, bound, 0.02);
        }
    }

    /// The skew-t estimate with its uniforms fixed is smooth in (ξ, Ω, η, ν) (Gamma draws by
    /// quantile): its gradient must match central differences, ν's through the implicit
    /// derivative of the Gamma draws.
    #[test]
    fn the_skew_t_negative_elbo_gradient_matches_finite_differences() {
        let task = logistic_task(2, 15, 3).unwrap();
        let q = SkewT::new(
            vec![0.2, -0.4],
            Mat::from_fn(2, 2, |r, c| if r == c { 0.5 } else { 0.1 }),
            vec![1.0, -0.5],
            6.0,
        )
        .unwrap();
        let value = |q: &SkewT| {
            task.skew_t_negative_elbo(q, 4, &mut Stream::new(5, &[]))
                .unwrap()
                .0
        };
        let (_, g, g_nu) = task
            .skew_t_negative_elbo(&q, 4, &mut Stream::new(5, &[]))
            .unwrap();
        let h = 1e-6;
        let with_base = |base: &SkewNormal| {
            value(&SkewT {
                base: base.clone(),
                nu: q.nu,
            })
        };
        assert_skew_gradient(&q.base, &g, with_base, h, 1e-5, "skew-t");
        let h = 1e-4;
        let (mut up, mut down) = (q.clone(), q.clone());
        up.nu += h;
        down.nu -= h;
        let numeric = (value(&up) - value(&down)) / (2.0 * h);
        assert!(
            (numeric - g_nu).abs() < 1e-4 * (1.0 + g_nu.abs()),
            "ν: {numeric} vs {g_nu}"
        );
    }

    /// With a skew-t family both SNGD and Adam end within 0.1 nats of −ln p(y) on a
    /// two-dimensional posterior, and not below it.
    #[test]
    fn skew_t_vi_closes_the_gap_to_the_log_evidence() {
        let task = logistic_task(2, 30, 4).unwrap();
        let bound = negative_log_evidence(&task);
        for (method, lr_theta, lr_adam) in [
            (SkewMethod::Sngd, 0.1, 0.0),
            (SkewMethod::AdamCovariance, 0.0, 0.03),
        ] {
            let settings = gap_settings(lr_theta, lr_adam);
            let state = SkewTOptimiser::new(method, SngdForm::Vi, 2, 0.01, &settings).unwrap();
            let q = final_point(state, method, &settings, |q, step| {
                let mut rng = Stream::new(settings.seed, &[ids::TRAIN, step as u64]);
                let (value, g, g_nu) = task.skew_t_negative_elbo(q, TRAIN_DRAWS, &mut rng)?;
                Ok((value, (g, g_nu)))
            });
            let (value, _, _) = task
                .skew_t_negative_elbo(&q, 5000, &mut Stream::new(6, &[]))
                .unwrap();
            assert_near_evidence(method, value, bound, 0.03);
        }
    }
}
