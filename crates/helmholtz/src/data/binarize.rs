//! Stochastic binarisation of [0, 1] data: fixed (once, cacheable) and dynamic (every epoch).
//!
//! Both use the same rule: pixel `i` of sample `j` becomes `1` if `u_ij < x_ij` and `0` otherwise,
//! so that `E[binary] = x` for values in [0, 1] (values ≤ 0 or NaN always give 0, values ≥ 1 always 1).
//! Each sample draws its uniforms from its own [`Stream`], so the result depends neither on the
//! order samples are processed in nor on the number of threads.

use std::io::Write;
use std::path::Path;

use faer::{ColMut, ColRef, Mat, MatMut, MatRef};
use rayon::prelude::*;

use super::{BitSet, Dataset};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// Uniforms are drawn in chunks of this many (even, so chunking does not change the sequence).
const CHUNK: usize = 256;

/// Columns per parallel task in [`binarize_fixed`].
const COLUMNS_PER_TASK: usize = 256;

/// Binarises one column: `out[i] = 1` if `u_i < src[i]`, where `u_0, u_1, …` is the sequence that
/// `stream.fill_uniform_f32` writes into a buffer of length `src.nrows()`.
fn binarize_column(src: ColRef<'_, f32>, mut out: ColMut<'_, f32>, stream: &mut Stream) {
    let mut uniforms = [0.0f32; CHUNK];
    let dim = src.nrows();
    let mut start = 0;
    while start < dim {
        let len = CHUNK.min(dim - start);
        let chunk = &mut uniforms[..len];
        stream.fill_uniform_f32(chunk);
        for (k, &u) in chunk.iter().enumerate() {
            out[start + k] = if u < src[start + k] { 1.0 } else { 0.0 };
        }
        start += len;
    }
}

/// A fixed binarisation of `ds`: one Bernoulli draw per value, reproducible from `seed`.
///
/// Sample (column) `j` uses its own stream `Stream::new(seed, &[ids::BINARIZE, j as u64])`: the
/// uniforms `u_0j, …, u_(d-1)j` are what `Stream::fill_uniform_f32` writes into a buffer of length
/// `d = ds.dim()` (24-bit uniforms in [0, 1), two per 64-bit xoshiro256++ word), and
/// `x_ij = 1` if `u_ij < value_ij`, else `0`. One stream per sample makes the result independent of
/// the order and the number of threads used. Labels and `image_shape` are kept.
///
/// This is the "fixed binarisation" of MNIST used by the literature's protocol, but it is not
/// bit-identical to any published binarised file; compare numbers with those only approximately.
/// For a dataset used many times, [`binarize_fixed_cached`] saves the result to disk.
pub fn binarize_fixed(ds: &Dataset, seed: u64) -> Dataset {
    let mut x = Mat::<f32>::zeros(ds.dim(), ds.n_samples());
    let src = ds.x.as_ref();
    x.as_mut()
        .par_col_chunks_mut(COLUMNS_PER_TASK)
        .enumerate()
        .for_each(|(task, mut block)| {
            let first = task * COLUMNS_PER_TASK;
            for k in 0..block.ncols() {
                let j = first + k;
                let mut stream = Stream::new(seed, &[ids::BINARIZE, j as u64]);
                binarize_column(src.col(j), block.as_mut().col_mut(k), &mut stream);
            }
        });
    Dataset {
        x,
        labels: ds.labels.clone(),
        image_shape: ds.image_shape,
    }
}

/// Dynamic binarisation of a minibatch into `out`, redrawn every epoch.
///
/// Column `j` of `src` is sample number `first_index + j` of the data set (its position in the
/// unshuffled data set, so that the draw does not depend on the batch order), and uses the stream
/// `Stream::new(seed, &[ids::DYNAMIC_BINARIZE, epoch, (first_index + j) as u64])` with the same rule
/// as [`binarize_fixed`]: `out_ij = 1` if `u_ij < src_ij`, the `u_ij` being what
/// `fill_uniform_f32` writes into a buffer of length `src.nrows()`. Callers may split a batch into
/// column blocks processed on different threads, passing each block's own `first_index`; the
/// result is the same. Allocates nothing.
///
/// # Panics
/// If `src` and `out` have different shapes.
pub fn binarize_dynamic_into(
    src: MatRef<'_, f32>,
    seed: u64,
    epoch: u64,
    first_index: usize,
    mut out: MatMut<'_, f32>,
) {
    assert_eq!(
        (src.nrows(), src.ncols()),
        (out.nrows(), out.ncols()),
        "binarize_dynamic_into: source and output shapes differ"
    );
    for j in 0..src.ncols() {
        let sample = (first_index + j) as u64;
        let mut stream = Stream::new(seed, &[ids::DYNAMIC_BINARIZE, epoch, sample]);
        binarize_column(src.col(j), out.as_mut().col_mut(j), &mut stream);
    }
}

