//! The strict TOML config of a sparse-coding run (bars or natural-image patches) and its
//! checks.

use std::path::Path;

use helmholtz::models::mlp::Activation;
use helmholtz::models::sparse_coding::{PosteriorKind, ScaleParam};
use helmholtz::run::config::parse_for_command;
use helmholtz::train::sparse_coding::{
    Annealing, EmConfig, HistoryPrecision, LbfgsConfig, defaults as lbfgs_defaults,
};
use helmholtz::{Error, Result};
use serde::{Deserialize, Serialize};

/// A sparse-coding experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseConfig {
    /// Run name.
    pub name: String,
    /// Master seed (data, initialisation).
    #[serde(default)]
    pub seed: u64,
    /// The data.
    pub data: SparseDataConfig,
    /// The model.
    pub model: SparseModelConfig,
    /// The optimiser.
    #[serde(default)]
    pub train: SparseTrainConfig,
}

/// How the entropy objective is optimised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SparseMethod {
    /// Full-batch L-BFGS on the dictionary and every posterior (bars).
    #[default]
    Lbfgs,
    /// EM-style mini-batches: L-BFGS on a batch's posteriors, then a gradient step on W (patches).
    Em,
    /// Adam on the dictionary and an amortized encoder jointly, in mini-batches (patches).
    Adam,
}

/// The train section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseTrainConfig {
    /// "lbfgs", "em" or "adam" (amortized posteriors).
    #[serde(default)]
    pub method: SparseMethod,
    /// L-BFGS history (both methods).
    #[serde(default = "lbfgs_defaults::history")]
    pub history: usize,
    /// L-BFGS iterations: the whole fit ("lbfgs") or each E-step ("em", the authors use 100).
    #[serde(default = "lbfgs_defaults::max_iters")]
    pub max_iters: u64,
    /// L-BFGS stops below this gradient norm.
    #[serde(default = "lbfgs_defaults::tol_grad")]
    pub tol_grad: f64,
    /// L-BFGS stops when the objective changes by less than this.
    #[serde(default = "lbfgs_defaults::tol_cost")]
    pub tol_cost: f64,
    /// How the L-BFGS memory stores its pairs: "f64" (the default) or "f32" (half the memory
    /// traffic per iteration; docs/BENCHMARKS.md).
    #[serde(default)]
    pub history_precision: HistoryPrecision,
    /// "lbfgs": the posteriors' entries enter L-BFGS divided by this factor, the dictionary's as
    /// they are (a fixed diagonal preconditioner; the same maximiser, another path to it). 1
    /// (the default) is plain L-BFGS; docs/BENCHMARKS.md measures 3 on the bars.
    #[serde(default = "default_posterior_scale")]
    pub posterior_scale: f64,
    /// EM and Adam: points per batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// EM and Adam: epochs.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// EM: step size of the M-step (the authors: 0.5); Adam: its learning rate (the authors:
    /// 1e-3).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Adam: refine the held-out posteriors by the E-step (the amortization gap) every this many
    /// epochs and after the last.
    #[serde(default = "default_refine_every")]
    pub refine_every: usize,
    /// EM and Adam: entropy annealing of the prior term.
    #[serde(default)]
    pub anneal: Annealing,
}

fn default_batch() -> usize {
    512
}
fn default_epochs() -> usize {
    10
}
fn default_lr() -> f64 {
    0.5
}
fn default_posterior_scale() -> f64 {
    1.0
}
fn default_refine_every() -> usize {
    10
}

impl Default for SparseTrainConfig {
    fn default() -> Self {
        SparseTrainConfig {
            method: SparseMethod::default(),
            history: lbfgs_defaults::history(),
            max_iters: lbfgs_defaults::max_iters(),
            tol_grad: lbfgs_defaults::tol_grad(),
            tol_cost: lbfgs_defaults::tol_cost(),
            history_precision: HistoryPrecision::default(),
            posterior_scale: default_posterior_scale(),
            batch_size: default_batch(),
            epochs: default_epochs(),
            lr: default_lr(),
            refine_every: default_refine_every(),
            anneal: Annealing::default(),
        }
    }
}

impl SparseTrainConfig {
    /// The L-BFGS settings.
    pub fn lbfgs(&self) -> LbfgsConfig {
        LbfgsConfig {
            history: self.history,
            max_iters: self.max_iters,
            tol_grad: self.tol_grad,
            tol_cost: self.tol_cost,
            history_precision: self.history_precision,
        }
    }

