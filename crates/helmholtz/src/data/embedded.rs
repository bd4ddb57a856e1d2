//! A small real data set compiled into the library: the 8×8 handwritten digits.
//!
//! 1,797 digits of 8×8 pixels with values 0–16: the test part of the UCI "Optical Recognition of
//! Handwritten Digits" (optdigits) set, as shipped by scikit-learn 1.9.1 in
//! `sklearn/datasets/data/digits.csv.gz`. The file lives in the repository at
//! `data/embedded/digits.csv.gz`; `data/embedded/README.md` gives its origin, licence and checksum.
//! It needs no download, so tests, examples and CI can train on real data offline.

use std::path::Path;

use super::Dataset;
use super::csv::parse_csv;
use super::idx::gunzip_if_gzip;
use super::mnist::Splits;

/// The gzipped CSV: 64 pixel columns (0–16) and a label column per row, no header.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../../data/embedded/digits.csv.gz");

/// Number of samples in [`embedded_digits`].
pub const EMBEDDED_DIGITS_N_SAMPLES: usize = 1_797;

/// Samples in the training part of [`embedded_digits_splits`]; the validation and test parts have
/// [`EMBEDDED_DIGITS_N_HELD_OUT`] each.
pub const EMBEDDED_DIGITS_N_TRAIN: usize = 1_397;

/// Samples in each of the validation and test parts of [`embedded_digits_splits`].
pub const EMBEDDED_DIGITS_N_HELD_OUT: usize = 200;

/// The 1,797 8×8 digits: values scaled to [0, 1] (value / 16), labels 0–9, `image_shape` (8, 8).
///
/// Samples are in the file's order. Values are grey levels, not binary; binarise them (e.g. with
/// [`binarize_fixed`](super::binarize::binarize_fixed)) for Bernoulli models.
pub fn embedded_digits() -> Dataset {
    let csv =
        gunzip_if_gzip(DIGITS_CSV_GZ.to_vec()).expect("the embedded digits file is valid gzip");
    let mut ds = parse_csv(
        &csv,
        Path::new("data/embedded/digits.csv.gz"),
        Some(64),
        1.0 / 16.0,
    )
    .expect("the embedded digits file is valid CSV");
    ds.image_shape = Some((8, 8));
    ds
}

/// A fixed split of [`embedded_digits`], in file order: samples 0–1396 train (1,397), 1397–1596
/// validate (200) and 1597–1796 test (200).
///
/// The split uses no randomness, so every run and every machine sees the same parts. The file's
/// order is not sorted by class: each part holds 17 to 22 examples of every digit among the
/// held-out ones, and 135 to 144 per digit in training.
pub fn embedded_digits_splits() -> Splits {
    let all = embedded_digits();
    let n_valid_end = EMBEDDED_DIGITS_N_TRAIN + EMBEDDED_DIGITS_N_HELD_OUT;
    Splits {
        train: all.range(0, EMBEDDED_DIGITS_N_TRAIN),
        valid: all.range(EMBEDDED_DIGITS_N_TRAIN, n_valid_end),
        test: all.range(n_valid_end, EMBEDDED_DIGITS_N_SAMPLES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(ds: &Dataset) -> [usize; 10] {
        let mut counts = [0usize; 10];
        for &label in ds.labels.as_ref().unwrap() {
            counts[label as usize] += 1;
        }
        counts
    }

    #[test]
    fn digits_have_the_known_shape_range_and_class_counts() {
        let ds = embedded_digits();
        assert_eq!(
            (ds.dim(), ds.n_samples(), ds.image_shape),
            (64, EMBEDDED_DIGITS_N_SAMPLES, Some((8, 8)))
        );
        assert_eq!(
            counts(&ds),
            [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        let mut sum = 0.0f64;
        for j in 0..ds.n_samples() {
            for i in 0..ds.dim() {
                let v = ds.x[(i, j)];
                assert!((0.0..=1.0).contains(&v));
                sum += f64::from(v);
            }
        }
        let mean = sum / (64 * EMBEDDED_DIGITS_N_SAMPLES) as f64;
        assert!((mean - 0.30526).abs() < 1e-4, "mean {mean}");
        // First row of the file: 0,0,5,13,9,1,0,0,… with label 0.
        assert_eq!([ds.x[(2, 0)], ds.x[(3, 0)]], [5.0 / 16.0, 13.0 / 16.0]);
    }

    #[test]
    fn splits_are_fixed_and_cover_every_class() {
        let splits = embedded_digits_splits();
        assert_eq!(
            (
                splits.train.n_samples(),
                splits.valid.n_samples(),
                splits.test.n_samples()
            ),
            (1397, 200, 200)
        );
        assert_eq!(
            counts(&splits.train),
            [139, 143, 137, 144, 138, 141, 142, 139, 135, 139]
        );
        assert_eq!(
            counts(&splits.valid),
            [21, 18, 21, 17, 21, 22, 17, 20, 22, 21]
        );
        assert_eq!(
            counts(&splits.test),
            [18, 21, 19, 22, 22, 19, 22, 20, 17, 20]
        );
    }
}
