//! Log-likelihood of Helmholtz machines: importance sampling with the recognition model as the
//! proposal, exact enumeration for small models, and the BiHM normaliser (nrws.md §2.2–2.3, §3.2).

use faer::linalg::matmul::matmul;
use faer::{Accum, Par};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::math::logsumexp;
use crate::math::numerics::sigmoid_softplus_f32;
use crate::math::rng::{Stream, ids};
use crate::models::sbn::{preactivation, view, view_mut};
use crate::models::{HelmholtzMachine, Pass};

/// Which quantity the importance-sampling estimator targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    /// log p̂_K(x) = logsumexp_k log ω_k − log K, ω = p(x,h)/q(h|x): tends to log p(x).
    LogLikelihood,
    /// BiHM's log p̃*(x) ≈ 2 (logsumexp_k ½ log ω_k − log K): a lower bound on log p*(x) + log Z².
    BihmUnnormalised,
}

/// Settings of an importance-sampling evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IsConfig {
    /// Samples per data point.
    pub k: usize,
    /// Samples drawn at once (columns of one pass); the estimate does not depend on it.
    pub chunk: usize,
    /// Seed; data point i, chunk j uses the stream (seed, EVAL, i, j).
    pub seed: u64,
    /// What to estimate.
    pub estimator: Estimator,
}

impl IsConfig {
    /// Plain log-likelihood with `k` samples.
    pub fn new(k: usize, seed: u64) -> Self {
        IsConfig {
            k,
            chunk: k.min(1000),
            seed,
            estimator: Estimator::LogLikelihood,
        }
    }
}

struct Scratch {
    pass: Pass,
    q0: Vec<f32>,
    chunk_bounds: Vec<f64>,
    half_bounds: Vec<f64>,
    scaled: Vec<f64>,
}

/// The importance-sampling estimate for each of the `n_points` columns of `x`, with
/// `first_index` the index of column 0 in its data set (it names the random streams, so any
/// subset of a data set gets the same per-point estimates). Chunks are pooled in log space; the
/// result is identical for any number of threads.
pub fn importance_log_likelihood(
    model: &HelmholtzMachine,
    x: &[f32],
    n_points: usize,
    first_index: usize,
    config: IsConfig,
) -> Result<Vec<f64>> {
    let both = importance_pass(model, x, n_points, first_index, config, false)?;
    Ok(both.into_iter().map(|(estimate, _)| estimate).collect())
}

/// Both estimators from the same samples, per point: log p̂_K(x) and BiHM's log p̃*_K(x)
/// ([`Estimator`]), each equal to what [`importance_log_likelihood`] gives for it with the same
/// `k`, `chunk` and `seed` (`config.estimator` is ignored).
pub fn importance_log_likelihood_and_bihm(
    model: &HelmholtzMachine,
    x: &[f32],
    n_points: usize,
    first_index: usize,
    config: IsConfig,
) -> Result<Vec<(f64, f64)>> {
    let config = IsConfig {
        estimator: Estimator::LogLikelihood,
        ..config
    };
    let both = importance_pass(model, x, n_points, first_index, config, true)?;
    Ok(both
        .into_iter()
        .map(|(ll, half)| (ll, half.unwrap_or(f64::NAN)))
        .collect())
}

