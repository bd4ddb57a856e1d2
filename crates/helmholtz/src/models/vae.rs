//! A Gaussian VAE with a learned scalar decoder variance ("VAE-1", entropy.md §1.4):
//! z ~ N(0, I_H), x | z ~ N(f(z), σ² I_D), q(z | x) = N(μ(x), diag τ²(x)), with f an MLP decoder
//! and (μ, log τ) from an MLP encoder: the reparameterised ELBO of a batch with its gradient for
//! every parameter (checked by finite differences), and the closed-form optimal σ². The training
//! loop, VAE-2/3 and the convergence of the entropy gap are the next steps (issue 5).
//!
//! At stationary points its ELBO equals the entropy sum
//! (1/N) Σ_n Σ_h log τ_h(x_n) − (D/2) log(2πeσ²)
//! (the ½ log(2πe) terms of the encoder and the prior cancel).

use faer::{Mat, MatRef};

use super::mlp::{Activation, Mlp, Tape};
use super::params::{ParamSet, Tensor};
use crate::dist::{EntropySum, LN_2PI_E, gaussian_entropy};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// The VAE: encoder, decoder and log σ², all in one [`ParamSet`] (`encoder.*`, `decoder.*`,
/// `log_sigma2`).
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianVae {
    /// D → hidden → 2H (means, then log standard deviations).
    pub encoder: Mlp,
    /// H → hidden → D (the decoder mean, linear output).
    pub decoder: Mlp,
    /// The parameters.
    pub params: ParamSet,
}

/// A batch estimate of the ELBO and its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct VaeBatch {
    /// Mean ELBO per point (one reparameterised draw per point).
    pub elbo: f64,
    /// The entropy decomposition: mean q entropy, prior entropy, noise entropy.
    pub entropies: EntropySum,
}

impl GaussianVae {
    /// A VAE for D-dimensional data with `hidden` widths on both sides and H latents, parameters
    /// drawn from `seed`, σ² = 1.
    pub fn new(
        dim: usize,
        hidden: &[usize],
        n_latents: usize,
        activation: Activation,
        seed: u64,
    ) -> Result<Self> {
        let mut enc = vec![dim];
        enc.extend_from_slice(hidden);
        enc.push(2 * n_latents);
        let mut dec = vec![n_latents];
        dec.extend(hidden.iter().rev());
        dec.push(dim);
        let encoder = Mlp::new("encoder", &enc, activation)?;
        let decoder = Mlp::new("decoder", &dec, activation)?;
        let mut params = encoder.init(seed);
        params
            .tensors
            .extend(decoder.init(seed.wrapping_add(1)).tensors);
        params.tensors.push(Tensor::zeros("log_sigma2", &[1]));
        Ok(GaussianVae {
            encoder,
            decoder,
            params,
        })
    }

    /// Latents H.
    pub fn n_latents(&self) -> usize {
        self.decoder.sizes[0]
    }

    fn split(&self) -> (&[Tensor], &[Tensor], f64) {
        let e = 2 * self.encoder.n_layers();
        let d = 2 * self.decoder.n_layers();
        let t = &self.params.tensors;
        (&t[..e], &t[e..e + d], f64::from(t[e + d].data[0]))
    }

