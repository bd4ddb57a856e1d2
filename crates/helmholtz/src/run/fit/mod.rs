//! `helmholtz fit`: the models of the ELBO = entropy-sum identity (entropy.md §1), each with its
//! standard learning algorithm, from a strict TOML config: PPCA (closed form or EM), factor
//! analysis (EM), Gaussian mixtures with diagonal or full covariances (EM), Bernoulli mixtures
//! (EM), a one-layer SBN with exact posteriors (L-BFGS) and Gaussian VAEs 1–3 (Adam).
//!
//! A run directory holds the resolved `config.toml`, `metrics.jsonl` (per EM step, L-BFGS
//! iteration or epoch: the ELBO, the entropy sum, the gap and each entropy, or a notice where
//! the identity does not apply), the model (`model.json` in f64, or `model.safetensors` for
//! VAEs, written after every epoch) and `summary.json` with the final decomposition.

use std::path::{Path, PathBuf};

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::config::{DataConfig, DataSource, parse_for_command};
use crate::data::table::{Transform, TransformKind};
use crate::data::{self, Dataset};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::models::mixture::Family;
use crate::models::mlp::Activation;
use crate::models::vae::VaeKind;
use crate::optim::Schedule;
use crate::optim::quasi_newton::defaults as lbfgs_defaults;

mod checks;
mod model;
mod points;
mod runner;

pub use checks::{check_fit_data, check_fit_memory};
pub use model::*;
pub use points::*;
pub use runner::*;

/// The model file of non-VAE fits (f64 JSON, so the stored stationary point is exact).
pub const MODEL_JSON: &str = "model.json";
/// The model file of VAE fits.
pub const MODEL_TENSORS: &str = "model.safetensors";
/// The transform of the training data (only when `data.transform` is not `none`).
pub const TRANSFORM_FILE: &str = "transform.json";

/// A fit: data, model, training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitConfig {
    /// Run name (the default run directory is `runs/NAME`).
    pub name: String,
    /// Master seed (data subset, initialisation, draws).
    #[serde(default)]
    pub seed: u64,
    /// The data.
    pub data: FitData,
    /// The model.
    pub model: FitModel,
    /// The learning algorithm.
    #[serde(default)]
    pub train: FitTrain,
}

/// The data of a fit: the training split of a data set, optionally its first `points` images,
/// binarised or dequantised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitData {
    /// digits, mnist, fashion-mnist, idx, csv, png-dir or npy.
    pub source: DataSource,
    /// Data directory (default: `$HELMHOLTZ_DATA` or `data/`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Training file or directory (idx, csv, png-dir, npy).
    #[serde(default)]
    pub train: Option<PathBuf>,
    /// Factor applied to CSV and NPY values (e.g. 1/255 for 8-bit pixels).
    #[serde(default = "one")]
    pub scale: f32,
    /// Whether the first CSV row is a header (true) or data (false); unset, a header when none
    /// of its fields is a number.
    #[serde(default)]
    pub header: Option<bool>,
    /// The CSV field delimiter, one ASCII character (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// A CSV column left out of the data (a label, an id): 0-based index or header name.
    #[serde(default)]
    pub label: Option<crate::data::table::ColumnRef>,
    /// Use only the first N training points.
    #[serde(default)]
    pub points: Option<usize>,
    /// Binarise once (one Bernoulli draw per pixel from `binarize_seed`): for the Bernoulli
    /// mixture and the SBN.
    #[serde(default)]
    pub binarize: bool,
    /// Seed of the binarisation.
    #[serde(default)]
    pub binarize_seed: u64,
    /// Dequantise grey levels k/(L−1) into ((L−1)x + u)/L, u ~ U(0, 1) drawn once from the
    /// seed, with L the number of levels (256 for MNIST, 17 for the digits): continuous data
    /// without pixels of zero variance, which would make a per-pixel noise variance collapse.
    #[serde(default)]
    pub dequantize: Option<u32>,
    /// For the continuous models: `none`, `min-max` (each column onto [0, 1]) or `standardize`
    /// (each column to mean 0, variance 1), fitted on the training points after dequantisation;
    /// the run stores it in `transform.json` and every ELBO and entropy is in its units.
    #[serde(default)]
    pub transform: TransformKind,
}

fn one() -> f32 {
    1.0
}

