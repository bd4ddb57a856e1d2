//! THE shuffled-minibatch iterator: every learner that walks its data in minibatches draws the
//! order of an epoch here, from (seed, epoch), and fills its batches through a [`BatchSource`].
//!
//! ```
//! use helmholtz::data::batches::Minibatches;
//! let epoch = Minibatches::new(7, 0, 10, 4);
//! assert_eq!(epoch.len(), 3); // 4 + 4 + 2
//! let mut seen: Vec<usize> = (0..epoch.len()).flat_map(|b| epoch.batch(b).to_vec()).collect();
//! seen.sort();
//! assert_eq!(seen, (0..10).collect::<Vec<_>>());
//! ```

use faer::MatRef;

use crate::math::rng::{Stream, ids};

/// The minibatches of one epoch: a permutation of `0..n_points` drawn from (seed, epoch), cut
/// into consecutive chunks of `batch_size` (the last one may be smaller).
#[derive(Clone, Debug)]
pub struct Minibatches {
    order: Vec<usize>,
    batch_size: usize,
}

impl Minibatches {
    /// The order of epoch `epoch` (0-based) of a run with master seed `seed`.
    pub fn new(seed: u64, epoch: usize, n_points: usize, batch_size: usize) -> Self {
        Minibatches {
            order: Stream::new(seed, &[ids::SHUFFLE, epoch as u64]).permutation(n_points),
            batch_size: batch_size.max(1),
        }
    }

    /// Batches of `batch_size` points given in `order` (which may repeat points): the draws of
    /// [`Sampling::WithReplacement`](crate::train::trainer::Sampling), or a fixed order.
    pub fn from_order(order: Vec<usize>, batch_size: usize) -> Self {
        Minibatches {
            order,
            batch_size: batch_size.max(1),
        }
    }

    /// `count` point indices drawn uniformly with replacement from `0..n_points`, one draw of
    /// `stream` each: the run-long stream of [`Sampling::WithReplacement`](crate::train::trainer::Sampling).
    pub fn draw(stream: &mut Stream, n_points: usize, count: usize) -> Vec<usize> {
        (0..count).map(|_| stream.below(n_points)).collect()
    }

    /// Number of batches in the epoch.
    pub fn len(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Whether the epoch has no batches (no points).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The point indices of batch `b`.
    pub fn batch(&self, b: usize) -> &[usize] {
        let start = b * self.batch_size;
        &self.order[start..(start + self.batch_size).min(self.order.len())]
    }

    /// The batches in order, as point indices.
    pub fn iter(&self) -> impl Iterator<Item = &[usize]> {
        self.order.chunks(self.batch_size)
    }
}

/// Where a trainer's batches come from: fills the columns of the points `indices` (column-major,
/// `dim()` values per point) for epoch `epoch`. A source may change its points from epoch to
/// epoch (dynamic binarisation) but must be a pure function of (indices, epoch).
pub trait BatchSource<T>: Sync {
    /// Values per point.
    fn dim(&self) -> usize;
    /// Number of points.
    fn n_points(&self) -> usize;
    /// Writes the points `indices` of epoch `epoch` into `out` (`dim() * indices.len()` values).
    fn fill(&self, indices: &[usize], epoch: usize, out: &mut [T]);
}

impl<T: Copy + Sync> BatchSource<T> for MatRef<'_, T> {
    fn dim(&self) -> usize {
        self.nrows()
    }

    fn n_points(&self) -> usize {
        self.ncols()
    }

    fn fill(&self, indices: &[usize], _epoch: usize, out: &mut [T]) {
        let d = self.nrows();
        for (column, &i) in out.chunks_exact_mut(d).zip(indices) {
            for (r, value) in column.iter_mut().enumerate() {
                *value = self[(r, i)];
            }
        }
    }
}

/// Points stored as contiguous columns (`dim` values each).
#[derive(Clone, Debug)]
pub struct Columns<T> {
    /// The values, column-major.
    pub values: Vec<T>,
    /// Values per point.
    pub dim: usize,
}

impl<T: Copy + Sync> BatchSource<T> for Columns<T> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn n_points(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    fn fill(&self, indices: &[usize], _epoch: usize, out: &mut [T]) {
        let d = self.dim;
        for (column, &i) in out.chunks_exact_mut(d).zip(indices) {
            column.copy_from_slice(&self.values[i * d..(i + 1) * d]);
        }
    }
}

/// A source that passes only indices (values of dimension 0): for algorithms that hold their
/// data themselves, such as full-batch EM, so that nothing is copied.
#[derive(Clone, Copy, Debug)]
pub struct IndicesOnly {
    /// Number of points.
    pub n_points: usize,
}

impl<T> BatchSource<T> for IndicesOnly {
    fn dim(&self) -> usize {
        0
    }

    fn n_points(&self) -> usize {
        self.n_points
    }

    fn fill(&self, _indices: &[usize], _epoch: usize, _out: &mut [T]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn an_epoch_is_a_permutation_cut_in_order_and_epochs_differ() {
        let first = Minibatches::new(3, 0, 23, 5);
        let second = Minibatches::new(3, 1, 23, 5);
        assert_eq!(first.len(), 5);
        assert_eq!(first.batch(4).len(), 3);
        let joined: Vec<usize> = first.iter().flatten().copied().collect();
        let by_index: Vec<usize> = (0..first.len())
            .flat_map(|b| first.batch(b).to_vec())
            .collect();
        assert_eq!(joined, by_index);
        let mut sorted = joined.clone();
        sorted.sort();
        assert_eq!(sorted, (0..23).collect::<Vec<_>>());
        let other: Vec<usize> = second.iter().flatten().copied().collect();
        assert_ne!(joined, other);
        assert_eq!(
            joined,
            Stream::new(3, &[ids::SHUFFLE, 0]).permutation(23),
            "the order every learner used before the iterator existed"
        );
    }

    #[test]
    fn matrix_and_column_sources_fill_the_same_batch() {
        let x = Mat::from_fn(3, 6, |r, c| (10 * c + r) as f32);
        let columns = Columns {
            values: (0..6)
                .flat_map(|c| (0..3).map(move |r| (10 * c + r) as f32))
                .collect(),
            dim: 3,
        };
        let (mut a, mut b) = (vec![0.0f32; 6], vec![0.0f32; 6]);
        x.as_ref().fill(&[4, 1], 0, &mut a);
        columns.fill(&[4, 1], 0, &mut b);
        assert_eq!(a, vec![40.0, 41.0, 42.0, 10.0, 11.0, 12.0]);
        assert_eq!(a, b);
        assert_eq!((columns.n_points(), columns.dim()), (6, 3));
    }
}
