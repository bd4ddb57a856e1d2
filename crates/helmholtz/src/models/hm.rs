//! The Helmholtz machine: a generative SBN stack p (top-down) and a recognition stack q
//! (bottom-up) over binary data (nrws.md §1.2).
//!
//! Levels are numbered from the data up: level 0 is x, level L the top hidden layer.
//! p(x, h) = p(h_L) Π_l p(h_l | h_{l+1}) with a factorised Bernoulli prior on h_L;
//! q(h | x) = Π_l q(h_{l+1} | h_l).

use serde::{Deserialize, Serialize};

use super::params::{ParamSet, Tensor};
use super::sbn::{SbnShape, accumulate_gradient, preactivation, score_columns, view};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// How the weights of a fresh model are drawn (nrws.md §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightInit {
    /// N(0, 2 / (n_in + n_out)) — the NRWS journal configs.
    GlorotNormal,
    /// U(−s, s) with s = √6 / √(n_in + n_out) / n_in — Bornschein's reweighted-ws code.
    Bornschein,
}

/// A Helmholtz machine with any number of hidden layers.
#[derive(Clone, Debug)]
pub struct HelmholtzMachine {
    /// Layer sizes from the data up: `[x_dim, h_1, …, h_L]`.
    pub sizes: Vec<usize>,
    /// All parameters: `p.prior.b`, then `p.{l}.w`, `p.{l}.b` for l = 0..L (h_{l+1} → h_l), then
    /// `q.{l}.w`, `q.{l}.b` for l = 0..L (h_l → h_{l+1}).
    pub params: ParamSet,
}

/// Samples, scores and log-probabilities of one pass over `n` columns (wake or dream).
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// Number of columns in use.
    pub n: usize,
    /// Unit values per level (level 0 = data), each `sizes[l] × n`.
    pub h: Vec<Vec<f32>>,
    /// Scores s − σ(a) of generative layer l (predicting level l), each `sizes[l] × n`.
    pub p_delta: Vec<Vec<f32>>,
    /// Scores of the top prior, `sizes[L] × n`.
    pub prior_delta: Vec<f32>,
    /// Scores of recognition layer l (predicting level l + 1), each `sizes[l+1] × n`.
    pub q_delta: Vec<Vec<f32>>,
    /// log p(x, h) per column.
    pub log_p: Vec<f64>,
    /// log q(h | x) per column.
    pub log_q: Vec<f64>,
    uniforms: Vec<f32>,
}

impl Pass {
    /// Buffers for up to `capacity` columns of a model with these layer sizes.
    pub fn new(sizes: &[usize], capacity: usize) -> Self {
        let levels = sizes.len();
        Pass {
            n: 0,
            h: sizes.iter().map(|&s| vec![0.0; s * capacity]).collect(),
            p_delta: sizes[..levels - 1]
                .iter()
                .map(|&s| vec![0.0; s * capacity])
                .collect(),
            prior_delta: vec![0.0; sizes[levels - 1] * capacity],
            q_delta: sizes[1..]
                .iter()
                .map(|&s| vec![0.0; s * capacity])
                .collect(),
            log_p: vec![0.0; capacity],
            log_q: vec![0.0; capacity],
            uniforms: vec![0.0; sizes.iter().max().copied().unwrap_or(0) * capacity],
        }
    }

    /// Number of columns these buffers can hold.
    pub fn capacity(&self) -> usize {
        self.log_p.len()
    }
}