/// The estimate of `config.estimator` per point and, with `with_half`, BiHM's from the same
/// samples.
fn importance_pass(
    model: &HelmholtzMachine,
    x: &[f32],
    n_points: usize,
    first_index: usize,
    config: IsConfig,
    with_half: bool,
) -> Result<Vec<(f64, Option<f64>)>> {
    model.check_batch(x, n_points)?;
    if config.k == 0 || config.chunk == 0 {
        return Err(Error::Config(
            "importance sampling needs k ≥ 1 and chunk ≥ 1".into(),
        ));
    }
    let chunk = config.chunk.min(config.k);
    let d = model.x_dim();
    let scale = match config.estimator {
        Estimator::LogLikelihood => 1.0,
        Estimator::BihmUnnormalised => 0.5,
    };
    let log_k = (config.k as f64).ln();
    let result = (0..n_points)
        .into_par_iter()
        .map_init(
            || Scratch {
                pass: Pass::new(&model.sizes, chunk),
                q0: vec![0.0; model.sizes[1]],
                chunk_bounds: Vec::new(),
                half_bounds: Vec::new(),
                scaled: Vec::with_capacity(chunk),
            },
            |scratch, i| {
                let point = &x[i * d..(i + 1) * d];
                scratch.chunk_bounds.clear();
                scratch.half_bounds.clear();
                let mut drawn = 0;
                let mut j = 0u64;
                while drawn < config.k {
                    let size = chunk.min(config.k - drawn);
                    let mut rng =
                        Stream::new(config.seed, &[ids::EVAL, (first_index + i) as u64, j]);
                    model.wake(point, 1, size, &mut scratch.q0, &mut scratch.pass, &mut rng);
                    let log_w = |s: usize| scratch.pass.log_p[s] - scratch.pass.log_q[s];
                    scratch.scaled.clear();
                    scratch.scaled.extend((0..size).map(|s| scale * log_w(s)));
                    scratch.chunk_bounds.push(logsumexp(&scratch.scaled));
                    if with_half {
                        scratch.scaled.clear();
                        scratch.scaled.extend((0..size).map(|s| 0.5 * log_w(s)));
                        scratch.half_bounds.push(logsumexp(&scratch.scaled));
                    }
                    drawn += size;
                    j += 1;
                }
                let estimate = (logsumexp(&scratch.chunk_bounds) - log_k) / scale;
                let half = with_half.then(|| (logsumexp(&scratch.half_bounds) - log_k) / 0.5);
                (estimate, half)
            },
        )
        .collect();
    Ok(result)
}

/// Largest number of hidden units for which [`exact_log_likelihood`] enumerates.
pub const MAX_ENUMERATED_HIDDEN: usize = 24;

/// Exact log p(x) for each column of `x`, by summing p(x, h) over all 2^H hidden configurations.
pub fn exact_log_likelihood(
    model: &HelmholtzMachine,
    x: &[f32],
    n_points: usize,
) -> Result<Vec<f64>> {
    model.check_batch(x, n_points)?;
    let n_hidden = model.n_hidden();
    if n_hidden > MAX_ENUMERATED_HIDDEN {
        return Err(Error::Config(format!(
            "exact enumeration needs at most {MAX_ENUMERATED_HIDDEN} hidden units, the model has {n_hidden}"
        )));
    }
    let total = 1usize << n_hidden;
    let block = total.min(4096);
    let d = model.x_dim();
    let partials: Vec<Vec<f64>> = (0..total.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let start = b * block;
            let n = block.min(total - start);
            let mut pass = Pass::new(&model.sizes, n);
            pass.n = n;
            // Hidden configuration number start + j, bits assigned level by level.
            for j in 0..n {
                let mut bits = start + j;
                for level in 1..model.sizes.len() {
                    let size = model.sizes[level];
                    for u in 0..size {
                        pass.h[level][j * size + u] = (bits & 1) as f32;
                        bits >>= 1;
                    }
                }
            }
            // log p(h) for the hidden levels: prior and every layer above the data.
            model.generative_pass(&mut pass, None, 1);
            let log_p_hidden = &pass.log_p;
            // log p(x | h_1) = xᵀ a − Σ softplus(a), for every data point at once.
            let mut a = vec![0.0f32; d * n];
            let (pw, pb) = (model.p_index(0), model.p_index(0) + 1);
            let shape = crate::models::sbn::SbnShape {
                n_in: model.sizes[1],
                n_out: d,
            };
            preactivation(
                shape,
                &model.params.tensors[pw].data,
                &model.params.tensors[pb].data,
                &pass.h[1],
                n,
                &mut a,
            );
            let softplus_sums: Vec<f64> = a
                .chunks_exact(d)
                .map(|column| {
                    column
                        .iter()
                        .map(|&v| sigmoid_softplus_f32(v).1 as f64)
                        .sum()
                })
                .collect();
            let mut xa = vec![0.0f32; n_points * n];
            matmul(
                view_mut(&mut xa, n_points, n),
                Accum::Replace,
                view(x, d, n_points).transpose(),
                view(&a, d, n),
                1.0f32,
                Par::Seq,
            );
            (0..n_points)
                .map(|i| {
                    let joint: Vec<f64> = (0..n)
                        .map(|j| xa[j * n_points + i] as f64 - softplus_sums[j] + log_p_hidden[j])
                        .collect();
                    logsumexp(&joint)
                })
                .collect()
        })
        .collect();
    Ok((0..n_points)
        .map(|i| logsumexp(&partials.iter().map(|p| p[i]).collect::<Vec<_>>()))
        .collect())
}

