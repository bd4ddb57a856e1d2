//! Wake-sleep (WS), reweighted wake-sleep (RWS) and the bidirectional Helmholtz machine (BiHM):
//! the gradients of one minibatch (nrws.md §2.1–2.3).
//!
//! All three share one pass structure and differ only in the importance weights and in how the
//! recognition update is split between the wake and the sleep phase. Gradients are written for a
//! loss to minimise (the negative of the ascent directions in the papers) and averaged over the
//! batch, as in the NRWS code.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::math::logsumexp;
use crate::math::numerics::softmax_scaled_in_place;
use crate::math::rng::{Stream, ids};
use crate::models::{HelmholtzMachine, ParamSet, Pass};
use crate::optim::fisher::{LayerSamples, generative_samples, recognition_samples};
use crate::optim::natural::FisherSamples;

/// Which member of the wake-sleep family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Wake-sleep (Hinton et al. 1995): one q sample per point, q learns from dreams only.
    Ws,
    /// Reweighted wake-sleep (Bornschein & Bengio 2015): K samples, normalised weights ω̃.
    Rws,
    /// Bidirectional HM (Bornschein et al. 2016): weights ∝ √ω, no sleep phase.
    Bihm,
}

/// Hyper-parameters of one wake-sleep family algorithm, checked once by [`WakeSleep::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct WakeSleepConfig {
    /// The variant.
    pub variant: Variant,
    /// Importance samples per data point (1 for WS).
    pub k: usize,
    /// Share of the q update taken from the wake phase; the rest comes from the sleep phase.
    pub wake_fraction: f64,
    /// Subtract the 1/K baseline from the weights of the q wake update.
    pub q_baseline: bool,
    /// Data points per parallel chunk. Fixed, so results do not depend on the thread count.
    pub chunk_points: usize,
}

impl Default for WakeSleepConfig {
    /// RWS with K = 10, half of q's update from the wake phase, the 1/K baseline, 25 points per
    /// parallel chunk (the config file's defaults).
    fn default() -> Self {
        WakeSleepConfig {
            variant: Variant::Rws,
            k: 10,
            wake_fraction: 0.5,
            q_baseline: true,
            chunk_points: 25,
        }
    }
}

/// What one minibatch reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchStats {
    /// Sum over the batch of the training bound: log p̂_K (IWAE bound) for WS/RWS, log p̃*
    /// (the BiHM bound, without log Z²) for BiHM.
    pub bound_sum: f64,
    /// Number of data points.
    pub n_points: usize,
}

struct Chunk {
    wake: Pass,
    dream: Pass,
    q0_points: Vec<f32>,
    log_weights: Vec<f64>,
    coefficients: Vec<f32>,
    grads: ParamSet,
    bound_sum: f64,
    fisher: FisherSamples,
}

/// The wake-sleep family learning algorithm with its reusable buffers.
pub struct WakeSleep {
    config: WakeSleepConfig,
    chunks: Vec<Chunk>,
}