    /// The ELBO of the batch `x` (D × B) with the standard-normal draws `eps` (H × B), and with
    /// `grads` (laid out like `params`), ∂ELBO/∂θ written there.
    pub fn elbo(
        &self,
        x: MatRef<'_, f64>,
        eps: MatRef<'_, f64>,
        grads: Option<&mut ParamSet>,
    ) -> Result<VaeBatch> {
        let (enc_params, dec_params, log_sigma2) = self.split();
        let (h, b, d) = (self.n_latents(), x.ncols(), x.nrows());
        if eps.nrows() != h || eps.ncols() != b {
            return Err(Error::Dimension(format!(
                "noise of {}×{} for {h} latents and {b} points",
                eps.nrows(),
                eps.ncols()
            )));
        }
        let enc_tape = self.encoder.forward(enc_params, x)?;
        let out = enc_tape.output();
        let tau = Mat::from_fn(h, b, |i, j| out[(h + i, j)].exp());
        let z = Mat::from_fn(h, b, |i, j| out[(i, j)] + tau[(i, j)] * eps[(i, j)]);
        let dec_tape: Tape = self.decoder.forward(dec_params, z.as_ref())?;
        let mean = dec_tape.output();
        let sigma2 = log_sigma2.exp();
        let mut squared = 0.0;
        for j in 0..b {
            for r in 0..d {
                squared += (x[(r, j)] - mean[(r, j)]).powi(2);
            }
        }
        let kl: f64 = (0..b)
            .map(|j| {
                (0..h)
                    .map(|i| {
                        let (m, t) = (out[(i, j)], tau[(i, j)]);
                        0.5 * (m * m + t * t - 1.0) - out[(h + i, j)]
                    })
                    .sum::<f64>()
            })
            .sum();
        let n = b as f64;
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        let elbo = -0.5 * d as f64 * (log_2pi + log_sigma2) - squared / (2.0 * sigma2 * n) - kl / n;
        let log_tau_mean: f64 = (0..b)
            .map(|j| (0..h).map(|i| out[(h + i, j)]).sum::<f64>())
            .sum::<f64>()
            / n;
        let entropies = EntropySum::new(
            elbo,
            0.5 * h as f64 * LN_2PI_E + log_tau_mean,
            gaussian_entropy(h, 0.0),
            gaussian_entropy(d, d as f64 * log_sigma2),
        );
        if let Some(grads) = grads {
            grads.fill_zero();
            let e = 2 * self.encoder.n_layers();
            let k = 2 * self.decoder.n_layers();
            // ∂ELBO/∂f = (x − f)/(σ² B).
            let d_mean = Mat::from_fn(d, b, |r, j| (x[(r, j)] - mean[(r, j)]) / (sigma2 * n));
            let (enc_grads, rest) = grads.tensors.split_at_mut(e);
            let (dec_grads, sigma_grad) = rest.split_at_mut(k);
            let d_z = self
                .decoder
                .backward(dec_params, &dec_tape, d_mean.as_ref(), dec_grads);
            // z = μ + τ ε, log τ the second head; −KL/B adds −μ/B and (1 − τ²)/B.
            let d_out = Mat::from_fn(2 * h, b, |i, j| {
                if i < h {
                    d_z[(i, j)] - out[(i, j)] / n
                } else {
                    let t = tau[(i - h, j)];
                    d_z[(i - h, j)] * t * eps[(i - h, j)] + (1.0 - t * t) / n
                }
            });
            self.encoder
                .backward_params(enc_params, &enc_tape, d_out.as_ref(), enc_grads);
            sigma_grad[0].data[0] = (-0.5 * d as f64 + squared / (2.0 * sigma2 * n)) as f32;
        }
        Ok(VaeBatch { elbo, entropies })
    }

    /// Sets σ² to its optimum for the batch `x` with draws `eps`, (1/(BD)) Σ ‖x − f(z)‖² (the
    /// authors' `logsigma2_opt`), where ∂ELBO/∂σ² = 0.
    pub fn set_optimal_sigma2(&mut self, x: MatRef<'_, f64>, eps: MatRef<'_, f64>) -> Result<()> {
        let (enc_params, dec_params, _) = self.split();
        let h = self.n_latents();
        let enc = self.encoder.forward(enc_params, x)?;
        let out = enc.output();
        let z = Mat::from_fn(h, x.ncols(), |i, j| {
            out[(i, j)] + out[(h + i, j)].exp() * eps[(i, j)]
        });
        let dec = self.decoder.forward(dec_params, z.as_ref())?;
        let mean = dec.output();
        let mut squared = 0.0;
        for j in 0..x.ncols() {
            for r in 0..x.nrows() {
                squared += (x[(r, j)] - mean[(r, j)]).powi(2);
            }
        }
        let sigma2 = squared / (x.ncols() * x.nrows()) as f64;
        if !(sigma2.is_finite() && sigma2 > 0.0) {
            return Err(Error::Diverged(format!("optimal σ² = {sigma2}")));
        }
        self.params.tensors.last_mut().expect("log_sigma2").data[0] = sigma2.ln() as f32;
        Ok(())
    }

