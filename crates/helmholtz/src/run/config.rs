//! Experiment configuration: TOML with every field checked once, unknown keys rejected.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::csv::CsvOptions;
use crate::data::table::ColumnRef;
use crate::error::{Error, Result};
use crate::memory::bytes_of;
use crate::models::{ParamSet, WeightInit};
use crate::optim::natural::NaturalConfig;
use crate::optim::{Optimizer, OptimizerConfig, Schedule};
use crate::train::{Variant, WakeSleepConfig};

/// A whole experiment: data, model, algorithm, optimizer, evaluation and checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of the run (the default run directory is `runs/NAME`).
    pub name: String,
    /// Master seed of every random stream (initialisation, shuffling, samples).
    #[serde(default)]
    pub seed: u64,
    /// The data.
    pub data: DataConfig,
    /// The model.
    pub model: ModelConfig,
    /// The learning algorithm and loop.
    pub train: TrainConfig,
    /// The optimizer.
    pub optimizer: OptimizerSection,
    /// Evaluation during and after training.
    #[serde(default)]
    pub eval: EvalConfig,
    /// Checkpoints.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
}

/// Where the data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// The embedded 8×8 digits (1797 images; 1397 train / 200 valid / 200 test).
    Digits,
    /// MNIST from the data directory (50k / 10k / 10k).
    Mnist,
    /// Fashion-MNIST from the data directory (50k / 10k / 10k).
    FashionMnist,
    /// The 3×3 lines toy (15k train; 3k valid = test).
    Lines3x3,
    /// IDX image files given by `train` (and optionally `valid`, `test`).
    Idx,
    /// CSV files given by `train` (and optionally `valid`, `test`); values scaled by `scale`.
    Csv,
    /// Directories of PNG images given by `train` (and optionally `valid`, `test`).
    PngDir,
    /// NumPy `.npy` arrays of shape (n, d), or `.npz` archives holding one such array (or one
    /// named `x`), given by `train` (and optionally `valid`, `test`); values scaled by `scale`.
    Npy,
}

/// How grey levels become binary data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binarize {
    /// One Bernoulli draw per pixel, once, from `binarize_seed` (cached for large sets).
    Fixed,
    /// A new Bernoulli draw per pixel every epoch (training data only; evaluation stays fixed).
    Dynamic,
    /// The data is already binary.
    None,
}

/// The data section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Which data set.
    pub source: DataSource,
    /// Binarisation.
    #[serde(default = "default_binarize")]
    pub binarize: Binarize,
    /// Seed of the fixed binarisation.
    #[serde(default)]
    pub binarize_seed: u64,
    /// Data directory (default: `$HELMHOLTZ_DATA` or `data/`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Training file or directory (idx, csv, png-dir, npy sources).
    #[serde(default)]
    pub train: Option<PathBuf>,
    /// Validation file or directory (optional).
    #[serde(default)]
    pub valid: Option<PathBuf>,
    /// Test file or directory (optional).
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// Factor applied to CSV and NPY values (e.g. `0.00392156862745098` = 1/255 for 8-bit pixels).
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// Whether the first row of a CSV file is a header (true) or data (false); unset, it is a
    /// header when none of its fields is a number.
    #[serde(default)]
    pub header: Option<bool>,
    /// The CSV field delimiter, one ASCII character (default `,`; `"\t"` for tabs).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// A CSV column that is not a feature (a class label, an id): its 0-based index or its
    /// header name; it is read as a non-negative integer label and left out of the data.
    #[serde(default)]
    pub label: Option<ColumnRef>,
}

impl DataConfig {
    /// How CSV files of this section are read; a delimiter that is not one ASCII character is
    /// an error naming `data.delimiter`, a label column the training file does not have one
    /// naming `data.label`.
    pub fn csv_options(&self) -> Result<CsvOptions> {
        let mut options = csv_options(self.header, self.delimiter, self.scale)?;
        options.label_column = label_index(self.label.as_ref(), self.train.as_deref(), &options)?;
        Ok(options)
    }

    /// The data section of `source` with every other field at the default of the TOML form
    /// (fixed binarisation with seed 0, the default data directory, CSV scale 1).
    pub fn new(source: DataSource) -> Self {
        DataConfig {
            source,
            binarize: default_binarize(),
            binarize_seed: 0,
            dir: None,
            train: None,
            valid: None,
            test: None,
            scale: default_scale(),
            header: None,
            delimiter: None,
            label: None,
        }
    }
}

