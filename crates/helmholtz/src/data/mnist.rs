//! MNIST and Fashion-MNIST from their four IDX files, and the standard train/validation split.
//!
//! `scripts/fetch-data.sh` downloads MNIST into `data/mnist/` and Fashion-MNIST into
//! `data/fashion-mnist/` and verifies their checksums. Both use the same four file names, raw or
//! gzipped, so [`load_mnist_dir`] reads either.

use std::path::{Path, PathBuf};

use super::Dataset;
use super::idx::load_idx_images;
use crate::error::{Error, Result};

/// A data set split into training, validation and test parts.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Samples to fit the model on.
    pub train: Dataset,
    /// Held-out samples for early stopping and choosing hyper-parameters.
    pub valid: Dataset,
    /// Held-out samples for the final reported numbers only.
    pub test: Dataset,
}

/// The environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "HELMHOLTZ_DATA";

/// Sub-directory of the data directory holding MNIST.
pub const MNIST_SUBDIR: &str = "mnist";

/// Sub-directory of the data directory holding Fashion-MNIST.
pub const FASHION_MNIST_SUBDIR: &str = "fashion-mnist";

/// Training samples kept for training by [`standard_split`]; the rest of the 60,000 validate.
pub const MNIST_N_TRAIN: usize = 50_000;

/// The data directory: `$HELMHOLTZ_DATA` if set (and not empty); otherwise the nearest `data`
/// directory, looking in the current directory and then its ancestors, that holds a `mnist`,
/// `fashion-mnist` or `natural` folder (so tests run from `crates/helmholtz` find the
/// workspace's `data/`); otherwise `data` relative to the current directory.
pub fn default_data_dir() -> PathBuf {
    data_dir_near(None)
}

/// [`default_data_dir`], looking also in `config_dir` and its ancestors (after the current
/// directory's) so that a config run from elsewhere finds the data of its repository.
pub fn data_dir_near(config_dir: Option<&Path>) -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cwd = std::env::current_dir().ok();
    for start in [cwd.as_deref(), config_dir].into_iter().flatten() {
        for ancestor in start.ancestors() {
            let data = ancestor.join("data");
            if [MNIST_SUBDIR, FASHION_MNIST_SUBDIR, "natural"]
                .iter()
                .any(|sub| data.join(sub).is_dir())
            {
                return data;
            }
        }
    }
    PathBuf::from("data")
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists, else an error naming both.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::io(
        raw,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "missing (neither {name} nor {name}.gz is in {}); run `helmholtz data fetch \
                 mnist` (or fashion-mnist) to download it, or set {DATA_DIR_ENV} to the data \
                 directory",
                dir.display()
            ),
        ),
    ))
}

/// Whether `dir` holds the training images of MNIST or Fashion-MNIST (raw or gzip), so that
/// tests and tools can skip data that has not been fetched.
pub fn has_training_images(dir: &Path) -> bool {
    find_file(dir, "train-images-idx3-ubyte").is_ok()
}

/// Loads MNIST (or Fashion-MNIST) from `dir`: the 60,000 training and the 10,000 test images.
///
/// Reads `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, each raw or with a `.gz` suffix. Pixels are scaled to [0, 1]
/// (value / 255), one 28×28 image per column, row-major, with labels. A missing file is an error
/// that names it and suggests `helmholtz data fetch`. Use [`standard_split`] to hold out the
/// validation set.
pub fn load_mnist_dir(dir: &Path) -> Result<(Dataset, Dataset)> {
    let train_images = find_file(dir, "train-images-idx3-ubyte")?;
    let train_labels = find_file(dir, "train-labels-idx1-ubyte")?;
    let test_images = find_file(dir, "t10k-images-idx3-ubyte")?;
    let test_labels = find_file(dir, "t10k-labels-idx1-ubyte")?;
    let train = load_idx_images(&train_images, Some(&train_labels))?;
    let test = load_idx_images(&test_images, Some(&test_labels))?;
    Ok((train, test))
}

/// The split of the RWS and IWAE papers: the first 50,000 training images train, the last 10,000
/// validate, and the official 10,000 test images test.
///
/// With fewer than 50,000 training samples everything trains and the validation set is empty.
///
/// The training split keeps the 60,000 images' buffer (truncated in place), so splitting copies
/// only the validation images.
pub fn standard_split(mut train60k: Dataset, test: Dataset) -> Splits {
    let n = train60k.n_samples();
    let n_train = MNIST_N_TRAIN.min(n);
    let valid = train60k.range(n_train, n);
    let dim = train60k.dim();
    train60k.x.truncate(dim, n_train);
    if let Some(labels) = &mut train60k.labels {
        labels.truncate(n_train);
    }
    Splits {
        train: train60k,
        valid,
        test,
    }
}