/// Which model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Probabilistic PCA.
    Ppca,
    /// Factor analysis.
    FactorAnalysis,
    /// Gaussian mixture, diagonal covariances.
    GmmDiagonal,
    /// Gaussian mixture, full covariances.
    GmmFull,
    /// Mixture of products of Bernoullis.
    BernoulliMixture,
    /// One-layer sigmoid belief net, posteriors by enumeration.
    SbnExact,
    /// Gaussian VAE, scalar σ².
    #[serde(rename = "vae-1")]
    Vae1,
    /// Gaussian VAE, prior variances and unit-norm first decoder columns.
    #[serde(rename = "vae-2")]
    Vae2,
    /// Gaussian VAE, z-dependent decoder variances.
    #[serde(rename = "vae-3")]
    Vae3,
}

impl ModelKind {
    fn vae(self) -> Option<VaeKind> {
        match self {
            ModelKind::Vae1 => Some(VaeKind::Vae1),
            ModelKind::Vae2 => Some(VaeKind::Vae2),
            ModelKind::Vae3 => Some(VaeKind::Vae3),
            _ => None,
        }
    }

    fn mixture(self) -> Option<Family> {
        match self {
            ModelKind::GmmDiagonal => Some(Family::DiagonalGaussian),
            ModelKind::GmmFull => Some(Family::FullGaussian),
            ModelKind::BernoulliMixture => Some(Family::Bernoulli),
            _ => None,
        }
    }

    fn binary(self) -> bool {
        matches!(self, ModelKind::BernoulliMixture | ModelKind::SbnExact)
    }
}

/// The model section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitModel {
    /// ppca, factor-analysis, gmm-diagonal, gmm-full, bernoulli-mixture, sbn-exact, vae-1,
    /// vae-2 or vae-3.
    pub kind: ModelKind,
    /// Latents H (components C for mixtures).
    pub latents: usize,
    /// Hidden widths of the VAE's encoder (mirrored in the decoder).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Hidden activation of the VAE's MLPs.
    #[serde(default)]
    pub activation: Activation,
    /// PPCA / FA: a fixed noise variance instead of a learned one (the identity then does not
    /// apply, and the run says so).
    #[serde(default)]
    pub fixed_noise: Option<f64>,
}

/// How the model is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FitMethod {
    /// The model's default: EM (PPCA, FA, mixtures), L-BFGS (SBN), Adam (VAEs).
    Default,
    /// PPCA's closed-form maximum-likelihood solution (Tipping & Bishop 1999).
    ClosedForm,
}

/// The train section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitTrain {
    /// default or closed-form (PPCA).
    #[serde(default = "default_method")]
    pub method: FitMethod,
    /// EM steps or L-BFGS iterations at most (EM, SBN).
    #[serde(default = "default_max_steps")]
    pub max_steps: usize,
    /// EM stops when the log-likelihood per point changes by less than this.
    #[serde(default = "default_tol")]
    pub tol: f64,
    /// L-BFGS stops when the gradient norm falls below this (SBN).
    #[serde(default = "lbfgs_defaults::tol_grad")]
    pub tol_grad: f64,
    /// Epochs (VAE).
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Mini-batch size (VAE).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Adam's learning rate (VAE).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Learning-rate schedule (VAE).
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    /// VAE-1/2: set σ² (and α²) to their closed-form optima on every batch.
    #[serde(default)]
    pub optimal_variances: bool,
    /// VAE: evaluate the ELBO and the entropy sum on the training points every this many epochs.
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// VAE: stop once |gap| / |ELBO| stays below this for `gap_window` evaluations (off when
    /// absent).
    #[serde(default)]
    pub gap_tolerance: Option<f64>,
    /// Evaluations the gap must stay below `gap_tolerance`.
    #[serde(default = "default_gap_window")]
    pub gap_window: usize,
}

fn default_method() -> FitMethod {
    FitMethod::Default
}
fn default_max_steps() -> usize {
    1000
}
fn default_tol() -> f64 {
    1e-10
}
fn default_epochs() -> usize {
    100
}
fn default_batch() -> usize {
    100
}
fn default_lr() -> f64 {
    1e-3
}
fn default_schedule() -> Schedule {
    Schedule::Constant
}
fn default_eval_every() -> usize {
    1
}
fn default_gap_window() -> usize {
    3
}

impl Default for FitTrain {
    fn default() -> Self {
        FitTrain {
            method: default_method(),
            max_steps: default_max_steps(),
            tol: default_tol(),
            tol_grad: lbfgs_defaults::tol_grad(),
            epochs: default_epochs(),
            batch_size: default_batch(),
            lr: default_lr(),
            schedule: default_schedule(),
            optimal_variances: false,
            eval_every: default_eval_every(),
            gap_tolerance: None,
            gap_window: default_gap_window(),
        }
    }
}

