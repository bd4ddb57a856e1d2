//! Sparse-coding runs (entropy.md §2–3): a strict TOML config, the bars experiment with its
//! ground-truth reference, and a run directory with the resolved config, the objective per
//! iteration (`metrics.jsonl`), the learned model (`model.safetensors`) and `summary.json`.
//!
//! (Over 700 lines: the sparse-coding runs' config and both runners; they are the next to move
//! onto the Trainer, and split with that move — docs/ARCHITECTURE.md.)

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::config::parse_strict;
use super::{CHECKPOINT_STATE, CONFIG_FILE, METRICS_FILE, RunDir, SUMMARY_FILE};
use crate::data::synthetic::{Bars, bars, match_fields};
use crate::error::{Error, Result};
use crate::models::encoder::{AmortizedSparseCoding, GaussianEncoder};
use crate::models::mlp::Activation;
use crate::models::sparse_coding::{PosteriorKind, ScaleParam, SparseCoding};
use crate::models::{ParamSet, Tensor};
use crate::objectives::sparse_coding::EntropyTerms;
use crate::train::amortized::AmortizedStep;
use crate::train::sparse_coding::SparseEmStep;
use crate::train::sparse_coding::{
    Annealing, EmConfig, EpochStats, LbfgsConfig, Target, defaults as lbfgs_defaults, evaluate,
    fit_lbfgs,
};
use crate::train::trainer::{
    CheckpointStore, Control, EpochRecord, Observer, Outcome, Slot, StepRecord, TrainState, Trainer,
};

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

/// The data section: the bars generator or natural-image patches (entropy.md §3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseDataConfig {
    /// "bars" or "patches".
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
    /// Patches: "zca" (whiten the patches, default) or "olshausen-field" (filter the images).
    #[serde(default)]
    pub whiten: WhitenKind,
    /// Patches: ZCA regulariser ε as a fraction of the mean eigenvalue.
    #[serde(default = "default_epsilon")]
    pub whiten_epsilon: f64,
    /// Patches: cutoff f₀ of the Olshausen–Field filter in cycles per pixel (SparseNet: 0.4).
    #[serde(default = "default_cutoff")]
    pub whiten_cutoff: f64,
}