impl HelmholtzMachine {
    /// A fresh model with layer sizes `[x_dim, h_1, …, h_L]`, initialised from `seed`.
    pub fn new(sizes: &[usize], init: WeightInit, bias: f32, seed: u64) -> Result<Self> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::Config(format!(
                "a Helmholtz machine needs a data size and at least one hidden layer, all non-zero; got {sizes:?}"
            )));
        }
        let n_layers = sizes.len() - 1;
        let mut tensors = vec![Tensor {
            name: "p.prior.b".into(),
            shape: vec![sizes[n_layers]],
            data: vec![bias; sizes[n_layers]],
        }];
        let mut rng = Stream::new(seed, &[ids::INIT]);
        let mut weights = |name: String, n_out: usize, n_in: usize| {
            let data = (0..n_out * n_in)
                .map(|_| match init {
                    WeightInit::GlorotNormal => {
                        (rng.normal() * (2.0 / (n_in + n_out) as f64).sqrt()) as f32
                    }
                    WeightInit::Bornschein => {
                        let s = 6f64.sqrt() / ((n_in + n_out) as f64).sqrt() / n_in as f64;
                        ((2.0 * rng.uniform_f64() - 1.0) * s) as f32
                    }
                })
                .collect();
            Tensor {
                name,
                shape: vec![n_out, n_in],
                data,
            }
        };
        let mut generative = Vec::new();
        for l in 0..n_layers {
            generative.push(weights(format!("p.{l}.w"), sizes[l], sizes[l + 1]));
            generative.push(Tensor {
                name: format!("p.{l}.b"),
                shape: vec![sizes[l]],
                data: vec![bias; sizes[l]],
            });
        }
        let mut recognition = Vec::new();
        for l in 0..n_layers {
            recognition.push(weights(format!("q.{l}.w"), sizes[l + 1], sizes[l]));
            recognition.push(Tensor {
                name: format!("q.{l}.b"),
                shape: vec![sizes[l + 1]],
                data: vec![bias; sizes[l + 1]],
            });
        }
        tensors.extend(generative);
        tensors.extend(recognition);
        Ok(HelmholtzMachine {
            sizes: sizes.to_vec(),
            params: ParamSet { tensors },
        })
    }

    /// Rebuilds a model from a parameter set (e.g. a checkpoint), checking names and shapes.
    pub fn from_params(sizes: &[usize], params: ParamSet) -> Result<Self> {
        let template = HelmholtzMachine::new(sizes, WeightInit::GlorotNormal, 0.0, 0)?;
        template
            .params
            .check_same_layout(&params)
            .map_err(|e| Error::Checkpoint(e.to_string()))?;
        Ok(HelmholtzMachine {
            sizes: sizes.to_vec(),
            params,
        })
    }

    /// Number of hidden layers L.
    pub fn n_layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Dimension of the data.
    pub fn x_dim(&self) -> usize {
        self.sizes[0]
    }

    /// Total number of hidden units.
    pub fn n_hidden(&self) -> usize {
        self.sizes[1..].iter().sum()
    }

    /// Index of `p.prior.b` in the parameter set.
    pub const PRIOR: usize = 0;

    /// Index of `p.{l}.w` (`p.{l}.b` follows it).
    pub fn p_index(&self, l: usize) -> usize {
        1 + 2 * l
    }

    /// Index of `q.{l}.w` (`q.{l}.b` follows it).
    pub fn q_index(&self, l: usize) -> usize {
        1 + 2 * self.n_layers() + 2 * l
    }

    fn p_shape(&self, l: usize) -> SbnShape {
        SbnShape {
            n_in: self.sizes[l + 1],
            n_out: self.sizes[l],
        }
    }

    fn q_shape(&self, l: usize) -> SbnShape {
        SbnShape {
            n_in: self.sizes[l],
            n_out: self.sizes[l + 1],
        }
    }

    fn data(&self, index: usize) -> &[f32] {
        &self.params.tensors[index].data
    }

    /// Checks that `x` (x_dim × n) is a finite binary batch for this model.
    pub fn check_batch(&self, x: &[f32], n: usize) -> Result<()> {
        if x.len() != self.x_dim() * n {
            return Err(Error::Dimension(format!(
                "the model expects data of dimension {}, got {} values for {n} samples",
                self.x_dim(),
                x.len()
            )));
        }
        if let Some(v) = x.iter().find(|&&v| v != 0.0 && v != 1.0) {
            return Err(Error::InvalidData(format!(
                "value {v} is not binary; binarize the data first"
            )));
        }
        Ok(())
    }

    /// Wake pass: each of the `n_points` columns of `x` is repeated `k` times (column b·k + j is
    /// sample j of point b), h ~ q(h | x) is drawn upward, and log q, log p and every layer's
    /// scores are filled in. `q0_points` is scratch of at least sizes\[1\] × n_points.
    pub fn wake(
        &self,
        x: &[f32],
        n_points: usize,
        k: usize,
        q0_points: &mut [f32],
        pass: &mut Pass,
        rng: &mut Stream,
    ) {
        let n = n_points * k;
        assert!(n <= pass.capacity(), "pass buffers too small");
        pass.n = n;
        let d = self.x_dim();
        for b in 0..n_points {
            for j in 0..k {
                pass.h[0][(b * k + j) * d..(b * k + j + 1) * d]
                    .copy_from_slice(&x[b * d..(b + 1) * d]);
            }
        }
        pass.log_q[..n].fill(0.0);
        pass.log_p[..n].fill(0.0);
        // q's first layer depends only on the data point: compute it once per point.
        let (qw, qb) = (self.q_index(0), self.q_index(0) + 1);
        let h1 = self.sizes[1];
        preactivation(
            self.q_shape(0),
            self.data(qw),
            self.data(qb),
            x,
            n_points,
            q0_points,
        );
        for b in 0..n_points {
            for j in 0..k {
                pass.q_delta[0][(b * k + j) * h1..(b * k + j + 1) * h1]
                    .copy_from_slice(&q0_points[b * h1..(b + 1) * h1]);
            }
        }
        for l in 0..self.n_layers() {
            let shape = self.q_shape(l);
            if l > 0 {
                let (qw, qb) = (self.q_index(l), self.q_index(l) + 1);
                preactivation(
                    shape,
                    self.data(qw),
                    self.data(qb),
                    &pass.h[l],
                    n,
                    &mut pass.q_delta[l],
                );
            }
            let uniforms = &mut pass.uniforms[..shape.n_out * n];
            rng.fill_uniform_f32(uniforms);
            score_columns(
                shape.n_out,
                &mut pass.q_delta[l],
                &mut pass.h[l + 1],
                Some(uniforms),
                &mut pass.log_q[..n],
            );
        }
        self.score_generative(pass);
    }

    /// Fills `log_p` and the generative scores for the values already in `pass.h`.
    pub fn score_generative(&self, pass: &mut Pass) {
        self.generative_pass(pass, None, 0);
    }

    /// Dream pass: `n` ancestral samples (x, h) ~ p, with log p and the generative scores.
    /// With `score_q`, also log q(h | x) and the recognition scores on the dreams (sleep phase).
    pub fn dream(&self, n: usize, score_q: bool, pass: &mut Pass, rng: &mut Stream) {
        assert!(n <= pass.capacity(), "pass buffers too small");
        pass.n = n;
        self.generative_pass(pass, Some(rng), 0);
        if score_q {
            self.score_recognition(pass);
        }
    }

    /// The generative stack from the top prior down to level `lowest`: samples each level
    /// (with `rng`) or scores the values already in `pass.h` (without). `log_p` receives
    /// log p(h_lowest, …, h_L), i.e. log p(x, h) for `lowest` = 0.
    pub fn generative_pass(&self, pass: &mut Pass, mut rng: Option<&mut Stream>, lowest: usize) {
        let n = pass.n;
        let top = self.n_layers();
        pass.log_p[..n].fill(0.0);
        let prior = self.data(Self::PRIOR);
        for column in pass.prior_delta[..self.sizes[top] * n].chunks_exact_mut(self.sizes[top]) {
            column.copy_from_slice(prior);
        }
        let draw = |rng: &mut Option<&mut Stream>, uniforms: &mut [f32], len: usize| match rng {
            Some(rng) => {
                rng.fill_uniform_f32(&mut uniforms[..len]);
                true
            }
            None => false,
        };
        let sampled = draw(&mut rng, &mut pass.uniforms, self.sizes[top] * n);
        score_columns(
            self.sizes[top],
            &mut pass.prior_delta,
            &mut pass.h[top],
            sampled.then_some(&pass.uniforms[..]),
            &mut pass.log_p[..n],
        );
        for l in (lowest..top).rev() {
            let shape = self.p_shape(l);
            let (pw, pb) = (self.p_index(l), self.p_index(l) + 1);
            let (lower, upper) = pass.h.split_at_mut(l + 1);
            preactivation(
                shape,
                self.data(pw),
                self.data(pb),
                &upper[0],
                n,
                &mut pass.p_delta[l],
            );
            let sampled = draw(&mut rng, &mut pass.uniforms, shape.n_out * n);
            score_columns(
                shape.n_out,
                &mut pass.p_delta[l],
                &mut lower[l],
                sampled.then_some(&pass.uniforms[..]),
                &mut pass.log_p[..n],
            );
        }
    }

    /// Fills `log_q` and the recognition scores for the values already in `pass.h`.
    pub fn score_recognition(&self, pass: &mut Pass) {
        let n = pass.n;
        pass.log_q[..n].fill(0.0);
        for l in 0..self.n_layers() {
            let shape = self.q_shape(l);
            let (qw, qb) = (self.q_index(l), self.q_index(l) + 1);
            let (lower, upper) = pass.h.split_at_mut(l + 1);
            preactivation(
                shape,
                self.data(qw),
                self.data(qb),
                &lower[l],
                n,
                &mut pass.q_delta[l],
            );
            score_columns(
                shape.n_out,
                &mut pass.q_delta[l],
                &mut upper[0],
                None,
                &mut pass.log_q[..n],
            );
        }
    }

    /// Adds the gradient of Σ_j c_j log p(x_j, h_j) (generative parameters) to `grads`, from the
    /// scores of `pass`. Consumes the generative scores (they are scaled in place).
    pub fn accumulate_p_gradient(
        &self,
        pass: &mut Pass,
        coefficients: &[f32],
        grads: &mut ParamSet,
    ) {
        let n = pass.n;
        let top_size = self.sizes[self.n_layers()];
        let prior_grad = &mut grads.tensors[Self::PRIOR].data;
        for (column, &c) in pass.prior_delta[..top_size * n]
            .chunks_exact(top_size)
            .zip(coefficients)
        {
            for (g, d) in prior_grad.iter_mut().zip(column) {
                *g += c * d;
            }
        }
        for l in 0..self.n_layers() {
            let index = self.p_index(l);
            let (gw, gb) = two_mut(&mut grads.tensors, index);
            accumulate_gradient(
                self.p_shape(l),
                &mut pass.p_delta[l],
                &pass.h[l + 1],
                coefficients,
                n,
                gw,
                gb,
            );
        }
    }

    /// Adds the gradient of Σ_j c_j log q(h_j | x_j) (recognition parameters) to `grads`.
    ///
    /// With `points = Some((x, n_points, k))` the pass is a wake pass whose first q layer saw each
    /// data point k times: its gradient is reduced over the k samples first and multiplied by the
    /// n_points data columns once (a k-fold saving on the widest product). `scratch` must hold
    /// sizes\[1\] × n_points values in that case.
    pub fn accumulate_q_gradient(
        &self,
        pass: &mut Pass,
        coefficients: &[f32],
        points: Option<(&[f32], usize, usize)>,
        scratch: &mut [f32],
        grads: &mut ParamSet,
    ) {
        let n = pass.n;
        let first = match points {
            Some((x, n_points, k)) => {
                let h1 = self.sizes[1];
                let reduced = &mut scratch[..h1 * n_points];
                reduced.fill(0.0);
                for (j, (column, &c)) in pass.q_delta[0][..h1 * n]
                    .chunks_exact(h1)
                    .zip(coefficients)
                    .enumerate()
                {
                    let target = &mut reduced[(j / k) * h1..(j / k + 1) * h1];
                    for (r, d) in target.iter_mut().zip(column) {
                        *r += c * d;
                    }
                }
                let ones = vec![1.0f32; n_points];
                let index = self.q_index(0);
                let (gw, gb) = two_mut(&mut grads.tensors, index);
                accumulate_gradient(self.q_shape(0), reduced, x, &ones, n_points, gw, gb);
                1
            }
            None => 0,
        };
        for l in first..self.n_layers() {
            let index = self.q_index(l);
            let (gw, gb) = two_mut(&mut grads.tensors, index);
            accumulate_gradient(
                self.q_shape(l),
                &mut pass.q_delta[l],
                &pass.h[l],
                coefficients,
                n,
                gw,
                gb,
            );
        }
    }

    /// The probabilities p(x | h_1) = σ(W h_1 + b) of the data layer for the `n` columns of
    /// `h1`, written to `out` (x_dim × n). Used to show model samples as grey-level images.
    pub fn data_means(&self, h1: &[f32], n: usize, out: &mut [f32]) {
        let (pw, pb) = (self.p_index(0), self.p_index(0) + 1);
        preactivation(self.p_shape(0), self.data(pw), self.data(pb), h1, n, out);
        for v in &mut out[..self.x_dim() * n] {
            *v = crate::math::sigmoid(*v as f64) as f32;
        }
    }

    /// Log-probability of `n` complete configurations under p, given as one matrix per level
    /// (without touching any pass buffers); used by exact enumeration.
    pub fn log_joint(&self, h: &[Vec<f32>], n: usize) -> Vec<f64> {
        let mut pass = Pass::new(&self.sizes, n);
        pass.n = n;
        for (dst, src) in pass.h.iter_mut().zip(h) {
            dst[..src.len()].copy_from_slice(src);
        }
        self.score_generative(&mut pass);
        pass.log_p.truncate(n);
        pass.log_p
    }

    /// A view of the generative weight of layer l (rows: units of level l).
    pub fn p_weight(&self, l: usize) -> faer::MatRef<'_, f32> {
        let shape = self.p_shape(l);
        view(self.data(self.p_index(l)), shape.n_out, shape.n_in)
    }

    /// A view of the recognition weight of layer l (rows: units of level l + 1).
    pub fn q_weight(&self, l: usize) -> faer::MatRef<'_, f32> {
        let shape = self.q_shape(l);
        view(self.data(self.q_index(l)), shape.n_out, shape.n_in)
    }
}

