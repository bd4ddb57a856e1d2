//! Data sets: samples as columns, loaders for real file formats, binarisation, synthetic sets.

pub mod batches;
pub mod binarize;
pub mod bits;
pub mod csv;
pub mod embedded;
pub mod idx;
pub mod mnist;
pub mod npy;
pub mod patches;
pub mod png;
pub mod synthetic;
pub mod table;

pub use binarize::{
    binarize_dynamic_into, binarize_fixed, binarize_fixed_bits, binarize_fixed_cached,
    binarize_fixed_cached_bits,
};
pub use bits::BitSet;
pub use csv::read_csv;
pub use embedded::{embedded_digits, embedded_digits_splits};
pub use idx::{IdxArray, load_idx_images, read_idx};
pub use mnist::{
    Splits, data_dir_near, default_data_dir, load_mnist_dir, load_mnist_splits, standard_split,
};
pub use npy::{NpyArray, read_npy, read_npz, read_npz_member};
pub use png::{load_png_dir, read_png_gray};
pub use synthetic::{lines3x3, lines3x3_distribution, lines3x3_splits};

use faer::Mat;

use crate::error::{Error, Result};

/// A data set: one sample per column of `x` (dim × n), values as f32.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The samples, one per column.
    pub x: Mat<f32>,
    /// Optional class labels, one per sample.
    pub labels: Option<Vec<u32>>,
    /// (height, width) when the samples are images stored row-major in each column.
    pub image_shape: Option<(usize, usize)>,
}

impl Dataset {
    /// A data set from a matrix of samples (columns).
    pub fn new(x: Mat<f32>) -> Self {
        Dataset {
            x,
            labels: None,
            image_shape: None,
        }
    }

    /// Number of samples (columns).
    pub fn n_samples(&self) -> usize {
        self.x.ncols()
    }

    /// Dimension of one sample (rows).
    pub fn dim(&self) -> usize {
        self.x.nrows()
    }

    /// The samples as one contiguous column-major buffer (dim × n), the layout models take.
    pub fn to_columns(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.dim() * self.n_samples());
        for j in 0..self.n_samples() {
            out.extend((0..self.dim()).map(|i| self.x[(i, j)]));
        }
        out
    }

    /// The samples at `indices`, in that order, as a new data set.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let x = Mat::from_fn(self.dim(), indices.len(), |i, j| self.x[(i, indices[j])]);
        Dataset {
            x,
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            image_shape: self.image_shape,
        }
    }

    /// The samples `start..end` as a new data set.
    pub fn range(&self, start: usize, end: usize) -> Dataset {
        self.select(&(start..end).collect::<Vec<_>>())
    }

    /// Checks that every value is finite.
    pub fn check_finite(&self) -> Result<()> {
        for j in 0..self.n_samples() {
            for i in 0..self.dim() {
                if !self.x[(i, j)].is_finite() {
                    return Err(Error::InvalidData(format!(
                        "non-finite value {} at feature {i} of sample {j}",
                        self.x[(i, j)]
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks that every value is 0 or 1 (what a Bernoulli model can score).
    pub fn check_binary(&self) -> Result<()> {
        for j in 0..self.n_samples() {
            for i in 0..self.dim() {
                let v = self.x[(i, j)];
                if v != 0.0 && v != 1.0 {
                    return Err(Error::InvalidData(format!(
                        "value {v} at feature {i} of sample {j} is not binary; binarize the data first"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Checks points given as columns (d × n, f64) before a run is made of them: at least one point
/// of at least one value, every value finite.
pub fn check_points(x: faer::MatRef<'_, f64>) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::InvalidData(format!(
            "the data is empty ({} points of dimension {})",
            x.ncols(),
            x.nrows()
        )));
    }
    if let Some((r, c)) = (0..x.ncols())
        .flat_map(|c| (0..x.nrows()).map(move |r| (r, c)))
        .find(|&(r, c)| !x[(r, c)].is_finite())
    {
        return Err(Error::InvalidData(format!(
            "non-finite value {} at feature {r} of point {c}",
            x[(r, c)]
        )));
    }
    Ok(())
}