impl FitConfig {
    /// Parses a TOML text with `key=value` overrides and checks every field.
    pub fn parse(text: &str, overrides: &[String], origin: &Path) -> Result<Self> {
        let mut config: FitConfig = parse_for_command(text, overrides, origin, "fit")?;
        super::config::record_data_dir(&mut config.data.dir, config.data.source, origin);
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, overrides, path)
    }

    /// Checks the combinations the types do not.
    pub fn validate(&self) -> Result<()> {
        let (m, t, d) = (&self.model, &self.train, &self.data);
        let bad = |msg: String| Err(Error::Config(msg));
        if m.latents == 0 {
            return bad("model.latents must be at least 1".into());
        }
        if d.source == DataSource::Lines3x3 {
            return bad("data.source = \"lines3x3\" has no grey-level training file; use it with `helmholtz train`".into());
        }
        if m.kind.binary() && !d.binarize {
            return bad(format!(
                "model.kind = \"{}\" needs binary data: set data.binarize = true",
                kind_name(m.kind)
            ));
        }
        if !m.kind.binary() && d.binarize {
            return bad(format!(
                "model.kind = \"{}\" models grey levels: remove data.binarize",
                kind_name(m.kind)
            ));
        }
        if d.binarize && d.dequantize.is_some() {
            return bad("data.binarize and data.dequantize exclude each other".into());
        }
        if matches!(d.dequantize, Some(l) if l < 2) {
            return bad("data.dequantize is the number of grey levels, at least 2".into());
        }
        if m.kind.binary() && d.transform != TransformKind::None {
            return bad(format!(
                "data.transform = \"{}\" applies to continuous models; model.kind = \"{}\" models binary data (remove data.transform)",
                d.transform.name(),
                kind_name(m.kind)
            ));
        }
        if d.points == Some(0) {
            return bad("data.points must be at least 1".into());
        }
        if m.kind == ModelKind::SbnExact && m.latents > crate::models::sbn_exact::MAX_LATENTS {
            return bad(format!(
                "sbn-exact enumerates 2^H configurations: model.latents ≤ {}",
                crate::models::sbn_exact::MAX_LATENTS
            ));
        }
        if t.method == FitMethod::ClosedForm && m.kind != ModelKind::Ppca {
            return bad("train.method = \"closed-form\" exists for ppca only".into());
        }
        if t.method == FitMethod::ClosedForm && m.fixed_noise.is_some() {
            return bad("the closed-form PPCA solution learns σ²: remove model.fixed_noise".into());
        }
        if m.fixed_noise.is_some() && !matches!(m.kind, ModelKind::Ppca | ModelKind::FactorAnalysis)
        {
            return bad("model.fixed_noise exists for ppca and factor-analysis".into());
        }
        if matches!(m.fixed_noise, Some(v) if !(v.is_finite() && v > 0.0)) {
            return bad("model.fixed_noise must be a positive variance".into());
        }
        if m.kind.vae().is_none() && !m.hidden.is_empty() {
            return bad("model.hidden exists for VAEs only".into());
        }
        if m.kind.vae().is_some() {
            if m.hidden.contains(&0) {
                return bad("model.hidden widths must be positive".into());
            }
            if t.batch_size == 0 || t.epochs == 0 || t.eval_every == 0 {
                return bad("train.batch_size, epochs and eval_every must be positive".into());
            }
            crate::optim::check_step_size("train.lr", t.lr)?;
            t.schedule.validate()?;
            if t.optimal_variances && m.kind == ModelKind::Vae3 {
                return bad(
                    "train.optimal_variances: VAE-3's variances depend on z and have no closed form"
                        .into(),
                );
            }
        }
        if matches!(t.gap_tolerance, Some(g) if g.is_nan() || g <= 0.0) {
            return bad("train.gap_tolerance must be positive".into());
        }
        if !(t.tol >= 0.0 && t.tol_grad > 0.0) || t.max_steps == 0 {
            return bad("train.tol ≥ 0, tol_grad > 0 and max_steps ≥ 1 are required".into());
        }
        Ok(())
    }
}

/// The config name of a model kind.
pub fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Ppca => "ppca",
        ModelKind::FactorAnalysis => "factor-analysis",
        ModelKind::GmmDiagonal => "gmm-diagonal",
        ModelKind::GmmFull => "gmm-full",
        ModelKind::BernoulliMixture => "bernoulli-mixture",
        ModelKind::SbnExact => "sbn-exact",
        ModelKind::Vae1 => "vae-1",
        ModelKind::Vae2 => "vae-2",
        ModelKind::Vae3 => "vae-3",
    }
}