/// The 0-based index of `data.label` in a CSV file read with `options`: an index as given, a
/// name looked up in the header row of `train`.
pub fn label_index(
    label: Option<&ColumnRef>,
    train: Option<&Path>,
    options: &CsvOptions,
) -> Result<Option<usize>> {
    match label {
        None => Ok(None),
        Some(ColumnRef::Index(i)) => Ok(Some(*i)),
        Some(ColumnRef::Name(name)) => {
            let path = train
                .ok_or_else(|| Error::Config(format!("data.label = {name:?} needs data.train")))?;
            let names = crate::data::csv::header_names(path, options)?;
            match names.iter().position(|n| n == name) {
                Some(i) => Ok(Some(i)),
                None if names.is_empty() => Err(Error::Config(format!(
                    "data.label = {name:?}: {} has no header row to find the name in; give the column's 0-based index instead",
                    path.display()
                ))),
                None => Err(Error::Config(format!(
                    "data.label = {name:?} is not a column of {} (its header: {})",
                    path.display(),
                    names.join(", ")
                ))),
            }
        }
    }
}

/// CSV options from the `data` keys `header`, `delimiter` and `scale`.
pub fn csv_options(
    header: Option<bool>,
    delimiter: Option<char>,
    scale: f32,
) -> Result<CsvOptions> {
    let delimiter = match delimiter {
        None => b',',
        Some(c) if c.is_ascii() && c != '"' && c != '\n' && c != '\r' => c as u8,
        Some(c) => {
            return Err(Error::Config(format!(
                "data.delimiter = {c:?} is not accepted: one ASCII character other than a quote or a line break (for example \",\", \";\" or \"\\t\")"
            )));
        }
    };
    Ok(CsvOptions {
        header,
        delimiter,
        label_column: None,
        scale,
    })
}

fn default_binarize() -> Binarize {
    Binarize::Fixed
}
fn default_scale() -> f32 {
    1.0
}

/// The model section: a Helmholtz machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Hidden layer sizes from the data up, e.g. [200, 100, 10].
    pub hidden: Vec<usize>,
    /// Weight initialisation.
    #[serde(default = "default_init")]
    pub init: WeightInit,
    /// Initial value of every bias.
    #[serde(default = "default_bias")]
    pub bias: f32,
}

impl ModelConfig {
    /// A Helmholtz machine with these hidden layer sizes (from the data up), Glorot-normal
    /// weights and biases of −1 (the defaults of the TOML form).
    pub fn new(hidden: Vec<usize>) -> Self {
        ModelConfig {
            hidden,
            init: default_init(),
            bias: default_bias(),
        }
    }
}

fn default_init() -> WeightInit {
    WeightInit::GlorotNormal
}
fn default_bias() -> f32 {
    -1.0
}

/// The training section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// ws, rws or bihm.
    pub algorithm: Variant,
    /// Importance samples per data point (1 for ws).
    #[serde(default = "default_k")]
    pub k: usize,
    /// Data points per minibatch.
    pub batch_size: usize,
    /// Number of epochs.
    pub epochs: usize,
    /// Share of the q update from the wake phase (rws; ws uses 0, bihm 1).
    #[serde(default = "default_wake_fraction")]
    pub wake_fraction: f64,
    /// Subtract the 1/K baseline in the q wake update.
    #[serde(default = "default_true")]
    pub q_baseline: bool,
    /// Data points per parallel chunk (results do not depend on the thread count).
    #[serde(default = "default_chunk_points")]
    pub chunk_points: usize,
    /// Natural gradient with the per-unit Fisher blocks (NWS / NRWS / NBiHM), e.g.
    /// `natural = { alpha = 0.2, refresh_every = 1000, fisher = "blocks" }`.
    #[serde(default)]
    pub natural: Option<NaturalConfig>,
}

impl TrainConfig {
    /// `algorithm` on minibatches of `batch_size` for `epochs`, every other field at the
    /// default of the TOML form (K = 10, wake fraction ½, the 1/K baseline, chunks of 25
    /// points, no natural gradient).
    pub fn new(algorithm: Variant, batch_size: usize, epochs: usize) -> Self {
        TrainConfig {
            algorithm,
            k: default_k(),
            batch_size,
            epochs,
            wake_fraction: default_wake_fraction(),
            q_baseline: default_true(),
            chunk_points: default_chunk_points(),
            natural: None,
        }
    }

