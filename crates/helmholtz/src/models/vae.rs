//! Gaussian VAEs with learned variances (entropy.md §1.4): z ~ p(z), x | z Gaussian with an MLP
//! decoder mean, q(z | x) = N(μ(x), diag τ²(x)) from an MLP encoder, trained on the
//! reparameterised ELBO. Three variants:
//!
//! * **VAE-1**: p(z) = N(0, I), p(x | z) = N(f(z), σ² I) with a learned scalar σ². At
//!   stationary points the ELBO equals (1/N) Σ_n Σ_h log τ_h(x_n) − (D/2) log(2πeσ²).
//! * **VAE-2**: p(z) = N(0, diag α²) with learned prior variances and the columns of the
//!   decoder's first weight matrix held at unit norm (the weights are stored free and normalised
//!   in the forward pass); the sum becomes (1/N) Σ_n Σ_h log(τ_nh / α_h) − (D/2) log(2πeσ²).
//! * **VAE-3**: p(x | z) = N(f(z), diag σ²(z)), the decoder's second head giving log σ_d²(z);
//!   the sum is (1/N) Σ_n [Σ_h log τ_h(x_n) − E_q Σ_d log σ_d(z)] − (D/2) log(2πe), whose
//!   last expectation is estimated with the draws of the ELBO.

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::mlp::{Activation, Mlp, Tape};
use super::params::{ParamSet, Tensor};
use crate::dist::{EntropySum, LN_2PI_E, gaussian_entropy};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// Which decoder and prior variances the VAE learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VaeKind {
    /// A scalar decoder variance σ², standard-normal prior.
    #[serde(rename = "vae-1")]
    Vae1,
    /// A scalar σ², prior variances α_h², unit-norm first-layer decoder columns.
    #[serde(rename = "vae-2")]
    Vae2,
    /// Per-dimension decoder variances σ_d²(z) from the decoder, standard-normal prior.
    #[serde(rename = "vae-3")]
    Vae3,
}

impl VaeKind {
    /// The name used in configs ("vae-1", …).
    pub fn name(self) -> &'static str {
        match self {
            VaeKind::Vae1 => "vae-1",
            VaeKind::Vae2 => "vae-2",
            VaeKind::Vae3 => "vae-3",
        }
    }
}

/// The VAE: encoder, decoder and the variance parameters, all in one [`ParamSet`]
/// (`encoder.*`, `decoder.*`, then `log_sigma2` for VAE-1/2 and `log_alpha2` for VAE-2).
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianVae {
    /// Which variant.
    pub kind: VaeKind,
    /// D → hidden → 2H (means, then log standard deviations).
    pub encoder: Mlp,
    /// H → hidden → D (VAE-1/2: the mean) or 2D (VAE-3: the mean, then log σ_d²).
    pub decoder: Mlp,
    /// The parameters.
    pub params: ParamSet,
}

/// A batch estimate of the ELBO and its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct VaeBatch {
    /// Mean ELBO per point (one reparameterised draw per point).
    pub elbo: f64,
    /// The entropy decomposition: mean q entropy, prior entropy, expected noise entropy.
    pub entropies: EntropySum,
    /// Per latent h, the mean over the batch of H[q(z_h | x)] = ½ log(2πe τ_h²).
    pub latent_entropies: Vec<f64>,
    /// Per latent h, the prior entropy ½ log(2πe α_h²) (α = 1 but for VAE-2).
    pub prior_entropies: Vec<f64>,
    /// Mean over the batch of ‖x − f(z)‖² (the squared reconstruction error).
    pub squared_error: f64,
}

/// A latent is counted as collapsed when its mean encoder entropy is within this many nats of
/// its prior entropy: for a standard-normal prior, entropies above 1.0 nat (the authors'
/// threshold; the prior's is ½ log(2πe) ≈ 1.419).
pub const COLLAPSE_MARGIN: f64 = 0.5 * LN_2PI_E - 1.0;

