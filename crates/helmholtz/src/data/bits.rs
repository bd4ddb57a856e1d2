//! Binary data sets held as bits: 1/32 of the memory of f32 values.

use super::Dataset;
use crate::error::{Error, Result};

/// A binary data set, one sample per column (dim × n), packed one bit per value in column order:
/// value `k = j·dim + i` is bit `k % 8` of byte `k / 8` (the layout of the binarisation cache).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BitSet {
    dim: usize,
    n: usize,
    bits: Vec<u8>,
    /// Optional class labels, one per sample.
    pub labels: Option<Vec<u32>>,
    /// (height, width) when the samples are images stored row-major in each column.
    pub image_shape: Option<(usize, usize)>,
}

impl BitSet {
    /// `n` samples of dimension `dim` from packed bits (at least dim·n of them).
    pub fn from_bits(dim: usize, n: usize, bits: Vec<u8>) -> Result<Self> {
        if bits.len() < (dim * n).div_ceil(8) {
            return Err(Error::InvalidData(format!(
                "{} bytes cannot hold {n} binary samples of dimension {dim}",
                bits.len()
            )));
        }
        Ok(BitSet {
            dim,
            n,
            bits,
            labels: None,
            image_shape: None,
        })
    }

    /// The values of `ds` as bits, with its labels and image shape; an error names the first value
    /// that is neither 0 nor 1.
    pub fn from_dataset(ds: &Dataset) -> Result<Self> {
        ds.check_binary()?;
        let (dim, n) = (ds.dim(), ds.n_samples());
        let mut bits = vec![0u8; (dim * n).div_ceil(8)];
        for j in 0..n {
            for (i, &v) in ds.x.col(j).iter().enumerate() {
                let k = j * dim + i;
                bits[k / 8] |= u8::from(v != 0.0) << (k % 8);
            }
        }
        Ok(BitSet {
            dim,
            n,
            bits,
            labels: ds.labels.clone(),
            image_shape: ds.image_shape,
        })
    }

    /// Dimension of one sample.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        self.n
    }

    /// The packed bits.
    pub fn bits(&self) -> &[u8] {
        &self.bits[..(self.dim * self.n).div_ceil(8)]
    }

    /// Value number `k` (in column order) as 0 or 1.
    #[inline]
    fn bit(&self, k: usize) -> u8 {
        (self.bits[k / 8] >> (k % 8)) & 1
    }

    /// Writes sample `j` as 0.0/1.0 values into `out` (length `dim`).
    #[inline]
    pub fn column_into(&self, j: usize, out: &mut [f32]) {
        let first = j * self.dim;
        for (i, o) in out[..self.dim].iter_mut().enumerate() {
            *o = f32::from(self.bit(first + i));
        }
    }

    /// Samples `start..end` as contiguous f32 columns (dim × (end − start)).
    pub fn columns(&self, start: usize, end: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.dim * (end - start)];
        for (j, column) in (start..end).zip(out.chunks_exact_mut(self.dim.max(1))) {
            self.column_into(j, column);
        }
        out
    }

    /// Samples `start..end` as a new set (labels follow).
    pub fn range(&self, start: usize, end: usize) -> BitSet {
        let dim = self.dim;
        let mut bits = vec![0u8; (dim * (end - start)).div_ceil(8)];
        for (target, source) in (start * dim..end * dim).enumerate() {
            bits[target / 8] |= self.bit(source) << (target % 8);
        }
        BitSet {
            dim,
            n: end - start,
            bits,
            labels: self.labels.as_ref().map(|l| l[start..end].to_vec()),
            image_shape: self.image_shape,
        }
    }

    /// The samples as an f32 data set.
    pub fn to_dataset(&self) -> Dataset {
        let x = faer::Mat::from_fn(self.dim, self.n, |i, j| {
            f32::from(self.bit(j * self.dim + i))
        });
        Dataset {
            x,
            labels: self.labels.clone(),
            image_shape: self.image_shape,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_a_dataset_and_its_ranges() {
        let (dim, n) = (13, 11);
        let x = faer::Mat::from_fn(dim, n, |i, j| f32::from(u8::from((i * 7 + j * 3) % 5 < 2)));
        let mut ds = Dataset::new(x);
        ds.labels = Some((0..n as u32).collect());
        let set = BitSet::from_dataset(&ds).unwrap();
        assert_eq!(set.to_dataset().x, ds.x);
        assert_eq!(set.columns(0, n), ds.to_columns());
        let part = set.range(3, 9);
        assert_eq!(part.to_dataset().x, ds.range(3, 9).x);
        assert_eq!(part.labels, Some((3..9).collect()));
        assert_eq!(part.columns(1, 4), ds.range(4, 7).to_columns());
    }

    #[test]
    fn non_binary_values_and_short_buffers_are_refused() {
        let ds = Dataset::new(faer::Mat::from_fn(2, 2, |i, j| (i + j) as f32 * 0.5));
        let e = BitSet::from_dataset(&ds).unwrap_err().to_string();
        assert!(e.contains("0.5") && e.contains("not binary"), "{e}");
        assert!(BitSet::from_bits(10, 10, vec![0; 12]).is_err());
        assert!(BitSet::from_bits(10, 10, vec![0; 13]).is_ok());
    }
}
