//! The ELBO = entropy-sum decomposition of a Helmholtz machine (entropy.md §1.3, "deeper models
//! give longer sums"): with h ~ q(h | x) drawn upward,
//!
//! ELBO = E_q[log p(x, h) − log q(h | x)], and at stationary points of the ELBO in p's
//! parameters it equals H\[q\] − H\[p(h_L)\] − Σ_{l<L} E_q H\[p(h_l | h_{l+1})\],
//!
//! every term estimated by Monte Carlo over q with the same draws, except the top prior's
//! entropy, which is closed form.

use rayon::prelude::*;

use crate::dist::{EntropySum, bernoulli_entropy};
use crate::error::Result;
use crate::math::rng::{Stream, ids};
use crate::math::sigmoid;
use crate::models::hm::{HelmholtzMachine, Pass};
use crate::models::sbn::{SbnShape, preactivation};

/// Columns per wake pass.
const CHUNK_COLUMNS: usize = 4096;

/// Σ_units H_B(σ(W_l h_{l+1} + b_l)) of generative layer l (predicting level l) for each of the
/// `pass.n` columns, whose level l + 1 is filled in.
fn conditional_entropies(model: &HelmholtzMachine, pass: &Pass, l: usize) -> Vec<f64> {
    let (n_out, n) = (model.sizes[l], pass.n);
    let shape = SbnShape {
        n_in: model.sizes[l + 1],
        n_out,
    };
    let (w, b) = (model.p_index(l), model.p_index(l) + 1);
    let mut a = vec![0.0f32; n_out * n];
    preactivation(
        shape,
        &model.params.tensors[w].data,
        &model.params.tensors[b].data,
        &pass.h[l + 1],
        n,
        &mut a,
    );
    a.chunks_exact(n_out)
        .map(|column| {
            column
                .iter()
                .map(|&v| bernoulli_entropy(sigmoid(f64::from(v))))
                .sum()
        })
        .collect()
}

/// Entropy of the top prior, Σ_u H_B(σ(b_u)).
pub fn prior_entropy(model: &HelmholtzMachine) -> f64 {
    model.params.tensors[HelmholtzMachine::PRIOR]
        .data
        .iter()
        .map(|&b| bernoulli_entropy(sigmoid(f64::from(b))))
        .sum()
}

/// Per-column sums of one pass: ELBO terms log p − log q, −log q, and each layer's conditional
/// entropy, weighted by `weights` (one per column) and added to `totals`
/// = [elbo, posterior, observable, intermediate…].
pub(crate) fn add_pass_terms(
    model: &HelmholtzMachine,
    pass: &Pass,
    weights: &[f64],
    totals: &mut [f64],
) {
    let n = pass.n;
    for ((w, log_p), log_q) in weights.iter().zip(&pass.log_p[..n]).zip(&pass.log_q[..n]) {
        totals[0] += w * (log_p - log_q);
        totals[1] -= w * log_q;
    }
    for l in 0..model.n_layers() {
        let entropies = conditional_entropies(model, pass, l);
        totals[2 + l] += weights
            .iter()
            .zip(&entropies)
            .map(|(w, h)| w * h)
            .sum::<f64>();
    }
}