/// How natural-image patches are whitened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhitenKind {
    /// ZCA on the patches ([`crate::data::patches::Whitening`]).
    #[default]
    Zca,
    /// The 1/f-whitening, low-pass filter of Olshausen's images on whole images
    /// ([`crate::data::patches::olshausen_field`]).
    OlshausenField,
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
    /// annealing, see [`SparseCoding::scale_floor`]).
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
        let config: SparseConfig = parse_strict(text, overrides, origin)?;
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
            "patches" => {
                if d.size == 0 || d.n < 2 || d.test_n == 0 || d.images.is_empty() {
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
                    "data.source must be \"bars\" or \"patches\", got {other:?}"
                )));
            }
        }
        let t = &self.train;
        if t.method == SparseMethod::Em
            && (t.batch_size == 0 || t.epochs == 0 || !(t.lr.is_finite() && t.lr > 0.0))
        {
            return Err(Error::Config(format!(
                "EM needs batch_size ≥ 1, epochs ≥ 1 and a positive lr, got {}, {} and {}",
                t.batch_size, t.epochs, t.lr
            )));
        }
        t.anneal.validate()?;
        let amortized = self.model.posterior == PosteriorFamily::Amortized;
        match (amortized, t.method, &self.model.encoder) {
            (true, SparseMethod::Adam, Some(encoder)) => {
                if d.source != "patches" {
                    return Err(Error::Config(
                        "amortized posteriors are trained on patches (data.source = \"patches\")"
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
        self.train.lbfgs().validate()
    }
}

/// The outcome of one bars run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BarsOutcome {
    /// The seed of data and initialisation.
    pub seed: u64,
    /// L^H per data point at the end.
    pub objective: f64,
    /// L^H with the generating fields as dictionary and the posteriors re-optimised.
    pub ground_truth: f64,
    /// Best |cosine| of each generating field with a distinct learned field.
    pub scores: Vec<f64>,
    /// Whether every field is matched with |cosine| ≥ 0.95.
    pub recovered: bool,
    /// L-BFGS iterations and objective evaluations.
    pub iterations: u64,
    /// Objective evaluations (each with its gradient).
    pub evaluations: u64,
    /// Why L-BFGS stopped.
    pub stopped: String,
    /// Wall-clock seconds of the fit (the ground-truth reference not included).
    pub fit_s: f64,
    /// Mean posterior entropy, prior entropy and noise entropy at the end.
    pub entropies: [f64; 3],
    /// The closed-form λ and σ² at the end.
    pub lambda: Vec<f64>,
    /// σ².
    pub sigma2: f64,
}

/// Cosine at or above which a generating field counts as recovered.
pub const RECOVERY_COSINE: f64 = 0.95;

/// Trains on bars drawn with `seed` (data and initialisation), computes the ground-truth
/// reference and writes the run directory `dir`. `progress(iteration, objective)` follows the fit.
pub fn run_bars(
    config: &SparseConfig,
    seed: u64,
    dir: &Path,
    mut progress: impl FnMut(u64, f64) + Send + Sync + 'static,
) -> Result<(SparseCoding, Bars, BarsOutcome)> {
    let io = io_error;
    let data = bars(config.data.side, config.data.n, config.data.noise, seed);
    let _run = create_run_dir(config, seed, dir)?;
    let (d, n) = (data.x.nrows(), data.x.ncols());
    let mut model = SparseCoding::new(
        d,
        config.model.n_latents,
        n,
        config.model.posterior.per_point(),
        seed,
    )?
    .with_scale_param(config.model.scale_param);
    model.scale_floor = config.model.scale_floor;
    let trace = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&trace);
    let start = Instant::now();
    let report = fit_lbfgs(
        &mut model,
        data.x.as_ref(),
        1.0,
        Target::All,
        &config.train.lbfgs(),
        move |i, f| {
            recorder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, f));
            progress(i, f);
        },
    )?;
    let fit_s = start.elapsed().as_secs_f64();

    let mut truth = model.clone();
    let mut fields = Mat::zeros(d, config.model.n_latents);
    for c in 0..data.fields.ncols().min(config.model.n_latents) {
        for r in 0..d {
            fields[(r, c)] = data.fields[(r, c)];
        }
    }
    truth.set_dictionary(&fields)?;
    // The posteriors restart from the unit Gaussians at zero, as in the authors' reference.
    let offset = d * config.model.n_latents;
    let fresh = SparseCoding::new(
        d,
        config.model.n_latents,
        n,
        config.model.posterior.per_point(),
        seed,
    )?
    .with_scale_param(config.model.scale_param);
    truth.theta[offset..].copy_from_slice(&fresh.theta[offset..]);
    let reference = fit_lbfgs(
        &mut truth,
        data.x.as_ref(),
        1.0,
        Target::Posteriors,
        &config.train.lbfgs(),
        |_, _| {},
    )?;

    let scores = match_fields(model.dictionary().as_ref(), data.fields.as_ref());
    let outcome = outcome(
        seed,
        &report.terms,
        reference.terms.objective(1.0),
        scores,
        fit_s,
        &report,
    );
    write_metrics(dir, &trace.lock().unwrap_or_else(|e| e.into_inner()))?;
    write_model(dir, &model, &report.terms)?;
    let summary =
        serde_json::to_string_pretty(&outcome).map_err(|e| Error::Config(e.to_string()))?;
    let summary_path = dir.join(SUMMARY_FILE);
    std::fs::write(&summary_path, summary).map_err(io(&summary_path))?;
    Ok((model, data, outcome))
}

fn outcome(
    seed: u64,
    terms: &EntropyTerms,
    ground_truth: f64,
    scores: Vec<f64>,
    fit_s: f64,
    report: &crate::train::sparse_coding::FitReport,
) -> BarsOutcome {
    BarsOutcome {
        seed,
        objective: terms.objective(1.0),
        ground_truth,
        recovered: scores.iter().all(|&s| s >= RECOVERY_COSINE),
        scores,
        iterations: report.iterations,
        evaluations: report.evaluations,
        stopped: report.stopped.clone(),
        fit_s,
        entropies: [terms.posterior, terms.prior, terms.noise],
        lambda: terms.lambda.clone(),
        sigma2: terms.sigma2,
    }
}

