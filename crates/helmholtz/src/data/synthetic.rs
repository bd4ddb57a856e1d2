//! Synthetic data sets with known distributions, for tests and exact-likelihood experiments.
//!
//! The 3×3 "lines" toy is the bars problem of Kirby's Helmholtz-machine tutorial, as used in the
//! reweighted wake-sleep (NRWS) code: 12 patterns of vertical and horizontal bars, the vertical
//! ones twice as likely as the horizontal ones. Its distribution is known exactly, so a model's
//! likelihood and KL divergence can be computed by enumeration.

use faer::Mat;

use super::Dataset;
use crate::math::rng::{Stream, ids};

/// Pixels on in each pattern, as (row, column) with rows and columns counted from 1.
type Pixels = &'static [(usize, usize)];

/// The 12 patterns in order: 6 frequent (vertical bars), then 6 infrequent (horizontal bars).
const PATTERNS: [Pixels; 12] = [
    // Frequent, probability 2/18 each: column 3 only, 2 only, 1 only, 1&3, 1&2, 2&3.
    &[(1, 3), (2, 3), (3, 3)],
    &[(1, 2), (2, 2), (3, 2)],
    &[(1, 1), (2, 1), (3, 1)],
    &[(1, 1), (2, 1), (3, 1), (1, 3), (2, 3), (3, 3)],
    &[(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)],
    &[(1, 2), (2, 2), (3, 2), (1, 3), (2, 3), (3, 3)],
    // Infrequent, probability 1/18 each: rows 2&3, 3 only, 2 only, 1&2, 1 only, 1&3.
    &[(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)],
    &[(3, 1), (3, 2), (3, 3)],
    &[(2, 1), (2, 2), (2, 3)],
    &[(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)],
    &[(1, 1), (1, 2), (1, 3)],
    &[(1, 1), (1, 2), (1, 3), (3, 1), (3, 2), (3, 3)],
];

/// Number of frequent (vertical) patterns; each has weight 2 of 18, the others weight 1.
const N_FREQUENT: usize = 6;

/// The 9 pixels (row-major, 0/1) of pattern `k`.
fn pattern(k: usize) -> Vec<f32> {
    let mut pixels = vec![0.0f32; 9];
    for &(row, col) in PATTERNS[k] {
        pixels[(row - 1) * 3 + (col - 1)] = 1.0;
    }
    pixels
}

/// The 3×3 lines distribution: 12 (pattern, probability) pairs, patterns as 9 row-major 0/1 pixels.
///
/// In order: six vertical-bar patterns with probability 2/18 each — column 3 only, column 2 only,
/// column 1 only, columns 1&3, columns 1&2, columns 2&3 — then six horizontal-bar patterns with
/// probability 1/18 each — rows 2&3, row 3 only, row 2 only, rows 1&2, row 1 only, rows 1&3. Every
/// other 3×3 binary image has probability 0. The index in this list is the label [`lines3x3`] uses.
pub fn lines3x3_distribution() -> Vec<(Vec<f32>, f64)> {
    (0..PATTERNS.len())
        .map(|k| {
            (
                pattern(k),
                if k < N_FREQUENT {
                    2.0 / 18.0
                } else {
                    1.0 / 18.0
                },
            )
        })
        .collect()
}

/// `n` i.i.d. draws from the 3×3 lines distribution ([`lines3x3_distribution`]).
///
/// Draws use the stream `Stream::new(seed, &[ids::SYNTHETIC, 3])`: sample `j` takes `r = below(18)`
/// and is pattern `r / 2` if `r < 12` (a frequent pattern, 2 chances in 18) or pattern `r - 6`
/// otherwise (1 chance in 18). Labels are the pattern indices (0–11); `image_shape` is (3, 3).
pub fn lines3x3(n: usize, seed: u64) -> Dataset {
    let patterns: Vec<Vec<f32>> = (0..PATTERNS.len()).map(pattern).collect();
    let mut stream = Stream::new(seed, &[ids::SYNTHETIC, 3]);
    let labels: Vec<u32> = (0..n)
        .map(|_| {
            let r = stream.below(18);
            (if r < 2 * N_FREQUENT {
                r / 2
            } else {
                r - N_FREQUENT
            }) as u32
        })
        .collect();
    let x = Mat::from_fn(9, n, |i, j| patterns[labels[j] as usize][i]);
    Dataset {
        x,
        labels: Some(labels),
        image_shape: Some((3, 3)),
    }
}

/// Total samples drawn by [`lines3x3_splits`].
pub const LINES3X3_N_SAMPLES: usize = 18_000;

