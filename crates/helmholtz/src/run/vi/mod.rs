//! `helmholtz vi`: variational inference for Bayesian logistic regression on the user's (X, y),
//! from a strict TOML config: the prior N(0, s² I) on the weights, a variational family
//! (Gaussian, skew-normal, skew-t or a mixture of skew-normals) fitted by SNGD, Adam (covariance
//! or precision square root) or MCEF on the [`Trainer`](crate::train::trainer::Trainer), with
//! checkpoints that resume bit for bit.
//!
//! A run directory holds the resolved `config.toml` (data paths absolute), `metrics.jsonl` (the
//! negative ELBO against steps and training seconds), `checkpoints/last`, `posterior.json` (the
//! family's parameters, the posterior mean, covariance and marginal quantiles per feature) and
//! `summary.json` / `summary.txt` (the final negative ELBO with its Monte Carlo standard error,
//! and the held-out log predictive density and accuracy when a test split is given).
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::atomic::AtomicBool;
//! use helmholtz::run::vi::{ViConfig, run_vi};
//!
//! let config = ViConfig::load(Path::new("configs/vi-logistic.toml"), &[])?;
//! let outcome = run_vi(&config, Path::new("runs/vi"), |line| eprintln!("{line}"), &AtomicBool::new(false))?;
//! println!("−ELBO {:.3} ± {:.3}", outcome.summary.negative_elbo, outcome.summary.negative_elbo_se);
//! # Ok::<(), helmholtz::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::parse_for_command;
use crate::data::table::{ColumnRef, TransformKind};
use crate::error::{Error, Result};
use crate::optim::check_step_size;
use crate::optim::sngd::SkewMethod;

mod data;
mod posterior;
mod runner;

pub use data::{ViData, design, load_arrays, load_data};
pub use posterior::{
    Marginal, Posterior, PosteriorSummary, Predictive, QUANTILE_LEVELS, positive_probabilities,
};
pub use runner::{
    ViOutcome, ViSummary, is_vi_run, open_posterior, predict_run, resume_vi, run_vi,
    run_vi_with_arrays, sample_run,
};

/// The posterior file of a vi run.
pub const POSTERIOR_FILE: &str = "posterior.json";
/// The readable summary of a vi run.
pub const SUMMARY_TEXT: &str = "summary.txt";

/// A variational-inference run: data, model, training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViConfig {
    /// Run name (the default run directory is `runs/NAME`).
    pub name: String,
    /// Master seed (the start, the draws of every step and evaluation, the posterior draws).
    #[serde(default)]
    pub seed: u64,
    /// The data.
    pub data: ViDataConfig,
    /// The prior and the variational family.
    #[serde(default)]
    pub model: ViModel,
    /// The optimiser.
    #[serde(default)]
    pub train: ViTrain,
}

/// The `[data]` section: features and labels from CSV/TSV/NPY/NPZ files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViDataConfig {
    /// The training file; a relative path resolves against the config file's folder.
    pub train: PathBuf,
    /// The label column of `train` (and `test`): a header name or a 0-based index (for NPZ, the
    /// member holding the labels, e.g. "y").
    #[serde(default)]
    pub label: Option<ColumnRef>,
    /// Or the labels in a separate file of one column, one row per training row.
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// An optional held-out file with the layout of `train`.
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// The held-out labels, when the training labels are in a separate file.
    #[serde(default)]
    pub test_labels: Option<PathBuf>,
    /// Append a constant-1 feature named `intercept` (default true).
    #[serde(default = "yes")]
    pub intercept: bool,
    /// none, min-max or standardize: fitted on the training features, applied to the test
    /// features (never to the labels or the intercept).
    #[serde(default)]
    pub transform: TransformKind,
    /// CSV: whether the first row is a header; unset, a header when none of its fields is a
    /// number.
    #[serde(default)]
    pub header: Option<bool>,
    /// CSV: the field delimiter, one ASCII character (default `,`, tab for `.tsv`).
    #[serde(default)]
    pub delimiter: Option<char>,
}

fn yes() -> bool {
    true
}

/// The variational family q(w).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// N(ξ, Ω): the skew-normal with η held at 0.
    Gaussian,
    /// SN(ξ, Ω, η).
    #[default]
    SkewNormal,
    /// ST(ξ, Ω, η, ν), ν > 2 fitted beside η.
    SkewT,
    /// Σ_k p_k SN(ξ_k, Ω_k, η_k).
    SkewNormalMixture,
}

impl Family {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Family::Gaussian => "gaussian",
            Family::SkewNormal => "skew-normal",
            Family::SkewT => "skew-t",
            Family::SkewNormalMixture => "skew-normal-mixture",
        }
    }
}

/// The config spelling of a method.
pub fn method_name(method: SkewMethod) -> &'static str {
    match method {
        SkewMethod::Sngd => "sngd",
        SkewMethod::AdamCovariance => "adam-covariance",
        SkewMethod::AdamPrecision => "adam-precision",
        SkewMethod::Mcef => "mcef",
    }
}