    /// Standard-normal draws for a batch of `b` points from (`seed`, `step`).
    pub fn noise(&self, b: usize, seed: u64, step: u64) -> Mat<f64> {
        let mut rng = Stream::new(seed, &[ids::SAMPLE, step]);
        Mat::from_fn(self.n_latents(), b, |_, _| rng.normal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Mat<f64> {
        // Points near a curved 2-D manifold in 6 dimensions, with noise.
        let mut rng = Stream::new(seed, &[]);
        let mut x = Mat::zeros(6, n);
        for j in 0..n {
            let (a, c) = (rng.normal(), rng.normal());
            let v = [a, c, a * c, (a).sin(), 0.5 * c * c, a - c];
            for r in 0..6 {
                x[(r, j)] = v[r] + 0.1 * rng.normal();
            }
        }
        x
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let x = data(7, 1);
        let mut model = GaussianVae::new(6, &[5], 2, Activation::Tanh, 3).unwrap();
        model.params.tensors.last_mut().unwrap().data[0] = -0.7;
        let eps = model.noise(7, 0, 0);
        let mut grads = model.params.zeros_like();
        model
            .elbo(x.as_ref(), eps.as_ref(), Some(&mut grads))
            .unwrap();
        for t in 0..model.params.tensors.len() {
            for i in 0..model.params.tensors[t].data.len() {
                let o = model.params.tensors[t].data[i];
                model.params.tensors[t].data[i] = o + 1e-3;
                let up_at = f64::from(model.params.tensors[t].data[i]);
                let up = model.elbo(x.as_ref(), eps.as_ref(), None).unwrap().elbo;
                model.params.tensors[t].data[i] = o - 1e-3;
                let down_at = f64::from(model.params.tensors[t].data[i]);
                let down = model.elbo(x.as_ref(), eps.as_ref(), None).unwrap().elbo;
                model.params.tensors[t].data[i] = o;
                let numeric = (up - down) / (up_at - down_at);
                let analytic = f64::from(grads.tensors[t].data[i]);
                assert!(
                    (numeric - analytic).abs() < 1e-4 * (1.0 + numeric.abs()),
                    "{}[{i}]: analytic {analytic} vs numeric {numeric}",
                    grads.tensors[t].name
                );
            }
        }
    }

    #[test]
    fn the_optimal_sigma2_zeroes_its_gradient() {
        let x = data(50, 4);
        let mut model = GaussianVae::new(6, &[5], 2, Activation::Tanh, 1).unwrap();
        let eps = model.noise(50, 2, 0);
        model.set_optimal_sigma2(x.as_ref(), eps.as_ref()).unwrap();
        let mut grads = model.params.zeros_like();
        let before = model
            .elbo(x.as_ref(), eps.as_ref(), Some(&mut grads))
            .unwrap()
            .elbo;
        let g = grads.tensors.last().unwrap().data[0];
        assert!(g.abs() < 1e-4, "∂ELBO/∂log σ² = {g}");
        // Any other σ² gives a lower ELBO for this batch.
        for shift in [-0.1f32, 0.1] {
            let mut moved = model.clone();
            moved.params.tensors.last_mut().unwrap().data[0] += shift;
            assert!(moved.elbo(x.as_ref(), eps.as_ref(), None).unwrap().elbo < before);
        }
    }
}
