//! Turning a data section of a config into binary train / validation / test sets.

use std::path::{Path, PathBuf};

use crate::data::{self, BitSet, Dataset, Splits};
use crate::error::{Error, Result};
use crate::run::config::{Binarize, DataConfig, DataSource};

/// Data ready for a Helmholtz machine. Binary splits are held as bits (an MNIST run's 70,000
/// images take 7 MB instead of 220 MB as f32).
#[derive(Clone, Debug)]
pub struct RunData {
    /// Training set: binary, or grey levels in [0, 1] under dynamic binarisation.
    pub train: Points,
    /// Validation set (may be empty).
    pub valid: BitSet,
    /// Test set (may be empty).
    pub test: BitSet,
}

impl RunData {
    /// Whether the training set is binarised anew each epoch.
    pub fn dynamic(&self) -> bool {
        matches!(self.train, Points::Grey(_))
    }
}

/// A training set as a run holds it.
#[derive(Clone, Debug)]
pub enum Points {
    /// Binary values, as bits.
    Binary(BitSet),
    /// Grey levels in [0, 1], binarised anew each epoch.
    Grey(Dataset),
}

impl Points {
    /// Dimension of one sample.
    pub fn dim(&self) -> usize {
        match self {
            Points::Binary(set) => set.dim(),
            Points::Grey(set) => set.dim(),
        }
    }

    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        match self {
            Points::Binary(set) => set.n_samples(),
            Points::Grey(set) => set.n_samples(),
        }
    }

    /// (height, width) when the samples are images.
    pub fn image_shape(&self) -> Option<(usize, usize)> {
        match self {
            Points::Binary(set) => set.image_shape,
            Points::Grey(set) => set.image_shape,
        }
    }

    /// Samples `start..end` as contiguous f32 columns, as held (grey levels for `Grey`).
    pub fn columns(&self, start: usize, end: usize) -> Vec<f32> {
        match self {
            Points::Binary(set) => set.columns(start, end),
            Points::Grey(set) => set.range(start, end).to_columns(),
        }
    }
}

/// Loads the data named by `config`. Fixed binarisation draws the training(+validation) file with
/// `binarize_seed` and the test file with `binarize_seed + 1` (one stream per image, see
/// [`data::binarize_fixed`]); MNIST-sized sets are cached under `DATA_DIR/cache/`.
pub fn load(config: &DataConfig) -> Result<RunData> {
    let data_dir = config.dir.clone().unwrap_or_else(data::default_data_dir);
    let seed = config.binarize_seed;
    let fixed = |set: &Dataset, cache_name: Option<&str>, split: &str, seed: u64| match cache_name {
        Some(name) if set.n_samples() > 0 => {
            let cache = data_dir
                .join("cache")
                .join(format!("{name}-{split}-seed{seed}.bin"));
            data::binarize_fixed_cached_bits(set, seed, &cache)
        }
        _ => Ok(data::binarize_fixed_bits(set, seed)),
    };
    let mnist_dir = match config.source {
        DataSource::Mnist => Some((data::mnist::MNIST_SUBDIR, "mnist")),
        DataSource::FashionMnist => Some((data::mnist::FASHION_MNIST_SUBDIR, "fashion-mnist")),
        _ => None,
    };
    if let (Some((subdir, name)), Binarize::Fixed) = (mnist_dir, config.binarize) {
        // The 60,000 training images are the standard training and validation splits joined:
        // binarise them as one set, as they are on file, and split the bits. No f32 copy of the
        // splits is made, so the grey images and the bits are all that is ever held.
        let (train60k, test) = data::load_mnist_dir(&data_dir.join(subdir))?;
        for (split, set) in [("train", &train60k), ("test", &test)] {
            check_grey(split, set, true)?;
        }
        let n_train = data::mnist::MNIST_N_TRAIN.min(train60k.n_samples());
        let n = train60k.n_samples();
        let joined = fixed(&train60k, Some(name), "train", seed)?;
        drop(train60k);
        let test = fixed(&test, Some(name), "test", seed + 1)?;
        return Ok(RunData {
            train: Points::Binary(joined.range(0, n_train)),
            valid: joined.range(n_train, n),
            test,
        });
    }
    let (splits, cache_name) = grey_splits(config, true)?;
    let Splits { train, valid, test } = splits;
    if config.source == DataSource::Lines3x3 || config.binarize == Binarize::None {
        // Binary already (the lines toy by construction, drawn from binarize_seed).
        return Ok(RunData {
            train: Points::Binary(BitSet::from_dataset(&train)?),
            valid: BitSet::from_dataset(&valid)?,
            test: BitSet::from_dataset(&test)?,
        });
    }
    // Train and validation come from one file in the standard splits: binarise them as one set
    // so that each image keeps its own stream index.
    let n_train = train.n_samples();
    let joined = join(&train, &valid);
    drop(valid);
    let joined_binary = fixed(&joined, cache_name, "train", seed)?;
    drop(joined);
    let valid = joined_binary.range(n_train, joined_binary.n_samples());
    let train = match config.binarize {
        Binarize::Dynamic => Points::Grey(train),
        _ => Points::Binary(joined_binary.range(0, n_train)),
    };
    drop(joined_binary);
    let test = fixed(&test, cache_name, "test", seed + 1)?;
    Ok(RunData { train, valid, test })
}

