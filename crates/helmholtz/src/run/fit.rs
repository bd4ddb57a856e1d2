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
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::checkpoint::{read_tensors, write_tensors};
use super::config::{DataConfig, DataSource, parse_strict};
use super::{CHECKPOINT_STATE, CONFIG_FILE, RunDir, SUMMARY_FILE};
use crate::data::batches::IndicesOnly;
use crate::data::{self, Dataset};
use crate::dist::{Conditions, EntropySum, GapCriterion};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::models::linear_gaussian::{LinearGaussian, Noise};
use crate::models::mixture::{Components, Family, Mixture};
use crate::models::mlp::Activation;
use crate::models::sbn_exact::ExactSbn;
use crate::models::vae::{GaussianVae, VaeKind};
use crate::optim::quasi_newton::{LbfgsConfig, defaults as lbfgs_defaults, minimize};
use crate::optim::{Optimizer, OptimizerConfig, Schedule};
use crate::train::em::{Em, EmModel};
use crate::train::trainer::{
    CheckpointStore, Control, DivergenceGuard, EpochRecord, Observer, Outcome, Slot, TrainState,
    Trainer,
};
use crate::train::vae::{VaeStep, evaluate_vae};

/// The model file of non-VAE fits (f64 JSON, so the stored stationary point is exact).
pub const MODEL_JSON: &str = "model.json";
/// The model file of VAE fits.
pub const MODEL_TENSORS: &str = "model.safetensors";

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
    /// digits, mnist, fashion-mnist, idx, csv or png-dir.
    pub source: DataSource,
    /// Data directory (default: `$HELMHOLTZ_DATA` or `data/`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Training file or directory (idx, csv, png-dir).
    #[serde(default)]
    pub train: Option<PathBuf>,
    /// Divisor applied to CSV values.
    #[serde(default = "one")]
    pub scale: f32,
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
        let config: FitConfig = parse_strict(text, overrides, origin)?;
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
            if !(t.lr.is_finite() && t.lr > 0.0) {
                return bad(format!("train.lr must be positive, got {}", t.lr));
            }
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

/// Loads the training points of `config` (D × N, f64), binarised or dequantised as asked.
pub fn load_data(config: &FitConfig) -> Result<Mat<f64>> {
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
    };
    let mut train: Dataset = super::data::load_splits(&hm)?.train;
    if let Some(n) = d.points {
        if n > train.n_samples() {
            return Err(Error::Config(format!(
                "data.points = {n}, but the training set has {} points",
                train.n_samples()
            )));
        }
        train = train.range(0, n);
    }
    if d.binarize {
        train = data::binarize_fixed(&train, d.binarize_seed);
    }
    let mut x = Mat::from_fn(train.dim(), train.n_samples(), |r, c| {
        f64::from(train.x[(r, c)])
    });
    if let Some(levels) = d.dequantize {
        let mut rng = Stream::new(config.seed, &[ids::SYNTHETIC]);
        let l = f64::from(levels);
        for c in 0..x.ncols() {
            for r in 0..x.nrows() {
                x[(r, c)] = ((l - 1.0) * x[(r, c)] + rng.uniform_f64()) / l;
            }
        }
    }
    Ok(x)
}

/// A trained model of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum FittedModel {
    /// PPCA or factor analysis.
    Linear(LinearGaussian),
    /// A mixture.
    Mixture(Mixture),
    /// A one-layer SBN.
    Sbn(ExactSbn),
    /// A VAE.
    Vae(GaussianVae),
}

/// The ELBO of a model on data with its entropy decomposition and what the identity needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decomposition {
    /// ELBO and entropies.
    pub sum: EntropySum,
    /// Whether the identity applies as the model was trained.
    pub conditions: Conditions,
    /// The exact log-likelihood per point where it is known (PPCA/FA, mixtures, SBN).
    pub log_likelihood: Option<f64>,
    /// VAE: per-latent mean encoder entropies.
    pub latent_entropies: Option<Vec<f64>>,
    /// VAE: per-latent prior entropies.
    pub prior_entropies: Option<Vec<f64>>,
    /// VAE: latents whose encoder entropy sits at the prior's.
    pub collapsed: Option<usize>,
}