    /// The EM settings.
    pub fn em(&self) -> EmConfig {
        EmConfig {
            batch_size: self.batch_size,
            e_step: self.lbfgs(),
            lr: self.lr,
        }
    }
}

/// The data section: the bars generator, natural-image patches (entropy.md §3.1), or the user's
/// own points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseDataConfig {
    /// "bars", "patches", or "points": the rows of the table `train` (any dimension D; the first
    /// `n` of them, all when it has fewer), held out `test` (without it, the per-epoch
    /// evaluation of EM and Adam runs refits the training points), whitened as `whiten` says
    /// (default "none"). Points of D = s² values are s × s images (atoms' spread, denoising).
    pub source: String,
    /// Bars: bars per direction (H = 2·side fields on a side × side grid).
    #[serde(default = "default_side")]
    pub side: usize,
    /// Number of training points.
    #[serde(default = "default_n")]
    pub n: usize,
    /// Bars: standard deviation of the Gaussian noise.
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// Patches: side of the square patches.
    #[serde(default = "default_patch")]
    pub size: usize,
    /// Patches: the images (PNG files in `dir`) to cut them from.
    #[serde(default = "default_images")]
    pub images: Vec<String>,
    /// Patches: directory of the images (default: `natural/` in the data directory).
    #[serde(default)]
    pub dir: Option<std::path::PathBuf>,
    /// Patches: held-out patches (other positions of the same images) for the per-epoch ELBO.
    #[serde(default = "default_test_n")]
    pub test_n: usize,
    /// Patches: "zca" (whiten the patches, the default) or "olshausen-field" (filter the images);
    /// points: "none" (the default) or "zca".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whiten: Option<WhitenKind>,
    /// Patches and points: ZCA regulariser ε as a fraction of the mean eigenvalue.
    #[serde(default = "default_epsilon")]
    pub whiten_epsilon: f64,
    /// Patches: cutoff f₀ of the Olshausen–Field filter in cycles per pixel (SparseNet: 0.4).
    #[serde(default = "default_cutoff")]
    pub whiten_cutoff: f64,
    /// Patches: your own patches instead of cutting them from images: a table (CSV, TSV, NPY or
    /// NPZ) with one patch of `size` × `size` pixels per row, row-major. Its first `n` rows
    /// train (all rows but the held-out ones when `n` is larger).
    #[serde(default)]
    pub train: Option<std::path::PathBuf>,
    /// Patches from `train`: the held-out patches, a table of the same width; without it the
    /// last `test_n` rows of `train` are held out. Points: the held-out points.
    #[serde(default)]
    pub test: Option<std::path::PathBuf>,
    /// Patches or points from a CSV `train`: whether its first row is a header (unset: when none
    /// of its fields is a number).
    #[serde(default)]
    pub header: Option<bool>,
    /// Patches from `train`: a column that is not a pixel (a label, an id), by 0-based index
    /// or header name, left out.
    #[serde(default)]
    pub label: Option<helmholtz::data::table::ColumnRef>,
}

/// How natural-image patches (or points) are whitened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhitenKind {
    /// As given (points only).
    None,
    /// ZCA on the patches ([`helmholtz::data::patches::Whitening`]).
    Zca,
    /// The 1/f-whitening, low-pass filter of Olshausen's images on whole images
    /// ([`helmholtz::data::patches::olshausen_field`]).
    OlshausenField,
}

impl SparseDataConfig {
    /// The whitening of the data: `whiten`, or the source's default (patches: ZCA; points and
    /// bars: none).
    pub fn whitening(&self) -> WhitenKind {
        self.whiten.unwrap_or(match self.source.as_str() {
            "patches" => WhitenKind::Zca,
            _ => WhitenKind::None,
        })
    }

    /// The side of the square images that points of dimension `d` are: `size` for patches, √d
    /// for bars and for points whose dimension is a square; None for other points.
    pub fn image_side(&self, d: usize) -> Option<usize> {
        match self.source.as_str() {
            "patches" => Some(self.size),
            _ => {
                let side = (d as f64).sqrt().round() as usize;
                (side * side == d).then_some(side)
            }
        }
    }
}

/// Pixels cropped from each edge of an Olshausen–Field filtered image, where the periodic
/// filter mixes opposite edges.
pub const OLSHAUSEN_FIELD_BORDER: usize = 8;

