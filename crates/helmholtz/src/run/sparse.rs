//! Sparse-coding runs (entropy.md §2–3): a strict TOML config, the bars experiment with its
//! ground-truth reference, and a run directory with the resolved config, the objective per
//! iteration (`metrics.jsonl`), the learned model (`model.safetensors`) and `summary.json`.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::config::parse_strict;
use super::{CONFIG_FILE, METRICS_FILE, SUMMARY_FILE};
use crate::data::synthetic::{Bars, bars, match_fields};
use crate::error::{Error, Result};
use crate::models::sparse_coding::{PosteriorKind, SparseCoding};
use crate::models::{ParamSet, Tensor};
use crate::objectives::sparse_coding::EntropyTerms;
use crate::train::sparse_coding::{LbfgsConfig, Target, fit_lbfgs};

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
    pub train: LbfgsConfig,
}

/// The data section: the bars generator (entropy.md §3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseDataConfig {
    /// "bars".
    pub source: String,
    /// Bars per direction (H = 2·side fields on a side × side grid).
    #[serde(default = "default_side")]
    pub side: usize,
    /// Number of data points.
    #[serde(default = "default_n")]
    pub n: usize,
    /// Standard deviation of the Gaussian noise.
    #[serde(default = "default_noise")]
    pub noise: f64,
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
    /// Posterior family: "diagonal" or "full".
    pub posterior: PosteriorKind,
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
        if d.source != "bars" {
            return Err(Error::Config(format!(
                "data.source must be \"bars\", got {:?}",
                d.source
            )));
        }
        if d.side < 2 || d.n == 0 || !(d.noise.is_finite() && d.noise >= 0.0) {
            return Err(Error::Config(format!(
                "bars need side ≥ 2, n ≥ 1 and a finite noise ≥ 0, got side {}, n {}, noise {}",
                d.side, d.n, d.noise
            )));
        }
        if self.model.n_latents == 0 {
            return Err(Error::Config("model.n_latents must be at least 1".into()));
        }
        self.train.validate()
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
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut resolved = config.clone();
    resolved.seed = seed;
    let text = toml::to_string(&resolved).map_err(|e| Error::Config(e.to_string()))?;
    let config_path = dir.join(CONFIG_FILE);
    std::fs::write(&config_path, text).map_err(io(&config_path))?;

    let data = bars(config.data.side, config.data.n, config.data.noise, seed);
    let (d, n) = (data.x.nrows(), data.x.ncols());
    let mut model = SparseCoding::new(d, config.model.n_latents, n, config.model.posterior, seed)?;
    let trace = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&trace);
    let start = Instant::now();
    let report = fit_lbfgs(
        &mut model,
        data.x.as_ref(),
        1.0,
        Target::All,
        &config.train,
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
    let fresh = SparseCoding::new(d, config.model.n_latents, n, config.model.posterior, seed)?;
    truth.theta[offset..].copy_from_slice(&fresh.theta[offset..]);
    let reference = fit_lbfgs(
        &mut truth,
        data.x.as_ref(),
        1.0,
        Target::Posteriors,
        &config.train,
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
    let w = model.dictionary();
    let (_, mu, scales) = model.blocks();
    let h = model.n_latents;
    let set = ParamSet {
        tensors: vec![
            Tensor {
                name: "dictionary".into(),
                shape: vec![model.dim, h],
                data: (0..h)
                    .flat_map(|c| (0..model.dim).map(move |r| (r, c)))
                    .map(|(r, c)| w[(r, c)] as f32)
                    .collect(),
            },
            Tensor {
                name: "lambda".into(),
                shape: vec![h],
                data: f32s(&terms.lambda),
            },
            Tensor {
                name: "sigma2".into(),
                shape: vec![1],
                data: vec![terms.sigma2 as f32],
            },
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
        ],
    };
    super::checkpoint::write_tensors(&dir.join("model.safetensors"), &set)
}