impl Decomposition {
    /// One metrics record: ELBO, entropies and gap, or the notice where the identity does not
    /// apply (then no entropy sum or gap is given, to not mislead).
    pub fn record(&self, step_name: &str, step: usize) -> serde_json::Value {
        let mut record = serde_json::json!({ step_name: step });
        let map = record.as_object_mut().expect("object");
        entropy_fields(&self.sum, &self.conditions, map);
        if let Some(ll) = self.log_likelihood {
            map.insert("log_likelihood".into(), ll.into());
        }
        if let Some(c) = self.collapsed {
            map.insert("collapsed".into(), c.into());
        }
        record
    }

    /// A human-readable table of the decomposition.
    pub fn table(&self) -> String {
        let s = &self.sum;
        let mut out = format!(
            "ELBO                          {:>14.6}\n\
             mean entropy of q             {:>14.6}\n\
             − prior entropy               {:>14.6}\n\
             − expected observable entropy {:>14.6}\n",
            s.elbo, s.posterior, -s.prior, -s.observable
        );
        match self.conditions.violation() {
            Some(notice) => out.push_str(&format!("{notice}\n")),
            None => out.push_str(&format!(
                "entropy sum                   {:>14.6}\n\
                 gap (ELBO − sum)              {:>14.6}  ({:.3e} of |ELBO|)\n",
                s.entropy_sum(),
                s.gap(),
                s.relative_gap()
            )),
        }
        if let Some(ll) = self.log_likelihood {
            out.push_str(&format!("log-likelihood                {ll:>14.6}\n"));
        }
        if let (Some(q), Some(p), Some(c)) = (
            &self.latent_entropies,
            &self.prior_entropies,
            self.collapsed,
        ) {
            out.push_str(&format!(
                "latent entropies (q | prior): {}\ncollapsed latents: {c} of {}\n",
                q.iter()
                    .zip(p)
                    .map(|(q, p)| format!("{q:.3}|{p:.3}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                q.len()
            ));
        }
        out
    }
}

/// Adds the ELBO and its entropies to a metrics record (`elbo`, `posterior_entropy`,
/// `prior_entropy`, `observable_entropy`, `intermediate_entropies` for deeper models), with
/// `entropy_sum`, `gap` and `relative_gap` where the identity applies and a `notice` saying why
/// where it does not (no sum or gap then, so as not to mislead).
pub fn entropy_fields(
    sum: &EntropySum,
    conditions: &Conditions,
    map: &mut serde_json::Map<String, serde_json::Value>,
) {
    map.insert("elbo".into(), sum.elbo.into());
    map.insert("posterior_entropy".into(), sum.posterior.into());
    map.insert("prior_entropy".into(), sum.prior.into());
    map.insert("observable_entropy".into(), sum.observable.into());
    if !sum.intermediate.is_empty() {
        map.insert(
            "intermediate_entropies".into(),
            serde_json::json!(sum.intermediate),
        );
    }
    match conditions.violation() {
        Some(notice) => {
            map.insert("notice".into(), notice.into());
        }
        None => {
            map.insert("entropy_sum".into(), sum.entropy_sum().into());
            map.insert("gap".into(), sum.gap().into());
            map.insert("relative_gap".into(), sum.relative_gap().into());
        }
    }
}

/// Draws of the VAE evaluation (fixed, so that evaluations of a run compare).
const VAE_EVAL_BATCH: usize = 500;

impl FittedModel {
    /// The decomposition on the columns of `x`; `config` says how the model was trained.
    pub fn decompose(&self, x: MatRef<'_, f64>, config: &FitConfig) -> Result<Decomposition> {
        let plain = Decomposition {
            sum: EntropySum::new(0.0, 0.0, 0.0, 0.0),
            conditions: Conditions::plain(),
            log_likelihood: None,
            latent_entropies: None,
            prior_entropies: None,
            collapsed: None,
        };
        Ok(match self {
            FittedModel::Linear(model) => {
                let (means, covariance) = model.posteriors(x)?;
                let elbo = model.elbo(x, means.as_ref(), covariance.as_ref())?;
                Decomposition {
                    sum: model.entropy_sum(covariance.as_ref(), elbo)?,
                    conditions: model.conditions(),
                    log_likelihood: Some(model.log_likelihood(x)?),
                    ..plain
                }
            }
            FittedModel::Mixture(model) => {
                let (resp, ll) = model.responsibilities(x)?;
                let elbo = model.elbo(x, resp.as_ref())?;
                Decomposition {
                    sum: model.entropy_sum(resp.as_ref(), elbo),
                    log_likelihood: Some(ll),
                    ..plain
                }
            }
            FittedModel::Sbn(model) => {
                let sum = model.entropy_sum(x)?;
                Decomposition {
                    log_likelihood: Some(sum.elbo),
                    sum,
                    ..plain
                }
            }
            FittedModel::Vae(model) => {
                let eval = evaluate_vae(model, x, VAE_EVAL_BATCH, config.seed)?;
                let collapsed = eval.collapsed();
                Decomposition {
                    sum: eval.entropies,
                    latent_entropies: Some(eval.latent_entropies),
                    prior_entropies: Some(eval.prior_entropies),
                    collapsed: Some(collapsed),
                    ..plain
                }
            }
        })
    }

    /// Writes the model into the run directory `dir` (atomically: written, then renamed).
    pub fn save(&self, dir: &Path) -> Result<()> {
        match self {
            FittedModel::Vae(model) => write_tensors(&dir.join(MODEL_TENSORS), &model.params),
            other => {
                let saved = SavedModel::from_model(other);
                let text = serde_json::to_string(&saved)
                    .map_err(|e| Error::Config(format!("model: {e}")))?;
                let path = dir.join(MODEL_JSON);
                let partial = dir.join(format!("{MODEL_JSON}.partial"));
                std::fs::write(&partial, text).map_err(|e| Error::io(&partial, e))?;
                std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))
            }
        }
    }