fn default_patch() -> usize {
    16
}
fn default_test_n() -> usize {
    2048
}
fn default_epsilon() -> f64 {
    1.0
}
fn default_cutoff() -> f64 {
    0.4
}
/// The training images of `scripts/fetch-data.sh natural` (camera.png is kept out, for denoising).
fn default_images() -> Vec<String> {
    [
        "astronaut.png",
        "brick.png",
        "chelsea.png",
        "coffee.png",
        "grass.png",
        "gravel.png",
        "moon.png",
        "barbara.png",
        "kodim23.png",
        "monarch.png",
        "sail.png",
        "tulips.png",
    ]
    .map(String::from)
    .to_vec()
}

fn default_side() -> usize {
    5
}
fn default_n() -> usize {
    1000
}
fn default_noise() -> f64 {
    0.1
}

/// The model section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseModelConfig {
    /// Number of latents H.
    pub n_latents: usize,
    /// Posterior family: "diagonal" or "full" (one q per point), or "amortized" (an encoder).
    pub posterior: PosteriorFamily,
    /// The encoder of amortized posteriors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderConfig>,
    /// Floor added to the posterior standard deviations (the authors: 1e-3; needed with
    /// annealing, see [`helmholtz::models::sparse_coding::SparseCoding::scale_floor`]).
    #[serde(default)]
    pub scale_floor: f64,
    /// Parameterisation of the posterior scales: "log" (s = floor + e^ρ, default) or "linear"
    /// (s = floor + |ρ|, as the authors' non-amortized posteriors). Per-point posteriors only: an
    /// encoder gives s = floor + softplus(a).
    #[serde(default)]
    pub scale_param: ScaleParam,
}

/// The posterior family of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PosteriorFamily {
    /// One diagonal Gaussian per point.
    Diagonal,
    /// One full-covariance Gaussian per point.
    Full,
    /// Gaussians from an MLP encoder (`[model.encoder]`), low-rank plus diagonal covariance.
    Amortized,
}

impl PosteriorFamily {
    /// The per-point family: itself, or diagonal for amortized runs (what an E-step fits when
    /// the encoder is not used, as in denoising).
    pub fn per_point(self) -> PosteriorKind {
        match self {
            PosteriorFamily::Full => PosteriorKind::Full,
            PosteriorFamily::Diagonal | PosteriorFamily::Amortized => PosteriorKind::Diagonal,
        }
    }
}

/// The encoder of amortized posteriors (entropy.md §2.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Rank r of the covariance factor V (0: diagonal; the authors' correlated heads: 5).
    #[serde(default)]
    pub rank: usize,
    /// Hidden activation, "tanh" or "relu".
    #[serde(default)]
    pub activation: Activation,
}