impl VaeBatch {
    /// The number of latents whose encoder entropy is within [`COLLAPSE_MARGIN`] of the prior's.
    pub fn collapsed(&self) -> usize {
        self.latent_entropies
            .iter()
            .zip(&self.prior_entropies)
            .filter(|(q, p)| **q > **p - COLLAPSE_MARGIN)
            .count()
    }

    /// Accumulates `other`, of `weight` points, into a running per-point mean of `seen` points.
    pub fn merge(&mut self, other: &VaeBatch, seen: usize, weight: usize) {
        let (a, b) = (
            seen as f64 / (seen + weight) as f64,
            weight as f64 / (seen + weight) as f64,
        );
        let mix = |x: &mut f64, y: f64| *x = a * *x + b * y;
        mix(&mut self.elbo, other.elbo);
        mix(&mut self.squared_error, other.squared_error);
        mix(&mut self.entropies.elbo, other.entropies.elbo);
        mix(&mut self.entropies.posterior, other.entropies.posterior);
        mix(&mut self.entropies.prior, other.entropies.prior);
        mix(&mut self.entropies.observable, other.entropies.observable);
        for (x, y) in self
            .latent_entropies
            .iter_mut()
            .zip(&other.latent_entropies)
        {
            mix(x, *y);
        }
        for (x, y) in self.prior_entropies.iter_mut().zip(&other.prior_entropies) {
            mix(x, *y);
        }
    }
}

impl GaussianVae {
    /// A VAE of the given kind for D-dimensional data with `hidden` widths on both sides and H
    /// latents, weights drawn from `seed`, σ² = 1 and α² = 1.
    pub fn new(
        kind: VaeKind,
        dim: usize,
        hidden: &[usize],
        n_latents: usize,
        activation: Activation,
        seed: u64,
    ) -> Result<Self> {
        if dim == 0 || n_latents == 0 {
            return Err(Error::Config(format!(
                "a VAE needs data and latents, got D = {dim} and H = {n_latents}"
            )));
        }
        let mut enc = vec![dim];
        enc.extend_from_slice(hidden);
        enc.push(2 * n_latents);
        let mut dec = vec![n_latents];
        dec.extend(hidden.iter().rev());
        dec.push(if kind == VaeKind::Vae3 { 2 * dim } else { dim });
        let encoder = Mlp::new("encoder", &enc, activation)?;
        let decoder = Mlp::new("decoder", &dec, activation)?;
        let mut params = encoder.init(seed);
        params
            .tensors
            .extend(decoder.init(seed.wrapping_add(1)).tensors);
        match kind {
            VaeKind::Vae1 => params.tensors.push(Tensor::zeros("log_sigma2", &[1])),
            VaeKind::Vae2 => {
                params.tensors.push(Tensor::zeros("log_sigma2", &[1]));
                params
                    .tensors
                    .push(Tensor::zeros("log_alpha2", &[n_latents]));
            }
            VaeKind::Vae3 => {}
        }
        Ok(GaussianVae {
            kind,
            encoder,
            decoder,
            params,
        })
    }

    /// Latents H.
    pub fn n_latents(&self) -> usize {
        self.decoder.sizes[0]
    }

    /// Data dimension D.
    pub fn dim(&self) -> usize {
        self.encoder.sizes[0]
    }

    fn n_encoder(&self) -> usize {
        2 * self.encoder.n_layers()
    }

    fn n_decoder(&self) -> usize {
        2 * self.decoder.n_layers()
    }

    /// log σ² (VAE-1/2).
    pub fn log_sigma2(&self) -> Option<f64> {
        self.params.get("log_sigma2").map(|t| f64::from(t.data[0]))
    }

    /// log α_h² per latent (zeros but for VAE-2).
    pub fn log_alpha2(&self) -> Vec<f64> {
        match self.params.get("log_alpha2") {
            Some(t) => t.data.iter().map(|&v| f64::from(v)).collect(),
            None => vec![0.0; self.n_latents()],
        }
    }

