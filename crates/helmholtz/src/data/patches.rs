//! Natural-image patches for sparse coding: square grayscale patches cut at random positions from
//! a set of images, each patch's mean (DC) removed, and ZCA whitening.
//!
//! The sparse-coding paper uses Olshausen's pre-whitened IMAGES.mat, which no package ships
//! (entropy.md §3.1). We cut patches from the CC0 / public-domain images of the scikit-image and
//! sporco wheels (`scripts/fetch-data.sh natural`) and whiten the patches ourselves with ZCA:
//! with the patch covariance C = U Λ Uᵀ, the filter is Z = U (Λ + εI)^{-1/2} Uᵀ. ZCA is the
//! whitening closest to the identity, so whitened patches stay localised images, and ε (a
//! fraction of the mean eigenvalue) keeps it from amplifying the noise in the weakest directions,
//! as the low-pass part of Olshausen–Field whitening does.
//!
//! [`olshausen_field`] is the other choice, the filter behind Olshausen's IMAGES.mat: each whole
//! image is filtered in the Fourier domain by R(f) = |f|·exp(−(|f|/f₀)⁴), which flattens the 1/f
//! amplitude spectrum of natural images and rolls off above f₀ (0.4 cycles per pixel in
//! SparseNet), and the images are scaled jointly to pixel variance 0.1. Patches are then cut from
//! the filtered images with no further whitening.

use std::path::{Path, PathBuf};

use faer::{Mat, MatRef, Side};

use super::png::read_png_gray;
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// A grayscale image, row-major, values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct GrayImage {
    /// Where it was read from.
    pub path: PathBuf,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Row-major values.
    pub values: Vec<f64>,
}

/// Reads the named PNG images from `dir` (colour images are converted to luma).
pub fn read_images(dir: &Path, names: &[&str]) -> Result<Vec<GrayImage>> {
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let (height, width, values) = read_png_gray(&path)?;
            Ok(GrayImage {
                path,
                height,
                width,
                values: values.into_iter().map(f64::from).collect(),
            })
        })
        .collect()
}

/// `n` square patches of side `size` (size² × n, row-major pixels per column) at positions drawn
/// from `seed`, images chosen in proportion to the number of positions they offer. Each patch's
/// mean is subtracted.
pub fn random_patches(images: &[GrayImage], size: usize, n: usize, seed: u64) -> Result<Mat<f64>> {
    if size == 0 || images.is_empty() {
        return Err(Error::Config(
            "patches need a size ≥ 1 and at least one image".into(),
        ));
    }
    let positions: Vec<usize> = images
        .iter()
        .map(|im| (im.height + 1).saturating_sub(size) * (im.width + 1).saturating_sub(size))
        .collect();
    let total: usize = positions.iter().sum();
    if let Some(small) = images.iter().find(|im| im.height < size || im.width < size) {
        return Err(Error::Dimension(format!(
            "{}: a {}×{} image is smaller than a {size}×{size} patch",
            small.path.display(),
            small.height,
            small.width
        )));
    }
    let mut rng = Stream::new(seed, &[ids::SAMPLE]);
    let mut patches = Mat::zeros(size * size, n);
    for j in 0..n {
        let mut at = rng.below(total);
        let image = positions
            .iter()
            .position(|&p| {
                if at < p {
                    true
                } else {
                    at -= p;
                    false
                }
            })
            .expect("a position below the total falls in some image");
        let im = &images[image];
        let columns = im.width + 1 - size;
        let (top, left) = (at / columns, at % columns);
        for r in 0..size {
            for c in 0..size {
                patches[(r * size + c, j)] = im.values[(top + r) * im.width + left + c];
            }
        }
        let mean = (0..size * size).map(|p| patches[(p, j)]).sum::<f64>() / (size * size) as f64;
        for p in 0..size * size {
            patches[(p, j)] -= mean;
        }
    }
    Ok(patches)
}

