//! Fisher–Rao geometry of small latent-variable models (natgrad.md (a)): models with finitely
//! many visible states v and hidden states h, given as a map θ ↦ p_θ(v, h) on the simplex of the
//! joint states (index v · n_hidden + h).
//!
//! At a point θ: the Jacobian J = ∂p/∂θ (analytic for the built-in families, central finite
//! differences otherwise), the joint Fisher G = Jᵀ diag(1/p) J and the visible Fisher
//! G_V = J_Vᵀ diag(1/p_V) J_V, the ELBO of a target p*(v) with a recognition kernel q(h | v) and
//! the KL L_V = D(p* ‖ p_V) with their gradients, natural gradients by pseudo-inverse (SVD),
//! the horizontal / vertical split of tangent vectors and a numerical cylindricity test.
//!
//! The paper's claim: if the model is cylindrical (its tangent space splits into horizontal and
//! vertical parts), J_V G⁺∇(−ELBO) = J_V G_V⁺∇L_V for every q; on the full simplex
//! dπ(G⁻¹∇(−ELBO)) = p_V − p*.

use faer::{Mat, MatRef};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::math::sigmoid;
use crate::models::HelmholtzMachine;

/// A model of joint distributions over `n_visible × n_hidden` states.
pub trait JointModel {
    /// Number of visible states.
    fn n_visible(&self) -> usize;
    /// Number of hidden states.
    fn n_hidden(&self) -> usize;
    /// Number of parameters.
    fn n_params(&self) -> usize;
    /// p_θ(v, h) at index v · n_hidden + h.
    fn joint(&self, theta: &[f64]) -> Vec<f64>;
    /// ∂p/∂θ (states × parameters); central finite differences unless a family knows better.
    fn jacobian(&self, theta: &[f64]) -> Mat<f64> {
        finite_difference_jacobian(|t| self.joint(t), theta)
    }
}

/// Central finite differences of a vector function, step 1e-6 · max(1, |θ_k|).
pub fn finite_difference_jacobian(f: impl Fn(&[f64]) -> Vec<f64>, theta: &[f64]) -> Mat<f64> {
    let rows = f(theta).len();
    let mut j = Mat::zeros(rows, theta.len());
    let mut t = theta.to_vec();
    for k in 0..theta.len() {
        let h = 1e-6 * theta[k].abs().max(1.0);
        t[k] = theta[k] + h;
        let up = f(&t);
        t[k] = theta[k] - h;
        let down = f(&t);
        t[k] = theta[k];
        for r in 0..rows {
            j[(r, k)] = (up[r] - down[r]) / (2.0 * h);
        }
    }
    j
}

/// x = A⁺ b by the singular value decomposition, singular values below `rcond · σ_max` dropped.
pub fn pinv_solve(a: MatRef<'_, f64>, b: &[f64], rcond: f64) -> Result<Vec<f64>> {
    let svd = a
        .svd()
        .map_err(|e| Error::Diverged(format!("SVD did not converge: {e:?}")))?;
    let (u, s, v) = (svd.U(), svd.S().column_vector(), svd.V());
    let max = (0..s.nrows()).map(|i| s[i]).fold(0.0, f64::max);
    let mut x = vec![0.0; a.ncols()];
    for i in 0..s.nrows() {
        if s[i] <= rcond * max || s[i] == 0.0 {
            continue;
        }
        let coefficient = (0..a.nrows()).map(|r| u[(r, i)] * b[r]).sum::<f64>() / s[i];
        for (k, xk) in x.iter_mut().enumerate() {
            *xk += coefficient * v[(k, i)];
        }
    }
    Ok(x)
}

/// Relative cut-off of the pseudo-inverses.
pub const RCOND: f64 = 1e-12;

/// The geometry of a model at one parameter point.
#[derive(Clone, Debug)]
pub struct Geometry {
    /// Visible and hidden state counts.
    pub n_visible: usize,
    /// Hidden states.
    pub n_hidden: usize,
    /// p(v, h).
    pub p: Vec<f64>,
    /// p_V(v) = Σ_h p(v, h).
    pub p_v: Vec<f64>,
    /// J = ∂p/∂θ.
    pub j: Mat<f64>,
    /// J_V = ∂p_V/∂θ.
    pub j_v: Mat<f64>,
}

/// A recognition kernel q(h | v): `n_visible` rows of `n_hidden` probabilities.
pub type Kernel = Vec<Vec<f64>>;

impl Geometry {
    /// The geometry of `model` at `theta`; every joint probability must be positive.
    pub fn at(model: &dyn JointModel, theta: &[f64]) -> Result<Self> {
        if theta.len() != model.n_params() {
            return Err(Error::Dimension(format!(
                "{} parameters for a model of {}",
                theta.len(),
                model.n_params()
            )));
        }
        let (n_visible, n_hidden) = (model.n_visible(), model.n_hidden());
        let p = model.joint(theta);
        if p.len() != n_visible * n_hidden || p.iter().any(|&x| !(x > 0.0 && x.is_finite())) {
            return Err(Error::InvalidData(
                "the joint distribution must be positive on every state".into(),
            ));
        }
        let j = model.jacobian(theta);
        let p_v = (0..n_visible)
            .map(|v| p[v * n_hidden..(v + 1) * n_hidden].iter().sum())
            .collect();
        let j_v = Mat::from_fn(n_visible, j.ncols(), |v, k| {
            (0..n_hidden).map(|h| j[(v * n_hidden + h, k)]).sum()
        });
        Ok(Geometry {
            n_visible,
            n_hidden,
            p,
            p_v,
            j,
            j_v,
        })
    }

    /// G = Jᵀ diag(1/p) J.
    pub fn joint_fisher(&self) -> Mat<f64> {
        fisher(self.j.as_ref(), &self.p)
    }

