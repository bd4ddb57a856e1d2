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
//! dπ(G⁻¹∇(−ELBO)) = p_V − p*.//!
//! The geometry at a point is in this file; the built-in model families in `models.rs`; flows,
//! Jeffreys draws and the cosine histograms in `flows.rs`.

mod flows;
mod models;
#[cfg(test)]
mod tests;

use faer::{Mat, MatRef};
pub use flows::*;
pub use models::*;

use crate::error::{Error, Result};

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

    /// ∇_θ L_V = −Σ_v p*(v) J_V\[v\] / p_V(v).
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