/// Olshausen–Field whitening of whole images: each image's mean is removed, its 2-D spectrum is
/// multiplied by R(f) = |f|·exp(−(|f|/`cutoff`)⁴) with f in cycles per pixel, and a `border` of
/// pixels (where the periodic filter wraps around) is cropped. All images are then scaled by
/// one factor to a mean pixel variance of 0.1, as SparseNet's IMAGES.mat.
pub fn olshausen_field(images: &[GrayImage], cutoff: f64, border: usize) -> Result<Vec<GrayImage>> {
    use rustfft::{FftPlanner, num_complex::Complex};
    if !(cutoff.is_finite() && cutoff > 0.0) {
        return Err(Error::Config(format!(
            "the Olshausen–Field cutoff must be positive (cycles per pixel), got {cutoff}"
        )));
    }
    let mut planner = FftPlanner::<f64>::new();
    let mut filtered = Vec::with_capacity(images.len());
    for im in images {
        let (h, w) = (im.height, im.width);
        if h <= 2 * border || w <= 2 * border {
            return Err(Error::Dimension(format!(
                "{}: a {h}×{w} image has nothing left inside a border of {border}",
                im.path.display()
            )));
        }
        if im.values.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidData(format!(
                "{}: NaN or infinite pixel values",
                im.path.display()
            )));
        }
        let mean = im.values.iter().sum::<f64>() / im.values.len() as f64;
        let mut data: Vec<Complex<f64>> = im
            .values
            .iter()
            .map(|&v| Complex::new(v - mean, 0.0))
            .collect();
        let (row_fft, col_fft) = (planner.plan_fft_forward(w), planner.plan_fft_forward(h));
        let (row_ifft, col_ifft) = (planner.plan_fft_inverse(w), planner.plan_fft_inverse(h));
        // Rows in place, then columns through a transposed copy.
        row_fft.process(&mut data);
        let mut columns = transpose(&data, h, w);
        col_fft.process(&mut columns);
        // columns[c·h + r] holds frequency (r, c).
        let frequency = |k: usize, n: usize| {
            let k = if k <= n / 2 {
                k as f64
            } else {
                k as f64 - n as f64
            };
            k / n as f64
        };
        for c in 0..w {
            let fx = frequency(c, w);
            for r in 0..h {
                let fy = frequency(r, h);
                let f = (fx * fx + fy * fy).sqrt();
                columns[c * h + r] *= f * (-(f / cutoff).powi(4)).exp();
            }
        }
        col_ifft.process(&mut columns);
        let mut data = transpose(&columns, w, h);
        row_ifft.process(&mut data);
        let scale = 1.0 / (h * w) as f64;
        let (height, width) = (h - 2 * border, w - 2 * border);
        let values = (0..height)
            .flat_map(|r| {
                let row = (r + border) * w + border;
                data[row..row + width]
                    .iter()
                    .map(|z| z.re * scale)
                    .collect::<Vec<_>>()
            })
            .collect();
        filtered.push(GrayImage {
            path: im.path.clone(),
            height,
            width,
            values,
        });
    }
    let variance = filtered
        .iter()
        .map(|im| {
            let m = im.values.iter().sum::<f64>() / im.values.len() as f64;
            im.values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / im.values.len() as f64
        })
        .sum::<f64>()
        / filtered.len().max(1) as f64;
    if variance.is_nan() || variance <= 0.0 {
        return Err(Error::InvalidData(
            "the filtered images are constant: nothing to learn from".into(),
        ));
    }
    let gain = (0.1 / variance).sqrt();
    for im in &mut filtered {
        im.values.iter_mut().for_each(|v| *v *= gain);
    }
    Ok(filtered)
}

/// The transpose of a row-major `rows × cols` array.
fn transpose<T: Copy>(data: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| data[r * cols + c]))
        .collect()
}

/// The ZCA whitening filter of a set of patches.
#[derive(Clone, Debug)]
pub struct Whitening {
    /// Z = U (Λ + εI)^{-1/2} Uᵀ (D × D).
    pub filter: Mat<f64>,
    /// Its inverse U (Λ + εI)^{1/2} Uᵀ, to map whitened patches back to pixels.
    pub inverse: Mat<f64>,
    /// The eigenvalues Λ of the patch covariance, ascending.
    pub eigenvalues: Vec<f64>,
    /// The regulariser ε actually added.
    pub epsilon: f64,
}

impl Whitening {
    /// Fits ZCA to `patches` (D × N, zero-mean per patch) with ε = `relative_epsilon` × mean
    /// eigenvalue.
    pub fn fit(patches: MatRef<'_, f64>, relative_epsilon: f64) -> Result<Self> {
        let (d, n) = (patches.nrows(), patches.ncols());
        if n < 2 || relative_epsilon.is_nan() || relative_epsilon <= 0.0 {
            return Err(Error::Config(format!(
                "ZCA needs at least 2 patches and ε > 0, got {n} patches and ε {relative_epsilon}"
            )));
        }
        if patches
            .col_iter()
            .flat_map(|c| c.iter().copied().collect::<Vec<_>>())
            .any(|v| !v.is_finite())
        {
            return Err(Error::InvalidData(
                "patches contain NaN or infinite values".into(),
            ));
        }
        let covariance = patches * patches.transpose() * faer::Scale(1.0 / n as f64);
        let eigen = covariance.self_adjoint_eigen(Side::Lower).map_err(|e| {
            Error::InvalidData(format!("patch covariance eigendecomposition: {e:?}"))
        })?;
        let u = eigen.U();
        let eigenvalues: Vec<f64> = (0..d).map(|i| eigen.S()[i].max(0.0)).collect();
        let epsilon = relative_epsilon * eigenvalues.iter().sum::<f64>() / d as f64;
        let scaled = |power: f64| {
            let mut m = u.to_owned();
            for (i, lambda) in eigenvalues.iter().enumerate() {
                let f = (lambda + epsilon).powf(power);
                for r in 0..d {
                    m[(r, i)] *= f;
                }
            }
            &m * u.transpose()
        };
        Ok(Whitening {
            filter: scaled(-0.5),
            inverse: scaled(0.5),
            eigenvalues,
            epsilon,
        })
    }