    /// The decoder's parameters as used in the forward pass: VAE-2 normalises the columns of the
    /// first weight matrix.
    fn decoder_params(&self) -> Vec<Tensor> {
        let e = self.n_encoder();
        let mut dec = self.params.tensors[e..e + self.n_decoder()].to_vec();
        if self.kind == VaeKind::Vae2 {
            let h = self.n_latents();
            let w = &mut dec[0].data;
            for c in 0..h {
                let norm = column_norm(w, h, c);
                (c..w.len())
                    .step_by(h)
                    .for_each(|i| w[i] = (f64::from(w[i]) / norm) as f32);
            }
        }
        dec
    }

    /// The ELBO of the batch `x` (D × B) with the standard-normal draws `eps` (H × B), and with
    /// `grads` (laid out like `params`), ∂ELBO/∂θ written there.
    pub fn elbo(
        &self,
        x: MatRef<'_, f64>,
        eps: MatRef<'_, f64>,
        grads: Option<&mut ParamSet>,
    ) -> Result<VaeBatch> {
        let (h, b, d) = (self.n_latents(), x.ncols(), x.nrows());
        if eps.nrows() != h || eps.ncols() != b || b == 0 {
            return Err(Error::Dimension(format!(
                "noise of {}×{} for {h} latents and {b} points",
                eps.nrows(),
                eps.ncols()
            )));
        }
        let e = self.n_encoder();
        let enc_params = &self.params.tensors[..e];
        let dec_params = self.decoder_params();
        let log_alpha2 = self.log_alpha2();
        let alpha2: Vec<f64> = log_alpha2.iter().map(|v| v.exp()).collect();
        let enc_tape = self.encoder.forward(enc_params, x)?;
        let out = enc_tape.output();
        let tau = Mat::from_fn(h, b, |i, j| out[(h + i, j)].exp());
        let z = Mat::from_fn(h, b, |i, j| out[(i, j)] + tau[(i, j)] * eps[(i, j)]);
        let dec_tape: Tape = self.decoder.forward(&dec_params, z.as_ref())?;
        let dec_out = dec_tape.output();
        let n = b as f64;
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        // Σ_n ‖x_n − f(z_n)‖², and for VAE-3 the weighted squares and Σ log σ_d².
        let mut squared = 0.0;
        let mut weighted = 0.0;
        let mut log_var_sum = 0.0;
        for j in 0..b {
            for r in 0..d {
                let diff2 = (x[(r, j)] - dec_out[(r, j)]).powi(2);
                squared += diff2;
                if self.kind == VaeKind::Vae3 {
                    let s = dec_out[(d + r, j)];
                    weighted += diff2 * (-s).exp();
                    log_var_sum += s;
                }
            }
        }
        let log_sigma2 = self.log_sigma2().unwrap_or(0.0);
        let sigma2 = log_sigma2.exp();
        let log_lik = match self.kind {
            VaeKind::Vae3 => -0.5 * (d as f64 * log_2pi + (log_var_sum + weighted) / n),
            _ => -0.5 * d as f64 * (log_2pi + log_sigma2) - squared / (2.0 * sigma2 * n),
        };
        // KL(q ‖ p) per point, and the per-latent entropies of q.
        let mut kl = 0.0;
        let mut latent_entropies = vec![0.0; h];
        for j in 0..b {
            for i in 0..h {
                let (m, t, log_t) = (out[(i, j)], tau[(i, j)], out[(h + i, j)]);
                kl += 0.5 * (log_alpha2[i] + (m * m + t * t) / alpha2[i] - 1.0) - log_t;
                latent_entropies[i] += 0.5 * LN_2PI_E + log_t;
            }
        }
        latent_entropies.iter_mut().for_each(|v| *v /= n);
        let prior_entropies: Vec<f64> =
            log_alpha2.iter().map(|&l| gaussian_entropy(1, l)).collect();
        let elbo = log_lik - kl / n;
        let observable = match self.kind {
            VaeKind::Vae3 => 0.5 * (d as f64 * LN_2PI_E + log_var_sum / n),
            _ => gaussian_entropy(d, d as f64 * log_sigma2),
        };
        let entropies = EntropySum::new(
            elbo,
            latent_entropies.iter().sum(),
            prior_entropies.iter().sum(),
            observable,
        );
        if let Some(grads) = grads {
            grads.fill_zero();
            let k = self.n_decoder();
            let (enc_grads, rest) = grads.tensors.split_at_mut(e);
            let (dec_grads, extra) = rest.split_at_mut(k);
            // ∂ELBO/∂(decoder output).
            let d_out_dec = match self.kind {
                VaeKind::Vae3 => Mat::from_fn(2 * d, b, |r, j| {
                    if r < d {
                        let s = dec_out[(d + r, j)];
                        (x[(r, j)] - dec_out[(r, j)]) * (-s).exp() / n
                    } else {
                        let diff2 = (x[(r - d, j)] - dec_out[(r - d, j)]).powi(2);
                        0.5 * (diff2 * (-dec_out[(r, j)]).exp() - 1.0) / n
                    }
                }),
                _ => Mat::from_fn(d, b, |r, j| (x[(r, j)] - dec_out[(r, j)]) / (sigma2 * n)),
            };
            let d_z = self
                .decoder
                .backward(&dec_params, &dec_tape, d_out_dec.as_ref(), dec_grads);
            if self.kind == VaeKind::Vae2 {
                // Through the column normalisation: g_v = (g − ŵ (ŵ·g)) / ‖v‖.
                let raw = &self.params.tensors[e].data;
                let g = &mut dec_grads[0].data;
                for c in 0..h {
                    let norm = column_norm(raw, h, c);
                    let dot: f64 = (c..raw.len())
                        .step_by(h)
                        .map(|i| f64::from(raw[i]) * f64::from(g[i]))
                        .sum::<f64>()
                        / norm;
                    (c..raw.len()).step_by(h).for_each(|i| {
                        let w_hat = f64::from(raw[i]) / norm;
                        g[i] = ((f64::from(g[i]) - w_hat * dot) / norm) as f32;
                    });
                }
            }
            // z = μ + τ ε with log τ the second head; −KL/B adds −μ/(α²B) and (1 − τ²/α²)/B.
            let d_out_enc = Mat::from_fn(2 * h, b, |i, j| {
                if i < h {
                    d_z[(i, j)] - out[(i, j)] / (alpha2[i] * n)
                } else {
                    let (l, t) = (i - h, tau[(i - h, j)]);
                    d_z[(l, j)] * t * eps[(l, j)] + (1.0 - t * t / alpha2[l]) / n
                }
            });
            self.encoder
                .backward_params(enc_params, &enc_tape, d_out_enc.as_ref(), enc_grads);
            if self.kind != VaeKind::Vae3 {
                extra[0].data[0] = (-0.5 * d as f64 + squared / (2.0 * sigma2 * n)) as f32;
            }
            if self.kind == VaeKind::Vae2 {
                for (i, g) in extra[1].data.iter_mut().enumerate() {
                    let second: f64 = (0..b)
                        .map(|j| out[(i, j)].powi(2) + tau[(i, j)].powi(2))
                        .sum();
                    *g = (0.5 * (second / (alpha2[i] * n) - 1.0)) as f32;
                }
            }
        }
        Ok(VaeBatch {
            elbo,
            entropies,
            latent_entropies,
            prior_entropies,
            squared_error: squared / n,
        })
    }