    /// G_V = J_Vᵀ diag(1/p_V) J_V.
    pub fn visible_fisher(&self) -> Mat<f64> {
        fisher(self.j_v.as_ref(), &self.p_v)
    }

    /// p(h | v).
    pub fn conditional(&self) -> Kernel {
        (0..self.n_visible)
            .map(|v| {
                (0..self.n_hidden)
                    .map(|h| self.p[v * self.n_hidden + h] / self.p_v[v])
                    .collect()
            })
            .collect()
    }

    /// ELBO = Σ_v p*(v) Σ_h q(h|v) log[p(v,h)/q(h|v)].
    pub fn elbo(&self, target: &[f64], q: &Kernel) -> Result<f64> {
        self.check(target, Some(q))?;
        let mut total = 0.0;
        for (v, (&t, row)) in target.iter().zip(q).enumerate() {
            for (&qh, &p) in row.iter().zip(&self.p[v * self.n_hidden..]) {
                if t * qh > 0.0 {
                    total += t * qh * (p / qh).ln();
                }
            }
        }
        Ok(total)
    }

    /// ∇_θ(−ELBO) = −Σ_{v,h} p*(v) q(h|v) J_{(v,h)} / p(v,h).
    pub fn neg_elbo_gradient(&self, target: &[f64], q: &Kernel) -> Result<Vec<f64>> {
        self.check(target, Some(q))?;
        let weights: Vec<f64> = (0..self.n_visible * self.n_hidden)
            .map(|x| {
                let (v, h) = (x / self.n_hidden, x % self.n_hidden);
                -target[v] * q[v][h] / self.p[x]
            })
            .collect();
        Ok(weighted_columns(self.j.as_ref(), &weights))
    }

    /// L_V = D(p* ‖ p_V).
    pub fn kl_visible(&self, target: &[f64]) -> Result<f64> {
        self.check(target, None)?;
        Ok(target
            .iter()
            .zip(&self.p_v)
            .filter(|(t, _)| **t > 0.0)
            .map(|(t, p)| t * (t / p).ln())
            .sum())
    }

    /// ∇_θ L_V = −Σ_v p*(v) J_V[v] / p_V(v).
    pub fn kl_gradient(&self, target: &[f64]) -> Result<Vec<f64>> {
        self.check(target, None)?;
        let weights: Vec<f64> = target.iter().zip(&self.p_v).map(|(t, p)| -t / p).collect();
        Ok(weighted_columns(self.j_v.as_ref(), &weights))
    }

    /// A target must be a distribution over the visible states, a kernel one distribution over
    /// the hidden states per visible state.
    fn check(&self, target: &[f64], q: Option<&Kernel>) -> Result<()> {
        let is_distribution = |d: &[f64], n: usize| {
            d.len() == n
                && d.iter().all(|&x| x >= 0.0 && x.is_finite())
                && (d.iter().sum::<f64>() - 1.0).abs() < 1e-9
        };
        if !is_distribution(target, self.n_visible) {
            return Err(Error::InvalidData(format!(
                "the target must be a distribution over {} visible states",
                self.n_visible
            )));
        }
        if let Some(q) = q
            && (q.len() != self.n_visible
                || !q.iter().all(|row| is_distribution(row, self.n_hidden)))
        {
            return Err(Error::InvalidData(format!(
                "the recognition kernel must be {} distributions over {} hidden states",
                self.n_visible, self.n_hidden
            )));
        }
        Ok(())
    }

    /// J_V δθ: how a parameter step moves the visible marginal.
    pub fn push_visible(&self, step: &[f64]) -> Vec<f64> {
        multiply(self.j_v.as_ref(), step)
    }

    /// J δθ.
    pub fn push_joint(&self, step: &[f64]) -> Vec<f64> {
        multiply(self.j.as_ref(), step)
    }

    /// The three directions of the paper, as parameter steps (descent directions of the
    /// objective, not yet negated): G⁺∇(−ELBO) with kernel `q`, G⁺∇L_V and G_V⁺∇L_V.
    pub fn directions(&self, target: &[f64], q: &Kernel) -> Result<[Vec<f64>; 3]> {
        Ok([
            self.direction(target, &Flow::JointElbo(q))?,
            self.direction(target, &Flow::JointKl)?,
            self.direction(target, &Flow::VisibleKl)?,
        ])
    }

    /// The parameter step of one flow (a descent direction, not yet negated).
    pub fn direction(&self, target: &[f64], flow: &Flow<'_>) -> Result<Vec<f64>> {
        match flow {
            Flow::JointElbo(q) => pinv_solve(
                self.joint_fisher().as_ref(),
                &self.neg_elbo_gradient(target, q)?,
                RCOND,
            ),
            Flow::JointKl => pinv_solve(
                self.joint_fisher().as_ref(),
                &self.kl_gradient(target)?,
                RCOND,
            ),
            Flow::VisibleKl => pinv_solve(
                self.visible_fisher().as_ref(),
                &self.kl_gradient(target)?,
                RCOND,
            ),
        }
    }

    /// The horizontal part a_H(v, h) = (Σ_h' a(v, h')) p(h | v) and the vertical rest of a
    /// tangent vector a of the joint simplex.
    pub fn split(&self, a: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let nh = self.n_hidden;
        let mut horizontal = vec![0.0; a.len()];
        for v in 0..self.n_visible {
            let u: f64 = a[v * nh..(v + 1) * nh].iter().sum();
            for h in 0..nh {
                horizontal[v * nh + h] = u * self.p[v * nh + h] / self.p_v[v];
            }
        }
        let vertical = a.iter().zip(&horizontal).map(|(x, y)| x - y).collect();
        (horizontal, vertical)
    }