/// The model of a vi run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViModelKind {
    /// Bayesian logistic regression with a Gaussian prior.
    #[default]
    LogisticRegression,
}

/// The `[model]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViModel {
    /// "logistic-regression" (the default and only model; it marks the config as one for
    /// `helmholtz vi`).
    #[serde(default)]
    pub kind: ViModelKind,
    /// The prior's standard deviation s: w ~ N(0, s² I) (default 1).
    #[serde(default = "one")]
    pub prior_scale: f64,
    /// gaussian, skew-normal (default), skew-t or skew-normal-mixture.
    #[serde(default)]
    pub family: Family,
    /// Components of a skew-normal-mixture (default 2).
    #[serde(default)]
    pub components: Option<usize>,
}

fn one() -> f64 {
    1.0
}

impl Default for ViModel {
    fn default() -> Self {
        ViModel {
            kind: ViModelKind::LogisticRegression,
            prior_scale: 1.0,
            family: Family::default(),
            components: None,
        }
    }
}

impl ViModel {
    /// Mixture components (1 for the other families).
    pub fn n_components(&self) -> usize {
        match self.family {
            Family::SkewNormalMixture => self.components.unwrap_or(2),
            _ => 1,
        }
    }
}

/// The `[train]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViTrain {
    /// sngd (default), adam-covariance, adam-precision or mcef (skew-normal only).
    #[serde(default = "default_method")]
    pub method: SkewMethod,
    /// Optimisation steps.
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// Draws of q per step (per component for a mixture).
    #[serde(default = "default_draws")]
    pub draws: usize,
    /// Steps between evaluations of the negative ELBO (and checkpoints).
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// Draws per evaluation (the same draws at a given step for every method).
    #[serde(default = "default_eval_draws")]
    pub eval_draws: usize,
    /// The step size: SNGD's and MCEF's first β (halved until the covariance stays positive
    /// definite), or Adam's learning rate (default 0.1 for sngd and mcef, 0.01 for Adam).
    #[serde(default)]
    pub lr: Option<f64>,
    /// SNGD's Adam learning rate for the auxiliary parameters λ (η, and ln(ν − 2) of a skew-t).
    #[serde(default = "default_lr_lambda")]
    pub lr_lambda: f64,
    /// Draws of the final q for the reported negative ELBO (with its standard error), the
    /// quantiles of families without closed-form quantiles, and the held-out predictive.
    #[serde(default = "default_final_draws")]
    pub final_draws: usize,
}

fn default_method() -> SkewMethod {
    SkewMethod::Sngd
}
fn default_iterations() -> usize {
    2000
}
fn default_draws() -> usize {
    10
}
fn default_eval_every() -> usize {
    50
}
fn default_eval_draws() -> usize {
    100
}
fn default_lr_lambda() -> f64 {
    0.01
}
fn default_final_draws() -> usize {
    20_000
}

impl Default for ViTrain {
    fn default() -> Self {
        ViTrain {
            method: default_method(),
            iterations: default_iterations(),
            draws: default_draws(),
            eval_every: default_eval_every(),
            eval_draws: default_eval_draws(),
            lr: None,
            lr_lambda: default_lr_lambda(),
            final_draws: default_final_draws(),
        }
    }
}

impl ViTrain {
    /// The step size in use: `lr`, or the method's default.
    pub fn step_size(&self) -> f64 {
        self.lr.unwrap_or(match self.method {
            SkewMethod::Sngd | SkewMethod::Mcef => 0.1,
            SkewMethod::AdamCovariance | SkewMethod::AdamPrecision => 0.01,
        })
    }
}