    /// The hyper-parameters of the learning algorithm.
    pub fn wake_sleep(&self) -> WakeSleepConfig {
        WakeSleepConfig {
            variant: self.algorithm,
            k: self.k,
            wake_fraction: self.wake_fraction,
            q_baseline: self.q_baseline,
            chunk_points: self.chunk_points,
        }
    }
}

fn default_k() -> usize {
    10
}
fn default_wake_fraction() -> f64 {
    0.5
}
fn default_true() -> bool {
    true
}
fn default_chunk_points() -> usize {
    25
}

/// The optimizer section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    /// Base learning rate.
    pub lr: f64,
    /// The update rule, e.g. `{ kind = "adam" }`.
    pub rule: OptimizerConfig,
    /// Learning-rate schedule, e.g. `{ kind = "constant" }`.
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
}

impl OptimizerSection {
    /// The update `rule` with base learning rate `lr` and a constant schedule.
    pub fn new(lr: f64, rule: OptimizerConfig) -> Self {
        OptimizerSection {
            lr,
            rule,
            schedule: default_schedule(),
        }
    }

    /// A fresh optimizer for parameters shaped like `params`.
    pub fn build(&self, params: &ParamSet) -> Result<Optimizer> {
        Optimizer::new(self.rule.clone(), self.lr, self.schedule.clone(), params)
    }
}

fn default_schedule() -> Schedule {
    Schedule::Constant
}

/// Which part of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training set.
    Train,
    /// Validation set.
    Valid,
    /// Test set.
    Test,
}

impl Split {
    /// The split's name as used in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

/// The evaluation section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Evaluate the validation log-likelihood every this many epochs (0: never).
    #[serde(default = "default_every")]
    pub every: usize,
    /// Importance samples for the periodic validation estimate.
    #[serde(default = "default_eval_k")]
    pub k: usize,
    /// Use at most this many validation points for the periodic estimate (all if absent).
    #[serde(default)]
    pub max_points: Option<usize>,
    /// Epochs after which the test log-likelihood is estimated with `test_k` samples.
    #[serde(default)]
    pub test_at: Vec<usize>,
    /// Importance samples for the `test_at` estimates (default: `k`).
    #[serde(default)]
    pub test_k: Option<usize>,
    /// Importance samples for the final test estimate (none if absent).
    #[serde(default)]
    pub final_k: Option<usize>,
    /// Stop when the validation estimate has not improved for this many evaluations.
    #[serde(default)]
    pub patience: Option<usize>,
    /// Exact KL(true ‖ model) each epoch (only for the 3×3 lines toy).
    #[serde(default)]
    pub exact_kl: bool,
    /// With each validation estimate, the ELBO and its entropy sum (`elbo`, `entropy_sum`,
    /// `gap` and each entropy) by Monte Carlo with this many q samples per point (0: off).
    #[serde(default = "default_entropy_samples")]
    pub entropy_samples: usize,
    /// BiHM runs: dreams of the log Z² estimate that turns the final test estimate of log p̃*
    /// into one of log p* = log p̃* − log Z² (the bihm code's `est-nll.py` uses 10⁶).
    #[serde(default = "default_z_dreams")]
    pub z_dreams: usize,
    /// BiHM runs: dreams of the log Z² estimates of the `test_at` epochs (about 2 s per 10⁵
    /// dreams on the 200-100-10 model).
    #[serde(default = "default_test_z_dreams")]
    pub test_z_dreams: usize,
    /// BiHM runs: importance samples of p̃*(x) in each dream's term of the log Z² estimate
    /// (`est-nll.py`: 1).
    #[serde(default = "default_z_inner")]
    pub z_inner: usize,
}

fn default_z_dreams() -> usize {
    1_000_000
}

fn default_test_z_dreams() -> usize {
    100_000
}

fn default_z_inner() -> usize {
    1
}

fn default_entropy_samples() -> usize {
    10
}