    /// Reads the model of a fit run from `dir`, whose config is `config` and data dimension `dim`.
    pub fn load(dir: &Path, config: &FitConfig, dim: usize) -> Result<Self> {
        if let Some(kind) = config.model.kind.vae() {
            let m = &config.model;
            let mut model =
                GaussianVae::new(kind, dim, &m.hidden, m.latents, m.activation, config.seed)?;
            model.params = read_tensors(&dir.join(MODEL_TENSORS), &model.params)?;
            return Ok(FittedModel::Vae(model));
        }
        let path = dir.join(MODEL_JSON);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let saved: SavedModel = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidData(format!("{}: {e}", path.display())))?;
        saved.into_model(config.model.fixed_noise.is_none(), dim)
    }
}

/// Columns of a matrix.
fn columns(m: &Mat<f64>) -> Vec<Vec<f64>> {
    (0..m.ncols())
        .map(|c| (0..m.nrows()).map(|r| m[(r, c)]).collect())
        .collect()
}

/// A matrix from its columns, each of length `rows`.
fn from_columns(cols: &[Vec<f64>], rows: usize) -> Result<Mat<f64>> {
    if cols.iter().any(|c| c.len() != rows) {
        return Err(Error::InvalidData(format!(
            "stored model: a column is not of length {rows}"
        )));
    }
    Ok(Mat::from_fn(rows, cols.len(), |r, c| cols[c][r]))
}

/// The f64 JSON form of the non-VAE models.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum SavedModel {
    Linear {
        w: Vec<Vec<f64>>,
        mean: Vec<f64>,
        noise: Vec<f64>,
        isotropic: bool,
    },
    Mixture {
        weights: Vec<f64>,
        family: String,
        means: Vec<Vec<f64>>,
        spread: Vec<Vec<f64>>,
    },
    Sbn {
        dim: usize,
        n_latents: usize,
        theta: Vec<f64>,
    },
}

impl SavedModel {
    fn from_model(model: &FittedModel) -> Self {
        match model {
            FittedModel::Linear(m) => {
                let (noise, isotropic) = match &m.noise {
                    Noise::Isotropic(s) => (vec![*s], true),
                    Noise::Diagonal(v) => (v.clone(), false),
                };
                SavedModel::Linear {
                    w: columns(&m.w),
                    mean: m.mean.clone(),
                    noise,
                    isotropic,
                }
            }
            FittedModel::Mixture(m) => {
                let (family, means, spread) = match &m.components {
                    Components::DiagonalGaussian { means, variances } => {
                        ("diagonal", columns(means), columns(variances))
                    }
                    Components::FullGaussian { means, covariances } => (
                        "full",
                        columns(means),
                        covariances.iter().flat_map(columns).collect(),
                    ),
                    Components::Bernoulli { probs } => ("bernoulli", columns(probs), Vec::new()),
                };
                SavedModel::Mixture {
                    weights: m.weights.clone(),
                    family: family.into(),
                    means,
                    spread,
                }
            }
            FittedModel::Sbn(m) => SavedModel::Sbn {
                dim: m.dim,
                n_latents: m.n_latents,
                theta: m.theta.clone(),
            },
            FittedModel::Vae(_) => unreachable!("VAEs are stored as tensors"),
        }
    }