/// Train, validation and test sets of the 3×3 lines toy, as in the NRWS code.
///
/// Draws [`LINES3X3_N_SAMPLES`] = 18,000 samples with [`lines3x3`]; the first 5/6 (15,000) are the
/// training set and the last 1/6 (3,000) serve as **both** the validation and the test set (the
/// two returned data sets are equal), as that code does.
pub fn lines3x3_splits(seed: u64) -> (Dataset, Dataset, Dataset) {
    let all = lines3x3(LINES3X3_N_SAMPLES, seed);
    let n_train = LINES3X3_N_SAMPLES * 5 / 6;
    let train = all.range(0, n_train);
    let held_out = all.range(n_train, LINES3X3_N_SAMPLES);
    (train, held_out.clone(), held_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_is_normalised_and_patterns_are_distinct_bars() {
        let dist = lines3x3_distribution();
        assert_eq!(dist.len(), 12);
        let total: f64 = dist.iter().map(|(_, p)| p).sum();
        assert!((total - 1.0).abs() < 1e-12);
        let mut seen = std::collections::HashSet::new();
        for (k, (pixels, p)) in dist.iter().enumerate() {
            assert_eq!(pixels.len(), 9);
            assert!(pixels.iter().all(|&v| v == 0.0 || v == 1.0));
            assert!(seen.insert(pixels.iter().map(|&v| v as u8).collect::<Vec<_>>()));
            // A vertical pattern is constant down each column, a horizontal one along each row.
            let vertical = (0..3).all(|c| pixels[c] == pixels[3 + c] && pixels[c] == pixels[6 + c]);
            let horizontal = (0..3)
                .all(|r| pixels[3 * r] == pixels[3 * r + 1] && pixels[3 * r] == pixels[3 * r + 2]);
            assert_eq!(vertical, k < 6, "pattern {k}");
            assert_eq!(horizontal, k >= 6, "pattern {k}");
            assert_eq!(*p, if k < 6 { 2.0 / 18.0 } else { 1.0 / 18.0 });
        }
        // Spot-check the documented order: pattern 0 is column 3 only, pattern 6 is rows 2&3.
        assert_eq!(dist[0].0, [0., 0., 1., 0., 0., 1., 0., 0., 1.]);
        assert_eq!(dist[6].0, [0., 0., 0., 1., 1., 1., 1., 1., 1.]);
    }

    #[test]
    fn empirical_frequencies_match_and_draws_are_reproducible() {
        let n = 36_000;
        let ds = lines3x3(n, 11);
        assert_eq!(
            (ds.dim(), ds.n_samples(), ds.image_shape),
            (9, n, Some((3, 3)))
        );
        assert_eq!(lines3x3(100, 11).x, ds.range(0, 100).x);
        let dist = lines3x3_distribution();
        let labels = ds.labels.as_ref().unwrap();
        let mut counts = [0usize; 12];
        for (j, &label) in labels.iter().enumerate() {
            counts[label as usize] += 1;
            assert!((0..9).all(|i| ds.x[(i, j)] == dist[label as usize].0[i]));
        }
        for (k, &count) in counts.iter().enumerate() {
            let p = dist[k].1;
            let freq = count as f64 / n as f64;
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((freq - p).abs() < 5.0 * sd, "pattern {k}: {freq} vs {p}");
        }
    }

    #[test]
    fn splits_follow_the_nrws_protocol() {
        let (train, valid, test) = lines3x3_splits(3);
        assert_eq!((train.n_samples(), valid.n_samples()), (15_000, 3_000));
        assert_eq!(valid.x, test.x);
        let all = lines3x3(LINES3X3_N_SAMPLES, 3);
        assert_eq!(train.x, all.range(0, 15_000).x);
        assert_eq!(test.x, all.range(15_000, 18_000).x);
    }
}

/// The bars data of the sparse-coding experiments (entropy.md §3.1): `side` vertical and `side`
/// horizontal bars of value 1 on a side × side grid (H = 2·side generative fields, D = side²),
/// Laplace(0, 1) latents and Gaussian noise of standard deviation `noise`.
#[derive(Clone, Debug)]
pub struct Bars {
    /// Data, D × N (one image per column, row-major pixels).
    pub x: Mat<f64>,
    /// The generating fields, D × H: vertical bars first, then horizontal ones.
    pub fields: Mat<f64>,
    /// The latents that generated each point, H × N.
    pub latents: Mat<f64>,
}

/// Draws `n` bars images (see [`Bars`]) from `seed`.
pub fn bars(side: usize, n: usize, noise: f64, seed: u64) -> Bars {
    let (d, h) = (side * side, 2 * side);
    let fields = Mat::from_fn(d, h, |pixel, field| {
        let (row, col) = (pixel / side, pixel % side);
        let on = if field < side {
            col == field
        } else {
            row == field - side
        };
        on as u8 as f64
    });
    let mut rng = Stream::new(seed, &[ids::SYNTHETIC]);
    let mut latents = Mat::zeros(h, n);
    let mut x = Mat::zeros(d, n);
    for j in 0..n {
        for k in 0..h {
            // Inverse CDF of Laplace(0, 1).
            let u = rng.uniform_f64() - 0.5;
            latents[(k, j)] = -u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln();
        }
        for r in 0..d {
            let signal: f64 = (0..h).map(|k| fields[(r, k)] * latents[(k, j)]).sum();
            x[(r, j)] = signal + noise * rng.normal();
        }
    }
    Bars { x, fields, latents }
}

/// Matches learned fields to true ones: for each true field the best |cosine| with a distinct
/// learned field (greedy, best pairs first). Returns one score per true field.
pub fn match_fields(learned: faer::MatRef<'_, f64>, truth: faer::MatRef<'_, f64>) -> Vec<f64> {
    let norm = |m: faer::MatRef<'_, f64>, c: usize| {
        (0..m.nrows())
            .map(|r| m[(r, c)].powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut pairs = Vec::new();
    for t in 0..truth.ncols() {
        for l in 0..learned.ncols() {
            let dot: f64 = (0..truth.nrows())
                .map(|r| truth[(r, t)] * learned[(r, l)])
                .sum();
            pairs.push((
                (dot / (norm(truth, t) * norm(learned, l)).max(f64::MIN_POSITIVE)).abs(),
                t,
                l,
            ));
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut score, mut used) = (vec![0.0; truth.ncols()], vec![false; learned.ncols()]);
    let mut matched = vec![false; truth.ncols()];
    for (cosine, t, l) in pairs {
        if !matched[t] && !used[l] {
            score[t] = cosine;
            matched[t] = true;
            used[l] = true;
        }
    }
    score
}
