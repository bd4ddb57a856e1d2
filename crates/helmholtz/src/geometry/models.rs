//! The built-in joint model families: the full simplex, products of Bernoulli units, latent-class
//! models and small sigmoid belief net stacks.

use faer::Mat;

use super::*;
use crate::math::sigmoid;
use crate::models::HelmholtzMachine;

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
    pub(crate) fn levels(&self, v: usize, h: usize) -> Vec<Vec<f64>> {
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