fn write_metrics(dir: &Path, trace: &[(u64, f64)]) -> Result<()> {
    let path = dir.join(METRICS_FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    for &(iteration, objective) in trace {
        let record =
            serde_json::json!({ "split": "train", "iteration": iteration, "objective": objective });
        writeln!(file, "{record}").map_err(io)?;
    }
    file.flush().map_err(io)
}

/// Writes the dictionary (D × H, unit-norm columns), λ, σ² and the posterior parameters.
fn write_model(dir: &Path, model: &SparseCoding, terms: &EntropyTerms) -> Result<()> {
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let (_, mu, scales) = model.blocks();
    let h = model.n_latents;
    let posteriors = vec![
        Tensor {
            name: "posterior.mean".into(),
            shape: vec![h, model.n_points],
            data: f32s(mu),
        },
        Tensor {
            name: "posterior.scale".into(),
            shape: vec![SparseCoding::scale_len(model.kind, h), model.n_points],
            data: f32s(scales),
        },
    ];
    write_dictionary(dir, &model.dictionary(), terms, posteriors)
}

/// Writes `model.safetensors`: the dictionary `w` (D × H), λ, σ², then `extra` tensors.
fn write_dictionary(
    dir: &Path,
    w: &Mat<f64>,
    terms: &EntropyTerms,
    extra: Vec<Tensor>,
) -> Result<()> {
    let (d, h) = (w.nrows(), w.ncols());
    let mut tensors = vec![
        Tensor {
            name: "dictionary".into(),
            shape: vec![d, h],
            data: (0..h)
                .flat_map(|c| (0..d).map(move |r| (r, c)))
                .map(|(r, c)| w[(r, c)] as f32)
                .collect(),
        },
        Tensor {
            name: "lambda".into(),
            shape: vec![h],
            data: terms.lambda.iter().map(|&x| x as f32).collect(),
        },
        Tensor {
            name: "sigma2".into(),
            shape: vec![1],
            data: vec![terms.sigma2 as f32],
        },
    ];
    tensors.extend(extra);
    super::checkpoint::write_tensors(&dir.join("model.safetensors"), &ParamSet { tensors })
}

/// Maps an I/O error on `path` to the library's error.
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, source }
}

/// Creates the run directory (refusing one that holds anything; locked while the returned
/// handle lives) and writes the resolved config (with the run's seed) into it.
fn create_run_dir(config: &SparseConfig, seed: u64, dir: &Path) -> Result<RunDir> {
    let mut resolved = config.clone();
    resolved.seed = seed;
    let text = toml::to_string(&resolved).map_err(|e| Error::Config(e.to_string()))?;
    let run = RunDir::create(dir)?;
    run.write_file(CONFIG_FILE, text.as_bytes())?;
    Ok(run)
}

/// The loop's settings of a patches run.
fn patches_trainer(config: &SparseConfig, seed: u64, batch_size: usize) -> Trainer {
    Trainer {
        seed,
        epochs: config.train.epochs,
        batch_size,
        checkpoint_every: 1,
        objective_name: "objective",
    }
}

/// After every epoch of a patches run: the held-out ELBO, Gini sparseness and atom spread, the
/// model file and the metrics record.
struct PatchesWatch<'a, P: FnMut(usize, usize, f64)> {
    config: &'a SparseConfig,
    seed: u64,
    test_x: MatRef<'a, f64>,
    run: &'a RunDir,
    em: &'a EmConfig,
    epochs: Vec<PatchesEpoch>,
    last: Option<(Mat<f64>, EntropyTerms)>,
    progress: &'a mut P,
}

impl<P: FnMut(usize, usize, f64)> PatchesWatch<'_, P> {
    /// Records the epoch that `record` ends, with the held-out `test` entropies of the
    /// posteriors `fitted` and the model's `dictionary`.
    fn close_epoch(
        &mut self,
        record: &EpochRecord,
        test: EpochStats,
        test_refined: Option<EpochStats>,
        fitted: &SparseCoding,
        dictionary: Mat<f64>,
        write: impl FnOnce(&EntropyTerms) -> Result<()>,
    ) -> Result<()> {
        let train: EpochStats = record
            .fields
            .get("train")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let gini = crate::eval::sparseness::posterior_gini(fitted, 1000, 10, self.seed)?;
        // λ and σ² of the held-out posteriors (for the atoms' order), and the model as it is now.
        let terms =
            crate::objectives::sparse_coding::entropy_objective(fitted, self.test_x, 1.0, None)?;
        write(&terms)?;
        let spread =
            crate::eval::sparseness::spatial_spread(dictionary.as_ref(), self.config.data.size)?;
        let epoch = PatchesEpoch {
            epoch: record.epoch,
            train,
            test,
            test_refined,
            gini,
            atom_spread: quartiles(spread),
            epoch_s: record.epoch_s,
        };
        self.run.log_serialized(&epoch)?;
        self.last = Some((dictionary, terms));
        self.epochs.push(epoch);
        Ok(())
    }
}