impl SparseConfig {
    /// Parses a TOML text with `key=value` overrides and checks every field.
    pub fn parse(text: &str, overrides: &[String], origin: &Path) -> Result<Self> {
        let mut config: SparseConfig = parse_for_command(text, overrides, origin, "sparse")?;
        if config.data.source == "patches" && config.data.dir.is_none() {
            // Recorded absolute, so that a run's resolved config finds its images from anywhere.
            let found = helmholtz::data::data_dir_near(origin.parent()).join("natural");
            config.data.dir = std::path::absolute(&found).ok().or(Some(found));
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, overrides, path)
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let d = &self.data;
        match d.source.as_str() {
            "bars" => {
                if d.side < 2 || d.n == 0 || !(d.noise.is_finite() && d.noise >= 0.0) {
                    return Err(Error::Config(format!(
                        "bars need side ≥ 2, n ≥ 1 and a finite noise ≥ 0, got side {}, n {}, noise {}",
                        d.side, d.n, d.noise
                    )));
                }
            }
            "points" => {
                if d.train.is_none() || d.n == 0 {
                    return Err(Error::Config(
                        "data.source = \"points\" needs data.train (a table of one point per row) and n ≥ 1".into(),
                    ));
                }
                if d.whitening() == WhitenKind::OlshausenField {
                    return Err(Error::Config(
                        "data.whiten = \"olshausen-field\" filters whole images; points are whitened by \"none\" or \"zca\"".into(),
                    ));
                }
                if !(d.whiten_epsilon.is_finite() && d.whiten_epsilon > 0.0) {
                    return Err(Error::Config(format!(
                        "data.whiten_epsilon must be positive, got {}",
                        d.whiten_epsilon
                    )));
                }
            }
            "patches" => {
                if d.whitening() == WhitenKind::None {
                    return Err(Error::Config(
                        "data.whiten = \"none\" is for points; patches are whitened by \"zca\" or \"olshausen-field\"".into(),
                    ));
                }
                if d.train.is_some() && d.whitening() == WhitenKind::OlshausenField {
                    return Err(Error::Config(
                        "data.whiten = \"olshausen-field\" filters whole images; patches from data.train are whitened by \"zca\"".into(),
                    ));
                }
                if d.size == 0
                    || d.n < 2
                    || d.test_n == 0
                    || (d.images.is_empty() && d.train.is_none())
                {
                    return Err(Error::Config(format!(
                        "patches need size ≥ 1, n ≥ 2, test_n ≥ 1 and some images, got size {}, n {}, test_n {}, {} images",
                        d.size,
                        d.n,
                        d.test_n,
                        d.images.len()
                    )));
                }
                if !(d.whiten_epsilon.is_finite() && d.whiten_epsilon > 0.0) {
                    return Err(Error::Config(format!(
                        "data.whiten_epsilon must be positive, got {}",
                        d.whiten_epsilon
                    )));
                }
                if !(d.whiten_cutoff.is_finite() && d.whiten_cutoff > 0.0 && d.whiten_cutoff <= 0.5)
                {
                    return Err(Error::Config(format!(
                        "data.whiten_cutoff must be in (0, 0.5] cycles per pixel, got {}",
                        d.whiten_cutoff
                    )));
                }
            }
            other => {
                return Err(Error::Config(format!(
                    "data.source must be \"bars\", \"patches\" or \"points\", got {other:?}"
                )));
            }
        }
        let t = &self.train;
        if t.method != SparseMethod::Lbfgs {
            helmholtz::optim::check_step_size("train.lr", t.lr)?;
        }
        if t.method == SparseMethod::Em
            && (t.batch_size == 0 || t.epochs == 0 || !(t.lr.is_finite() && t.lr > 0.0))
        {
            return Err(Error::Config(format!(
                "EM needs batch_size ≥ 1, epochs ≥ 1 and a positive lr, got {}, {} and {}",
                t.batch_size, t.epochs, t.lr
            )));
        }
        t.anneal.validate()?;
        if t.method == SparseMethod::Lbfgs
            && d.source != "patches"
            && t.anneal != helmholtz::train::sparse_coding::Annealing::None
        {
            return Err(Error::Config(
                "train.anneal changes β by epoch; a full-batch L-BFGS fit has none: set train.method = \"em\" or \"adam\", or remove train.anneal".into(),
            ));
        }
        let amortized = self.model.posterior == PosteriorFamily::Amortized;
        match (amortized, t.method, &self.model.encoder) {
            (true, SparseMethod::Adam, Some(encoder)) => {
                if d.source == "bars" {
                    return Err(Error::Config(
                        "amortized posteriors are trained on patches or points (data.source = \"patches\" or \"points\")"
                            .into(),
                    ));
                }
                if encoder.hidden.contains(&0) || encoder.rank > self.model.n_latents {
                    return Err(Error::Config(format!(
                        "model.encoder needs hidden widths ≥ 1 and a rank ≤ n_latents, got {:?} and {}",
                        encoder.hidden, encoder.rank
                    )));
                }
                if t.batch_size == 0
                    || t.epochs == 0
                    || t.refine_every == 0
                    || !(t.lr.is_finite() && t.lr > 0.0)
                {
                    return Err(Error::Config(format!(
                        "Adam needs batch_size, epochs and refine_every ≥ 1 and a positive lr, got {}, {}, {} and {}",
                        t.batch_size, t.epochs, t.refine_every, t.lr
                    )));
                }
            }
            (true, SparseMethod::Adam, None) => {
                return Err(Error::Config(
                    "model.posterior = \"amortized\" needs a [model.encoder] section".into(),
                ));
            }
            (true, _, _) | (false, SparseMethod::Adam, _) => {
                return Err(Error::Config(
                    "amortized posteriors go with train.method = \"adam\", and Adam trains only amortized posteriors"
                        .into(),
                ));
            }
            (false, _, Some(_)) => {
                return Err(Error::Config(
                    "[model.encoder] is only used with model.posterior = \"amortized\"".into(),
                ));
            }
            (false, _, None) => {}
        }
        if !(self.model.scale_floor.is_finite() && self.model.scale_floor >= 0.0) {
            return Err(Error::Config(format!(
                "model.scale_floor must be finite and ≥ 0, got {}",
                self.model.scale_floor
            )));
        }
        if self.model.n_latents == 0 {
            return Err(Error::Config("model.n_latents must be at least 1".into()));
        }
        helmholtz::train::sparse_coding::check_posterior_scale(self.train.posterior_scale)?;
        self.train.lbfgs().validate()
    }
}