fn default_every() -> usize {
    1
}
fn default_eval_k() -> usize {
    100
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            every: default_every(),
            k: default_eval_k(),
            max_points: None,
            test_at: Vec::new(),
            test_k: None,
            final_k: None,
            patience: None,
            exact_kl: false,
            entropy_samples: default_entropy_samples(),
            z_dreams: default_z_dreams(),
            test_z_dreams: default_test_z_dreams(),
            z_inner: default_z_inner(),
        }
    }
}

/// The checkpoint section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Write a checkpoint every this many epochs (and always at the end and on interruption).
    #[serde(default = "default_every")]
    pub every: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            every: default_every(),
        }
    }
}

impl Config {
    /// A config built in code rather than read from TOML: seed 0, the default evaluation and
    /// checkpoint sections; change fields afterwards and [`Config::validate`] before use.
    pub fn new(
        name: impl Into<String>,
        data: DataConfig,
        model: ModelConfig,
        train: TrainConfig,
        optimizer: OptimizerSection,
    ) -> Self {
        Config {
            name: name.into(),
            seed: 0,
            data,
            model,
            train,
            optimizer,
            eval: EvalConfig::default(),
            checkpoint: CheckpointConfig::default(),
        }
    }

    /// Parses a TOML text, applies `key=value` overrides (dotted keys; values in TOML syntax,
    /// bare words taken as strings) and checks every field.
    pub fn parse(text: &str, overrides: &[String], origin: &Path) -> Result<Self> {
        let mut config: Config = parse_for_command(text, overrides, origin, "train")?;
        record_data_dir(&mut config.data.dir, config.data.source, origin);
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, overrides, path)
    }

    /// The resolved config as TOML (every default written out).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    /// Refuses, before anything is allocated, a Helmholtz machine on data of dimension `x_dim`
    /// whose parameters (with their gradients, optimizer moments and natural-gradient state)
    /// and the samples of one training step would not fit in memory.
    pub fn check_memory(&self, x_dim: usize) -> Result<()> {
        let mut sizes = vec![x_dim];
        sizes.extend(&self.model.hidden);
        let t = &self.train;
        let threads = rayon::current_num_threads().max(1);
        // p and q weights and biases, in f32.
        let params = sizes
            .windows(2)
            .fold(sizes[sizes.len() - 1] as u128, |a, w| {
                a.saturating_add(bytes_of(&[2, w[0] + 1, w[1] + 1], 1))
            });
        // Parameters, gradient, two optimizer moments, the natural gradient's copy, and one
        // gradient per thread.
        let copies = 5 + threads as u128 + u128::from(t.natural.is_some());
        let width_sum = sizes.iter().fold(0usize, |a, &s| a.saturating_add(s));
        // Samples, probabilities and scores of every level for the chunks in flight.
        let step = bytes_of(
            &[8, threads, t.chunk_points.min(t.batch_size), t.k, width_sum],
            1,
        );
        let bytes = params
            .saturating_mul(copies)
            .saturating_add(step)
            .saturating_mul(4);
        crate::memory::check_allocation(
            &format!("a Helmholtz machine of layer sizes {sizes:?} (K = {})", t.k),
            bytes,
        )
    }

    /// Checks the values that serde's types cannot.
    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        let fail = |m: String| Err(Error::Config(m));
        if self.model.hidden.is_empty() || self.model.hidden.contains(&0) {
            return fail(format!(
                "model.hidden must list non-zero layer sizes, got {:?}",
                self.model.hidden
            ));
        }
        if t.batch_size == 0 || t.k == 0 || t.chunk_points == 0 {
            return fail(
                "train.batch_size, train.k and train.chunk_points must be at least 1".into(),
            );
        }
        if t.algorithm == Variant::Ws && t.k != 1 {
            return fail(format!(
                "train.k must be 1 for the ws algorithm, got {}",
                t.k
            ));
        }
        if !(0.0..=1.0).contains(&t.wake_fraction) {
            return fail(format!(
                "train.wake_fraction must lie in [0, 1], got {}",
                t.wake_fraction
            ));
        }
        crate::optim::check_step_size("optimizer.lr", self.optimizer.lr)?;
        self.optimizer.schedule.validate()?;
        if let Some(natural) = &t.natural {
            natural.validate()?;
        }
        if self.eval.k == 0 || self.eval.final_k == Some(0) || self.eval.test_k == Some(0) {
            return fail("eval.k, eval.test_k and eval.final_k must be at least 1".into());
        }
        if self.eval.z_dreams == 0 || self.eval.test_z_dreams == 0 || self.eval.z_inner == 0 {
            return fail(format!(
                "eval.z_dreams, eval.test_z_dreams and eval.z_inner must be at least 1, got {}, {} and {}",
                self.eval.z_dreams, self.eval.test_z_dreams, self.eval.z_inner
            ));
        }
        if self.checkpoint.every == 0 {
            return fail("checkpoint.every must be at least 1".into());
        }
        let custom = matches!(
            self.data.source,
            DataSource::Idx | DataSource::Csv | DataSource::PngDir | DataSource::Npy
        );
        if custom && self.data.train.is_none() {
            return fail(
                "data.train must name the training file for idx, csv, png-dir and npy sources"
                    .into(),
            );
        }
        if self.eval.exact_kl && self.data.source != DataSource::Lines3x3 {
            return fail(
                "eval.exact_kl needs the lines3x3 source, whose true distribution is known".into(),
            );
        }
        Ok(())
    }
}

