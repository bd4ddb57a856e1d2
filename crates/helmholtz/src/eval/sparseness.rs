//! Sparseness of codes: the Gini coefficient of |z| over posterior samples (entropy.md §3.2); and
//! how localized dictionary atoms are.

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

/// The spatial spread of each atom (a column of `w`, a `side` × `side` image in row-major
/// order): the root-mean-square distance in pixels of its energy w² from the energy's centroid.
/// 0 for a single pixel; ((side² − 1)/6)^{1/2} for an atom of equal energy everywhere
/// (6.5 pixels at side 16), and about that for a grating. Localized fields have a small spread.
pub fn spatial_spread(w: faer::MatRef<'_, f64>, side: usize) -> Result<Vec<f64>> {
    if w.nrows() != side * side {
        return Err(Error::Dimension(format!(
            "atoms of {} pixels are not {side}×{side} images",
            w.nrows()
        )));
    }
    Ok((0..w.ncols())
        .map(|c| {
            let energy: Vec<f64> = w.col(c).iter().map(|v| v * v).collect();
            let total: f64 = energy.iter().sum();
            if total == 0.0 {
                return 0.0;
            }
            let (mut cy, mut cx) = (0.0, 0.0);
            for (p, e) in energy.iter().enumerate() {
                cy += e * (p / side) as f64;
                cx += e * (p % side) as f64;
            }
            (cy, cx) = (cy / total, cx / total);
            let second: f64 = energy
                .iter()
                .enumerate()
                .map(|(p, e)| {
                    let (dy, dx) = ((p / side) as f64 - cy, (p % side) as f64 - cx);
                    e * (dy * dy + dx * dx)
                })
                .sum();
            (second / total).sqrt()
        })
        .collect())
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

    #[test]
    fn the_spread_of_a_pixel_is_zero_and_of_a_flat_atom_is_closed_form() {
        let side = 16;
        let mut w = faer::Mat::<f64>::zeros(side * side, 3);
        w[(5 * side + 7, 0)] = -2.0;
        for p in 0..side * side {
            w[(p, 1)] = 0.3;
            // A horizontal grating: as spread out as the flat atom.
            w[(p, 2)] = ((p % side) as f64 * std::f64::consts::PI).cos();
        }
        let spread = spatial_spread(w.as_ref(), side).unwrap();
        let flat = (((side * side) as f64 - 1.0) / 6.0).sqrt();
        assert!(spread[0].abs() < 1e-12);
        assert!((spread[1] - flat).abs() < 1e-12, "{} vs {flat}", spread[1]);
        assert!((spread[2] - flat).abs() < 1e-12, "{}", spread[2]);
        assert!(spatial_spread(w.as_ref(), 15).is_err());
    }
}