/// The ELBO per point of the `n_points` binary columns of `x` and its decomposition, by Monte
/// Carlo with `samples` draws from q per point (streams from `seed`, one per chunk of points).
pub fn hm_entropy_sum(
    model: &HelmholtzMachine,
    x: &[f32],
    n_points: usize,
    samples: usize,
    seed: u64,
) -> Result<EntropySum> {
    model.check_batch(x, n_points)?;
    let samples = samples.max(1);
    let d = model.x_dim();
    let per_chunk = (CHUNK_COLUMNS / samples).max(1);
    let levels = model.n_layers();
    let weight = 1.0 / (n_points * samples) as f64;
    let totals = (0..n_points.div_ceil(per_chunk))
        .into_par_iter()
        .map(|c| {
            let start = c * per_chunk;
            let points = per_chunk.min(n_points - start);
            let mut pass = Pass::new(&model.sizes, points * samples);
            let mut scratch = vec![0.0f32; model.sizes[1] * points];
            let mut rng = Stream::new(seed, &[ids::EVAL, c as u64]);
            model.wake(
                &x[start * d..(start + points) * d],
                points,
                samples,
                &mut scratch,
                &mut pass,
                &mut rng,
            );
            let mut totals = vec![0.0; 2 + levels];
            add_pass_terms(model, &pass, &vec![weight; pass.n], &mut totals);
            totals
        })
        .reduce(
            || vec![0.0; 2 + levels],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    Ok(
        EntropySum::new(totals[0], totals[1], prior_entropy(model), totals[2])
            .with_intermediate(totals[3..].to_vec()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::WeightInit;

    /// Every (point, hidden configuration) pair as one column, with q(h | x) / N as its weight.
    fn enumerate(model: &HelmholtzMachine, x: &[f32], n_points: usize) -> (Pass, Vec<f64>) {
        let hidden = model.n_hidden();
        let configs = 1usize << hidden;
        let d = model.x_dim();
        let mut pass = Pass::new(&model.sizes, n_points * configs);
        pass.n = n_points * configs;
        for i in 0..n_points {
            for c in 0..configs {
                let j = i * configs + c;
                pass.h[0][j * d..(j + 1) * d].copy_from_slice(&x[i * d..(i + 1) * d]);
                let mut bits = c;
                for level in 1..model.sizes.len() {
                    let size = model.sizes[level];
                    for u in 0..size {
                        pass.h[level][j * size + u] = (bits & 1) as f32;
                        bits >>= 1;
                    }
                }
            }
        }
        model.score_generative(&mut pass);
        model.score_recognition(&mut pass);
        let weights = pass.log_q[..pass.n]
            .iter()
            .map(|&l| l.exp() / n_points as f64)
            .collect();
        (pass, weights)
    }

    fn exact(model: &HelmholtzMachine, x: &[f32], n_points: usize) -> EntropySum {
        let (pass, weights) = enumerate(model, x, n_points);
        let mut totals = vec![0.0; 2 + model.n_layers()];
        add_pass_terms(model, &pass, &weights, &mut totals);
        EntropySum::new(totals[0], totals[1], prior_entropy(model), totals[2])
            .with_intermediate(totals[3..].to_vec())
    }

    fn setup() -> (HelmholtzMachine, Vec<f32>, usize) {
        let mut model =
            HelmholtzMachine::new(&[6, 3, 2], WeightInit::GlorotNormal, 0.0, 3).unwrap();
        let mut rng = Stream::new(8, &[]);
        for t in &mut model.params.tensors {
            t.data
                .iter_mut()
                .for_each(|v| *v += (rng.uniform_f64() - 0.5) as f32);
        }
        let n = 40;
        let mut pass = Pass::new(&model.sizes, n);
        model.dream(n, false, &mut pass, &mut Stream::new(2, &[]));
        let x = pass.h[0][..6 * n].to_vec();
        (model, x, n)
    }

    /// The Monte Carlo estimate matches exact enumeration, term by term.
    #[test]
    fn monte_carlo_matches_enumeration() {
        let (model, x, n) = setup();
        let exact = exact(&model, &x, n);
        let mc = hm_entropy_sum(&model, &x, n, 20_000, 1).unwrap();
        assert_eq!(mc.intermediate.len(), 1);
        for (name, a, b) in [
            ("elbo", mc.elbo, exact.elbo),
            ("posterior", mc.posterior, exact.posterior),
            ("observable", mc.observable, exact.observable),
            ("intermediate", mc.intermediate[0], exact.intermediate[0]),
        ] {
            assert!((a - b).abs() < 0.01, "{name}: Monte Carlo {a} vs exact {b}");
        }
        assert_eq!(mc.prior, exact.prior);
    }

    /// With q fixed, the ELBO is concave in p's parameters; at its maximum (gradient ascent on
    /// the exact ELBO) the longer sum of a two-layer HM equals the ELBO, and away from it not.
    #[test]
    fn the_longer_sum_equals_the_elbo_where_p_is_stationary() {
        let (mut model, x, n) = setup();
        let before = exact(&model, &x, n);
        assert!(before.relative_gap() > 1e-2, "{before:?}");
        let mut grads = model.params.zeros_like();
        for _ in 0..3000 {
            let (mut pass, weights) = enumerate(&model, &x, n);
            let c: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
            grads.fill_zero();
            model.accumulate_p_gradient(&mut pass, &c, &mut grads);
            for (t, g) in model.params.tensors.iter_mut().zip(&grads.tensors) {
                if t.name.starts_with("p.") {
                    t.data
                        .iter_mut()
                        .zip(&g.data)
                        .for_each(|(v, g)| *v += 2.0 * g);
                }
            }
        }
        let after = exact(&model, &x, n);
        assert!(after.elbo > before.elbo);
        assert!(after.relative_gap() < 1e-5, "{after:?}");
    }
}
