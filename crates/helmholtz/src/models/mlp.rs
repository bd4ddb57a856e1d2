//! A small multilayer perceptron with an explicit backward pass: the amortized encoders of sparse
//! coding, and later the VAE.
//!
//! Layer l maps a batch A_{l−1} (n_{l−1} × B, one sample per column) to
//! Z_l = W_l A_{l−1} + b_l 1ᵀ and A_l = φ(Z_l), with φ the hidden activation on every layer but
//! the last, which is linear. The parameters are stored as f32 named tensors (`<prefix>.<l>.w`,
//! `<prefix>.<l>.b`) so the optimizers and checkpoints handle them like any model's; the passes
//! run in f64, because the objectives they feed are f64 and so that finite differences can check
//! the backward pass tightly.

use faer::{Mat, MatRef};

use super::params::{ParamSet, Tensor};
use crate::error::{Error, Result};
use crate::math::linalg::{matmul_by_columns, matmul_transpose_by_columns};
use crate::math::rng::{Stream, ids};

/// The activation of the hidden layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// tanh.
    #[default]
    Tanh,
    /// max(0, z).
    Relu,
}

impl Activation {
    fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Tanh => z.tanh(),
            Activation::Relu => z.max(0.0),
        }
    }

    /// φ'(z) from the output a = φ(z).
    fn derivative_from_output(self, a: f64) -> f64 {
        match self {
            Activation::Tanh => 1.0 - a * a,
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// The layer sizes and activation of an MLP; its parameters live in a [`ParamSet`].
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Tensor name prefix.
    pub prefix: String,
    /// n_0 (input), n_1, …, n_L (output).
    pub sizes: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
}

/// What the forward pass keeps for the backward pass: the input and every layer's output.
#[derive(Clone, Debug)]
pub struct Tape {
    /// A_0 (the input), A_1, …, A_L (the output).
    pub activations: Vec<Mat<f64>>,
}

impl Tape {
    /// The network's output A_L.
    pub fn output(&self) -> &Mat<f64> {
        self.activations
            .last()
            .expect("a tape holds at least the input")
    }
}

impl Mlp {
    /// An MLP with the given sizes (at least input and output).
    pub fn new(prefix: &str, sizes: &[usize], activation: Activation) -> Result<Self> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::Config(format!(
                "an MLP needs at least an input and an output size, all ≥ 1, got {sizes:?}"
            )));
        }
        Ok(Mlp {
            prefix: prefix.to_string(),
            sizes: sizes.to_vec(),
            activation,
        })
    }

    /// Number of layers L.
    pub fn n_layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Parameters drawn from `seed`: W_l ~ N(0, 1/n_{l−1}) (LeCun), b_l = 0.
    pub fn init(&self, seed: u64) -> ParamSet {
        let mut rng = Stream::new(seed, &[ids::INIT]);
        let mut tensors = Vec::with_capacity(2 * self.n_layers());
        for (l, pair) in self.sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let mut w = Tensor::zeros(format!("{}.{l}.w", self.prefix), &[fan_out, fan_in]);
            let scale = (1.0 / fan_in as f64).sqrt();
            w.data
                .iter_mut()
                .for_each(|v| *v = (scale * rng.normal()) as f32);
            tensors.push(w);
            tensors.push(Tensor::zeros(format!("{}.{l}.b", self.prefix), &[fan_out]));
        }
        ParamSet { tensors }
    }

    /// Checks that `params` holds this MLP's tensors, in order, with the right shapes.
    pub fn check(&self, params: &[Tensor]) -> Result<()> {
        if params.len() != 2 * self.n_layers() {
            return Err(Error::Dimension(format!(
                "an MLP of {} layers needs {} tensors, got {}",
                self.n_layers(),
                2 * self.n_layers(),
                params.len()
            )));
        }
        for (l, pair) in self.sizes.windows(2).enumerate() {
            let (w, b) = (&params[2 * l], &params[2 * l + 1]);
            if w.shape != [pair[1], pair[0]] || b.shape != [pair[1]] {
                return Err(Error::Dimension(format!(
                    "MLP layer {l}: expected {}×{} weights and {} biases, got {:?} and {:?}",
                    pair[1], pair[0], pair[1], w.shape, b.shape
                )));
            }
        }
        Ok(())
    }

    /// The forward pass of a batch `x` (n_0 × B).
    pub fn forward(&self, params: &[Tensor], x: MatRef<'_, f64>) -> Result<Tape> {
        self.check(params)?;
        if x.nrows() != self.sizes[0] {
            return Err(Error::Dimension(format!(
                "an MLP with {} inputs given {}-dimensional data",
                self.sizes[0],
                x.nrows()
            )));
        }
        let batch = x.ncols();
        let mut activations = Vec::with_capacity(self.sizes.len());
        activations.push(x.to_owned());
        for l in 0..self.n_layers() {
            let (w, b) = (weights(&params[2 * l]), &params[2 * l + 1].data);
            let mut z = Mat::from_fn(w.nrows(), batch, |r, _| f64::from(b[r]));
            matmul_by_columns(z.as_mut(), w.as_ref(), activations[l].as_ref(), 1.0, true);
            if l + 1 < self.n_layers() {
                for c in 0..batch {
                    for v in z.col_mut(c).iter_mut() {
                        *v = self.activation.apply(*v);
                    }
                }
            }
            activations.push(z);
        }
        Ok(Tape { activations })
    }

    /// The backward pass: given ∂f/∂A_L (n_L × B) for the batch of `tape`, adds ∂f/∂θ to
    /// `grads` (laid out like `params`) and returns ∂f/∂x.
    pub fn backward(
        &self,
        params: &[Tensor],
        tape: &Tape,
        d_output: MatRef<'_, f64>,
        grads: &mut [Tensor],
    ) -> Mat<f64> {
        self.backward_to(params, tape, d_output, grads, true)
    }

    /// As [`Mlp::backward`] without ∂f/∂x (an encoder's input is data: the product through the
    /// first layer's weights is skipped).
    pub fn backward_params(
        &self,
        params: &[Tensor],
        tape: &Tape,
        d_output: MatRef<'_, f64>,
        grads: &mut [Tensor],
    ) {
        self.backward_to(params, tape, d_output, grads, false);
    }

    fn backward_to(
        &self,
        params: &[Tensor],
        tape: &Tape,
        d_output: MatRef<'_, f64>,
        grads: &mut [Tensor],
        input_gradient: bool,
    ) -> Mat<f64> {
        let batch = d_output.ncols();
        let mut delta = d_output.to_owned();
        for l in (0..self.n_layers()).rev() {
            // delta = ∂f/∂Z_l.
            let input = &tape.activations[l];
            let mut g_w = Mat::<f64>::zeros(self.sizes[l + 1], self.sizes[l]);
            matmul_transpose_by_columns(g_w.as_mut(), delta.as_ref(), input.as_ref(), 1.0);
            let (gw, rest) = grads[2 * l..].split_at_mut(1);
            for (c, column) in gw[0].data.chunks_exact_mut(self.sizes[l + 1]).enumerate() {
                for (r, v) in column.iter_mut().enumerate() {
                    *v += g_w[(r, c)] as f32;
                }
            }
            for (r, v) in rest[0].data.iter_mut().enumerate() {
                *v += (0..batch).map(|c| delta[(r, c)]).sum::<f64>() as f32;
            }
            if l == 0 && !input_gradient {
                return Mat::zeros(0, 0);
            }
            let w = weights(&params[2 * l]);
            let mut below = Mat::<f64>::zeros(self.sizes[l], batch);
            matmul_by_columns(below.as_mut(), w.transpose(), delta.as_ref(), 1.0, false);
            if l > 0 {
                for c in 0..batch {
                    for r in 0..self.sizes[l] {
                        below[(r, c)] *= self.activation.derivative_from_output(input[(r, c)]);
                    }
                }
            }
            delta = below;
        }
        delta
    }
}