/// [`load_mnist_dir`] followed by [`standard_split`].
pub fn load_mnist_splits(dir: &Path) -> Result<Splits> {
    let (train, test) = load_mnist_dir(dir)?;
    Ok(standard_split(train, test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::temp_dir;
    use crate::data::idx::write_idx;

    fn label_counts(ds: &Dataset) -> [usize; 10] {
        let mut counts = [0usize; 10];
        for &label in ds.labels.as_ref().expect("labels") {
            counts[label as usize] += 1;
        }
        counts
    }

    fn pixel_mean(ds: &Dataset) -> f64 {
        let mut sum = 0.0f64;
        for j in 0..ds.n_samples() {
            for i in 0..ds.dim() {
                sum += f64::from(ds.x[(i, j)]);
            }
        }
        sum / (ds.dim() * ds.n_samples()) as f64
    }

    #[test]
    fn loads_raw_or_gz_names_and_splits() {
        let dir = temp_dir("mnist-fixture");
        let n_train = 6;
        write_idx(
            &dir.join("train-images-idx3-ubyte"),
            &[n_train, 2, 2],
            &[255; 24],
            false,
        )
        .unwrap();
        write_idx(
            &dir.join("train-labels-idx1-ubyte.gz"),
            &[n_train],
            &[0, 1, 2, 3, 4, 5],
            true,
        )
        .unwrap();
        write_idx(
            &dir.join("t10k-images-idx3-ubyte.gz"),
            &[2, 2, 2],
            &[0; 8],
            true,
        )
        .unwrap();
        let err = load_mnist_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("t10k-labels-idx1-ubyte") && err.contains("helmholtz data fetch"),
            "{err}"
        );
        write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[2], &[9, 8], false).unwrap();
        let (train, test) = load_mnist_dir(&dir).unwrap();
        assert_eq!((train.n_samples(), test.n_samples()), (6, 2));
        assert_eq!(test.labels, Some(vec![9, 8]));
        let splits = standard_split(train, test);
        assert_eq!((splits.train.n_samples(), splits.valid.n_samples()), (6, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn standard_split_holds_out_the_last_ten_thousand() {
        let labels: Vec<u32> = (0..60_000).collect();
        let train = Dataset {
            x: faer::Mat::from_fn(2, 60_000, |i, j| (2 * j + i) as f32),
            labels: Some(labels),
            image_shape: None,
        };
        let test = Dataset::new(faer::Mat::zeros(1, 3));
        let splits = standard_split(train, test);
        assert_eq!(
            (splits.train.n_samples(), splits.valid.n_samples()),
            (50_000, 10_000)
        );
        assert_eq!(splits.train.labels.as_ref().map(Vec::len), Some(50_000));
        assert_eq!(splits.train.x[(1, 49_999)], 99_999.0);
        assert_eq!(splits.valid.labels.as_ref().unwrap()[0], 50_000);
        assert_eq!(splits.valid.x[(0, 0)], 100_000.0);
        assert_eq!(splits.test.n_samples(), 3);
    }

    /// Checks the real MNIST files against the fingerprints in the ecosystem research notes.
    #[test]
    fn mnist_fingerprints() {
        let dir = default_data_dir().join(MNIST_SUBDIR);
        if !has_training_images(&dir) {
            eprintln!(
                "skipping mnist_fingerprints: no MNIST in {} (run scripts/fetch-data.sh)",
                dir.display()
            );
            return;
        }
        let (train, test) = load_mnist_dir(&dir).unwrap();
        assert_eq!((train.n_samples(), test.n_samples()), (60_000, 10_000));
        assert_eq!(
            (train.dim(), train.image_shape, test.image_shape),
            (784, Some((28, 28)), Some((28, 28)))
        );
        assert_eq!(
            label_counts(&train),
            [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        );
        assert_eq!(
            label_counts(&test),
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
        let mean = pixel_mean(&train);
        assert!((mean - 0.1307).abs() < 5e-4, "train pixel mean {mean}");
        let splits = standard_split(train, test);
        assert_eq!(
            (splits.train.n_samples(), splits.valid.n_samples()),
            (50_000, 10_000)
        );
    }

    /// Checks the real Fashion-MNIST files: 6,000 / 1,000 images per class, mean 72.9404 / 255.
    #[test]
    fn fashion_mnist_fingerprints() {
        let dir = default_data_dir().join(FASHION_MNIST_SUBDIR);
        if !has_training_images(&dir) {
            eprintln!(
                "skipping fashion_mnist_fingerprints: no Fashion-MNIST in {} (run scripts/fetch-data.sh)",
                dir.display()
            );
            return;
        }
        let (train, test) = load_mnist_dir(&dir).unwrap();
        assert_eq!(
            (train.n_samples(), test.n_samples(), train.dim()),
            (60_000, 10_000, 784)
        );
        assert_eq!(label_counts(&train), [6000; 10]);
        assert_eq!(label_counts(&test), [1000; 10]);
        let mean = pixel_mean(&train);
        assert!(
            (mean - 72.9404 / 255.0).abs() < 5e-4,
            "train pixel mean {mean}"
        );
    }
}