impl<P: FnMut(usize, usize, f64)> Observer<SparseCoding> for PatchesWatch<'_, P> {
    fn on_step(&mut self, record: &StepRecord, _: &TrainState) -> Control {
        (self.progress)(record.epoch + 1, record.batch, record.objective);
        Control::Continue
    }

    fn on_epoch(
        &mut self,
        model: &SparseCoding,
        record: &mut EpochRecord,
        _: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let (test, fitted) = evaluate(model, self.test_x, self.em.batch_size, &self.em.e_step)?;
        let dir = self.run.path().to_path_buf();
        self.close_epoch(record, test, None, &fitted, model.dictionary(), |terms| {
            write_model(&dir, model, terms)
        })?;
        Ok(Control::Continue)
    }
}

impl<P: FnMut(usize, usize, f64)> Observer<AmortizedSparseCoding> for PatchesWatch<'_, P> {
    fn on_step(&mut self, record: &StepRecord, _: &TrainState) -> Control {
        (self.progress)(record.epoch + 1, record.batch, record.objective);
        Control::Continue
    }

    fn on_epoch(
        &mut self,
        model: &AmortizedSparseCoding,
        record: &mut EpochRecord,
        _: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        use crate::train::amortized::{evaluate_amortized, per_point_model};
        use crate::train::sparse_coding::fit_posteriors;
        let t = &self.config.train;
        let test = evaluate_amortized(model, self.test_x, t.batch_size)?;
        // Gini and λ of the encoder's own posteriors; refined ones only for the gap.
        let posteriors = per_point_model(model, self.test_x)?;
        let epoch = record.epoch;
        let refine = epoch.is_multiple_of(t.refine_every) || epoch == t.epochs;
        let refined = if refine {
            let mut fitted = posteriors.clone();
            Some(fit_posteriors(
                &mut fitted,
                self.test_x,
                t.batch_size,
                &self.em.e_step,
            )?)
        } else {
            None
        };
        let extra = model.params.tensors[1..].to_vec();
        let dictionary = model.dictionary();
        let dir = self.run.path().to_path_buf();
        let written = dictionary.clone();
        self.close_epoch(record, test, refined, &posteriors, dictionary, |terms| {
            write_dictionary(&dir, &written, terms, extra)
        })?;
        Ok(Control::Continue)
    }
}

/// One epoch of a patches run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchesEpoch {
    /// Epoch, counted from 1.
    pub epoch: usize,
    /// Training averages over the epoch's batches (after each E-step, before the M-step).
    pub train: EpochStats,
    /// L^H per held-out patch with the dictionary after the epoch: EM, posteriors fitted from
    /// scratch; Adam, the encoder's posteriors.
    pub test: EpochStats,
    /// Adam, every `train.refine_every` epochs: L^H per held-out patch after the encoder's
    /// posteriors are refined by the E-step (the amortization gap is `test_refined − test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_refined: Option<EpochStats>,
    /// Gini coefficient of |z| over posterior samples of the first 1000 held-out patches (mean,
    /// sd): EM, the fitted posteriors; Adam, the encoder's.
    pub gini: (f64, f64),
    /// Quartiles (25 %, 50 %, 75 %) of the atoms' spatial spread in pixels
    /// ([`crate::eval::sparseness::spatial_spread`]; 6.5 for a flat 16×16 atom).
    pub atom_spread: [f64; 3],
    /// Seconds of training (the held-out evaluation not included).
    pub epoch_s: f64,
}

/// The 25 %, 50 % and 75 % quartiles (nearest rank) of `values`.
fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}