    /// How far the model is from cylindrical here: the largest Fisher–Rao distance of the
    /// horizontal part of a tangent basis vector J_k from the tangent space, relative to ‖J_k‖
    /// (0 when the tangent space splits into horizontal and vertical parts).
    pub fn cylindricity_defect(&self) -> Result<f64> {
        let g = self.joint_fisher();
        let mut worst: f64 = 0.0;
        for k in 0..self.j.ncols() {
            let column: Vec<f64> = (0..self.j.nrows()).map(|r| self.j[(r, k)]).collect();
            let norm = fr_norm(&column, &self.p);
            if norm == 0.0 {
                continue;
            }
            let (horizontal, _) = self.split(&column);
            // Fisher–Rao projection onto span J: J G⁺ Jᵀ diag(1/p) a.
            let weights: Vec<f64> = horizontal.iter().zip(&self.p).map(|(a, p)| a / p).collect();
            let coefficients = pinv_solve(
                g.as_ref(),
                &weighted_columns(self.j.as_ref(), &weights),
                RCOND,
            )?;
            let projected = self.push_joint(&coefficients);
            let residual: Vec<f64> = horizontal
                .iter()
                .zip(&projected)
                .map(|(a, b)| a - b)
                .collect();
            worst = worst.max(fr_norm(&residual, &self.p) / norm);
        }
        Ok(worst)
    }
}