/// The magic bytes that start a binarisation cache file (the last byte is the format version).
const CACHE_MAGIC: [u8; 8] = *b"HHBINRZ1";

/// Bytes in the cache header: magic, then dim, n_samples, seed and source hash as little-endian u64.
const CACHE_HEADER_LEN: usize = 8 + 4 * 8;

/// FNV-1a (64-bit) of the bit patterns of `x`'s values, column by column, each as 4 little-endian
/// bytes. Identifies the source data of a cached binarisation.
pub fn fnv1a_f32(x: MatRef<'_, f32>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for j in 0..x.ncols() {
        for i in 0..x.nrows() {
            for byte in x[(i, j)].to_bits().to_le_bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(PRIME);
            }
        }
    }
    hash
}

/// The header a cache file for (`ds`, `seed`) must start with.
fn cache_header(ds: &Dataset, seed: u64) -> [u8; CACHE_HEADER_LEN] {
    let mut header = [0u8; CACHE_HEADER_LEN];
    header[..8].copy_from_slice(&CACHE_MAGIC);
    let fields = [
        ds.dim() as u64,
        ds.n_samples() as u64,
        seed,
        fnv1a_f32(ds.x.as_ref()),
    ];
    for (k, field) in fields.iter().enumerate() {
        header[8 + 8 * k..16 + 8 * k].copy_from_slice(&field.to_le_bytes());
    }
    header
}

/// Like [`binarize_fixed`], but reads the result from `cache` when it holds the binarisation of the
/// same data with the same seed, and otherwise computes it and writes it there.
///
/// The cache file is a 40-byte header — magic `HHBINRZ1`, then `dim`, `n_samples`, `seed` and the
/// [`fnv1a_f32`] hash of the source values, each a little-endian `u64` — followed by the binary
/// values bit-packed in column order (value `k = j * dim + i` is bit `k % 8` of byte `k / 8`). A
/// header that does not match, or a file of the wrong length, is recomputed and overwritten (the
/// new file is written next to it and renamed into place). Parent directories are created.
pub fn binarize_fixed_cached(ds: &Dataset, seed: u64, cache: &Path) -> Result<Dataset> {
    binarize_fixed_cached_bits(ds, seed, cache).map(|set| set.to_dataset())
}

/// [`binarize_fixed_cached`] with the result held as bits (1/32 of the memory of f32 values);
/// the same values, the same cache file.
pub fn binarize_fixed_cached_bits(ds: &Dataset, seed: u64, cache: &Path) -> Result<BitSet> {
    let header = cache_header(ds, seed);
    let n_bytes = (ds.dim() * ds.n_samples()).div_ceil(8);
    let labelled = |mut set: BitSet| {
        set.labels = ds.labels.clone();
        set.image_shape = ds.image_shape;
        set
    };
    match std::fs::read(cache) {
        Ok(mut bytes)
            if bytes.len() == CACHE_HEADER_LEN + n_bytes && bytes[..CACHE_HEADER_LEN] == header =>
        {
            bytes.drain(..CACHE_HEADER_LEN);
            return BitSet::from_bits(ds.dim(), ds.n_samples(), bytes).map(labelled);
        }
        Ok(_) => {} // stale or corrupt: recompute
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(cache, e)),
    }
    let binary = binarize_fixed_bits(ds, seed);
    write_atomically(cache, &[&header, binary.bits()])?;
    Ok(binary)
}