/// What `resumed` changes of `stored`, one `key: old -> new` line per value; a change of the
/// model is refused (the checkpoint holds its shape).
pub fn config_changes<T: Serialize>(stored: &T, resumed: &T) -> Result<Vec<String>> {
    let to_table = |c: &T| toml::Value::try_from(c).map_err(|e| Error::Config(e.to_string()));
    let (mut old, mut new) = (Vec::new(), Vec::new());
    flatten("", &to_table(stored)?, &mut old);
    flatten("", &to_table(resumed)?, &mut new);
    let mut changes = Vec::new();
    let keys: std::collections::BTreeSet<&String> =
        old.iter().chain(new.iter()).map(|(k, _)| k).collect();
    for key in keys {
        let find = |list: &Vec<(String, String)>| {
            list.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "(unset)".into())
        };
        let (before, after) = (find(&old), find(&new));
        if before == after {
            continue;
        }
        if key.starts_with("model.") {
            return Err(Error::Config(format!(
                "{key} cannot change when resuming ({before} in the run, {after} asked): the checkpoint holds the model's shape; start a new run instead"
            )));
        }
        changes.push(format!("{key}: {before} -> {after}"));
    }
    Ok(changes)
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// The keys whose values are file or directory paths. A relative path written in a config
/// file is taken from the file's folder, one given by `--set` from the current directory, and
/// both are stored absolute, so that a config (and a run's resolved `config.toml`) works from
/// any directory.
pub const PATH_KEYS: &[&str] = &[
    "data.dir",
    "data.train",
    "data.valid",
    "data.test",
    "data.labels",
    "data.test_labels",
];

/// Parses a TOML text into `T` after applying `key=value` overrides (dotted keys; values in TOML
/// syntax, bare words taken as strings). Unknown keys are errors where `T` denies them; a value
/// of the wrong type is an error naming its key and where it came from (`FILE:LINE`, or the
/// `--set` that gave it). Relative [`PATH_KEYS`] are resolved against `origin`'s folder.
pub fn parse_strict<T: serde::de::DeserializeOwned>(
    text: &str,
    overrides: &[String],
    origin: &Path,
) -> Result<T> {
    parse_config(text, overrides, origin, None)
}

/// [`parse_strict`] for the config of `helmholtz COMMAND`: a config that does not parse and is
/// recognisably meant for another command ([`config_command`]) is refused with the command it
/// is for, instead of its first unknown key.
pub fn parse_for_command<T: serde::de::DeserializeOwned>(
    text: &str,
    overrides: &[String],
    origin: &Path,
    command: &str,
) -> Result<T> {
    parse_config(text, overrides, origin, Some(command))
}

fn parse_config<T: serde::de::DeserializeOwned>(
    text: &str,
    overrides: &[String],
    origin: &Path,
    command: Option<&str>,
) -> Result<T> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| syntax_error(text, origin, &e))?;
    let meant_for = config_command(&table);
    resolve_paths(&mut table, origin.parent());
    let mut set = Vec::with_capacity(overrides.len());
    for item in overrides {
        set.push((apply_override(&mut table, item)?, item.as_str()));
    }
    resolve_paths(&mut table, None);
    table.try_into().map_err(|e: toml::de::Error| {
        if let (Some(command), Some((other, reason))) = (command, meant_for)
            && other != command
        {
            return Error::Config(format!(
                "{} is a config for `helmholtz {other}` (it has {reason}), and this command takes a `helmholtz {command}` config; run `helmholtz {other} {}`",
                origin.display(),
                origin.display()
            ));
        }
        located_error(&e, text, origin, &set)
    })
}