/// Mutable access to tensors `index` (a weight) and `index + 1` (its bias) at once.
fn two_mut(tensors: &mut [Tensor], index: usize) -> (&mut [f32], &mut [f32]) {
    let (left, right) = tensors.split_at_mut(index + 1);
    (&mut left[index].data, &mut right[0].data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small random model with non-trivial biases, and a random binary batch.
    pub(crate) fn fixture() -> (HelmholtzMachine, Vec<f32>, usize) {
        let mut model =
            HelmholtzMachine::new(&[7, 5, 4, 3], WeightInit::GlorotNormal, 0.0, 3).unwrap();
        let mut rng = Stream::new(11, &[]);
        for t in &mut model.params.tensors {
            for v in &mut t.data {
                *v += (rng.uniform_f64() - 0.5) as f32;
            }
        }
        let n_points = 6;
        let x = (0..7 * n_points)
            .map(|_| (rng.uniform_f64() < 0.4) as u8 as f32)
            .collect();
        (model, x, n_points)
    }

    /// Central finite differences of `f` with respect to every parameter in `tensors`.
    fn check_gradient(
        model: &HelmholtzMachine,
        tensors: &[usize],
        analytic: &ParamSet,
        f: &dyn Fn(&HelmholtzMachine) -> f64,
    ) {
        let eps = 1e-2f32;
        for &t in tensors {
            for i in 0..model.params.tensors[t].data.len() {
                let mut plus = model.clone();
                plus.params.tensors[t].data[i] += eps;
                let mut minus = model.clone();
                minus.params.tensors[t].data[i] -= eps;
                let numeric = (f(&plus) - f(&minus)) / (2.0 * eps as f64);
                let exact = analytic.tensors[t].data[i] as f64;
                assert!(
                    (numeric - exact).abs() < 2e-3 * (1.0 + exact.abs()),
                    "{}[{i}]: finite difference {numeric}, analytic {exact}",
                    model.params.tensors[t].name
                );
            }
        }
    }

    #[test]
    fn generative_gradient_matches_finite_differences() {
        let (model, x, n_points) = fixture();
        let k = 3;
        let mut pass = Pass::new(&model.sizes, n_points * k);
        let mut scratch = vec![0.0; 5 * n_points];
        model.wake(
            &x,
            n_points,
            k,
            &mut scratch,
            &mut pass,
            &mut Stream::new(1, &[]),
        );
        let coefficients: Vec<f32> = (0..n_points * k)
            .map(|j| 0.3 + 0.1 * (j % 5) as f32)
            .collect();
        let samples = pass.clone();
        let weighted_log_p = |m: &HelmholtzMachine| {
            let mut p = samples.clone();
            m.score_generative(&mut p);
            p.log_p
                .iter()
                .zip(&coefficients)
                .map(|(l, &c)| l * c as f64)
                .sum::<f64>()
        };
        let mut grads = model.params.zeros_like();
        model.accumulate_p_gradient(&mut pass, &coefficients, &mut grads);
        let p_tensors: Vec<usize> = (0..=2 * model.n_layers()).collect();
        check_gradient(&model, &p_tensors, &grads, &weighted_log_p);
    }

    #[test]
    fn recognition_gradient_matches_finite_differences_on_wake_and_dream_passes() {
        let (model, x, n_points) = fixture();
        let k = 3;
        let n = n_points * k;
        let coefficients: Vec<f32> = (0..n).map(|j| -0.2 + 0.15 * (j % 4) as f32).collect();
        let q_tensors: Vec<usize> = (model.q_index(0)..model.params.tensors.len()).collect();
        let weighted_log_q = |samples: &Pass| {
            let samples = samples.clone();
            let coefficients = coefficients.clone();
            move |m: &HelmholtzMachine| {
                let mut p = samples.clone();
                m.score_recognition(&mut p);
                p.log_q
                    .iter()
                    .zip(&coefficients)
                    .map(|(l, &c)| l * c as f64)
                    .sum::<f64>()
            }
        };
        // Wake pass: the first layer's gradient goes through the per-point reduction.
        let mut pass = Pass::new(&model.sizes, n);
        let mut scratch = vec![0.0; 5 * n_points];
        model.wake(
            &x,
            n_points,
            k,
            &mut scratch,
            &mut pass,
            &mut Stream::new(2, &[]),
        );
        let f = weighted_log_q(&pass);
        let mut grads = model.params.zeros_like();
        model.accumulate_q_gradient(
            &mut pass,
            &coefficients,
            Some((&x, n_points, k)),
            &mut scratch,
            &mut grads,
        );
        check_gradient(&model, &q_tensors, &grads, &f);
        // Dream pass: every layer on its own columns.
        let mut dream = Pass::new(&model.sizes, n);
        model.dream(n, true, &mut dream, &mut Stream::new(3, &[]));
        let f = weighted_log_q(&dream);
        let mut grads = model.params.zeros_like();
        model.accumulate_q_gradient(&mut dream, &coefficients, None, &mut [], &mut grads);
        check_gradient(&model, &q_tensors, &grads, &f);
    }

    #[test]
    fn passes_agree_with_a_direct_computation() {
        let (model, x, n_points) = fixture();
        let mut pass = Pass::new(&model.sizes, n_points);
        let mut scratch = vec![0.0; 5 * n_points];
        model.wake(
            &x,
            n_points,
            1,
            &mut scratch,
            &mut pass,
            &mut Stream::new(4, &[]),
        );
        // Recompute log p(x, h) of column 0 unit by unit in f64.
        let column = |level: usize| pass.h[level][..model.sizes[level]].to_vec();
        let mut expected = 0.0;
        let top = model.n_layers();
        for (i, &h) in column(top).iter().enumerate() {
            let a = model.params.tensors[0].data[i] as f64;
            expected += h as f64 * a - crate::math::softplus(a);
        }
        for l in 0..top {
            let w = model.p_weight(l);
            let b = &model.params.tensors[model.p_index(l) + 1].data;
            let parents = column(l + 1);
            for (i, &s) in column(l).iter().enumerate() {
                let a = b[i] as f64
                    + (0..parents.len())
                        .map(|j| w[(i, j)] as f64 * parents[j] as f64)
                        .sum::<f64>();
                expected += s as f64 * a - crate::math::softplus(a);
            }
        }
        assert!(
            (pass.log_p[0] - expected).abs() < 1e-4,
            "{} vs {expected}",
            pass.log_p[0]
        );
        assert!(
            pass.h
                .iter()
                .all(|level| level.iter().all(|&v| v == 0.0 || v == 1.0))
        );
    }
}