/// [`binarize_fixed`] with the result held as bits: the same values.
pub fn binarize_fixed_bits(ds: &Dataset, seed: u64) -> BitSet {
    let (dim, n) = (ds.dim(), ds.n_samples());
    let src = ds.x.as_ref();
    // Tasks of whole bytes: COLUMNS_PER_TASK · dim values is a multiple of 8.
    let values_per_task = COLUMNS_PER_TASK * dim;
    let mut bits = vec![0u8; (dim * n).div_ceil(8)];
    bits.par_chunks_mut((values_per_task / 8).max(1))
        .enumerate()
        .for_each(|(task, bytes)| {
            let first = task * COLUMNS_PER_TASK;
            let mut column = Mat::<f32>::zeros(dim, 1);
            for j in first..(first + COLUMNS_PER_TASK).min(n) {
                let mut stream = Stream::new(seed, &[ids::BINARIZE, j as u64]);
                binarize_column(src.col(j), column.as_mut().col_mut(0), &mut stream);
                for (i, &v) in column.col(0).iter().enumerate() {
                    let k = (j - first) * dim + i;
                    bytes[k / 8] |= u8::from(v != 0.0) << (k % 8);
                }
            }
        });
    let mut set = BitSet::from_bits(dim, n, bits).expect("sized for dim × n values");
    set.labels = ds.labels.clone();
    set.image_shape = ds.image_shape;
    set
}

