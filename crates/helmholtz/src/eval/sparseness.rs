//! Sparseness of codes: the Gini coefficient of |z| over posterior samples (entropy.md §3.2).

use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::models::sparse_coding::{SparseCoding, reparameterise};

/// The Gini coefficient of |v|: 0 when all magnitudes are equal, (n − 1)/n when one entry
/// carries everything. With the magnitudes sorted ascending and c their cumulative sums,
/// G = (n + 1 − 2 Σ_i c_i / c_n) / n.
pub fn gini(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().map(|v| v.abs()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let mut cumulative = 0.0;
    let mut sum_of_cumulative = 0.0;
    for v in &sorted {
        cumulative += v;
        sum_of_cumulative += cumulative;
    }
    if cumulative == 0.0 {
        return 0.0;
    }
    (n + 1.0 - 2.0 * sum_of_cumulative / cumulative) / n
}

/// Mean and standard deviation of the Gini coefficient of posterior samples z ~ q_n, `samples`
/// per point, over the first `points` points of `model`.
pub fn posterior_gini(
    model: &SparseCoding,
    points: usize,
    samples: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    let points = points.min(model.n_points);
    if points == 0 || samples == 0 {
        return Err(Error::Config(
            "the Gini estimate needs points and samples".into(),
        ));
    }
    let h = model.n_latents;
    let mut ginis = Vec::with_capacity(points * samples);
    for i in 0..points {
        let mut rng = Stream::new(seed, &[ids::SAMPLE, i as u64]);
        let l = model.cholesky(i);
        let mu = model.mean(i);
        for _ in 0..samples {
            let eps: Vec<f64> = (0..h).map(|_| rng.normal()).collect();
            let z = reparameterise(mu, &l, &eps);
            ginis.push(gini(&z));
        }
    }
    let n = ginis.len() as f64;
    let mean = ginis.iter().sum::<f64>() / n;
    let sd = (ginis.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n).sqrt();
    Ok((mean, sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_is_zero_for_equal_and_maximal_for_one_hot_codes() {
        assert!(gini(&[2.0, -2.0, 2.0, 2.0]).abs() < 1e-15);
        assert!((gini(&[0.0, 0.0, -5.0, 0.0]) - 0.75).abs() < 1e-15);
        // Scale invariant, and between the two extremes for a mixed code.
        let mixed = gini(&[0.1, 3.0, 0.2, 0.0, 1.0]);
        assert!((gini(&[1.0, 30.0, 2.0, 0.0, 10.0]) - mixed).abs() < 1e-12);
        assert!(mixed > 0.0 && mixed < 0.8);
        assert_eq!(gini(&[0.0, 0.0]), 0.0);
    }
}