/// The data of a patches run: whitened training and held-out patches and the whitening filter.
pub struct Patches {
    /// Training patches, D × n, whitened.
    pub train: Mat<f64>,
    /// Held-out patches, D × test_n, whitened with the training filter.
    pub test: Mat<f64>,
    /// The ZCA filter fitted on the training patches (none when the images were filtered).
    pub whitening: Option<crate::data::patches::Whitening>,
}

/// Cuts and whitens the patches of `config` (training positions from `seed`, held-out positions
/// from a second stream).
pub fn load_patches(config: &SparseDataConfig, seed: u64) -> Result<Patches> {
    use crate::data::patches::{Whitening, olshausen_field, random_patches, read_images};
    let dir = config
        .dir
        .clone()
        .unwrap_or_else(|| crate::data::default_data_dir().join("natural"));
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "{} not found: fetch the natural images with `helmholtz data fetch natural`",
            dir.display()
        )));
    }
    let names: Vec<&str> = config.images.iter().map(String::as_str).collect();
    let mut images = read_images(&dir, &names)?;
    if config.whiten == WhitenKind::OlshausenField {
        images = olshausen_field(&images, config.whiten_cutoff, OLSHAUSEN_FIELD_BORDER)?;
    }
    let train = random_patches(&images, config.size, config.n, seed)?;
    let test = random_patches(
        &images,
        config.size,
        config.test_n,
        seed.wrapping_add(1 << 32),
    )?;
    if config.whiten == WhitenKind::OlshausenField {
        return Ok(Patches {
            train,
            test,
            whitening: None,
        });
    }
    let whitening = Whitening::fit(train.as_ref(), config.whiten_epsilon)?;
    Ok(Patches {
        train: whitening.apply(train.as_ref()),
        test: whitening.apply(test.as_ref()),
        whitening: Some(whitening),
    })
}

/// What a patches run trains: per-point posteriors by EM, or an amortized encoder by Adam.
enum PatchesLearner {
    Em(SparseCoding, SparseEmStep),
    Adam(AmortizedSparseCoding, AmortizedStep),
}

/// Trains on natural-image patches by EM, or by Adam with an amortized encoder, with the
/// configured annealing, evaluating the held-out ELBO and the Gini sparseness after every epoch,
/// and writes the run directory. The model is written after every epoch, so a run that fails
/// keeps its last good epoch. Returns the dictionary (unit-norm columns), the epochs and the
/// held-out entropies after the last epoch. `progress(epoch, batch, objective)` follows the
/// batches.
pub fn run_patches(
    config: &SparseConfig,
    seed: u64,
    dir: &Path,
    progress: impl FnMut(usize, usize, f64),
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    run_patches_until(config, seed, dir, progress, &AtomicBool::new(false))
}

/// [`run_patches`] with a stop flag: when it is raised, the current batch finishes, a
/// checkpoint is written and [`resume_patches`] continues bit-for-bit.
pub fn run_patches_until(
    config: &SparseConfig,
    seed: u64,
    dir: &Path,
    progress: impl FnMut(usize, usize, f64),
    stop: &AtomicBool,
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    use crate::optim::Optimizer;
    let patches = load_patches(&config.data, seed)?;
    let run = create_run_dir(config, seed, dir)?;
    let (d, n) = (patches.train.nrows(), patches.train.ncols());
    let h = config.model.n_latents;
    let anneal = config.train.anneal.clone();
    let learner = match &config.model.encoder {
        Some(_) => {
            let model = amortized_model(config, d, seed)?;
            let optimizer = Optimizer::adam(config.train.lr, &model.params)?;
            let step = AmortizedStep::new(optimizer, anneal, &model)?;
            PatchesLearner::Adam(model, step)
        }
        None => {
            let mut model = SparseCoding::new(d, h, n, config.model.posterior.per_point(), seed)?
                .with_scale_param(config.model.scale_param);
            model.scale_floor = config.model.scale_floor;
            // The raw dictionary starts with unit-norm columns (the authors' `normalize_W()`
            // before training), so the M-step's step size acts on W at its own scale.
            let unit = model.dictionary();
            model.set_dictionary(&unit)?;
            PatchesLearner::Em(model, SparseEmStep::new(config.train.em(), anneal)?)
        }
    };
    train_patches(
        config,
        seed,
        run,
        &patches,
        learner,
        TrainState::default(),
        Vec::new(),
        progress,
        stop,
    )
}