    /// Sets the variances that have closed-form stationary values to those values for the batch
    /// `x` with draws `eps`: σ² = (1/(BD)) Σ ‖x − f(z)‖² (the authors' `logsigma2_opt`;
    /// VAE-1/2) and α_h² = (1/B) Σ_n (μ_nh² + τ_nh²) (`logalpha2_opt`; VAE-2).
    pub fn set_optimal_variances(
        &mut self,
        x: MatRef<'_, f64>,
        eps: MatRef<'_, f64>,
    ) -> Result<()> {
        if self.kind == VaeKind::Vae3 {
            return Err(Error::Config(
                "VAE-3's decoder variances depend on z and have no closed form".into(),
            ));
        }
        let batch = self.elbo(x, eps, None)?;
        let sigma2 = batch.squared_error / x.nrows() as f64;
        if !(sigma2.is_finite() && sigma2 > 0.0) {
            return Err(Error::Diverged(format!("optimal σ² = {sigma2}")));
        }
        let h = self.n_latents();
        let out = self
            .encoder
            .forward(&self.params.tensors[..self.n_encoder()], x)?
            .activations
            .pop()
            .expect("output");
        let n = x.ncols() as f64;
        for t in &mut self.params.tensors {
            if t.name == "log_sigma2" {
                t.data[0] = sigma2.ln() as f32;
            } else if t.name == "log_alpha2" {
                for l in 0..h {
                    let second: f64 = (0..x.ncols())
                        .map(|j| out[(l, j)].powi(2) + (2.0 * out[(h + l, j)]).exp())
                        .sum();
                    t.data[l] = (second / n).ln() as f32;
                }
            }
        }
        Ok(())
    }

