//! The natural gradient of the minimal conditional exponential-family form of a skew-normal
//! (Lin, Khan & Schmidt 2019): the joint family over (x, |w|) with natural parameters
//! (h, J, a) = (V⁻¹μ, −½V⁻¹, V⁻¹β), stepped with the gradient in its mean parameters; the
//! authors' natural-gradient baseline for skew-normal VI.

use faer::Mat;
use faer::linalg::solvers::DenseSolveCore;

use crate::dist::skew::{SkewGradient, SkewNormal};
use crate::error::{Error, Result};
use crate::math::linalg::cholesky;
use crate::objectives::targets::Target;
use crate::optim::sngd::{LineSearch, Method, MethodState, Step, finite_objective, search_step};

/// MCEF on a skew-normal, kept in Lin's coordinates (μ, V, β).
pub struct Mcef {
    mu: Vec<f64>,
    v: Mat<f64>,
    beta: Vec<f64>,
    search: LineSearch,
}

impl Mcef {
    /// Starts at `start`; the step size comes from `search` (which must not compare values).
    pub fn new(start: &SkewNormal, search: LineSearch) -> Result<Self> {
        search.validate()?;
        if search.needs_values() {
            return Err(Error::Config(
                "MCEF keeps the covariance valid by backtracking or a fixed step".into(),
            ));
        }
        let (mu, v, beta) = start.lin_coordinates();
        Ok(Mcef {
            mu,
            v,
            beta,
            search,
        })
    }
}

/// The Gaussian (m, Σ) with natural parameters (Sm − step·g₁, −½S − step·g₂), given S and Sm;
/// None outside the natural domain.
fn natural_to_standard(
    precision: &Mat<f64>,
    s_m: &[f64],
    g1: &[f64],
    g2: &Mat<f64>,
    step: f64,
) -> Option<(Vec<f64>, Mat<f64>)> {
    let d = s_m.len();
    // −2η₂ = S + 2 step g₂.
    let next_precision = Mat::from_fn(d, d, |r, c| precision[(r, c)] + 2.0 * step * g2[(r, c)]);
    let llt = cholesky(&next_precision, "S").ok()?;
    let sigma = llt.inverse();
    let eta1: Vec<f64> = (0..d).map(|r| s_m[r] - step * g1[r]).collect();
    let m = (0..d)
        .map(|r| (0..d).map(|c| sigma[(r, c)] * eta1[c]).sum())
        .collect();
    Some((m, sigma))
}

impl Method for Mcef {
    type Point = SkewNormal;
    type Gradient = SkewGradient;

    fn distribution(&self) -> Result<SkewNormal> {
        SkewNormal::from_lin_coordinates(self.mu.clone(), &self.v, &self.beta)
    }

    fn step<T>(&mut self, target: &T) -> Result<Step>
    where
        T: Target<Point = SkewNormal, Gradient = SkewGradient>,
    {
        let current = self.distribution()?;
        let (value, g) = finite_objective(target, &current)?;
        let (mu, v, beta) = (&self.mu, &self.v, &self.beta);
        let d = mu.len();
        let (g_mu, g_v, g_beta) = current.gradient_in_lin_coordinates(&g)?;
        // Mean parameters m₁ = μ + cβ, m₂ = E xxᵀ, m₃ = cμ + β (c = √(2/π)); with
        // Ĝ_μ = G_μ − 2G_V(μ + cβ), Ĝ_β = G_β − 2G_V(β + cμ):
        // ∇m₁ = (Ĝ_μ − cĜ_β)/(1 − c²), ∇m₂ = G_V, ∇m₃ = Ĝ_β − c∇m₁.
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let gv_times = |x: &[f64]| -> Vec<f64> {
            (0..d)
                .map(|r| (0..d).map(|k| g_v[(r, k)] * x[k]).sum())
                .collect()
        };
        let a: Vec<f64> = (0..d).map(|r| mu[r] + c * beta[r]).collect();
        let b: Vec<f64> = (0..d).map(|r| beta[r] + c * mu[r]).collect();
        let (ga, gb) = (gv_times(&a), gv_times(&b));
        let hat_mu: Vec<f64> = (0..d).map(|r| g_mu[r] - 2.0 * ga[r]).collect();
        let hat_beta: Vec<f64> = (0..d).map(|r| g_beta[r] - 2.0 * gb[r]).collect();
        let g1: Vec<f64> = (0..d)
            .map(|r| (hat_mu[r] - c * hat_beta[r]) / (1.0 - c * c))
            .collect();
        let g3: Vec<f64> = (0..d).map(|r| hat_beta[r] - c * g1[r]).collect();
        // Natural parameters (h, J, a) = (V⁻¹μ, −½V⁻¹, V⁻¹β) step by −lr (∇m₁, ∇m₂, ∇m₃).
        let precision = cholesky(v, "V")?.inverse();
        let times = |x: &[f64]| -> Vec<f64> {
            (0..d)
                .map(|r| (0..d).map(|k| precision[(r, k)] * x[k]).sum())
                .collect()
        };
        let (h, a_nat) = (times(mu), times(beta));
        let ((next_mu, next_v, next_beta), _) = search_step(self.search, |step| {
            let (m, v) = natural_to_standard(&precision, &h, &g1, &g_v, step)?;
            let shifted: Vec<f64> = (0..d).map(|r| a_nat[r] - step * g3[r]).collect();
            let beta = (0..d)
                .map(|r| (0..d).map(|k| v[(r, k)] * shifted[k]).sum())
                .collect();
            Some(((m, v, beta), 0.0))
        })
        .ok_or_else(|| {
            Error::Diverged("MCEF: no step size keeps the covariance positive definite".into())
        })?;
        self.mu = next_mu;
        self.v = next_v;
        self.beta = next_beta;
        Ok(Step {
            value,
            searched: None,
        })
    }

    fn state(&self) -> MethodState {
        let mut state = MethodState::default();
        state.put("mu", self.mu.clone());
        state.put(
            "v",
            self.v.col_iter().flat_map(|c| c.iter().copied()).collect(),
        );
        state.put("beta", self.beta.clone());
        state
    }

    fn restore(&mut self, state: &MethodState) -> Result<()> {
        let d = self.mu.len();
        let mu = state.get("mu", Some(d))?.to_vec();
        let v = state.get("v", Some(d * d))?;
        let beta = state.get("beta", Some(d))?.to_vec();
        self.v = Mat::from_fn(d, d, |r, c| v[c * d + r]);
        self.mu = mu;
        self.beta = beta;
        Ok(())
    }
}