    fn into_model(self, learn_noise: bool, dim: usize) -> Result<FittedModel> {
        let wrong = |what: String| Error::InvalidData(format!("stored model: {what}"));
        Ok(match self {
            SavedModel::Linear {
                w,
                mean,
                noise,
                isotropic,
            } => {
                if mean.len() != dim || noise.len() != if isotropic { 1 } else { dim } {
                    return Err(wrong(format!("not of dimension {dim}")));
                }
                FittedModel::Linear(LinearGaussian {
                    w: from_columns(&w, dim)?,
                    mean,
                    noise: if isotropic {
                        Noise::Isotropic(noise[0])
                    } else {
                        Noise::Diagonal(noise)
                    },
                    learn_noise,
                })
            }
            SavedModel::Mixture {
                weights,
                family,
                means,
                spread,
            } => {
                let c = weights.len();
                let means = from_columns(&means, dim)?;
                let components = match family.as_str() {
                    "diagonal" => Components::DiagonalGaussian {
                        means,
                        variances: from_columns(&spread, dim)?,
                    },
                    "full" => {
                        if spread.len() != c * dim {
                            return Err(wrong(format!("{c} covariances of {dim}×{dim} expected")));
                        }
                        Components::FullGaussian {
                            means,
                            covariances: spread
                                .chunks(dim)
                                .map(|cols| from_columns(cols, dim))
                                .collect::<Result<_>>()?,
                        }
                    }
                    "bernoulli" => Components::Bernoulli { probs: means },
                    other => return Err(wrong(format!("unknown mixture family {other:?}"))),
                };
                FittedModel::Mixture(Mixture {
                    weights,
                    components,
                })
            }
            SavedModel::Sbn {
                dim: d,
                n_latents,
                theta,
            } => {
                if d != dim {
                    return Err(wrong(format!("an SBN of D = {d} for data of D = {dim}")));
                }
                FittedModel::Sbn(ExactSbn::new(d, n_latents, theta)?)
            }
        })
    }
}

/// The outcome of a fit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitSummary {
    /// The model kind.
    pub kind: &'static str,
    /// Training points.
    pub points: usize,
    /// Data dimension.
    pub dim: usize,
    /// EM steps, L-BFGS iterations or epochs.
    pub steps: usize,
    /// Why training stopped.
    pub stopped: String,
    /// Seconds of training.
    pub fit_s: f64,
    /// The final decomposition on the training points.
    pub decomposition: Decomposition,
}

/// Fits the model of `config` and writes the run into `dir` (which must not exist or be
/// empty). `progress(line)` receives one line per step (EM step, L-BFGS iteration every 50,
/// VAE evaluation). EM and VAE fits run on the [`Trainer`] and stop early when `stop` is raised
/// (then a checkpoint is written and [`resume_fit`] continues bit-for-bit).
pub fn run_fit(
    config: &FitConfig,
    dir: &Path,
    progress: impl FnMut(&str),
) -> Result<(FittedModel, FitSummary)> {
    run_fit_until(config, dir, progress, &AtomicBool::new(false))
}