/// A weight tensor (rows × cols, column-major f32) as an f64 matrix.
fn weights(t: &Tensor) -> Mat<f64> {
    let (rows, cols) = (t.shape[0], t.shape[1]);
    Mat::from_fn(rows, cols, |r, c| f64::from(t.data[c * rows + r]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f(θ, x) = Σ c ⊙ MLP(x) for a fixed random c, so ∂f/∂A_L = c.
    fn weighted_output(mlp: &Mlp, params: &[Tensor], x: &Mat<f64>, c: &Mat<f64>) -> f64 {
        let out = mlp.forward(params, x.as_ref()).unwrap();
        let y = out.output();
        (0..y.ncols())
            .map(|j| (0..y.nrows()).map(|i| y[(i, j)] * c[(i, j)]).sum::<f64>())
            .sum()
    }

    #[test]
    fn the_backward_pass_matches_finite_differences() {
        for activation in [Activation::Tanh, Activation::Relu] {
            let mlp = Mlp::new("enc", &[5, 7, 6, 3], activation).unwrap();
            let mut params = mlp.init(3).tensors;
            // Non-zero biases, so every path is exercised.
            let mut rng = Stream::new(9, &[]);
            for t in params.iter_mut().filter(|t| t.name.ends_with(".b")) {
                t.data
                    .iter_mut()
                    .for_each(|v| *v = (0.3 * rng.normal()) as f32);
            }
            let x = Mat::from_fn(5, 4, |_, _| rng.normal());
            let c = Mat::from_fn(3, 4, |_, _| rng.normal());
            let tape = mlp.forward(&params, x.as_ref()).unwrap();
            let mut grads: Vec<Tensor> = params.iter().map(Tensor::zeros_like).collect();
            let d_x = mlp.backward(&params, &tape, c.as_ref(), &mut grads);
            let mut only_params: Vec<Tensor> = params.iter().map(Tensor::zeros_like).collect();
            mlp.backward_params(&params, &tape, c.as_ref(), &mut only_params);
            assert_eq!(only_params, grads);
            for (t, g) in (0..params.len()).zip(&grads) {
                for i in 0..params[t].data.len() {
                    let h = 1e-3f32;
                    let original = params[t].data[i];
                    params[t].data[i] = original + h;
                    let up = weighted_output(&mlp, &params, &x, &c);
                    let step_up = f64::from(params[t].data[i]) - f64::from(original);
                    params[t].data[i] = original - h;
                    let down = weighted_output(&mlp, &params, &x, &c);
                    let step_down = f64::from(original) - f64::from(params[t].data[i]);
                    params[t].data[i] = original;
                    let numeric = (up - down) / (step_up + step_down);
                    let analytic = f64::from(g.data[i]);
                    assert!(
                        (numeric - analytic).abs() < 1e-4 * (1.0 + numeric.abs()),
                        "{activation:?} {}[{i}]: analytic {analytic}, numeric {numeric}",
                        g.name
                    );
                }
            }
            for i in 0..5 {
                for j in 0..4 {
                    let mut xp = x.clone();
                    xp[(i, j)] += 1e-6;
                    let mut xm = x.clone();
                    xm[(i, j)] -= 1e-6;
                    let numeric = (weighted_output(&mlp, &params, &xp, &c)
                        - weighted_output(&mlp, &params, &xm, &c))
                        / 2e-6;
                    assert!(
                        (numeric - d_x[(i, j)]).abs() < 1e-6 * (1.0 + numeric.abs()),
                        "{activation:?} ∂f/∂x[{i},{j}]: {} vs {numeric}",
                        d_x[(i, j)]
                    );
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_rejected() {
        assert!(Mlp::new("e", &[3], Activation::Tanh).is_err());
        assert!(Mlp::new("e", &[3, 0, 2], Activation::Tanh).is_err());
        let mlp = Mlp::new("e", &[3, 4, 2], Activation::Tanh).unwrap();
        let params = mlp.init(0).tensors;
        assert!(
            mlp.forward(&params, Mat::<f64>::zeros(4, 2).as_ref())
                .is_err()
        );
        assert!(
            mlp.forward(&params[..2], Mat::<f64>::zeros(3, 2).as_ref())
                .is_err()
        );
        let other = Mlp::new("e", &[3, 5, 2], Activation::Tanh).unwrap();
        assert!(
            other
                .forward(&params, Mat::<f64>::zeros(3, 2).as_ref())
                .is_err()
        );
    }
}