/// Fills an unset `data.dir` of a source read from the data directory (MNIST, Fashion-MNIST)
/// with the absolute default one ([`crate::data::data_dir_near`] the config file), so that a
/// run's resolved config finds its data from any directory.
pub fn record_data_dir(dir: &mut Option<PathBuf>, source: DataSource, origin: &Path) {
    if dir.is_none() && matches!(source, DataSource::Mnist | DataSource::FashionMnist) {
        let found = crate::data::data_dir_near(origin.parent());
        *dir = std::path::absolute(&found).ok().or(Some(found));
    }
}

/// The command that made the run in `dir`, judged from its `config.toml` by
/// [`config_command`]; None when the directory holds no readable config.
pub fn run_command(dir: &Path) -> Option<&'static str> {
    let text = std::fs::read_to_string(dir.join(crate::run::CONFIG_FILE)).ok()?;
    let table = toml::from_str::<toml::Table>(&text).ok()?;
    config_command(&table).map(|(command, _)| command)
}

/// Which command a config is meant for, judged from its keys, with the keys that tell:
/// `vi` (`model.kind = "logistic-regression"` or `model.prior_scale`), `mle` (`model.family`),
/// `train` (an `[optimizer]` section and `model.hidden`), `fit` (`model.kind`) or `sparse`
/// (`model.n_latents`, or `data.source` "bars" or "patches"). `None` when nothing tells.
pub fn config_command(table: &toml::Table) -> Option<(&'static str, &'static str)> {
    let model = table.get("model").and_then(toml::Value::as_table);
    let in_model = |key: &str| model.is_some_and(|m| m.contains_key(key));
    let kind = model
        .and_then(|m| m.get("kind"))
        .and_then(toml::Value::as_str);
    let source = table
        .get("data")
        .and_then(|d| d.get("source"))
        .and_then(toml::Value::as_str);
    if kind == Some("logistic-regression") {
        Some(("vi", "model.kind = \"logistic-regression\""))
    } else if in_model("prior_scale") {
        Some(("vi", "model.prior_scale"))
    } else if in_model("family") {
        Some(("mle", "model.family"))
    } else if table.contains_key("optimizer") && in_model("hidden") {
        Some(("train", "an [optimizer] section and model.hidden"))
    } else if kind.is_some() {
        Some(("fit", "model.kind"))
    } else if in_model("n_latents") {
        Some(("sparse", "model.n_latents"))
    } else if matches!(source, Some("bars" | "patches")) {
        Some(("sparse", "data.source = \"bars\" or \"patches\""))
    } else {
        None
    }
}