/// The cosine of two visible tangent vectors in the metric G_V's pushforward, Σ a b / p_V.
pub fn visible_cosine(a: &[f64], b: &[f64], p_v: &[f64]) -> f64 {
    let dot = |x: &[f64], y: &[f64]| -> f64 {
        x.iter().zip(y).zip(p_v).map(|((x, y), p)| x * y / p).sum()
    };
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

fn fr_norm(a: &[f64], p: &[f64]) -> f64 {
    a.iter().zip(p).map(|(x, p)| x * x / p).sum::<f64>().sqrt()
}

fn fisher(j: MatRef<'_, f64>, p: &[f64]) -> Mat<f64> {
    let n = j.ncols();
    Mat::from_fn(n, n, |a, b| {
        (0..j.nrows()).map(|x| j[(x, a)] * j[(x, b)] / p[x]).sum()
    })
}

/// Σ_x w_x J[x, :].
fn weighted_columns(j: MatRef<'_, f64>, w: &[f64]) -> Vec<f64> {
    (0..j.ncols())
        .map(|k| (0..j.nrows()).map(|x| w[x] * j[(x, k)]).sum())
        .collect()
}

fn multiply(a: MatRef<'_, f64>, x: &[f64]) -> Vec<f64> {
    (0..a.nrows())
        .map(|r| (0..a.ncols()).map(|k| a[(r, k)] * x[k]).sum())
        .collect()
}

/// The full simplex of n_visible × n_hidden states in softmax coordinates (one logit per state;
/// over-parametrised by one, hence the pseudo-inverses).
#[derive(Clone, Copy, Debug)]
pub struct Simplex {
    /// Visible states.
    pub n_visible: usize,
    /// Hidden states.
    pub n_hidden: usize,
}

impl JointModel for Simplex {
    fn n_visible(&self) -> usize {
        self.n_visible
    }
    fn n_hidden(&self) -> usize {
        self.n_hidden
    }
    fn n_params(&self) -> usize {
        self.n_visible * self.n_hidden
    }
    fn joint(&self, theta: &[f64]) -> Vec<f64> {
        let max = theta.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = theta.iter().map(|t| (t - max).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|x| x / z).collect()
    }
    fn jacobian(&self, theta: &[f64]) -> Mat<f64> {
        let p = self.joint(theta);
        Mat::from_fn(p.len(), p.len(), |x, y| {
            p[x] * (if x == y { 1.0 } else { 0.0 } - p[y])
        })
    }
}

/// Binary units with independent Bernoulli distributions, θ_i = P(unit i = 1) (mean
/// coordinates); the first `n_hidden_units` units are hidden. A cylindrical model.
#[derive(Clone, Copy, Debug)]
pub struct ProductBernoulli {
    /// All units.
    pub n_units: usize,
    /// Hidden units (the first ones).
    pub n_hidden_units: usize,
}

/// Bit `i` of the configuration with hidden bits `h` and visible bits `v`: units are ordered
/// hidden first, and bit i of h (of v) is hidden unit i (visible unit i).
fn unit_value(v: usize, h: usize, n_hidden_units: usize, i: usize) -> f64 {
    if i < n_hidden_units {
        ((h >> i) & 1) as f64
    } else {
        ((v >> (i - n_hidden_units)) & 1) as f64
    }
}

impl JointModel for ProductBernoulli {
    fn n_visible(&self) -> usize {
        1 << (self.n_units - self.n_hidden_units)
    }
    fn n_hidden(&self) -> usize {
        1 << self.n_hidden_units
    }
    fn n_params(&self) -> usize {
        self.n_units
    }
    fn joint(&self, theta: &[f64]) -> Vec<f64> {
        let (nv, nh) = (self.n_visible(), self.n_hidden());
        (0..nv * nh)
            .map(|x| {
                (0..self.n_units)
                    .map(|i| {
                        let s = unit_value(x / nh, x % nh, self.n_hidden_units, i);
                        s * theta[i] + (1.0 - s) * (1.0 - theta[i])
                    })
                    .product()
            })
            .collect()
    }
    fn jacobian(&self, theta: &[f64]) -> Mat<f64> {
        let p = self.joint(theta);
        let nh = self.n_hidden();
        Mat::from_fn(p.len(), self.n_units, |x, i| {
            let s = unit_value(x / nh, x % nh, self.n_hidden_units, i);
            p[x] * (s / theta[i] - (1.0 - s) / (1.0 - theta[i]))
        })
    }
}

/// The latent-class model: one binary hidden unit h ~ Bern(θ_0) and visible units independent
/// given h, v_i | h ~ Bern(θ_{1 + 2i + h}) (the paper's non-cylindrical example with two visible
/// units: θ = (x, y_0, y_1, z_0, z_1)).
#[derive(Clone, Copy, Debug)]
pub struct LatentClass {
    /// Visible units.
    pub n_visible_units: usize,
}

impl LatentClass {
    /// The factors of p(x) for joint state x as (parameter k, whether the factor is θ_k (else
    /// 1 − θ_k)).
    fn factors(&self, x: usize) -> Vec<(usize, bool)> {
        let (v, h) = (x / 2, x % 2);
        let mut factors = vec![(0, h == 1)];
        for i in 0..self.n_visible_units {
            factors.push((1 + 2 * i + h, (v >> i) & 1 == 1));
        }
        factors
    }
}

fn factor_value(theta: &[f64], (k, on): (usize, bool)) -> f64 {
    if on { theta[k] } else { 1.0 - theta[k] }
}

impl JointModel for LatentClass {
    fn n_visible(&self) -> usize {
        1 << self.n_visible_units
    }
    fn n_hidden(&self) -> usize {
        2
    }
    fn n_params(&self) -> usize {
        1 + 2 * self.n_visible_units
    }
    fn joint(&self, theta: &[f64]) -> Vec<f64> {
        (0..2 * self.n_visible())
            .map(|x| {
                self.factors(x)
                    .into_iter()
                    .map(|f| factor_value(theta, f))
                    .product()
            })
            .collect()
    }
    fn jacobian(&self, theta: &[f64]) -> Mat<f64> {
        let p = self.joint(theta);
        let mut j = Mat::zeros(p.len(), self.n_params());
        for (x, &px) in p.iter().enumerate() {
            for (k, on) in self.factors(x) {
                let sign = if on { 1.0 } else { -1.0 };
                j[(x, k)] += px * sign / factor_value(theta, (k, on));
            }
        }
        j
    }
}

/// The generative network of a Helmholtz machine as a joint model in logit coordinates: layer
/// sizes `[D, H_1, …, H_L]`, θ = [prior biases b_L | for l = 0..L: W_l (units of level l ×
/// units of level l + 1, column-major), b_l], the layout of the machine's parameter set. Visible states are the 2^D data
/// vectors, hidden states the 2^(H_1 + … + H_L) configurations (bits level by level).
#[derive(Clone, Debug)]
pub struct SbnStack {
    /// Layer sizes from the data up.
    pub sizes: Vec<usize>,
}

impl SbnStack {
    /// The generative network of `machine`: its layer sizes and θ from its `p.*` tensors (in f64).
    pub fn of_machine(machine: &HelmholtzMachine) -> (Self, Vec<f64>) {
        let theta = machine
            .params
            .tensors
            .iter()
            .filter(|t| t.name.starts_with("p."))
            .flat_map(|t| t.data.iter().map(|&v| f64::from(v)))
            .collect();
        (
            SbnStack {
                sizes: machine.sizes.clone(),
            },
            theta,
        )
    }

    /// Level values of the configuration (v, h) as 0/1 vectors, level 0 = data.
    fn levels(&self, v: usize, h: usize) -> Vec<Vec<f64>> {
        let mut out = vec![(0..self.sizes[0]).map(|i| ((v >> i) & 1) as f64).collect()];
        let mut shift = 0;
        for &size in &self.sizes[1..] {
            out.push((0..size).map(|i| ((h >> (shift + i)) & 1) as f64).collect());
            shift += size;
        }
        out
    }

    /// log p(v, h) and its gradient: each unit contributes (s − σ(a)) ∂a/∂θ.
    fn log_joint_and_score(&self, theta: &[f64], v: usize, h: usize) -> (f64, Vec<f64>) {
        let levels = self.levels(v, h);
        let top = self.sizes.len() - 1;
        let mut score = vec![0.0; theta.len()];
        let mut log_p = 0.0;
        let unit = |a: f64, s: f64, log_p: &mut f64| -> f64 {
            let prob = sigmoid(a);
            *log_p += if s == 1.0 {
                prob.ln()
            } else {
                (1.0 - prob).ln()
            };
            s - prob
        };
        for (i, &s) in levels[top].iter().enumerate() {
            score[i] = unit(theta[i], s, &mut log_p);
        }
        let mut offset = self.sizes[top];
        for l in 0..top {
            let (n_out, n_in) = (self.sizes[l], self.sizes[l + 1]);
            let bias = offset + n_out * n_in;
            for r in 0..n_out {
                let a = theta[bias + r]
                    + (0..n_in)
                        .map(|c| theta[offset + c * n_out + r] * levels[l + 1][c])
                        .sum::<f64>();
                let delta = unit(a, levels[l][r], &mut log_p);
                for c in 0..n_in {
                    score[offset + c * n_out + r] = delta * levels[l + 1][c];
                }
                score[bias + r] = delta;
            }
            offset = bias + n_out;
        }
        (log_p, score)
    }
}

impl JointModel for SbnStack {
    fn n_visible(&self) -> usize {
        1 << self.sizes[0]
    }
    fn n_hidden(&self) -> usize {
        1 << self.sizes[1..].iter().sum::<usize>()
    }
    fn n_params(&self) -> usize {
        let top = self.sizes.len() - 1;
        self.sizes[top]
            + (0..top)
                .map(|l| self.sizes[l] * (self.sizes[l + 1] + 1))
                .sum::<usize>()
    }
    fn joint(&self, theta: &[f64]) -> Vec<f64> {
        let nh = self.n_hidden();
        (0..self.n_visible() * nh)
            .map(|x| self.log_joint_and_score(theta, x / nh, x % nh).0.exp())
            .collect()
    }
    fn jacobian(&self, theta: &[f64]) -> Mat<f64> {
        let nh = self.n_hidden();
        let n = self.n_visible() * nh;
        let mut j = Mat::zeros(n, self.n_params());
        for x in 0..n {
            let (log_p, score) = self.log_joint_and_score(theta, x / nh, x % nh);
            let p = log_p.exp();
            for (k, s) in score.iter().enumerate() {
                j[(x, k)] = p * s;
            }
        }
        j
    }
}

/// Which natural-gradient flow (natgrad.md a.3).
#[derive(Clone, Copy, Debug)]
pub enum Flow<'a> {
    /// Joint-Fisher natural gradient of −ELBO with a fixed recognition kernel.
    JointElbo(&'a Kernel),
    /// Joint-Fisher natural gradient of L_V (perfect recognition).
    JointKl,
    /// Visible-Fisher natural gradient of L_V.
    VisibleKl,
}

/// Explicit Euler steps θ ← θ − dt · (natural gradient) from `theta`, `steps` times, towards the
/// visible target `target`; returns every parameter point (steps + 1 of them, or fewer when a
/// step leaves the model's domain: the path then ends at the last valid point).
pub fn euler_flow(
    model: &dyn JointModel,
    theta: &[f64],
    target: &[f64],
    flow: &Flow<'_>,
    dt: f64,
    steps: usize,
) -> Result<Vec<Vec<f64>>> {
    let mut path = vec![theta.to_vec()];
    let mut current = theta.to_vec();
    Geometry::at(model, theta)?;
    for _ in 0..steps {
        let Ok(geometry) = Geometry::at(model, &current) else {
            path.pop();
            break;
        };
        let direction = geometry.direction(target, flow)?;
        current
            .iter_mut()
            .zip(&direction)
            .for_each(|(t, d)| *t -= dt * d);
        path.push(current.clone());
    }
    Ok(path)
}

/// A draw from the Jeffreys prior of the joint Fisher of the latent-class model. In its mean
/// coordinates that Fisher is diagonal, G = diag(1/(x(1−x)), P(h)/(y_{h,i}(1−y_{h,i}))), so the
/// prior factorises: x ~ Beta((n+1)/2, (n+1)/2) for n visible units, every y ~ Beta(½, ½).
/// Points with a coordinate within `cutoff` of 0 or 1 are redrawn.
pub fn jeffreys_latent_class(model: &LatentClass, cutoff: f64, rng: &mut Stream) -> Vec<f64> {
    let n = model.n_visible_units as f64;
    loop {
        let mut theta = vec![symmetric_beta((n + 1.0) / 2.0, rng)];
        theta.extend((0..2 * model.n_visible_units).map(|_| symmetric_beta(0.5, rng)));
        if theta.iter().all(|&t| t > cutoff && t < 1.0 - cutoff) {
            return theta;
        }
    }
}

/// Beta(a, a) as G₁/(G₁ + G₂) with Gamma(a) draws (a = ½: a squared normal / 2; a = k + ½: sums).
fn symmetric_beta(a: f64, rng: &mut Stream) -> f64 {
    let g1 = gamma_half_integer(a, rng);
    let g2 = gamma_half_integer(a, rng);
    g1 / (g1 + g2)
}

/// Gamma(a, 1) for a a multiple of ½: a sum of 2a halves of squared standard normals.
fn gamma_half_integer(a: f64, rng: &mut Stream) -> f64 {
    let halves = (2.0 * a).round() as usize;
    (0..halves).map(|_| 0.5 * rng.normal().powi(2)).sum()
}

/// A draw from the Jeffreys prior of the simplex with `n` states, Dirichlet(½, …, ½).
pub fn jeffreys_simplex(n: usize, rng: &mut Stream) -> Vec<f64> {
    let g: Vec<f64> = (0..n).map(|_| gamma_half_integer(0.5, rng)).collect();
    let total: f64 = g.iter().sum();
    g.iter().map(|x| x / total).collect()
}

/// Cosines, in the visible Fisher–Rao metric, between the visible directions of the
/// joint-Fisher natural gradients and that of the visible-Fisher natural gradient of L_V.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cosines {
    /// ELBO with q fixed to the target's conditional p*(h | v).
    pub elbo: Vec<f64>,
    /// L_V with the joint Fisher (perfect recognition, q = p_θ(h | v)).
    pub perfect: Vec<f64>,
}