/// [`run_fit`] with a stop flag.
pub fn run_fit_until(
    config: &FitConfig,
    dir: &Path,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<(FittedModel, FitSummary)> {
    config.validate()?;
    let x = load_data(config)?;
    let text = toml::to_string(config).map_err(|e| Error::Config(e.to_string()))?;
    let run = RunDir::create(dir)?;
    run.write_file(CONFIG_FILE, text.as_bytes())?;
    let (m, t) = (&config.model, &config.train);
    let d = x.nrows();
    let started = Instant::now();
    let fitted = match m.kind {
        ModelKind::Ppca | ModelKind::FactorAnalysis => {
            let diagonal = m.kind == ModelKind::FactorAnalysis;
            let mut model = if t.method == FitMethod::ClosedForm {
                LinearGaussian::ppca_ml(x.as_ref(), m.latents)?
            } else {
                LinearGaussian::random(x.as_ref(), m.latents, diagonal, config.seed)?
            };
            if let Some(v) = m.fixed_noise {
                model.noise = if diagonal {
                    Noise::Diagonal(vec![v; d])
                } else {
                    Noise::Isotropic(v)
                };
                model.learn_noise = false;
            }
            FittedModel::Linear(model)
        }
        ModelKind::GmmDiagonal | ModelKind::GmmFull | ModelKind::BernoulliMixture => {
            let family = m.kind.mixture().expect("a mixture");
            FittedModel::Mixture(Mixture::init(x.as_ref(), m.latents, family, config.seed)?)
        }
        ModelKind::SbnExact => {
            let (fitted, steps, stopped) = fit_sbn(config, x.as_ref(), &run, &mut progress)?;
            let fit_s = started.elapsed().as_secs_f64();
            let decomposition = fitted.decompose(x.as_ref(), config)?;
            return finish(
                config,
                &run,
                x.as_ref(),
                fitted,
                steps,
                stopped,
                fit_s,
                decomposition,
            );
        }
        ModelKind::Vae1 | ModelKind::Vae2 | ModelKind::Vae3 => {
            let kind = m.kind.vae().expect("a VAE");
            let mut model =
                GaussianVae::new(kind, d, &m.hidden, m.latents, m.activation, config.seed)?;
            if kind != VaeKind::Vae3 {
                // σ² (and α²) start at their optima for the first points, not at 1.
                let first = x.ncols().min(VAE_EVAL_BATCH);
                let eps = model.noise(first, config.seed, u64::MAX);
                model.set_optimal_variances(x.subcols(0, first), eps.as_ref())?;
            }
            FittedModel::Vae(model)
        }
    };
    let optimizer = vae_optimizer(config, &fitted)?;
    train_fit(
        config,
        run,
        x,
        fitted,
        optimizer,
        TrainState::default(),
        progress,
        stop,
    )
}

/// Continues the fit run in `dir` from its last checkpoint (EM and VAE fits); `overrides` may
/// raise `train.epochs` or `train.max_steps`. Overrides are recorded; a change of the model is
/// refused.
pub fn resume_fit(
    dir: &Path,
    overrides: &[String],
    progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<(FittedModel, FitSummary)> {
    let run = RunDir::open(dir)?;
    let stored = FitConfig::load(&run.join(CONFIG_FILE), &[])?;
    let config = FitConfig::load(&run.join(CONFIG_FILE), overrides)?;
    let changes = super::config_changes(&stored, &config)?;
    let x = load_data(&config)?;
    let ckpt = run.checkpoint(Slot::Last);
    let fitted = FittedModel::load(&ckpt, &config, x.nrows())?;
    let mut optimizer = vae_optimizer(&config, &fitted)?;
    if let Some(optimizer) = optimizer.as_mut() {
        let moments = read_tensors(&ckpt.join(OPTIMIZER_TENSORS), &optimizer.moments())?;
        optimizer.set_moments(moments);
    }
    let path = ckpt.join(CHECKPOINT_STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let stored_state: FitState =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))?;
    if let Some(optimizer) = optimizer.as_mut() {
        optimizer.step = stored_state.optimizer_step;
    }
    let mut state = stored_state.state;
    if !overrides.is_empty() {
        run.record_resume(overrides, &changes)?;
        let text = toml::to_string(&config).map_err(|e| Error::Config(e.to_string()))?;
        run.write_file(CONFIG_FILE, text.as_bytes())?;
    }
    let limit = match fitted {
        FittedModel::Vae(_) => config.train.epochs,
        _ => config.train.max_steps,
    };
    if state.finished && !state.stopped_early && state.epoch < limit {
        state.finished = false;
    }
    run.truncate_metrics_after(state.step)?;
    train_fit(&config, run, x, fitted, optimizer, state, progress, stop)
}

/// Adam for a VAE fit (none for the others).
fn vae_optimizer(config: &FitConfig, fitted: &FittedModel) -> Result<Option<Optimizer>> {
    let FittedModel::Vae(model) = fitted else {
        return Ok(None);
    };
    let adam = OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    Optimizer::new(
        adam,
        config.train.lr,
        config.train.schedule.clone(),
        &model.params,
    )
    .map(Some)
}

/// What a fit checkpoint's state.json holds besides the tensors.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct FitState {
    version: String,
    state: TrainState,
    #[serde(default)]
    optimizer_step: u64,
}

/// The optimizer's moments in a fit checkpoint.
const OPTIMIZER_TENSORS: &str = "optimizer.safetensors";