    /// The encoder's posteriors q(z | x_n) = N(μ_n, diag τ_n²) of the columns of `x`: the
    /// means μ (H × N) and the log standard deviations log τ (H × N).
    pub fn encode(&self, x: MatRef<'_, f64>) -> Result<(Mat<f64>, Mat<f64>)> {
        let h = self.n_latents();
        let tape = self
            .encoder
            .forward(&self.params.tensors[..self.n_encoder()], x)?;
        let out = tape.output();
        Ok((out.subrows(0, h).to_owned(), out.subrows(h, h).to_owned()))
    }

    /// `n` draws x ~ p(x) (D × n) from `seed`: z ~ p(z), then x = f(z) + σ ε with the decoder's
    /// mean f and standard deviation σ (VAE-3: σ_d(z) from its second head).
    pub fn sample(&self, n: usize, seed: u64) -> Result<Mat<f64>> {
        let (h, d) = (self.n_latents(), self.dim());
        let mut rng = Stream::new(seed, &[ids::SAMPLE]);
        let prior_sd: Vec<f64> = self.log_alpha2().iter().map(|l| (0.5 * l).exp()).collect();
        let z = Mat::from_fn(h, n, |i, _| prior_sd[i] * rng.normal());
        let tape = self.decoder.forward(&self.decoder_params(), z.as_ref())?;
        let out = tape.output();
        let sigma = self.log_sigma2().map(|l| (0.5 * l).exp());
        let mut x = Mat::zeros(d, n);
        for j in 0..n {
            for r in 0..d {
                let sd = match sigma {
                    Some(s) => s,
                    None => (0.5 * out[(d + r, j)]).exp(),
                };
                x[(r, j)] = out[(r, j)] + sd * rng.normal();
            }
        }
        Ok(x)
    }

    /// Standard-normal draws for a batch of `b` points from (`seed`, `step`).
    pub fn noise(&self, b: usize, seed: u64, step: u64) -> Mat<f64> {
        self.noise_from(b, &mut Stream::new(seed, &[ids::SAMPLE, step]))
    }

    /// Standard-normal draws for a batch of `b` points from `rng`.
    pub fn noise_from(&self, b: usize, rng: &mut Stream) -> Mat<f64> {
        Mat::from_fn(self.n_latents(), b, |_, _| rng.normal())
    }
}