/// The splits named by `config` as grey levels in [0, 1] (finite, in range), before any
/// binarisation, with the name of their binarisation cache (MNIST-sized sets).
fn grey_splits(config: &DataConfig, unit: bool) -> Result<(Splits, Option<&'static str>)> {
    let data_dir = config.dir.clone().unwrap_or_else(data::default_data_dir);
    let (splits, cache_name) = match config.source {
        DataSource::Digits => (data::embedded_digits_splits(), None),
        DataSource::Mnist => (
            data::load_mnist_splits(&data_dir.join(data::mnist::MNIST_SUBDIR))?,
            Some("mnist"),
        ),
        DataSource::FashionMnist => (
            data::load_mnist_splits(&data_dir.join(data::mnist::FASHION_MNIST_SUBDIR))?,
            Some("fashion-mnist"),
        ),
        DataSource::Lines3x3 => {
            let (train, valid, test) = data::lines3x3_splits(config.binarize_seed);
            return Ok((Splits { train, valid, test }, None));
        }
        DataSource::Idx | DataSource::Csv | DataSource::PngDir | DataSource::Npy => {
            (custom(config)?, None)
        }
    };
    for (name, set) in [
        ("train", &splits.train),
        ("valid", &splits.valid),
        ("test", &splits.test),
    ] {
        check_grey(name, set, unit)?;
    }
    Ok((splits, cache_name))
}

/// Checks that a split holds finite values, and with `unit` values in [0, 1].
fn check_grey(name: &str, set: &Dataset, unit: bool) -> Result<()> {
    set.check_finite()
        .map_err(|e| Error::InvalidData(format!("{name} set: {e}")))?;
    if unit && !in_unit_interval(set) {
        return Err(Error::InvalidData(format!(
            "{name} set has values outside [0, 1]; scale the data (data.scale) before binarising"
        )));
    }
    Ok(())
}

/// The splits named by `config` as grey levels in [0, 1], not binarised (the lines toy is
/// binary already).
pub fn load_splits(config: &DataConfig) -> Result<Splits> {
    grey_splits(config, true).map(|(splits, _)| splits)
}

/// The splits named by `config` with any finite values (for continuous models: no [0, 1]
/// check, no binarisation).
pub fn load_values(config: &DataConfig) -> Result<Splits> {
    grey_splits(config, false).map(|(splits, _)| splits)
}

/// Whether every value of `set` is in [0, 1] (read in place, without a copy of the set).
fn in_unit_interval(set: &Dataset) -> bool {
    set.x
        .col_iter()
        .all(|c| c.iter().all(|v| (0.0..=1.0).contains(v)))
}

fn join(a: &Dataset, b: &Dataset) -> Dataset {
    let n = a.n_samples() + b.n_samples();
    let x = faer::Mat::from_fn(a.dim(), n, |i, j| {
        if j < a.n_samples() {
            a.x[(i, j)]
        } else {
            b.x[(i, j - a.n_samples())]
        }
    });
    let labels = match (&a.labels, &b.labels) {
        (Some(la), Some(lb)) => Some(la.iter().chain(lb).copied().collect()),
        _ => None,
    };
    Dataset {
        x,
        labels,
        image_shape: a.image_shape,
    }
}