/// EM or VAE training of `fitted` on the trainer, then the summary.
#[allow(clippy::too_many_arguments)]
fn train_fit(
    config: &FitConfig,
    run: RunDir,
    x: Mat<f64>,
    fitted: FittedModel,
    optimizer: Option<Optimizer>,
    mut state: TrainState,
    mut progress: impl FnMut(&str),
    stop: &AtomicBool,
) -> Result<(FittedModel, FitSummary)> {
    let t = &config.train;
    let started = Instant::now();
    let mut watch = FitWatch::new(config, x.as_ref(), &run, &mut progress, &state);
    let mut guard = DivergenceGuard::default();
    let (fitted, outcome) = match (fitted, optimizer) {
        (FittedModel::Vae(mut model), Some(optimizer)) => {
            let trainer = Trainer {
                seed: config.seed,
                epochs: t.epochs,
                batch_size: t.batch_size,
                checkpoint_every: 1,
                objective_name: "train_elbo",
            };
            let mut algorithm = VaeStep::new(optimizer, t.optimal_variances, &model);
            let outcome = trainer.fit(
                &mut model,
                &mut algorithm,
                &x.as_ref(),
                &mut state,
                &mut [&mut guard, &mut watch],
                &mut FitStore(&run),
                stop,
            )?;
            (FittedModel::Vae(model), outcome)
        }
        (mut fitted, _) => {
            if state.step == 0 && state.epoch == 0 {
                let closed_form = t.method == FitMethod::ClosedForm;
                let dec = watch.log_em_step(&fitted, &mut state)?;
                if closed_form {
                    let fit_s = started.elapsed().as_secs_f64();
                    return finish(
                        config,
                        &run,
                        x.as_ref(),
                        fitted,
                        0,
                        "closed form".into(),
                        fit_s,
                        dec,
                    );
                }
            }
            let trainer = Trainer {
                seed: config.seed,
                epochs: t.max_steps,
                batch_size: x.ncols().max(1),
                checkpoint_every: EM_CHECKPOINT_EVERY,
                objective_name: "log_likelihood",
            };
            let mut em = Em { x: x.clone() };
            let outcome = trainer.fit(
                &mut fitted,
                &mut em,
                &IndicesOnly {
                    n_points: x.ncols(),
                },
                &mut state,
                &mut [&mut watch],
                &mut FitStore(&run),
                stop,
            )?;
            (fitted, outcome)
        }
    };
    let stopped = match &outcome {
        Outcome::Completed if matches!(fitted, FittedModel::Vae(_)) => "epochs".to_string(),
        Outcome::Completed => "max_steps".to_string(),
        Outcome::EarlyStopped => watch.stopped.clone().unwrap_or_else(|| "stopped".into()),
        Outcome::Interrupted => format!(
            "interrupted; continue with helmholtz fit --resume {}",
            run.path().display()
        ),
        Outcome::Diverged(message) => {
            return Err(Error::Diverged(message.clone()));
        }
    };
    let steps = match fitted {
        FittedModel::Vae(_) => state.epoch,
        _ => state.step as usize,
    };
    let fit_s = started.elapsed().as_secs_f64();
    let decomposition = fitted.decompose(x.as_ref(), config)?;
    finish(
        config,
        &run,
        x.as_ref(),
        fitted,
        steps,
        stopped,
        fit_s,
        decomposition,
    )
}

/// Writes the model and the summary of a fit.
#[allow(clippy::too_many_arguments)]
fn finish(
    config: &FitConfig,
    run: &RunDir,
    x: MatRef<'_, f64>,
    model: FittedModel,
    steps: usize,
    stopped: String,
    fit_s: f64,
    decomposition: Decomposition,
) -> Result<(FittedModel, FitSummary)> {
    model.save(run.path())?;
    let summary = FitSummary {
        kind: kind_name(config.model.kind),
        points: x.ncols(),
        dim: x.nrows(),
        steps,
        stopped,
        fit_s,
        decomposition,
    };
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Config(e.to_string()))?;
    run.write_file(SUMMARY_FILE, text.as_bytes())?;
    Ok((model, summary))
}

/// `last` checkpoints of EM fits every this many steps (and at the end and on a stop).
const EM_CHECKPOINT_EVERY: usize = 100;

/// Logs the decomposition after each EM step or VAE epoch, and stops on the EM tolerance or the
/// VAE's gap criterion; its counters travel in the checkpoint's `extra`.
struct FitWatch<'a, P: FnMut(&str)> {
    config: &'a FitConfig,
    x: MatRef<'a, f64>,
    run: &'a RunDir,
    progress: &'a mut P,
    previous_ll: f64,
    criterion: Option<GapCriterion>,
    stopped: Option<String>,
}