/// The lines to log about how the training file was read (a CSV header decided from its first
/// row).
pub fn header_notes(config: &FitConfig) -> Vec<String> {
    let d = &config.data;
    if d.source != DataSource::Csv {
        return Vec::new();
    }
    match super::config::csv_options(d.header, d.delimiter, d.scale) {
        Ok(options) => d
            .train
            .iter()
            .filter_map(|path| data::csv::detected_header_note(path, &options))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Loads the training points of `config` (D × N, f64), binarised or dequantised and then
/// transformed as asked.
pub fn load_data(config: &FitConfig) -> Result<Mat<f64>> {
    load_transformed(config).map(|(x, _)| x)
}

/// [`load_data`] with the transform it fitted on the training points (the identity for
/// `data.transform = "none"`).
pub fn load_transformed(config: &FitConfig) -> Result<(Mat<f64>, Transform)> {
    prepare(config, read_points(config)?)
}

/// The training points of `config` as read from its data (D × N, f64; the first `data.points`
/// of them), before binarisation, dequantisation and transform ([`prepare`]). Binary models
/// read values in [0, 1]; continuous ones read the user's CSV or NPY file in f64, as written.
pub fn read_points(config: &FitConfig) -> Result<Mat<f64>> {
    let d = &config.data;
    let hm = DataConfig {
        source: d.source,
        binarize: super::config::Binarize::None,
        binarize_seed: d.binarize_seed,
        dir: d.dir.clone(),
        train: d.train.clone(),
        valid: None,
        test: None,
        scale: d.scale,
        header: d.header,
        delimiter: d.delimiter,
        label: d.label.clone(),
    };
    let points = |n_samples: usize| -> Result<usize> {
        match d.points {
            Some(n) if n > n_samples => Err(Error::Config(format!(
                "data.points = {n}, but the training set has {n_samples} points"
            ))),
            Some(n) => Ok(n),
            None => Ok(n_samples),
        }
    };
    let custom_table = matches!(d.source, DataSource::Csv | DataSource::Npy);
    if !d.binarize && custom_table {
        // Continuous models on the user's CSV or NPY file: read in f64, as written.
        let path = d
            .train
            .as_ref()
            .ok_or_else(|| Error::Config("data.train must name the training file".into()))?;
        let options = data::table::TableOptions {
            header: d.header,
            delimiter: match d.delimiter {
                Some(_) => {
                    Some(super::config::csv_options(d.header, d.delimiter, d.scale)?.delimiter)
                }
                None => None,
            },
            label: d.label.clone(),
        };
        let table = data::table::read_table(path, &options)?;
        let n = points(table.rows())?;
        let scale = f64::from(d.scale);
        return Ok(Mat::from_fn(table.values.ncols(), n, |r, c| {
            table.values[(c, r)] * scale
        }));
    }
    // Binary models binarise values in [0, 1]; continuous ones take any finite values.
    let mut train: Dataset = if d.binarize {
        super::data::load_splits(&hm)?.train
    } else {
        super::data::load_values(&hm)?.train
    };
    train = train.range(0, points(train.n_samples())?);
    Ok(Mat::from_fn(train.dim(), train.n_samples(), |r, c| {
        f64::from(train.x[(r, c)])
    }))
}

/// The points `x` (D × N, as [`read_points`] gives them) as `config`'s model sees them:
/// binarised once from `data.binarize_seed` (values in [0, 1] required), or dequantised from
/// the seed, then mapped by the transform `data.transform` fitted on them.
pub fn prepare(config: &FitConfig, mut x: Mat<f64>) -> Result<(Mat<f64>, Transform)> {
    let d = &config.data;
    if d.binarize {
        if x.col_iter()
            .any(|c| c.iter().any(|v| !(0.0..=1.0).contains(v)))
        {
            return Err(Error::InvalidData(
                "data.binarize: the points have values outside [0, 1] (each value is the probability of a 1)".into(),
            ));
        }
        let set = Dataset::new(Mat::from_fn(x.nrows(), x.ncols(), |r, c| x[(r, c)] as f32));
        let binary = data::binarize_fixed(&set, d.binarize_seed);
        x = Mat::from_fn(x.nrows(), x.ncols(), |r, c| f64::from(binary.x[(r, c)]));
    }
    if let Some(levels) = d.dequantize {
        let mut rng = Stream::new(config.seed, &[ids::SYNTHETIC]);
        let l = f64::from(levels);
        for c in 0..x.ncols() {
            for r in 0..x.nrows() {
                x[(r, c)] = ((l - 1.0) * x[(r, c)] + rng.uniform_f64()) / l;
            }
        }
    }
    let rows = x.transpose();
    let names: Vec<String> = (1..=rows.ncols())
        .map(|j| format!("{j} (1-based)"))
        .collect();
    let transform = Transform::fit(d.transform, rows, &names)?;
    if d.transform != TransformKind::None {
        x = transform.apply(rows).transpose().to_owned();
    }
    Ok((x, transform))
}