    /// Z x for every column of `patches`.
    pub fn apply(&self, patches: MatRef<'_, f64>) -> Mat<f64> {
        &self.filter * patches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp_image(height: usize, width: usize, seed: u64) -> GrayImage {
        // A smooth image plus a little texture: strongly correlated neighbouring pixels.
        let mut rng = Stream::new(seed, &[]);
        GrayImage {
            path: PathBuf::from("synthetic"),
            height,
            width,
            values: (0..height * width)
                .map(|i| {
                    let (r, c) = ((i / width) as f64, (i % width) as f64);
                    0.5 + 0.3 * (r / 7.0).sin() * (c / 5.0).cos() + 0.05 * rng.normal()
                })
                .collect(),
        }
    }

    #[test]
    fn patches_are_cut_from_the_images_with_their_mean_removed() {
        let image = ramp_image(20, 30, 1);
        let patches = random_patches(std::slice::from_ref(&image), 4, 50, 2).unwrap();
        assert_eq!((patches.nrows(), patches.ncols()), (16, 50));
        for j in 0..50 {
            let mean: f64 = (0..16).map(|p| patches[(p, j)]).sum::<f64>() / 16.0;
            assert!(mean.abs() < 1e-12);
            // The patch is some 4×4 window of the image up to its mean.
            let found = (0..=16).any(|top| {
                (0..=26).any(|left| {
                    let window: Vec<f64> = (0..16)
                        .map(|p| image.values[(top + p / 4) * 30 + left + p % 4])
                        .collect();
                    let m = window.iter().sum::<f64>() / 16.0;
                    (0..16).all(|p| (window[p] - m - patches[(p, j)]).abs() < 1e-12)
                })
            });
            assert!(found, "patch {j} is no window of the image");
        }
        assert!(random_patches(&[ramp_image(3, 3, 0)], 4, 1, 0).is_err());
    }

    #[test]
    fn olshausen_field_scales_each_frequency_by_its_filter_gain() {
        // A sum of two cosines on the DFT grid: the filter must scale each by R(f) exactly.
        let (h, w) = (32, 48);
        let (k1, l1, k2, l2) = (3usize, 5usize, 11usize, 20usize);
        let wave = |k: usize, l: usize, r: usize, c: usize| {
            (2.0 * std::f64::consts::PI
                * (k as f64 * r as f64 / h as f64 + l as f64 * c as f64 / w as f64))
                .cos()
        };
        let image = GrayImage {
            path: PathBuf::from("waves"),
            height: h,
            width: w,
            values: (0..h * w)
                .map(|i| 0.7 + wave(k1, l1, i / w, i % w) + 0.5 * wave(k2, l2, i / w, i % w))
                .collect(),
        };
        let cutoff = 0.4;
        let gain = |k: usize, l: usize| {
            let f = ((k as f64 / h as f64).powi(2) + (l as f64 / w as f64).powi(2)).sqrt();
            f * (-(f / cutoff).powi(4)).exp()
        };
        let out = olshausen_field(std::slice::from_ref(&image), cutoff, 0).unwrap();
        let expected: Vec<f64> = (0..h * w)
            .map(|i| {
                gain(k1, l1) * wave(k1, l1, i / w, i % w)
                    + 0.5 * gain(k2, l2) * wave(k2, l2, i / w, i % w)
            })
            .collect();
        // Up to the joint rescaling to variance 0.1.
        let ratio = out[0].values[0] / expected[0];
        for (o, e) in out[0].values.iter().zip(&expected) {
            assert!((o - ratio * e).abs() < 1e-9, "{o} vs {}", ratio * e);
        }
        let var = out[0].values.iter().map(|v| v * v).sum::<f64>() / (h * w) as f64;
        assert!((var - 0.1).abs() < 1e-9, "variance {var}");
        // The border is cropped from every side.
        let cropped = olshausen_field(std::slice::from_ref(&image), cutoff, 4).unwrap();
        assert_eq!((cropped[0].height, cropped[0].width), (h - 8, w - 8));
        assert!(olshausen_field(std::slice::from_ref(&image), 0.0, 0).is_err());
        assert!(olshausen_field(&[image], cutoff, 24).is_err());
    }

    #[test]
    fn zca_whitens_to_the_identity_up_to_the_regulariser() {
        let image = ramp_image(60, 60, 3);
        let patches = random_patches(&[image], 5, 4000, 4).unwrap();
        let zca = Whitening::fit(patches.as_ref(), 1e-9).unwrap();
        let white = zca.apply(patches.as_ref());
        let covariance = &white * white.transpose() * faer::Scale(1.0 / 4000.0);
        // The DC direction was removed from every patch (eigenvalue ≈ 0); all others are unit.
        let d = 25;
        let trace: f64 = (0..d).map(|i| covariance[(i, i)]).sum();
        assert!((trace - (d as f64 - 1.0)).abs() < 1e-3, "trace {trace}");
        // Symmetric filter, and the inverse undoes it.
        assert!((&zca.filter - zca.filter.transpose()).norm_max() < 1e-9);
        let back = &zca.inverse * &white;
        assert!((back - &patches).norm_max() < 1e-6);
    }
}