impl<'a, P: FnMut(&str)> FitWatch<'a, P> {
    fn new(
        config: &'a FitConfig,
        x: MatRef<'a, f64>,
        run: &'a RunDir,
        progress: &'a mut P,
        state: &TrainState,
    ) -> Self {
        let t = &config.train;
        let criterion = match state.extra.get("gap_criterion") {
            Some(value) => serde_json::from_value(value.clone()).ok(),
            None => t
                .gap_tolerance
                .map(|tol| GapCriterion::new(tol, t.gap_window)),
        };
        FitWatch {
            config,
            x,
            run,
            progress,
            previous_ll: state
                .extra
                .get("previous_ll")
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NEG_INFINITY),
            criterion,
            stopped: None,
        }
    }

    /// Logs the decomposition after EM step `state.step`; remembers its log-likelihood.
    fn log_em_step(
        &mut self,
        fitted: &FittedModel,
        state: &mut TrainState,
    ) -> Result<Decomposition> {
        let step = state.step as usize;
        let dec = fitted.decompose(self.x, self.config)?;
        self.run.log(&dec.record("step", step))?;
        (self.progress)(&step_line("step", step, &dec));
        if let Some(ll) = dec.log_likelihood {
            state.extra.insert("previous_ll".into(), ll.into());
        }
        Ok(dec)
    }
}

impl<P: FnMut(&str)> Observer<FittedModel> for FitWatch<'_, P> {
    fn on_epoch(
        &mut self,
        model: &FittedModel,
        _: &mut EpochRecord,
        state: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let dec = self.log_em_step(model, state)?;
        let ll = dec
            .log_likelihood
            .ok_or_else(|| Error::Config("EM needs the exact log-likelihood".into()))?;
        let tol = self.config.train.tol;
        let converged = (ll - self.previous_ll).abs() < tol;
        self.previous_ll = ll;
        if converged {
            self.stopped = Some(format!("log-likelihood change below {tol:e}"));
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }
}

impl<P: FnMut(&str)> Observer<GaussianVae> for FitWatch<'_, P> {
    fn on_epoch(
        &mut self,
        model: &GaussianVae,
        record: &mut EpochRecord,
        state: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let t = &self.config.train;
        let epoch = state.epoch;
        let train_elbo = record.number("train_elbo").unwrap_or(f64::NAN);
        if !epoch.is_multiple_of(t.eval_every) && epoch != t.epochs {
            self.run.log(
                &serde_json::json!({ "epoch": epoch, "step": state.step, "train_elbo": train_elbo }),
            )?;
            return Ok(Control::Continue);
        }
        let dec = FittedModel::Vae(model.clone()).decompose(self.x, self.config)?;
        let mut line = dec.record("epoch", epoch);
        line["train_elbo"] = train_elbo.into();
        line["step"] = state.step.into();
        self.run.log(&line)?;
        (self.progress)(&step_line("epoch", epoch, &dec));
        if let Some(c) = &mut self.criterion {
            let done = c.observe(&dec.sum, &dec.conditions);
            state.extra.insert(
                "gap_criterion".into(),
                serde_json::to_value(&*c).unwrap_or_default(),
            );
            if done {
                self.stopped = Some(format!(
                    "|gap| / |ELBO| below {} for {} evaluations",
                    c.tolerance, c.window
                ));
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }
}

/// Checkpoints of fit runs: the model (as the run's model file), the optimizer's moments and
/// the counters.
struct FitStore<'a>(&'a RunDir);

impl FitStore<'_> {
    fn save(
        &self,
        slot: Slot,
        model: &FittedModel,
        optimizer: Option<&Optimizer>,
        state: &TrainState,
    ) -> Result<()> {
        self.0.write_checkpoint(slot, |tmp| {
            model.save(tmp)?;
            if let Some(optimizer) = optimizer {
                write_tensors(&tmp.join(OPTIMIZER_TENSORS), &optimizer.moments())?;
            }
            let stored = FitState {
                version: env!("CARGO_PKG_VERSION").to_string(),
                state: state.clone(),
                optimizer_step: optimizer.map_or(0, |o| o.step),
            };
            let text = serde_json::to_string_pretty(&stored)
                .map_err(|e| Error::Checkpoint(e.to_string()))?;
            let path = tmp.join(CHECKPOINT_STATE);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
        })
    }
}

impl CheckpointStore<FittedModel, Em> for FitStore<'_> {
    fn save(&mut self, slot: Slot, model: &FittedModel, _: &Em, state: &TrainState) -> Result<()> {
        FitStore::save(self, slot, model, None, state)
    }
}