/// The lines to log about how the data files were read: for CSV sources with `data.header`
/// unset, each file whose first row was taken as a header.
pub fn header_notes(config: &DataConfig) -> Vec<String> {
    if config.source != DataSource::Csv {
        return Vec::new();
    }
    let Ok(options) = config.csv_options() else {
        return Vec::new();
    };
    [&config.train, &config.valid, &config.test]
        .into_iter()
        .flatten()
        .filter_map(|path| data::csv::detected_header_note(path, &options))
        .collect()
}

/// A new file read as the run of `config` reads its data, for evaluation: the format from the
/// run's source (CSV, NPY/NPZ, IDX, PNG directory), or, for the built-in sets, from the path (a
/// directory of PNGs, `.npy`/`.npz`, `.csv`/`.tsv`/`.gz` CSV, anything else IDX); the run's CSV
/// options (header, delimiter, label column) and scale; values checked to lie in [0, 1]; then
/// binarised as the run's test split is (fixed binarisation with `binarize_seed + 1`, or checked
/// to be binary when the run does not binarise).
pub fn load_file_like(config: &DataConfig, path: &Path) -> Result<Dataset> {
    let ext = |e: &str| path.extension().is_some_and(|x| x.eq_ignore_ascii_case(e));
    let source = match config.source {
        DataSource::Idx | DataSource::Csv | DataSource::PngDir | DataSource::Npy => config.source,
        _ if path.is_dir() => DataSource::PngDir,
        _ if ext("npy") || ext("npz") => DataSource::Npy,
        _ if ext("csv") || ext("tsv") || ext("gz") => DataSource::Csv,
        _ => DataSource::Idx,
    };
    let set = match source {
        DataSource::Idx => data::load_idx_images(path, None)?,
        DataSource::Csv => {
            let mut options = csv_options_for(config, path)?;
            if ext("tsv") && config.delimiter.is_none() {
                options.delimiter = b'\t';
            }
            data::csv::read_csv_with(path, &options)?
        }
        DataSource::Npy => data::npy::read_dataset(path, config.scale)?,
        _ => data::load_png_dir(path)?,
    };
    set.check_finite()
        .map_err(|e| Error::InvalidData(format!("{}: {e}", path.display())))?;
    if !in_unit_interval(&set) {
        return Err(Error::InvalidData(format!(
            "{} has values outside [0, 1] after data.scale = {}; the run's model reads binary data",
            path.display(),
            config.scale
        )));
    }
    match config.binarize {
        Binarize::None => {
            set.check_binary()?;
            Ok(set)
        }
        _ if config.source == DataSource::Lines3x3 => {
            set.check_binary()?;
            Ok(set)
        }
        _ => Ok(data::binarize_fixed(&set, config.binarize_seed + 1)),
    }
}

/// The run's CSV options for a file of its own (a label column given by name is looked up in
/// that file's header).
fn csv_options_for(config: &DataConfig, path: &Path) -> Result<data::csv::CsvOptions> {
    let mut options = super::config::csv_options(config.header, config.delimiter, config.scale)?;
    options.label_column = super::config::label_index(config.label.as_ref(), Some(path), &options)?;
    Ok(options)
}

fn custom(config: &DataConfig) -> Result<Splits> {
    let read = |path: &Path| -> Result<Dataset> {
        match config.source {
            DataSource::Idx => data::load_idx_images(path, None),
            DataSource::Csv => data::csv::read_csv_with(path, &config.csv_options()?),
            DataSource::Npy => data::npy::read_dataset(path, config.scale),
            _ => data::load_png_dir(path),
        }
    };
    let train_path: &PathBuf = config
        .train
        .as_ref()
        .ok_or_else(|| Error::Config("data.train is required".into()))?;
    let train = read(train_path)?;
    let empty = || Dataset {
        x: faer::Mat::zeros(train.dim(), 0),
        labels: None,
        image_shape: train.image_shape,
    };
    let other = |path: &Option<PathBuf>| -> Result<Dataset> {
        match path {
            Some(p) => {
                let set = read(p)?;
                if set.dim() != train.dim() {
                    return Err(Error::Dimension(format!(
                        "{} has samples of dimension {}, the training set {}",
                        p.display(),
                        set.dim(),
                        train.dim()
                    )));
                }
                Ok(set)
            }
            None => Ok(empty()),
        }
    };
    let valid = other(&config.valid)?;
    let test = other(&config.test)?;
    Ok(Splits { train, valid, test })
}