/// The non-cylindrical study of natgrad.md a.3: `points` model points from the Jeffreys prior of
/// the latent-class model (seeded chunks, in parallel), one joint target `target` (its visible
/// marginal is p*, its conditional the fixed recognition kernel).
pub fn latent_class_cosines(
    model: &LatentClass,
    target: &[f64],
    points: usize,
    seed: u64,
) -> Result<Cosines> {
    let (nv, nh) = (model.n_visible(), model.n_hidden());
    if target.len() != nv * nh {
        return Err(Error::Dimension(format!(
            "a joint target of {} states for {} × {}",
            target.len(),
            nv,
            nh
        )));
    }
    let p_star: Vec<f64> = (0..nv)
        .map(|v| target[v * nh..(v + 1) * nh].iter().sum())
        .collect();
    let q: Kernel = (0..nv)
        .map(|v| (0..nh).map(|h| target[v * nh + h] / p_star[v]).collect())
        .collect();
    const CHUNK: usize = 1000;
    let chunks: Vec<Result<Cosines>> = (0..points.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = Stream::new(seed, &[ids::SAMPLE, c as u64]);
            let mut out = Cosines::default();
            for _ in 0..CHUNK.min(points - c * CHUNK) {
                let theta = jeffreys_latent_class(model, 1e-3, &mut rng);
                let geometry = Geometry::at(model, &theta)?;
                let [elbo, joint_kl, visible_kl] = geometry.directions(&p_star, &q)?;
                let reference = geometry.push_visible(&visible_kl);
                out.elbo.push(visible_cosine(
                    &geometry.push_visible(&elbo),
                    &reference,
                    &geometry.p_v,
                ));
                out.perfect.push(visible_cosine(
                    &geometry.push_visible(&joint_kl),
                    &reference,
                    &geometry.p_v,
                ));
            }
            Ok(out)
        })
        .collect();
    let mut all = Cosines::default();
    for chunk in chunks {
        let chunk = chunk?;
        all.elbo.extend(chunk.elbo);
        all.perfect.extend(chunk.perfect);
    }
    Ok(all)
}