impl CheckpointStore<GaussianVae, VaeStep> for FitStore<'_> {
    fn save(
        &mut self,
        slot: Slot,
        model: &GaussianVae,
        algorithm: &VaeStep,
        state: &TrainState,
    ) -> Result<()> {
        if let Some(name) = model.params.first_non_finite() {
            return Err(Error::Diverged(format!(
                "parameter {name} is not finite; the last good checkpoint is kept"
            )));
        }
        let fitted = FittedModel::Vae(model.clone());
        FitStore::save(self, slot, &fitted, Some(&algorithm.optimizer), state)
    }
}

impl EmModel for FittedModel {
    fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<()> {
        match self {
            FittedModel::Linear(model) => EmModel::em_step(model, x),
            FittedModel::Mixture(model) => EmModel::em_step(model, x),
            _ => Err(Error::Config(
                "EM exists for linear models and mixtures".into(),
            )),
        }
    }
}

/// The one-layer SBN with exact posteriors, fitted by L-BFGS (one full-batch solve whose
/// iterations are logged as they happen).
fn fit_sbn(
    config: &FitConfig,
    x: MatRef<'_, f64>,
    run: &RunDir,
    progress: &mut dyn FnMut(&str),
) -> Result<(FittedModel, usize, String)> {
    let (m, t) = (&config.model, &config.train);
    let (d, h) = (x.nrows(), m.latents);
    let size = h + d * h + d;
    let mut rng = Stream::new(config.seed, &[ids::INIT]);
    let start: Vec<f64> = (0..size).map(|_| 0.1 * rng.normal()).collect();
    let lbfgs = LbfgsConfig {
        max_iters: t.max_steps as u64,
        tol_grad: t.tol_grad,
        tol_cost: 0.0,
        ..LbfgsConfig::default()
    };
    let negative = |theta: &[f64]| -> Result<(f64, Vec<f64>)> {
        let model = ExactSbn::new(d, h, theta.to_vec())?;
        let mut grad = vec![0.0; theta.len()];
        let ll = model.log_likelihood(x, Some(&mut grad))?;
        Ok((-ll, grad.iter().map(|g| -g).collect()))
    };
    // L-BFGS runs on a scoped thread; its iterations come back over a channel and are logged
    // as they happen.
    let (sender, receiver) = std::sync::mpsc::channel();
    let minimum = std::thread::scope(|scope| -> Result<_> {
        let solver = scope.spawn(|| {
            minimize(negative, start, &lbfgs, move |i, value| {
                let _ = sender.send((i, -value));
            })
        });
        for (i, ll) in receiver {
            run.log(&serde_json::json!({ "iteration": i, "log_likelihood": ll }))?;
            if i % 50 == 0 {
                progress(&format!("iteration {i}: log-likelihood {ll:.10}"));
            }
        }
        solver
            .join()
            .map_err(|_| Error::Diverged("the L-BFGS thread panicked".into()))?
    })?;
    let fitted = FittedModel::Sbn(ExactSbn::new(d, h, minimum.param)?);
    let dec = fitted.decompose(x, config)?;
    run.log(&dec.record("iteration", minimum.iterations as usize))?;
    Ok((fitted, minimum.iterations as usize, minimum.stopped))
}

/// Opens a fit run: its config, the model and the training points.
pub fn open_fit(dir: &Path) -> Result<(FitConfig, FittedModel, Mat<f64>)> {
    let config = FitConfig::load(&dir.join(CONFIG_FILE), &[])?;
    let x = load_data(&config)?;
    let model = FittedModel::load(dir, &config, x.nrows())?;
    Ok((config, model, x))
}

/// Whether `dir` holds a fit run (its config has a `model.kind`).
pub fn is_fit_run(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(CONFIG_FILE))
        .ok()
        .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
        .and_then(|t| t.get("model")?.get("kind").cloned())
        .is_some()
}

fn step_line(name: &str, step: usize, dec: &Decomposition) -> String {
    match dec.conditions.violation() {
        Some(_) => format!(
            "{name} {step}: ELBO {:.8} (the identity does not apply)",
            dec.sum.elbo
        ),
        None => format!(
            "{name} {step}: ELBO {:.8}, entropy sum {:.8}, gap {:.3e}",
            dec.sum.elbo,
            dec.sum.entropy_sum(),
            dec.sum.gap()
        ),
    }
}