impl ViConfig {
    /// Parses a TOML text with `key=value` overrides and checks every field. Relative data
    /// paths are taken from `origin`'s folder (from the current directory when given by an
    /// override) and stored absolute ([`PATH_KEYS`](crate::run::config::PATH_KEYS)).
    pub fn parse(text: &str, overrides: &[String], origin: &Path) -> Result<Self> {
        let config: ViConfig = parse_for_command(text, overrides, origin, "vi")?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, overrides, path)
    }

    /// The resolved config as TOML (every default written out, `train.lr` included).
    pub fn to_toml(&self) -> Result<String> {
        let mut resolved = self.clone();
        resolved.train.lr = Some(self.train.step_size());
        resolved.model.components = match self.model.family {
            Family::SkewNormalMixture => Some(self.model.n_components()),
            _ => None,
        };
        toml::to_string(&resolved).map_err(|e| Error::Config(e.to_string()))
    }

    /// Checks the combinations the types do not.
    pub fn validate(&self) -> Result<()> {
        let (m, t, d) = (&self.model, &self.train, &self.data);
        let bad = |msg: String| Err(Error::Config(msg));
        if !(m.prior_scale.is_finite() && m.prior_scale > 0.0) {
            return bad(format!(
                "model.prior_scale is the prior's standard deviation and must be a positive number, got {}",
                m.prior_scale
            ));
        }
        match (m.family, m.components) {
            (Family::SkewNormalMixture, Some(0)) => {
                return bad("model.components must be at least 1".into());
            }
            (Family::SkewNormalMixture, _) | (_, None) => {}
            (family, Some(_)) => {
                return bad(format!(
                    "model.components exists for family = \"skew-normal-mixture\" only (family is \"{}\")",
                    family.name()
                ));
            }
        }
        if t.method == SkewMethod::Mcef && m.family != Family::SkewNormal {
            return bad(format!(
                "train.method = \"mcef\" is the natural gradient of a single skew-normal: it needs family = \"skew-normal\" (family is \"{}\"); use sngd, adam-covariance or adam-precision",
                m.family.name()
            ));
        }
        for (key, value) in [
            ("train.iterations", t.iterations),
            ("train.draws", t.draws),
            ("train.eval_every", t.eval_every),
            ("train.eval_draws", t.eval_draws),
        ] {
            if value == 0 {
                return bad(format!("{key} must be at least 1"));
            }
        }
        if t.final_draws < 2 {
            return bad(format!(
                "train.final_draws must be at least 2 (the standard error needs two draws), got {}",
                t.final_draws
            ));
        }
        check_step_size("train.lr", t.step_size())?;
        check_step_size("train.lr_lambda", t.lr_lambda)?;
        match (&d.label, &d.labels) {
            (Some(_), Some(_)) => {
                return bad(
                    "data.label (a column of the training file) and data.labels (a separate file) exclude each other"
                        .into(),
                );
            }
            (None, None) => {
                return bad(
                    "the labels are missing: set data.label (the label column's name or 0-based index) or data.labels (a file of labels)"
                        .into(),
                );
            }
            _ => {}
        }
        if d.test_labels.is_some() && d.labels.is_none() {
            return bad("data.test_labels goes with data.labels; with data.label the test file holds its label column".into());
        }
        if d.test.is_some() && d.labels.is_some() && d.test_labels.is_none() {
            return bad(
                "data.test needs data.test_labels when the training labels are a separate file (data.labels)"
                    .into(),
            );
        }
        if d.test.is_none() && d.test_labels.is_some() {
            return bad("data.test_labels is set without data.test".into());
        }
        if matches!(d.delimiter, Some(c) if !c.is_ascii()) {
            return bad("data.delimiter must be one ASCII character".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        name = "t"
        [data]
        train = "train.csv"
        label = "y"
    "#;

    fn parse(extra: &[&str]) -> Result<ViConfig> {
        let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        ViConfig::parse(BASE, &overrides, Path::new("/data/t.toml"))
    }

    /// Defaults, path resolution, and the resolved TOML parses back to the same config.
    #[test]
    fn defaults_resolve_and_round_trip() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.data.train, Path::new("/data/train.csv"));
        assert_eq!(config.model.kind, ViModelKind::LogisticRegression);
        assert!(text_has_kind(&config));
        assert_eq!(config.data.label, Some(ColumnRef::Name("y".into())));
        assert!(config.data.intercept);
        assert_eq!(
            (config.model.family, config.train.method),
            (Family::SkewNormal, SkewMethod::Sngd)
        );
        assert_eq!(config.train.step_size(), 0.1);
        let text = config.to_toml().unwrap();
        let back = ViConfig::parse(&text, &[], Path::new("/else/r.toml")).unwrap();
        assert_eq!(back.data, config.data);
        assert_eq!(back.train.step_size(), 0.1);
        let index = parse(&["data.label=0"]).unwrap();
        assert_eq!(index.data.label, Some(ColumnRef::Index(0)));
    }

    fn text_has_kind(config: &ViConfig) -> bool {
        config
            .to_toml()
            .unwrap()
            .contains("kind = \"logistic-regression\"")
    }

    /// Every bad combination is refused with a message naming the key.
    #[test]
    fn bad_values_name_their_key() {
        for (set, needle) in [
            (vec!["model.prior_scale=0"], "model.prior_scale"),
            (vec!["model.prior_scale=-1"], "model.prior_scale"),
            (vec!["model.components=3"], "model.components"),
            (
                vec!["model.family=\"skew-t\"", "train.method=\"mcef\""],
                "train.method = \"mcef\"",
            ),
            (vec!["train.iterations=0"], "train.iterations"),
            (vec!["train.lr=0"], "train.lr"),
            (vec!["train.lr_lambda=nan"], "train.lr_lambda"),
            (vec!["train.final_draws=1"], "train.final_draws"),
            (vec!["data.labels=\"y.csv\""], "exclude each other"),
            (vec!["model.family=\"normal\""], "normal"),
            (vec!["train.typo=1"], "typo"),
        ] {
            let err = parse(&set).unwrap_err().to_string();
            assert!(err.contains(needle), "{set:?}: {err}");
        }
    }
}