impl WakeSleep {
    /// Checks the hyper-parameters.
    pub fn new(config: WakeSleepConfig) -> Result<Self> {
        if config.k == 0 || config.chunk_points == 0 {
            return Err(Error::Config(
                "k and chunk_points must be at least 1".into(),
            ));
        }
        if config.variant == Variant::Ws && config.k != 1 {
            return Err(Error::Config(format!(
                "wake-sleep draws one sample per data point: k must be 1, got {}",
                config.k
            )));
        }
        if !(0.0..=1.0).contains(&config.wake_fraction) {
            return Err(Error::Config(format!(
                "wake_fraction must lie in [0, 1], got {}",
                config.wake_fraction
            )));
        }
        Ok(WakeSleep {
            config,
            chunks: Vec::new(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &WakeSleepConfig {
        &self.config
    }

    /// The gradient of the loss for the `n_points` columns of `batch` (x_dim × n_points), drawn
    /// with the streams of (seed, step). Writes `grads` (same layout as the model's parameters).
    pub fn gradient(
        &mut self,
        model: &HelmholtzMachine,
        batch: &[f32],
        n_points: usize,
        seed: u64,
        step: u64,
        grads: &mut ParamSet,
    ) -> Result<BatchStats> {
        self.gradient_with_fisher(model, batch, n_points, seed, step, grads, None)
    }

    /// As [`WakeSleep::gradient`], and with `fisher` also the samples of a Fisher refresh: p
    /// layers from K·batch dreams (drawn for the purpose when the algorithm has no sleep phase), q
    /// layers from the wake samples (nrws.md §2.4).
    #[allow(clippy::too_many_arguments)]
    pub fn gradient_with_fisher(
        &mut self,
        model: &HelmholtzMachine,
        batch: &[f32],
        n_points: usize,
        seed: u64,
        step: u64,
        grads: &mut ParamSet,
        fisher: Option<&mut FisherSamples>,
    ) -> Result<BatchStats> {
        let collect = fisher.is_some();
        model.check_batch(batch, n_points)?;
        let chunk_points = self.config.chunk_points;
        let n_chunks = n_points.div_ceil(chunk_points);
        let capacity = chunk_points * self.config.k;
        if self.chunks.first().is_none_or(|c| {
            c.wake.capacity() != capacity
                || c.grads.tensors.len() != model.params.tensors.len()
                || c.wake.h.len() != model.sizes.len()
        }) {
            self.chunks.clear();
        }
        while self.chunks.len() < n_chunks {
            self.chunks.push(Chunk {
                wake: Pass::new(&model.sizes, capacity),
                dream: Pass::new(&model.sizes, capacity),
                q0_points: vec![0.0; model.sizes[1] * chunk_points],
                log_weights: vec![0.0; capacity],
                coefficients: vec![0.0; capacity],
                grads: model.params.zeros_like(),
                bound_sum: 0.0,
                fisher: FisherSamples::default(),
            });
        }
        let config = &self.config;
        let x_dim = model.x_dim();
        self.chunks[..n_chunks]
            .par_iter_mut()
            .enumerate()
            .for_each(|(c, chunk)| {
                let first = c * chunk_points;
                let points = chunk_points.min(n_points - first);
                let x = &batch[first * x_dim..(first + points) * x_dim];
                let mut rng = Stream::new(seed, &[ids::TRAIN, step, c as u64]);
                chunk_gradient(config, model, x, points, n_points, collect, &mut rng, chunk);
            });
        if let Some(samples) = fisher {
            *samples = FisherSamples::default();
            for chunk in &mut self.chunks[..n_chunks] {
                let part = std::mem::take(&mut chunk.fisher);
                append(&mut samples.generative, part.generative);
                append(&mut samples.recognition, part.recognition);
            }
        }
        grads.fill_zero();
        let mut bound_sum = 0.0;
        for chunk in &self.chunks[..n_chunks] {
            grads.add_assign(&chunk.grads);
            bound_sum += chunk.bound_sum;
        }
        Ok(BatchStats {
            bound_sum,
            n_points,
        })
    }
}

/// Normalised importance weights of one data point's K samples, in place: softmax(log ω) for
/// RWS, softmax(½ log ω) for BiHM (weights ∝ √ω). Returns that point's training bound.
pub fn importance_weights(variant: Variant, log_weights: &mut [f64]) -> f64 {
    let k = log_weights.len() as f64;
    let scale = if variant == Variant::Bihm { 0.5 } else { 1.0 };
    let scaled: Vec<f64> = log_weights.iter().map(|&v| v * scale).collect();
    let bound = (logsumexp(&scaled) - k.ln()) / scale;
    softmax_scaled_in_place(log_weights, scale);
    bound
}

/// Appends each layer's samples of `part` to those of `whole` (in chunk order).
fn append(whole: &mut Vec<LayerSamples>, part: Vec<LayerSamples>) {
    if whole.is_empty() {
        *whole = part;
        return;
    }
    for (w, p) in whole.iter_mut().zip(part) {
        w.parents.extend(p.parents);
        w.probs.extend(p.probs);
    }
}

/// Fisher samples of the first recognition layer from a wake pass, one per data point: its K
/// samples share the parents x and the probabilities σ(W x + b), so merging them (weight K/N
/// each, the default 1/B once all chunks are joined) gives exactly the same Fisher blocks with K
/// times fewer columns — the Woodbury solve then works on B × B instead of BK × BK systems.
fn first_recognition_samples(
    model: &HelmholtzMachine,
    x: &[f32],
    points: usize,
    k: usize,
    wake: &Pass,
) -> LayerSamples {
    let h1 = model.sizes[1];
    let mut probs = Vec::with_capacity(h1 * points);
    for b in 0..points {
        let column = b * k * h1..(b * k + 1) * h1;
        probs.extend(
            wake.h[1][column.clone()]
                .iter()
                .zip(&wake.q_delta[0][column])
                .map(|(s, d)| s - d),
        );
    }
    LayerSamples {
        n_in: model.x_dim(),
        n_out: h1,
        parents: x[..model.x_dim() * points].to_vec(),
        probs,
        sample_weights: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn chunk_gradient(
    config: &WakeSleepConfig,
    model: &HelmholtzMachine,
    x: &[f32],
    points: usize,
    batch_points: usize,
    collect_fisher: bool,
    rng: &mut Stream,
    chunk: &mut Chunk,
) {
    let k = config.k;
    let n = points * k;
    let batch = batch_points as f64;
    chunk.grads.fill_zero();
    model.wake(x, points, k, &mut chunk.q0_points, &mut chunk.wake, rng);
    if collect_fisher {
        chunk.fisher.recognition = (0..model.n_layers())
            .map(|l| match l {
                0 => first_recognition_samples(model, x, points, k, &chunk.wake),
                _ => recognition_samples(model, &chunk.wake, l, None),
            })
            .collect();
    }
    chunk.bound_sum = 0.0;
    for j in 0..n {
        chunk.log_weights[j] = chunk.wake.log_p[j] - chunk.wake.log_q[j];
    }
    for weights in chunk.log_weights[..n].chunks_exact_mut(k) {
        chunk.bound_sum += importance_weights(config.variant, weights);
    }
    // Generative update: −Σ_k ω̃_k ∇ log p(x, h_k), averaged over the batch.
    for (c, &w) in chunk.coefficients.iter_mut().zip(&chunk.log_weights[..n]) {
        *c = (-w / batch) as f32;
    }
    model.accumulate_p_gradient(&mut chunk.wake, &chunk.coefficients[..n], &mut chunk.grads);
    // Wake-phase recognition update: −Σ_k (ω̃_k − 1/K) ∇ log q(h_k | x).
    let wake_share = if config.variant == Variant::Ws {
        0.0
    } else {
        config.wake_fraction
    };
    if wake_share > 0.0 {
        let baseline = if config.q_baseline {
            1.0 / k as f64
        } else {
            0.0
        };
        for (c, &w) in chunk.coefficients.iter_mut().zip(&chunk.log_weights[..n]) {
            *c = (-wake_share * (w - baseline) / batch) as f32;
        }
        let mut scratch = std::mem::take(&mut chunk.q0_points);
        model.accumulate_q_gradient(
            &mut chunk.wake,
            &chunk.coefficients[..n],
            Some((x, points, k)),
            &mut scratch,
            &mut chunk.grads,
        );
        chunk.q0_points = scratch;
    }
    // Sleep-phase recognition update on K dreams per data point: −mean ∇ log q(h | x).
    let sleep_share = if config.variant == Variant::Bihm {
        0.0
    } else {
        1.0 - wake_share
    };
    if sleep_share > 0.0 || collect_fisher {
        model.dream(n, sleep_share > 0.0, &mut chunk.dream, rng);
    }
    if collect_fisher {
        chunk.fisher.generative = (0..model.n_layers())
            .map(|l| generative_samples(model, &chunk.dream, l, None))
            .collect();
    }
    if sleep_share > 0.0 {
        let c = (-sleep_share / (batch * k as f64)) as f32;
        chunk.coefficients[..n].fill(c);
        model.accumulate_q_gradient(
            &mut chunk.dream,
            &chunk.coefficients[..n],
            None,
            &mut [],
            &mut chunk.grads,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::WeightInit;

    #[test]
    fn merged_first_layer_fisher_samples_give_the_same_blocks() {
        let model = HelmholtzMachine::new(&[9, 5, 3], WeightInit::GlorotNormal, -0.5, 1).unwrap();
        let (points, k) = (6, 4);
        let mut rng = Stream::new(2, &[]);
        let x: Vec<f32> = (0..9 * points)
            .map(|_| (rng.uniform_f64() < 0.5) as u8 as f32)
            .collect();
        let mut pass = Pass::new(&model.sizes, points * k);
        let mut scratch = vec![0.0; 5 * points];
        model.wake(&x, points, k, &mut scratch, &mut pass, &mut rng);
        let full = recognition_samples(&model, &pass, 0, None);
        let merged = first_recognition_samples(&model, &x, points, k, &pass);
        assert_eq!(merged.n_samples(), points);
        assert_eq!(full.n_samples(), points * k);
        for unit in 0..5 {
            let (a, b) = (full.fisher_block(unit), merged.fisher_block(unit));
            for r in 0..10 {
                for c in 0..10 {
                    // Equal up to the f32 rounding of σ recovered as s − (s − σ).
                    assert!(
                        (a[(r, c)] - b[(r, c)]).abs() < 1e-7,
                        "unit {unit} ({r}, {c})"
                    );
                }
            }
        }
    }
}