/// ‖column c‖ of a row-major matrix with `cols` columns stored in `w`.
fn column_norm(w: &[f32], cols: usize, c: usize) -> f64 {
    (c..w.len())
        .step_by(cols)
        .map(|i| f64::from(w[i]).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [VaeKind; 3] = [VaeKind::Vae1, VaeKind::Vae2, VaeKind::Vae3];

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

    fn model(kind: VaeKind, seed: u64) -> GaussianVae {
        let mut model = GaussianVae::new(kind, 6, &[5], 2, Activation::Tanh, seed).unwrap();
        // Move the variances off their initial values so that every gradient term is exercised.
        for t in &mut model.params.tensors {
            if t.name.starts_with("log_") {
                t.data
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = -0.7 + 0.3 * i as f32);
            }
        }
        model
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let x = data(7, 1);
        for kind in KINDS {
            let mut model = model(kind, 3);
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
                        (numeric - analytic).abs() < 2e-4 * (1.0 + numeric.abs()),
                        "{kind:?} {}[{i}]: analytic {analytic} vs numeric {numeric}",
                        grads.tensors[t].name
                    );
                }
            }
        }
    }

    #[test]
    fn the_optimal_variances_zero_their_gradients() {
        let x = data(50, 4);
        for kind in [VaeKind::Vae1, VaeKind::Vae2] {
            let mut model = model(kind, 1);
            let eps = model.noise(50, 2, 0);
            model
                .set_optimal_variances(x.as_ref(), eps.as_ref())
                .unwrap();
            let mut grads = model.params.zeros_like();
            let before = model
                .elbo(x.as_ref(), eps.as_ref(), Some(&mut grads))
                .unwrap()
                .elbo;
            for t in grads.tensors.iter().filter(|t| t.name.starts_with("log_")) {
                for g in &t.data {
                    assert!(g.abs() < 1e-4, "{kind:?}: ∂ELBO/∂{} = {g}", t.name);
                }
            }
            // Any other variance gives a lower ELBO for this batch.
            for shift in [-0.1f32, 0.1] {
                for name in ["log_sigma2", "log_alpha2"] {
                    let mut moved = model.clone();
                    if let Some(t) = moved.params.tensors.iter_mut().find(|t| t.name == name) {
                        t.data[0] += shift;
                        assert!(moved.elbo(x.as_ref(), eps.as_ref(), None).unwrap().elbo < before);
                    }
                }
            }
        }
        let mut vae3 = model(VaeKind::Vae3, 1);
        let eps = vae3.noise(50, 2, 0);
        assert!(
            vae3.set_optimal_variances(x.as_ref(), eps.as_ref())
                .is_err()
        );
    }

    /// VAE-2 stores its first decoder weights free and normalises each column: rescaling a
    /// stored column leaves the model unchanged.
    #[test]
    fn vae2_is_invariant_to_the_scale_of_its_first_decoder_columns() {
        let x = data(9, 5);
        let model = model(VaeKind::Vae2, 2);
        let eps = model.noise(9, 1, 0);
        let before = model.elbo(x.as_ref(), eps.as_ref(), None).unwrap();
        let mut scaled = model.clone();
        let e = scaled.n_encoder();
        let w = &mut scaled.params.tensors[e].data;
        (1..w.len()).step_by(2).for_each(|i| w[i] *= 3.0);
        let after = scaled.elbo(x.as_ref(), eps.as_ref(), None).unwrap();
        assert!(
            (before.elbo - after.elbo).abs() < 1e-5,
            "{} vs {}",
            before.elbo,
            after.elbo
        );
    }

    /// The ELBO's parts: with a standard-normal prior, entropy sum and ELBO differ by
    /// (D/2)(1 − ‖x − f‖²/(Dσ²)) + ½ Σ_h (1 − mean(μ_h² + τ_h²)) for VAE-1, term by term.
    #[test]
    fn vae1_gap_is_the_variance_mismatch() {
        let x = data(40, 6);
        let model = model(VaeKind::Vae1, 3);
        let eps = model.noise(40, 3, 0);
        let batch = model.elbo(x.as_ref(), eps.as_ref(), None).unwrap();
        let sigma2 = model.log_sigma2().unwrap().exp();
        let out = model
            .encoder
            .forward(&model.params.tensors[..model.n_encoder()], x.as_ref())
            .unwrap()
            .activations
            .pop()
            .unwrap();
        let second: f64 = (0..40)
            .map(|j| {
                (0..2)
                    .map(|i| out[(i, j)].powi(2) + (2.0 * out[(2 + i, j)]).exp())
                    .sum::<f64>()
            })
            .sum::<f64>()
            / 40.0;
        let expected = 3.0 * (1.0 - batch.squared_error / (6.0 * sigma2)) + 0.5 * (2.0 - second);
        let gap = batch.entropies.gap();
        assert!((gap - expected).abs() < 1e-9, "gap {gap} vs {expected}");
        assert_eq!(batch.latent_entropies.len(), 2);
    }

    #[test]
    fn collapsed_latents_are_those_at_the_prior_entropy() {
        let batch = VaeBatch {
            elbo: 0.0,
            entropies: EntropySum::new(0.0, 0.0, 0.0, 0.0),
            latent_entropies: vec![1.41, 0.2, 1.1, -3.0],
            prior_entropies: vec![gaussian_entropy(1, 0.0); 4],
            squared_error: 0.0,
        };
        assert_eq!(batch.collapsed(), 2);
    }

    #[test]
    fn encode_gives_the_posteriors_of_the_elbo_and_samples_follow_the_decoder() {
        let x = data(40, 2);
        for kind in KINDS {
            let model = model(kind, 5);
            let (means, log_tau) = model.encode(x.as_ref()).unwrap();
            assert_eq!((means.nrows(), means.ncols()), (2, 40));
            // The ELBO's per-latent entropies are the batch means of ½ ln(2πe) + log τ.
            let batch = model
                .elbo(x.as_ref(), model.noise(40, 0, 0).as_ref(), None)
                .unwrap();
            for h in 0..2 {
                let from_encode = (0..40)
                    .map(|j| 0.5 * LN_2PI_E + log_tau[(h, j)])
                    .sum::<f64>()
                    / 40.0;
                assert!((from_encode - batch.latent_entropies[h]).abs() < 1e-12);
            }
            // With the decoder's weights at zero, x = b + σ ε: its mean is the bias and its
            // variance σ² (VAE-3: exp of the second head's bias).
            let mut flat = model.clone();
            for t in &mut flat.params.tensors {
                if t.name.starts_with("decoder.") && t.name.ends_with(".w") {
                    t.data.fill(0.0);
                }
                if t.name.starts_with("decoder.") && t.name.ends_with(".b") {
                    t.data
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, v)| *v = 0.1 * i as f32 - 0.4);
                }
            }
            let n = 20_000;
            let draws = flat.sample(n, 7).unwrap();
            let last_bias = &flat.params.tensors[flat.n_encoder() + flat.n_decoder() - 1].data;
            for r in 0..6 {
                let mean = (0..n).map(|j| draws[(r, j)]).sum::<f64>() / n as f64;
                let var = (0..n).map(|j| (draws[(r, j)] - mean).powi(2)).sum::<f64>() / n as f64;
                let want_var = match kind {
                    VaeKind::Vae3 => f64::from(last_bias[6 + r]).exp(),
                    _ => flat.log_sigma2().unwrap().exp(),
                };
                let want_mean = f64::from(last_bias[r]);
                assert!(
                    (mean - want_mean).abs() < 5.0 * (want_var / n as f64).sqrt(),
                    "{kind:?} mean {r}"
                );
                assert!(
                    (var / want_var - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
                    "{kind:?} variance {r}: {var} vs {want_var}"
                );
            }
        }
    }
}