/// Continues the patches run in `dir` (one seed's directory) from its last checkpoint.
pub fn resume_patches(
    dir: &Path,
    progress: impl FnMut(usize, usize, f64),
    stop: &AtomicBool,
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    use crate::optim::Optimizer;
    let run = RunDir::open(dir)?;
    let config = SparseConfig::load(&run.join(CONFIG_FILE), &[])?;
    if config.data.source != "patches" {
        return Err(Error::Config(format!(
            "{} is a {} run; only patches runs resume (a bars fit is one L-BFGS solve)",
            dir.display(),
            config.data.source
        )));
    }
    let seed = config.seed;
    let patches = load_patches(&config.data, seed)?;
    let ckpt = run.checkpoint(Slot::Last);
    let path = ckpt.join(CHECKPOINT_STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let stored: PatchesState =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))?;
    let anneal = config.train.anneal.clone();
    let d = patches.train.nrows();
    let learner = match &config.model.encoder {
        Some(_) => {
            let mut model = amortized_model(&config, d, seed)?;
            model.params =
                super::checkpoint::read_tensors(&ckpt.join("params.safetensors"), &model.params)?;
            let mut optimizer = Optimizer::adam(config.train.lr, &model.params)?;
            let moments = super::checkpoint::read_tensors(
                &ckpt.join("optimizer.safetensors"),
                &optimizer.moments(),
            )?;
            optimizer.restore_moments(stored.optimizer_step, moments)?;
            let mut step = AmortizedStep::new(optimizer, anneal, &model)?;
            step.stats = stored.stats;
            PatchesLearner::Adam(model, step)
        }
        None => {
            let n = patches.train.ncols();
            let h = config.model.n_latents;
            let mut model = SparseCoding::new(d, h, n, config.model.posterior.per_point(), seed)?
                .with_scale_param(config.model.scale_param);
            model.scale_floor = config.model.scale_floor;
            model.theta = read_f64s(&ckpt.join(THETA_FILE), model.theta.len())?;
            let mut step = SparseEmStep::new(config.train.em(), anneal)?;
            step.stats = stored.stats;
            PatchesLearner::Em(model, step)
        }
    };
    let mut state = stored.state;
    if state.finished {
        return Err(Error::Config(format!(
            "{} has finished its {} epochs",
            dir.display(),
            state.epoch
        )));
    }
    run.truncate_metrics_after_epoch(state.epoch)?;
    let epochs: Vec<PatchesEpoch> = super::read_metrics(&run.join(METRICS_FILE))
        .unwrap_or_default()
        .into_iter()
        .map(|record| {
            serde_json::from_value(record)
                .map_err(|e| Error::format(run.join(METRICS_FILE), e.to_string()))
        })
        .collect::<Result<_>>()?;
    state.finished = false;
    train_patches(
        &config, seed, run, &patches, learner, state, epochs, progress, stop,
    )
}

/// The amortized model of a patches config.
fn amortized_model(config: &SparseConfig, d: usize, seed: u64) -> Result<AmortizedSparseCoding> {
    let encoder = config
        .model
        .encoder
        .as_ref()
        .ok_or_else(|| Error::Config("model.encoder is missing".into()))?;
    let encoder = GaussianEncoder::new(
        d,
        &encoder.hidden,
        config.model.n_latents,
        encoder.rank,
        encoder.activation,
        config.model.scale_floor,
    )?;
    AmortizedSparseCoding::new(d, encoder, seed)
}

/// The per-point model's parameters, as raw little-endian f64 (exact, for resume).
const THETA_FILE: &str = "theta.f64";