/// Makes the string values of [`PATH_KEYS`] absolute: relative ones joined to `base` first
/// when given (the config file's folder), then to the current directory.
fn resolve_paths(table: &mut toml::Table, base: Option<&Path>) {
    for key in PATH_KEYS {
        let mut parts = key.split('.');
        let (Some(section), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(toml::Value::String(value)) = table
            .get_mut(section)
            .and_then(toml::Value::as_table_mut)
            .and_then(|t| t.get_mut(name))
        else {
            continue;
        };
        let path = Path::new(value.as_str());
        if path.is_absolute() || value.is_empty() {
            continue;
        }
        let joined = match base {
            Some(base) => base.join(path),
            None => path.to_path_buf(),
        };
        if let Ok(absolute) = std::path::absolute(&joined) {
            *value = absolute.to_string_lossy().into_owned();
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A TOML syntax error as `FILE:LINE: message`.
fn syntax_error(text: &str, origin: &Path, e: &toml::de::Error) -> Error {
    match e.span() {
        Some(span) => Error::Config(format!(
            "{}:{}: {}",
            origin.display(),
            line_of(text, span.start),
            e.message().trim_end()
        )),
        None => Error::Config(format!("{}: {}", origin.display(), e.message().trim_end())),
    }
}

/// A deserialisation error of the merged table as `KEY (FILE:LINE): message` or
/// `KEY (from --set KEY=VALUE): message`.
fn located_error(e: &toml::de::Error, text: &str, origin: &Path, set: &[(String, &str)]) -> Error {
    let message = plain_types(e.message());
    // Errors from a table name the table path in a last line "in `a.b`".
    let rendered = e.to_string();
    let mut key: Vec<String> = rendered
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .map(|path| path.split('.').map(String::from).collect())
        .unwrap_or_default();
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(field) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
        {
            key.push(field.to_string());
        }
    }
    let dotted = key.join(".");
    let from_set = set.iter().find(|(k, _)| {
        *k == dotted || dotted.starts_with(&format!("{k}.")) || k.starts_with(&format!("{dotted}."))
    });
    let place = match from_set {
        Some((_, item)) => format!("from --set {item}"),
        None => match key_line(text, &key) {
            Some(line) => format!("{}:{line}", origin.display()),
            None => origin.display().to_string(),
        },
    };
    if dotted.is_empty() {
        Error::Config(format!("{place}: {message}"))
    } else {
        Error::Config(format!("{dotted} ({place}): {message}"))
    }
}

/// The line of the deepest key of `path` written in `text` (the table that lacks a missing
/// key, the key whose value is wrong).
fn key_line(text: &str, path: &[String]) -> Option<usize> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut line = None;
    for part in path {
        let Some((k, v)) = table.get_key_value(part.as_str()) else {
            break;
        };
        line = Some(line_of(text, k.span().start));
        match v.get_ref() {
            toml::de::DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    line
}

/// serde's Rust type names in a message, in words.
fn plain_types(message: &str) -> String {
    const NAMES: [(&str, &str); 10] = [
        ("usize", "a non-negative integer"),
        ("u64", "a non-negative integer"),
        ("u32", "a non-negative integer"),
        ("u16", "a non-negative integer"),
        ("u8", "a non-negative integer"),
        ("i64", "an integer"),
        ("i32", "an integer"),
        ("f64", "a number"),
        ("f32", "a number"),
        ("char", "a single character"),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message.trim_end();
    while let Some(at) = rest.find("expected ") {
        let (before, after) = rest.split_at(at + "expected ".len());
        out.push_str(before);
        let word_end = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        match NAMES.iter().find(|(rust, _)| *rust == &after[..word_end]) {
            Some((_, words)) => {
                out.push_str(words);
                rest = &after[word_end..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Applies one `key=value` override; returns its key.
fn apply_override(table: &mut toml::Table, item: &str) -> Result<String> {
    let (key, value) = item.split_once('=').ok_or_else(|| {
        Error::Config(format!(
            "--set {item}: not of the form key=value (e.g. --set train.epochs=5)"
        ))
    })?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    let mut current = table;
    for part in &parts[..parts.len() - 1] {
        current = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| {
                Error::Config(format!("--set {item}: {part} is a value, not a table"))
            })?;
    }
    current.insert(parts[parts.len() - 1].to_string(), value);
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        name = "t"
        [data]
        source = "digits"
        [model]
        hidden = [8, 4]
        [train]
        algorithm = "rws"
        batch_size = 10
        epochs = 2
        [optimizer]
        lr = 0.001
        rule = { kind = "adam" }
    "#;

    #[test]
    fn defaults_and_overrides() {
        let config = Config::parse(
            BASE,
            &["train.k=5".into(), "optimizer.lr=0.01".into()],
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(config.train.k, 5);
        assert_eq!(config.optimizer.lr, 0.01);
        assert_eq!(config.model.bias, -1.0);
        assert_eq!(config.data.binarize, Binarize::Fixed);
        // The resolved config parses back to itself.
        assert_eq!(
            Config::parse(&config.to_toml(), &[], Path::new("r.toml")).unwrap(),
            config
        );
    }

    #[test]
    fn typed_configs_carry_the_toml_defaults() {
        let typed = Config::new(
            "t",
            DataConfig::new(DataSource::Digits),
            ModelConfig::new(vec![8, 4]),
            TrainConfig::new(Variant::Rws, 10, 2),
            OptimizerSection::new(
                0.001,
                OptimizerConfig::Adam {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                },
            ),
        );
        assert_eq!(
            typed,
            Config::parse(BASE, &[], Path::new("t.toml")).unwrap()
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let text = BASE.replace("epochs = 2", "epochs = 2\nlearning_rate = 3");
        let err = Config::parse(&text, &[], Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("learning_rate"), "{err}");
        let err = Config::parse(BASE, &["model.hiden=[3]".into()], Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hiden"), "{err}");
    }

    #[test]
    fn type_errors_name_the_key_and_its_file_line_or_set() {
        let text = BASE.replace("epochs = 2", "epochs = \"ten\"");
        let line = text.lines().position(|l| l.contains("\"ten\"")).unwrap() + 1;
        let err = Config::parse(&text, &[], Path::new("dir/t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("train.epochs (dir/t.toml:{line}): invalid type"))
                && err.contains("expected a non-negative integer"),
            "{err}"
        );
        let err = Config::parse(BASE, &["train.epochs=ten".into()], Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train.epochs (from --set train.epochs=ten): invalid type"),
            "{err}"
        );
        // A key missing from a section points at the section's header.
        let text = BASE.replace("batch_size = 10", "");
        let line = text.lines().position(|l| l.contains("[train]")).unwrap() + 1;
        let err = Config::parse(&text, &[], Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("train.batch_size (t.toml:{line}): missing field")),
            "{err}"
        );
        // Inside an inline table.
        let text = BASE.replace("kind = \"adam\"", "kind = \"adamx\"");
        let err = Config::parse(&text, &[], Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        let line = text.lines().position(|l| l.contains("adamx")).unwrap() + 1;
        assert!(
            err.contains(&format!("optimizer.rule.kind (t.toml:{line})")),
            "{err}"
        );
        let err = Config::parse("name = ", &[], Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.toml:1:"), "{err}");
    }

    #[test]
    fn a_config_for_another_command_names_that_command() {
        let fit =
            "name = \"f\"\n[data]\nsource = \"digits\"\n[model]\nkind = \"ppca\"\nlatents = 2\n";
        let err = Config::parse(fit, &[], Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f.toml is a config for `helmholtz fit`")
                && err.contains("takes a `helmholtz train` config"),
            "{err}"
        );
        let table: toml::Table = toml::from_str(BASE).unwrap();
        assert_eq!(config_command(&table).map(|c| c.0), Some("train"));
        for (text, command) in [
            ("[model]\nfamily = \"skew-normal\"", "mle"),
            ("[model]\nkind = \"logistic-regression\"", "vi"),
            ("[model]\nprior_scale = 2.0\nfamily = \"skew-t\"", "vi"),
            ("[model]\nn_latents = 10", "sparse"),
            ("[data]\nsource = \"bars\"", "sparse"),
        ] {
            let table: toml::Table = toml::from_str(text).unwrap();
            assert_eq!(config_command(&table).map(|c| c.0), Some(command), "{text}");
        }
    }

    #[test]
    fn relative_data_paths_are_taken_from_the_config_folder_and_stored_absolute() {
        let text = BASE.replace(
            "source = \"digits\"",
            "source = \"csv\"\ntrain = \"x.csv\"\ntest = \"/abs/y.csv\"",
        );
        let config = Config::parse(
            &text,
            &["data.valid=v.csv".into()],
            Path::new("some/folder/t.toml"),
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            config.data.train.as_deref(),
            Some(cwd.join("some/folder/x.csv").as_path())
        );
        assert_eq!(config.data.test.as_deref(), Some(Path::new("/abs/y.csv")));
        // --set values are taken from the current directory.
        assert_eq!(
            config.data.valid.as_deref(),
            Some(cwd.join("v.csv").as_path())
        );
        // The resolved config reads back to the same paths from anywhere.
        let again = Config::parse(&config.to_toml(), &[], Path::new("elsewhere/c.toml")).unwrap();
        assert_eq!(again.data, config.data);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(Config::parse(BASE, &["train.algorithm=\"ws\"".into()], Path::new("t")).is_err());
        assert!(Config::parse(BASE, &["optimizer.lr=-1".into()], Path::new("t")).is_err());
        assert!(Config::parse(BASE, &["model.hidden=[]".into()], Path::new("t")).is_err());
        assert!(Config::parse(BASE, &["train.algorithm=\"sgd\"".into()], Path::new("t")).is_err());
    }
}