/// Writes `parts` to a temporary file beside `path`, then renames it to `path`.
fn write_atomically(path: &Path, parts: &[&[u8]]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for part in parts {
            file.write_all(part)?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::temp_dir;

    #[test]
    fn bits_hold_the_same_binarisation_across_tasks() {
        // More columns than one task and an odd dimension: bytes straddle columns.
        let ds = source(301, COLUMNS_PER_TASK + 37);
        let bits = binarize_fixed_bits(&ds, 11);
        assert_eq!(bits.to_dataset().x, binarize_fixed(&ds, 11).x);
        assert_eq!(bits.n_samples(), ds.n_samples());
    }

    /// A data set of smooth values in [0, 1], odd dimension (> CHUNK) to exercise chunking.
    fn source(dim: usize, n: usize) -> Dataset {
        let x = Mat::from_fn(dim, n, |i, j| ((i * 7 + j * 13) % 101) as f32 / 100.0);
        Dataset {
            x,
            labels: Some((0..n as u32).collect()),
            image_shape: None,
        }
    }

    fn mean(x: MatRef<'_, f32>) -> f64 {
        let mut sum = 0.0f64;
        for j in 0..x.ncols() {
            for i in 0..x.nrows() {
                sum += f64::from(x[(i, j)]);
            }
        }
        sum / (x.nrows() * x.ncols()) as f64
    }

    #[test]
    fn fixed_is_binary_unbiased_reproducible_and_follows_the_documented_rule() {
        let ds = source(301, 700);
        let a = binarize_fixed(&ds, 42);
        let b = binarize_fixed(&ds, 42);
        let c = binarize_fixed(&ds, 43);
        a.check_binary().unwrap();
        assert_eq!(a.x, b.x);
        assert_ne!(a.x, c.x);
        assert_eq!(a.labels, ds.labels);
        let (m_src, m_bin) = (mean(ds.x.as_ref()), mean(a.x.as_ref()));
        // 210,700 Bernoulli draws: standard error below 0.0011.
        assert!((m_src - m_bin).abs() < 0.005, "{m_src} vs {m_bin}");
        // The documented rule, written out with one buffer per sample.
        for j in [0usize, 255, 256, 699] {
            let mut u = vec![0.0f32; ds.dim()];
            Stream::new(42, &[ids::BINARIZE, j as u64]).fill_uniform_f32(&mut u);
            for (i, &u_i) in u.iter().enumerate() {
                assert_eq!(a.x[(i, j)], if u_i < ds.x[(i, j)] { 1.0 } else { 0.0 });
            }
        }
        // Extreme values are deterministic.
        let edges = Dataset::new(Mat::from_fn(2, 50, |i, _| i as f32));
        let e = binarize_fixed(&edges, 1);
        assert!((0..50).all(|j| e.x[(0, j)] == 0.0 && e.x[(1, j)] == 1.0));
    }

    #[test]
    fn dynamic_redraws_per_epoch_and_ignores_batch_boundaries() {
        let ds = source(301, 40);
        let mut whole = Mat::<f32>::zeros(301, 40);
        binarize_dynamic_into(ds.x.as_ref(), 5, 0, 100, whole.as_mut());
        let mut pieces = Mat::<f32>::zeros(301, 40);
        let (left, right) = pieces.as_mut().split_at_col_mut(15);
        binarize_dynamic_into(ds.x.as_ref().subcols(0, 15), 5, 0, 100, left);
        binarize_dynamic_into(ds.x.as_ref().subcols(15, 25), 5, 0, 115, right);
        assert_eq!(whole, pieces);
        let mut next_epoch = Mat::<f32>::zeros(301, 40);
        binarize_dynamic_into(ds.x.as_ref(), 5, 1, 100, next_epoch.as_mut());
        assert_ne!(whole, next_epoch);
        Dataset::new(whole.clone()).check_binary().unwrap();
        // Averaged over many epochs, each value's frequency approaches the source value.
        let small = source(10, 4);
        let mut freq = Mat::<f32>::zeros(10, 4);
        let mut batch = Mat::<f32>::zeros(10, 4);
        let epochs = 4000;
        for epoch in 0..epochs {
            binarize_dynamic_into(small.x.as_ref(), 9, epoch, 0, batch.as_mut());
            freq += &batch;
        }
        for j in 0..4 {
            for i in 0..10 {
                let f = freq[(i, j)] / epochs as f32;
                assert!(
                    (f - small.x[(i, j)]).abs() < 0.04,
                    "({i},{j}): {f} vs {}",
                    small.x[(i, j)]
                );
            }
        }
    }

    #[test]
    fn cache_round_trip_equals_recomputation() {
        let dir = temp_dir("binarize-cache");
        let cache = dir.join("sub").join("fixed.bin");
        let ds = source(301, 33); // 9,933 values: not a multiple of 8
        let expected = binarize_fixed(&ds, 7);
        let written = binarize_fixed_cached(&ds, 7, &cache).unwrap();
        assert_eq!(written.x, expected.x);
        let size = std::fs::metadata(&cache).unwrap().len() as usize;
        assert_eq!(size, CACHE_HEADER_LEN + (301 * 33usize).div_ceil(8));
        let read = binarize_fixed_cached(&ds, 7, &cache).unwrap();
        assert_eq!(read.x, expected.x);
        assert_eq!(read.labels, ds.labels);

        // Prove the second call read the file: flip a stored bit, and it shows.
        let mut bytes = std::fs::read(&cache).unwrap();
        bytes[CACHE_HEADER_LEN] ^= 1;
        std::fs::write(&cache, &bytes).unwrap();
        let tampered = binarize_fixed_cached(&ds, 7, &cache).unwrap();
        assert_ne!(tampered.x[(0, 0)], expected.x[(0, 0)]);

        // A different seed or different source data is recomputed and overwrites the file.
        let other_seed = binarize_fixed_cached(&ds, 8, &cache).unwrap();
        assert_eq!(other_seed.x, binarize_fixed(&ds, 8).x);
        let mut changed = ds.clone();
        changed.x[(3, 3)] = 0.123;
        let other_data = binarize_fixed_cached(&changed, 8, &cache).unwrap();
        assert_eq!(other_data.x, binarize_fixed(&changed, 8).x);
        // A truncated file is recomputed too.
        std::fs::write(&cache, CACHE_MAGIC).unwrap();
        assert_eq!(binarize_fixed_cached(&ds, 7, &cache).unwrap().x, expected.x);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fnv1a_matches_published_test_vectors() {
        // FNV-1a 64: "" -> cbf29ce484222325, "foob" -> dd120e790c2512af (the FNV test suite).
        assert_eq!(
            fnv1a_f32(Mat::<f32>::zeros(0, 0).as_ref()),
            0xcbf2_9ce4_8422_2325
        );
        let foob = f32::from_bits(u32::from_le_bytes(*b"foob"));
        assert_eq!(
            fnv1a_f32(Mat::from_fn(1, 1, |_, _| foob).as_ref()),
            0xdd12_0e79_0c25_12af
        );
    }
}