/// Exact KL(target ‖ model) in nats, for a target distribution given as (pattern, probability)
/// pairs over binary vectors (e.g. the 3×3 lines toy); model probabilities by enumeration.
pub fn exact_kl_from(model: &HelmholtzMachine, target: &[(Vec<f32>, f64)]) -> Result<f64> {
    let d = model.x_dim();
    let mut x = Vec::with_capacity(target.len() * d);
    for (pattern, _) in target {
        if pattern.len() != d {
            return Err(Error::Dimension(format!(
                "pattern of length {} for a model of dimension {d}",
                pattern.len()
            )));
        }
        x.extend_from_slice(pattern);
    }
    let log_model = exact_log_likelihood(model, &x, target.len())?;
    Ok(target
        .iter()
        .zip(&log_model)
        .filter(|((_, p), _)| *p > 0.0)
        .map(|((_, p), lm)| p * (p.ln() - lm))
        .sum())
}

/// BiHM's log Z² = log E_{(x,h)~p}[√(q(h|x) p̃*(x) / p(x,h))] from `n_dreams` dreams, each with
/// `k_inner` importance samples for p̃*(x) (bihm `est-z.py`). Subtract it from log p̃* to get log p*.
pub fn bihm_log_z2(
    model: &HelmholtzMachine,
    n_dreams: usize,
    k_inner: usize,
    seed: u64,
) -> Result<f64> {
    Ok(bihm_log_z2_with_error(model, n_dreams, k_inner, seed)?.0)
}