/// Fractions of `values` in `bins` equal bins over [−1, 1] (the last bin closed).
pub fn histogram(values: &[f64], bins: usize) -> Vec<f64> {
    let mut counts = vec![0.0; bins];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    for v in &finite {
        let k = (((v + 1.0) / 2.0) * bins as f64)
            .floor()
            .clamp(0.0, (bins - 1) as f64) as usize;
        counts[k] += 1.0;
    }
    counts
        .iter()
        .map(|c| c / finite.len().max(1) as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::fisher::{FisherKind, LayerFisher, LayerSamples, precondition_prior};

    fn random_distribution(n: usize, rng: &mut Stream) -> Vec<f64> {
        let e: Vec<f64> = (0..n)
            .map(|_| -(rng.uniform_f64().max(1e-12)).ln())
            .collect();
        let total: f64 = e.iter().sum();
        e.iter().map(|x| x / total).collect()
    }

    fn random_kernel(nv: usize, nh: usize, rng: &mut Stream) -> Kernel {
        (0..nv).map(|_| random_distribution(nh, rng)).collect()
    }

    fn max_difference(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn analytic_jacobians_match_finite_differences() {
        let mut rng = Stream::new(1, &[]);
        let bern = ProductBernoulli {
            n_units: 3,
            n_hidden_units: 1,
        };
        let lc = LatentClass { n_visible_units: 2 };
        let sbn = SbnStack {
            sizes: vec![2, 2, 1],
        };
        let simplex = Simplex {
            n_visible: 4,
            n_hidden: 2,
        };
        let models: [(&dyn JointModel, bool); 4] =
            [(&bern, true), (&lc, true), (&sbn, false), (&simplex, false)];
        for (model, probabilities) in models {
            let theta: Vec<f64> = (0..model.n_params())
                .map(|_| {
                    if probabilities {
                        0.1 + 0.8 * rng.uniform_f64()
                    } else {
                        rng.normal()
                    }
                })
                .collect();
            let p = model.joint(&theta);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let analytic = model.jacobian(&theta);
            let numeric = finite_difference_jacobian(|t| model.joint(t), &theta);
            for r in 0..analytic.nrows() {
                for c in 0..analytic.ncols() {
                    assert!(
                        (analytic[(r, c)] - numeric[(r, c)]).abs() < 1e-8,
                        "({r}, {c}): {} vs {}",
                        analytic[(r, c)],
                        numeric[(r, c)]
                    );
                }
            }
        }
    }

    /// R1: on the full simplex, dπ(G⁺∇(−ELBO)) = p_V − p* for any recognition kernel.
    #[test]
    fn on_the_simplex_the_elbo_flow_moves_the_marginal_towards_the_target() {
        let mut rng = Stream::new(2, &[]);
        let model = Simplex {
            n_visible: 4,
            n_hidden: 2,
        };
        for _ in 0..5 {
            let theta: Vec<f64> = (0..8).map(|_| rng.normal()).collect();
            let geometry = Geometry::at(&model, &theta).unwrap();
            let target = random_distribution(4, &mut rng);
            let q = random_kernel(4, 2, &mut rng);
            // The chain rule of KL: −ELBO − H(p*) = D(p* ‖ p_V) + Σ_v p*(v) D(q(·|v) ‖ p(·|v)).
            let conditional = geometry.conditional();
            let gap: f64 = (0..4)
                .map(|v| {
                    target[v]
                        * (0..2)
                            .map(|h| q[v][h] * (q[v][h] / conditional[v][h]).ln())
                            .sum::<f64>()
                })
                .sum();
            let entropy: f64 = -target.iter().map(|t| t * t.ln()).sum::<f64>();
            let elbo_value = geometry.elbo(&target, &q).unwrap();
            assert!(
                (-elbo_value - entropy - geometry.kl_visible(&target).unwrap() - gap).abs() < 1e-12
            );
            // Both gradients against finite differences.
            let numeric_elbo = finite_difference_jacobian(
                |t| vec![-Geometry::at(&model, t).unwrap().elbo(&target, &q).unwrap()],
                &theta,
            );
            let numeric_kl = finite_difference_jacobian(
                |t| {
                    vec![
                        Geometry::at(&model, t)
                            .unwrap()
                            .kl_visible(&target)
                            .unwrap(),
                    ]
                },
                &theta,
            );
            let (ge, gk) = (
                geometry.neg_elbo_gradient(&target, &q).unwrap(),
                geometry.kl_gradient(&target).unwrap(),
            );
            for k in 0..8 {
                assert!((ge[k] - numeric_elbo[(0, k)]).abs() < 1e-7);
                assert!((gk[k] - numeric_kl[(0, k)]).abs() < 1e-7);
            }
            let [elbo, _, _] = geometry.directions(&target, &q).unwrap();
            let pushed = geometry.push_visible(&elbo);
            let expected: Vec<f64> = geometry
                .p_v
                .iter()
                .zip(&target)
                .map(|(p, t)| p - t)
                .collect();
            assert!(
                max_difference(&pushed, &expected) < 1e-8,
                "{pushed:?} vs {expected:?}"
            );
            // The gap's gradient is vertical: with q = p(h | v) the ELBO and KL directions agree.
            let exact = geometry.conditional();
            let [with_exact, kl, _] = geometry.directions(&target, &exact).unwrap();
            assert!(
                max_difference(&geometry.push_joint(&with_exact), &geometry.push_joint(&kl)) < 1e-8
            );
        }
    }

    /// R2: a cylindrical model (independent Bernoulli units, the first hidden) moves p_V the same
    /// way under all three flows, for every q; the latent-class model does not.
    #[test]
    fn cylindrical_models_agree_and_the_latent_class_model_does_not() {
        let mut rng = Stream::new(3, &[]);
        let cylinder = ProductBernoulli {
            n_units: 3,
            n_hidden_units: 1,
        };
        for _ in 0..5 {
            let theta: Vec<f64> = (0..3).map(|_| 0.05 + 0.9 * rng.uniform_f64()).collect();
            let geometry = Geometry::at(&cylinder, &theta).unwrap();
            assert!(geometry.cylindricity_defect().unwrap() < 1e-10);
            let target = random_distribution(4, &mut rng);
            let q = random_kernel(4, 2, &mut rng);
            let [elbo, joint_kl, visible_kl] = geometry.directions(&target, &q).unwrap();
            let reference = geometry.push_visible(&visible_kl);
            for direction in [&elbo, &joint_kl] {
                let pushed = geometry.push_visible(direction);
                assert!(
                    max_difference(&pushed, &reference) < 1e-10,
                    "{pushed:?} vs {reference:?}"
                );
            }
        }
        let latent_class = LatentClass { n_visible_units: 2 };
        let mut worst: f64 = 1.0;
        for _ in 0..5 {
            let theta: Vec<f64> = (0..5).map(|_| 0.05 + 0.9 * rng.uniform_f64()).collect();
            let geometry = Geometry::at(&latent_class, &theta).unwrap();
            assert!(geometry.cylindricity_defect().unwrap() > 1e-3);
            let target = random_distribution(4, &mut rng);
            let q = random_kernel(4, 2, &mut rng);
            let [elbo, _, visible_kl] = geometry.directions(&target, &q).unwrap();
            let cosine = visible_cosine(
                &geometry.push_visible(&elbo),
                &geometry.push_visible(&visible_kl),
                &geometry.p_v,
            );
            worst = worst.min(cosine);
        }
        assert!(
            worst < 0.99,
            "the directions agree too well: cosine {worst}"
        );
    }

    /// natgrad.md a.4: in the cylindrical example all three Euler flows give the closed-form
    /// trajectory y_k = y* + (y0 − y*)(1 − dt)^k for the visible units; y(5) ≈ 0.1056.
    #[test]
    fn the_bernoulli_flows_follow_the_closed_form_euler_trajectory() {
        let model = ProductBernoulli {
            n_units: 3,
            n_hidden_units: 1,
        };
        let star = [0.95, 0.1, 0.9];
        let start = [0.02, 0.95, 0.02];
        let truth = Geometry::at(&model, &star).unwrap();
        let target = truth.p_v.clone();
        let q = truth.conditional();
        let (dt, steps): (f64, usize) = (0.01, 500);
        let closed = |y0: f64, y: f64| y + (y0 - y) * (1.0 - dt).powi(steps as i32);
        for flow in [Flow::JointElbo(&q), Flow::JointKl, Flow::VisibleKl] {
            let path = euler_flow(&model, &start, &target, &flow, dt, steps).unwrap();
            let end = path.last().unwrap();
            assert!(
                (end[1] - closed(0.95, 0.1)).abs() < 1e-10,
                "{flow:?}: y = {}",
                end[1]
            );
            assert!(
                (end[2] - closed(0.02, 0.9)).abs() < 1e-10,
                "{flow:?}: z = {}",
                end[2]
            );
        }
        assert!((closed(0.95, 0.1) - 0.1056).abs() < 1e-4);
    }

    /// The joint of `SbnStack::of_machine` is the machine's own p(x, h) (its `log_joint`).
    #[test]
    fn the_sbn_stack_is_the_machines_generative_net() {
        let machine =
            HelmholtzMachine::new(&[3, 2, 2], crate::models::WeightInit::GlorotNormal, 0.3, 5)
                .unwrap();
        let (stack, theta) = SbnStack::of_machine(&machine);
        assert_eq!(theta.len(), stack.n_params());
        let joint = stack.joint(&theta);
        let nh = stack.n_hidden();
        let levels: Vec<Vec<f32>> = (0..3)
            .map(|level| {
                (0..joint.len())
                    .flat_map(|x| {
                        stack.levels(x / nh, x % nh)[level]
                            .iter()
                            .map(|&v| v as f32)
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .collect();
        let log_p = machine.log_joint(&levels, joint.len());
        for (a, b) in joint.iter().zip(&log_p) {
            assert!((a.ln() - b).abs() < 1e-5, "{} vs {b}", a.ln());
        }
    }

    /// The NRWS update of a Helmholtz machine's generative net: the per-unit Fisher blocks of
    /// `optim::fisher` (here with exact expectations over all configurations) give the same step
    /// as the pseudo-inverse of the exact joint Fisher, G⁺∇.
    #[test]
    fn per_unit_fisher_blocks_give_the_exact_joint_natural_gradient() {
        let mut rng = Stream::new(4, &[]);
        let sizes = vec![3, 2, 2];
        let model = SbnStack {
            sizes: sizes.clone(),
        };
        let theta: Vec<f64> = (0..model.n_params()).map(|_| 0.8 * rng.normal()).collect();
        let geometry = Geometry::at(&model, &theta).unwrap();
        let target = random_distribution(8, &mut rng);
        let q = random_kernel(8, 16, &mut rng);
        let gradient = geometry.neg_elbo_gradient(&target, &q).unwrap();
        let exact = pinv_solve(geometry.joint_fisher().as_ref(), &gradient, RCOND).unwrap();
        // Enumerated configurations with their probabilities as Fisher-sample weights.
        let nh = model.n_hidden();
        let states: Vec<Vec<Vec<f64>>> = (0..geometry.p.len())
            .map(|x| model.levels(x / nh, x % nh))
            .collect();
        let alpha = 1e-9;
        let top = sizes.len() - 1;
        let mut blocks = vec![0.0; theta.len()];
        let prior_bias: Vec<f32> = theta[..sizes[top]].iter().map(|&b| b as f32).collect();
        let mut prior_grad: Vec<f32> = gradient[..sizes[top]].iter().map(|&g| g as f32).collect();
        precondition_prior(&prior_bias, &mut prior_grad, alpha);
        for (b, g) in blocks.iter_mut().zip(&prior_grad) {
            *b = f64::from(*g);
        }
        let mut offset = sizes[top];
        for l in 0..top {
            let (n_out, n_in) = (sizes[l], sizes[l + 1]);
            let mut parents = Vec::new();
            let mut probs = Vec::new();
            for s in &states {
                parents.extend(s[l + 1].iter().map(|&v| v as f32));
                for r in 0..n_out {
                    let a = theta[offset + n_in * n_out + r]
                        + (0..n_in)
                            .map(|c| theta[offset + c * n_out + r] * s[l + 1][c])
                            .sum::<f64>();
                    probs.push(sigmoid(a) as f32);
                }
            }
            let samples = LayerSamples {
                n_in,
                n_out,
                parents,
                probs,
                sample_weights: Some(geometry.p.clone()),
            };
            let fisher = LayerFisher::fit(&samples, alpha, FisherKind::Blocks).unwrap();
            // One unit's [W_r,: ; b_r] per column.
            let d = n_in + 1;
            let mut g = vec![0.0; d * n_out];
            for r in 0..n_out {
                for c in 0..n_in {
                    g[r * d + c] = gradient[offset + c * n_out + r];
                }
                g[r * d + n_in] = gradient[offset + n_in * n_out + r];
            }
            fisher.precondition_columns(&mut g);
            for r in 0..n_out {
                for c in 0..n_in {
                    blocks[offset + c * n_out + r] = g[r * d + c];
                }
                blocks[offset + n_in * n_out + r] = g[r * d + n_in];
            }
            offset += n_out * (n_in + 1);
        }
        let scale = exact.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(
            max_difference(&blocks, &exact) < 1e-5 * scale,
            "blocks {blocks:?}\nexact {exact:?}"
        );
    }

    #[test]
    fn jeffreys_draws_have_the_beta_and_dirichlet_moments() {
        let mut rng = Stream::new(6, &[]);
        let model = LatentClass { n_visible_units: 2 };
        let n = 40_000;
        let draws: Vec<Vec<f64>> = (0..n)
            .map(|_| jeffreys_latent_class(&model, 0.0, &mut rng))
            .collect();
        let moments = |k: usize| {
            let mean = draws.iter().map(|d| d[k]).sum::<f64>() / n as f64;
            let var = draws.iter().map(|d| (d[k] - mean).powi(2)).sum::<f64>() / n as f64;
            (mean, var)
        };
        // Beta(3/2, 3/2): variance 1/16; Beta(1/2, 1/2): variance 1/8.
        let (m0, v0) = moments(0);
        let (m1, v1) = moments(3);
        assert!(
            (m0 - 0.5).abs() < 0.01 && (v0 - 1.0 / 16.0).abs() < 0.003,
            "{m0} {v0}"
        );
        assert!(
            (m1 - 0.5).abs() < 0.01 && (v1 - 1.0 / 8.0).abs() < 0.003,
            "{m1} {v1}"
        );
        // Dirichlet(½ × 8): mean 1/8, variance (1/8)(7/8)/5.
        let d: Vec<f64> = (0..n).map(|_| jeffreys_simplex(8, &mut rng)[2]).collect();
        let mean = d.iter().sum::<f64>() / n as f64;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.125).abs() < 0.003 && (var - 0.125 * 0.875 / 5.0).abs() < 0.002);
        let cosines = latent_class_cosines(&model, &jeffreys_simplex(8, &mut rng), 300, 1).unwrap();
        assert_eq!(cosines.elbo.len(), 300);
        assert!(
            cosines
                .perfect
                .iter()
                .all(|c| (-1.0 - 1e-12..=1.0 + 1e-12).contains(c))
        );
        let h = histogram(&cosines.elbo, 20);
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_targets_kernels_and_parameters_are_refused() {
        let model = LatentClass { n_visible_units: 2 };
        assert!(Geometry::at(&model, &[0.5; 4]).is_err());
        assert!(Geometry::at(&model, &[0.5, 0.2, 1.0, 0.3, 0.4]).is_err());
        let geometry = Geometry::at(&model, &[0.5, 0.2, 0.7, 0.3, 0.4]).unwrap();
        assert!(geometry.kl_visible(&[0.5, 0.5]).is_err());
        assert!(geometry.kl_gradient(&[0.5, 0.5, 0.5, -0.5]).is_err());
        let target = [0.25; 4];
        assert!(geometry.elbo(&target, &vec![vec![0.5, 0.5]; 3]).is_err());
        assert!(
            geometry
                .neg_elbo_gradient(&target, &vec![vec![0.7, 0.7]; 4])
                .is_err()
        );
        assert!(
            geometry
                .directions(&target, &vec![vec![0.5, 0.5]; 4])
                .is_ok()
        );
    }
}