fn write_f64s(path: &Path, values: &[f64]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

fn read_f64s(path: &Path, expected: usize) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() != 8 * expected {
        return Err(Error::format(
            path,
            format!("{} bytes, expected {} f64 values", bytes.len(), expected),
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

/// What a patches checkpoint's state.json holds besides the tensors.
#[derive(Serialize, Deserialize)]
struct PatchesState {
    version: String,
    state: TrainState,
    #[serde(default)]
    optimizer_step: u64,
    /// The epoch's sums over the batches so far.
    stats: EpochStats,
}

/// Checkpoints of patches runs.
struct PatchesStore<'a>(&'a RunDir);

impl PatchesStore<'_> {
    fn save(
        &self,
        slot: Slot,
        state: &TrainState,
        stats: &EpochStats,
        optimizer_step: u64,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        self.0.write_checkpoint(slot, |tmp| {
            write(tmp)?;
            let stored = PatchesState {
                version: env!("CARGO_PKG_VERSION").to_string(),
                state: state.clone(),
                optimizer_step,
                stats: stats.clone(),
            };
            let text = serde_json::to_string_pretty(&stored)
                .map_err(|e| Error::Checkpoint(e.to_string()))?;
            let path = tmp.join(CHECKPOINT_STATE);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
        })
    }
}

impl CheckpointStore<SparseCoding, SparseEmStep> for PatchesStore<'_> {
    fn save(
        &mut self,
        slot: Slot,
        model: &SparseCoding,
        step: &SparseEmStep,
        state: &TrainState,
    ) -> Result<()> {
        PatchesStore::save(self, slot, state, &step.stats, 0, |tmp| {
            write_f64s(&tmp.join(THETA_FILE), &model.theta)
        })
    }
}

impl CheckpointStore<AmortizedSparseCoding, AmortizedStep> for PatchesStore<'_> {
    fn save(
        &mut self,
        slot: Slot,
        model: &AmortizedSparseCoding,
        step: &AmortizedStep,
        state: &TrainState,
    ) -> Result<()> {
        super::checkpoint::check_finite(&model.params)?;
        let optimizer = &step.optimizer;
        PatchesStore::save(self, slot, state, &step.stats, optimizer.step(), |tmp| {
            super::checkpoint::write_tensors(&tmp.join("params.safetensors"), &model.params)?;
            super::checkpoint::write_tensors(
                &tmp.join("optimizer.safetensors"),
                &optimizer.moments(),
            )
        })
    }
}

/// The patches run on the Trainer, from `state`, with the `epochs` recorded so far.
#[allow(clippy::too_many_arguments)]
fn train_patches(
    config: &SparseConfig,
    seed: u64,
    run: RunDir,
    patches: &Patches,
    learner: PatchesLearner,
    mut state: TrainState,
    epochs: Vec<PatchesEpoch>,
    mut progress: impl FnMut(usize, usize, f64),
    stop: &AtomicBool,
) -> Result<(Mat<f64>, Vec<PatchesEpoch>, EntropyTerms)> {
    let em = config.train.em();
    let mut watch = PatchesWatch {
        config,
        seed,
        test_x: patches.test.as_ref(),
        run: &run,
        em: &em,
        epochs,
        last: None,
        progress: &mut progress,
    };
    let train = patches.train.as_ref();
    let mut store = PatchesStore(&run);
    let outcome = match learner {
        PatchesLearner::Em(mut model, mut step) => {
            let trainer = patches_trainer(config, seed, em.batch_size);
            trainer.fit(
                &mut model,
                &mut step,
                &train,
                &mut state,
                &mut [&mut watch],
                &mut store,
                stop,
            )?
        }
        PatchesLearner::Adam(mut model, mut step) => {
            let trainer = patches_trainer(config, seed, config.train.batch_size);
            trainer.fit(
                &mut model,
                &mut step,
                &train,
                &mut state,
                &mut [&mut watch],
                &mut store,
                stop,
            )?
        }
    };
    match outcome {
        Outcome::Diverged(message) => return Err(Error::Diverged(message)),
        Outcome::Interrupted => {
            return Err(Error::Interrupted(format!(
                "{} stopped at epoch {}, batch {}; continue with helmholtz sparse --resume {}",
                run.path().display(),
                state.epoch + 1,
                state.batch,
                run.path().display()
            )));
        }
        Outcome::Completed | Outcome::EarlyStopped => {}
    }
    let (epochs, last) = (watch.epochs, watch.last);
    let (dictionary, terms) =
        last.ok_or_else(|| Error::Config("train.epochs must be at least 1".into()))?;
    let summary = serde_json::json!({
        "seed": seed,
        "anneal": config.train.anneal,
        "epochs": epochs,
        "lambda_test": terms.lambda,
        "sigma2_test": terms.sigma2,
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Config(e.to_string()))?;
    run.write_file(SUMMARY_FILE, text.as_bytes())?;
    Ok((dictionary, epochs, terms))
}