/// [`bihm_log_z2`] and its Monte Carlo standard error (delta method: the standard error of the
/// mean of the dream terms over their mean).
pub fn bihm_log_z2_with_error(
    model: &HelmholtzMachine,
    n_dreams: usize,
    k_inner: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    if n_dreams == 0 || k_inner == 0 {
        return Err(Error::Config(
            "the log Z² estimate needs at least one dream and one inner sample".into(),
        ));
    }
    let block = 1000;
    let d = model.x_dim();
    let terms: Vec<Vec<f64>> = (0..n_dreams.div_ceil(block))
        .into_par_iter()
        .map(|b| -> Result<Vec<f64>> {
            let n = block.min(n_dreams - b * block);
            let mut pass = Pass::new(&model.sizes, n);
            let mut rng = Stream::new(seed, &[ids::SAMPLE, b as u64]);
            model.dream(n, true, &mut pass, &mut rng);
            let x = pass.h[0][..d * n].to_vec();
            // log p̃*(x_j) of each dream, its inner samples drawn for groups of dreams at once
            // (at most 1000 columns per wake pass) and pooled in log space.
            let chunk = k_inner.min(1000);
            let group = (1000 / chunk).max(1);
            let mut inner = Pass::new(&model.sizes, group * chunk);
            let mut q0 = vec![0.0f32; model.sizes[1] * group];
            let mut bounds = vec![Vec::new(); n];
            let mut half = Vec::with_capacity(chunk);
            for (g, first) in (0..n).step_by(group).enumerate() {
                let points = group.min(n - first);
                let mut drawn = 0;
                let mut c = 0u64;
                while drawn < k_inner {
                    let size = chunk.min(k_inner - drawn);
                    let mut rng = Stream::new(seed, &[ids::SAMPLE, b as u64, g as u64, c]);
                    let columns = &x[first * d..(first + points) * d];
                    model.wake(columns, points, size, &mut q0, &mut inner, &mut rng);
                    for (j, bound) in bounds[first..first + points].iter_mut().enumerate() {
                        half.clear();
                        half.extend(
                            (j * size..(j + 1) * size)
                                .map(|s| 0.5 * (inner.log_p[s] - inner.log_q[s])),
                        );
                        bound.push(logsumexp(&half));
                    }
                    drawn += size;
                    c += 1;
                }
            }
            let log_k = (k_inner as f64).ln();
            Ok((0..n)
                .map(|j| {
                    let log_p_tilde = 2.0 * (logsumexp(&bounds[j]) - log_k);
                    0.5 * (pass.log_q[j] - pass.log_p[j] + log_p_tilde)
                })
                .collect())
        })
        .collect::<Result<_>>()?;
    let all: Vec<f64> = terms.into_iter().flatten().collect();
    let log_z2 = logsumexp(&all) - (n_dreams as f64).ln();
    // The terms relative to their mean: r_j = exp(t_j − log Z²), of mean 1.
    let spread = all
        .iter()
        .map(|t| (t - log_z2).exp_m1().powi(2))
        .sum::<f64>()
        / (all.len().max(2) - 1) as f64;
    Ok((log_z2, (spread / all.len() as f64).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::WeightInit;

    fn random_model(sizes: &[usize], seed: u64) -> HelmholtzMachine {
        let mut model = HelmholtzMachine::new(sizes, WeightInit::GlorotNormal, 0.0, seed).unwrap();
        let mut rng = Stream::new(seed, &[99]);
        for t in &mut model.params.tensors {
            for v in &mut t.data {
                *v += (rng.uniform_f64() - 0.5) as f32 * 0.5;
            }
        }
        model
    }

    fn data(model: &HelmholtzMachine, n: usize) -> Vec<f32> {
        let mut pass = Pass::new(&model.sizes, n);
        model.dream(n, false, &mut pass, &mut Stream::new(5, &[]));
        pass.h[0][..model.x_dim() * n].to_vec()
    }

    #[test]
    fn exact_enumeration_normalises() {
        // Σ_x p(x) = 1 over all 2^6 data vectors.
        let model = random_model(&[6, 4, 3], 1);
        let x: Vec<f32> = (0..64usize)
            .flat_map(|c| (0..6).map(move |i| ((c >> i) & 1) as f32))
            .collect();
        let log_p = exact_log_likelihood(&model, &x, 64).unwrap();
        let total: f64 = log_p.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "Σ p(x) = {total}");
    }

    #[test]
    fn importance_sampling_with_1e5_samples_matches_enumeration() {
        // A random HM (Glorot-normal weights, perturbed biases) with 16 hidden bits: the IS estimate
        // with K = 10^5, averaged over the data points as `eval` reports it, is within 0.02 nats
        // of the exact value, and every single point within 0.06 (q is untrained, so the
        // per-point Monte Carlo spread at this K is about 0.02 nats).
        let model = random_model(&[12, 10, 6], 7);
        let n_points = 8;
        let x = data(&model, n_points);
        let exact = exact_log_likelihood(&model, &x, n_points).unwrap();
        let estimate =
            importance_log_likelihood(&model, &x, n_points, 0, IsConfig::new(100_000, 3)).unwrap();
        for (e, i) in exact.iter().zip(&estimate) {
            assert!((e - i).abs() < 0.06, "exact {e}, IS {i}");
            assert!(e.is_finite() && *e < 0.0);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let gap = mean(&estimate) - mean(&exact);
        assert!(gap.abs() < 0.02, "mean IS − exact = {gap}");
        // With one sample the estimator is the ELBO, well below the exact value on average.
        let few = importance_log_likelihood(&model, &x, n_points, 0, IsConfig::new(1, 3)).unwrap();
        assert!(mean(&few) < mean(&exact) - 0.1);
    }

    #[test]
    fn importance_sampling_is_identical_for_any_thread_count_and_chunking() {
        let model = random_model(&[12, 10, 6], 8);
        let x = data(&model, 9);
        let run = |threads: usize, chunk: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let config = IsConfig {
                chunk,
                ..IsConfig::new(3000, 4)
            };
            pool.install(|| importance_log_likelihood(&model, &x, 9, 0, config).unwrap())
        };
        let one = run(1, 1000);
        assert_eq!(one, run(2, 1000));
        assert_eq!(one, run(3, 1000));
        // Another chunking draws other samples: the same estimate up to Monte Carlo error.
        let other_chunking = run(2, 700);
        let shift: f64 = one
            .iter()
            .zip(&other_chunking)
            .map(|(a, b)| a - b)
            .sum::<f64>()
            / 9.0;
        assert!(shift.abs() < 0.15, "mean shift {shift}");
    }

    /// Exact log p̃*(x) = 2 log Σ_h √(p(x,h) q(h|x)) for one data vector, by enumerating h.
    fn exact_log_p_tilde(model: &HelmholtzMachine, x: &[f32]) -> f64 {
        let mut halves = Vec::new();
        for hc in 0..1usize << model.n_hidden() {
            let mut pass = Pass::new(&model.sizes, 1);
            pass.n = 1;
            pass.h[0][..x.len()].copy_from_slice(x);
            let mut bits = hc;
            for level in 1..model.sizes.len() {
                for u in 0..model.sizes[level] {
                    pass.h[level][u] = (bits & 1) as f32;
                    bits >>= 1;
                }
            }
            model.score_generative(&mut pass);
            model.score_recognition(&mut pass);
            halves.push(0.5 * (pass.log_p[0] + pass.log_q[0]));
        }
        2.0 * logsumexp(&halves)
    }

    /// Exact log Z² = log Σ_x p̃*(x), by enumerating x.
    fn exact_bihm_log_z2(model: &HelmholtzMachine) -> f64 {
        let d = model.x_dim();
        let all: Vec<f64> = (0..1usize << d)
            .map(|xc| {
                let x: Vec<f32> = (0..d).map(|i| ((xc >> i) & 1) as f32).collect();
                exact_log_p_tilde(model, &x)
            })
            .collect();
        logsumexp(&all)
    }

    #[test]
    fn bihm_log_z2_estimate_matches_enumeration() {
        // Z ≤ 1 (Cauchy–Schwarz), so log Z² ≤ 0; the dream-based estimator with many inner samples
        // agrees with the exact value of a small random model.
        let model = random_model(&[5, 4, 2], 2);
        let exact = exact_bihm_log_z2(&model);
        assert!(
            exact < -0.01,
            "a random q is not the posterior, so Z < 1: {exact}"
        );
        let estimate = bihm_log_z2(&model, 20_000, 1000, 1).unwrap();
        assert!(
            (estimate - exact).abs() < 0.02,
            "estimate {estimate}, exact {exact}"
        );
        // With one inner sample (the bihm code's est-nll.py) the estimate is biased by the
        // inner p̃* estimate, but its reported error shrinks as 1/√dreams and has the size of
        // the spread between independent estimates.
        let runs: Vec<(f64, f64)> = (0..8)
            .map(|seed| bihm_log_z2_with_error(&model, 4_000, 1, seed).unwrap())
            .collect();
        let mean = runs.iter().map(|r| r.0).sum::<f64>() / 8.0;
        let spread = (runs.iter().map(|r| (r.0 - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
        let reported = runs.iter().map(|r| r.1).sum::<f64>() / 8.0;
        assert!(
            reported > 0.5 * spread && reported < 2.0 * spread,
            "reported error {reported}, spread of 8 estimates {spread}"
        );
        let (_, error_16k) = bihm_log_z2_with_error(&model, 16_000, 1, 0).unwrap();
        assert!(
            (error_16k / reported - 0.5).abs() < 0.1,
            "error at 4k dreams {reported}, at 16k {error_16k}"
        );
    }

    /// Both estimators of one pass are the ones each gives alone, bit for bit.
    #[test]
    fn one_pass_gives_both_estimators() {
        let model = random_model(&[6, 5, 3], 4);
        let x = data(&model, 7);
        let config = IsConfig {
            chunk: 30,
            ..IsConfig::new(100, 9)
        };
        let both = importance_log_likelihood_and_bihm(&model, &x, 7, 3, config).unwrap();
        let plain = importance_log_likelihood(&model, &x, 7, 3, config).unwrap();
        let half = importance_log_likelihood(
            &model,
            &x,
            7,
            3,
            IsConfig {
                estimator: Estimator::BihmUnnormalised,
                ..config
            },
        )
        .unwrap();
        for i in 0..7 {
            assert_eq!(both[i].0.to_bits(), plain[i].to_bits(), "point {i}");
            assert_eq!(both[i].1.to_bits(), half[i].to_bits(), "point {i}");
            assert!(both[i].1 <= both[i].0 + 1e-9, "p̃* ≤ p on every point");
        }
    }

    #[test]
    fn bihm_unnormalised_estimate_matches_enumeration() {
        let model = random_model(&[5, 4, 2], 3);
        let x = data(&model, 3);
        let estimate = importance_log_likelihood(
            &model,
            &x,
            3,
            0,
            IsConfig {
                estimator: Estimator::BihmUnnormalised,
                ..IsConfig::new(100_000, 5)
            },
        )
        .unwrap();
        for (i, e) in estimate.iter().enumerate() {
            let exact = exact_log_p_tilde(&model, &x[i * 5..(i + 1) * 5]);
            assert!(
                (e - exact).abs() < 0.01,
                "point {i}: estimate {e}, exact {exact}"
            );
        }
    }
}
