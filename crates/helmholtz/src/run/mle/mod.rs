//! `helmholtz mle`: fit a distribution to a data file by maximum likelihood, with surrogate
//! natural gradient descent ([`crate::optim::sngd`]) or a baseline, on the [`Trainer`]
//! (`crate::train::Trainer`) with checkpoints, so a run stopped by Ctrl-C or a step limit
//! continues bit for bit.
//!
//! Families ([`Family`]): a negative binomial or a mixture of negative binomials on one column of
//! counts, a multivariate skew-normal or skew-t on real vectors, a Student-t copula on points of
//! (0, 1)^d. Methods ([`MleMethod`]): SNGD (default), and the baselines BFGS and GD in
//! unconstrained coordinates for counts, Adam with a covariance or precision square root for the
//! continuous families. Default step sizes are the SNGD paper's; fits start from the data (an NB
//! mixture at quantile groups, a skew family at its method-of-moments estimate) or, with
//! `model.start = "paper"`, at the paper's random start ([`crate::optim::sngd::starts`]).
//!
//! A run directory holds
//!
//! ```text
//! config.toml          the resolved config (data paths absolute, every default written out)
//! metrics.jsonl        {"step", "seconds", "train_nll", "test_nll"} at every evaluation
//! checkpoints/last/    method.json (the method's state) and state.json (the trainer's counters)
//! params.json          the fitted parameters, the columns and the transform
//! summary.json         family, method, steps, seconds, NLLs and how the run ended
//! summary.txt          the same, readable, with the parameters
//! ```
//!
//! NLLs are mean negative log-likelihoods per row in nats, in the data's own units: with a
//! transform z = (x − shift)/scale the model's NLL of z plus Σ ln scale.
//!
//! ```
//! use helmholtz::run::mle::MleConfig;
//!
//! let text = r#"
//!     name = "counts"
//!     [data]
//!     train = "counts.csv"
//!     [model]
//!     family = "negative-binomial"
//!     [train]
//!     method = "bfgs"
//! "#;
//! let config = MleConfig::parse(text, &[], "configs/mle.toml".as_ref())?;
//! assert!(config.data.train.ends_with("configs/counts.csv"));
//! assert_eq!(config.train.iterations, Some(100));
//! let bad = MleConfig::parse(text, &["train.method=adam-covariance".into()], "c.toml".as_ref());
//! assert!(bad.unwrap_err().to_string().contains("sngd, bfgs, gd"));
//! # Ok::<(), helmholtz::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::parse_for_command;
use crate::data::table::{ColumnRef, TransformKind};
use crate::error::{Error, Result};
use crate::optim::check_step_size;

mod data;
mod fitted;
mod runner;

pub use data::{
    Observations, RunTables, array_tables, observations_of_values, read_observations, read_tables,
};
pub use fitted::Fitted;
pub use runner::{
    FileNll, MleOutcome, MleSummary, PARAMS_FILE, SUMMARY_TEXT, eval_file, eval_values, open_mle,
    resume_mle, run_mle, run_mle_with_arrays, sample_run,
};

/// A fit of a distribution to a data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MleConfig {
    /// Run name (the default run directory is `runs/NAME`).
    pub name: String,
    /// Seed of the start and of the minibatches.
    #[serde(default)]
    pub seed: u64,
    /// The data files.
    pub data: MleData,
    /// The distribution.
    pub model: MleModel,
    /// The optimisation.
    #[serde(default)]
    pub train: MleTrain,
}

/// Where the data come from and how they are read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MleData {
    /// Training file: CSV or TSV (plain or gzip), `.npy` or `.npz`; one observation per row.
    pub train: PathBuf,
    /// Held-out file, read the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// CSV: whether the first row is a header; unset, a header when none of its fields is a
    /// number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// CSV: the delimiter, one ASCII character (default `,`, tab for `.tsv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
    /// Use this one column of a wider table (header name or 0-based index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<ColumnRef>,
    /// Continuous families: none, min-max or standardize, fitted on the training file.
    #[serde(default)]
    pub transform: TransformKind,
}

/// The distribution fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// NB(r, s) on counts: P(x) = Γ(x + r)/(Γ(r) x!) s^r (1 − s)^x.
    NegativeBinomial,
    /// Σ_k p_k NB(r_k, s_k) on counts.
    NbMixture,
    /// The multivariate skew-normal SN(ξ, Ω, η).
    SkewNormal,
    /// The multivariate skew-t ST(ξ, Ω, η, ν), ν fitted.
    SkewT,
    /// The Student-t copula C(R, ν) on (0, 1)^d.
    TCopula,
}

impl Family {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Family::NegativeBinomial => "negative-binomial",
            Family::NbMixture => "nb-mixture",
            Family::SkewNormal => "skew-normal",
            Family::SkewT => "skew-t",
            Family::TCopula => "t-copula",
        }
    }

    /// Whether it models counts (one column of non-negative integers).
    pub fn counts(self) -> bool {
        matches!(self, Family::NegativeBinomial | Family::NbMixture)
    }

    /// The methods that apply to it.
    pub fn methods(self) -> &'static [MleMethod] {
        if self.counts() {
            &[MleMethod::Sngd, MleMethod::Bfgs, MleMethod::Gd]
        } else {
            &[
                MleMethod::Sngd,
                MleMethod::AdamCovariance,
                MleMethod::AdamPrecision,
            ]
        }
    }
}

/// How the parameters are optimised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MleMethod {
    /// Surrogate natural gradient descent: a Gamma (mixture) surrogate for counts, a Gaussian
    /// one for the continuous families, the auxiliary parameters by Adam.
    #[default]
    Sngd,
    /// BFGS in unconstrained coordinates (counts).
    Bfgs,
    /// Gradient descent in unconstrained coordinates (counts).
    Gd,
    /// Adam with Ω = WᵀW (continuous families).
    AdamCovariance,
    /// Adam with Ω⁻¹ = WᵀW (continuous families).
    AdamPrecision,
}

impl MleMethod {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            MleMethod::Sngd => "sngd",
            MleMethod::Bfgs => "bfgs",
            MleMethod::Gd => "gd",
            MleMethod::AdamCovariance => "adam-covariance",
            MleMethod::AdamPrecision => "adam-precision",
        }
    }
}

/// The model section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MleModel {
    /// negative-binomial, nb-mixture, skew-normal, skew-t or t-copula.
    pub family: Family,
    /// Components of an nb-mixture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<usize>,
    /// Where an nb-mixture, skew-normal or skew-t fit starts: data (default) or paper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Start>,
}

/// Where a fit starts (nb-mixture, skew-normal, skew-t; the negative binomial and the copula
/// start as the SNGD paper's runs do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// From the data: an NB mixture with one component per quantile group of the counts
    /// ([`crate::optim::sngd::starts::nb_mixture_quantile_start`]), a skew family at the
    /// skew-normal's method-of-moments estimate
    /// ([`crate::optim::sngd::starts::skew_normal_moment_start`]; a skew-t with ν = 50).
    Data,
    /// The SNGD paper's random start from the seed: for an NB mixture equal weights, means
    /// U(0.1, 0.9) × the largest count and s ~ U(0.001, 0.02); for a skew family ξ, η ~
    /// N(0, 0.01²), Ω = I (a skew-t with ν = 50).
    Paper,
}

impl Family {
    /// Whether `model.start` chooses its start.
    pub fn has_start_choice(self) -> bool {
        matches!(self, Family::NbMixture | Family::SkewNormal | Family::SkewT)
    }
}

/// The train section. Unset values take the family's defaults (the SNGD paper's), and the
/// resolved config writes them out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MleTrain {
    /// sngd (default), bfgs, gd, adam-covariance or adam-precision.
    #[serde(default)]
    pub method: MleMethod,
    /// Optimisation steps (default 100 for counts, 1000 for continuous families).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// Continuous families: points per step, drawn with replacement; unset, every step sees
    /// the whole training file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Steps between evaluations of the training (and test) NLL (default 1 for counts, 10
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<usize>,
    /// Continuous SNGD: the first step size β, halved until the covariance stays positive
    /// definite (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_theta: Option<f64>,
    /// Continuous SNGD: how β is chosen from `lr_theta`: `validity` (the paper's: halved until
    /// the covariance stays positive definite) or `decrease` (halved until, besides, the NLL of
    /// the step's batch does not increase; a descent method on the whole file). Default
    /// `validity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchRule>,
    /// Continuous SNGD: how the auxiliary parameters λ move: `adam` (the paper's, default) or
    /// `quasi-newton`: −H ∇_λ f with H BFGS's inverse-Hessian estimate, scaled by the
    /// surrogate's β in the same line search (needs `search = "decrease"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_step: Option<LambdaRule>,
    /// Skew-normal SNGD: the coordinates the surrogate Gaussian stands for: `direct` (the
    /// paper's N(ξ, Ω) with λ = η, default) or `centred` (the skew-normal's own mean and
    /// covariance with λ = β, Lin's skew direction; far fewer steps, docs/MLE.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<Coordinates>,
    /// Continuous SNGD: Adam's learning rate for the auxiliary parameters (η, ln(ν − 2));
    /// default 0.01, 0.03 for the copula. With `lambda_step = "quasi-newton"`, the scale of
    /// BFGS's first inverse-Hessian estimate H = lr_lambda · I; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_lambda: Option<f64>,
    /// Adam baselines: the learning rate (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_adam: Option<f64>,
    /// Counts: the line search takes the best of this many equally spaced steps in (0, 1]
    /// (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<usize>,
}

/// How continuous SNGD chooses its step size (`train.search`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SearchRule {
    /// Halve β until the surrogate stays valid (the SNGD paper's rule).
    Validity,
    /// Halve β until the surrogate stays valid and the objective does not increase.
    Decrease,
}

/// How continuous SNGD moves the auxiliary parameters (`train.lambda_step`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LambdaRule {
    /// Adam with `train.lr_lambda` (the SNGD paper's).
    Adam,
    /// BFGS in λ, in the surrogate's line search.
    QuasiNewton,
}

/// What skew-normal SNGD's surrogate Gaussian stands for (`train.coordinates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coordinates {
    /// N(ξ, Ω) with λ = η (the SNGD paper's).
    Direct,
    /// N(mean, covariance) with λ = β (objectives::targets::centred_skew).
    Centred,
}

/// The keys of a config that `--resume` may change.
const RESUMABLE: &[&str] = &["train.iterations"];

impl MleConfig {
    /// Parses a TOML text with `key=value` overrides (relative data paths resolve against the
    /// folder of `origin`, those given by an override against the current directory, as for
    /// every config), fills in the family's defaults and checks every value.
    pub fn parse(text: &str, overrides: &[String], origin: &Path) -> Result<Self> {
        let mut config: MleConfig = parse_for_command(text, overrides, origin, "mle")?;
        config.fill_defaults();
        config.validate().map_err(|e| match e {
            Error::Config(message) => Error::Config(format!("{}: {message}", origin.display())),
            other => other,
        })?;
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, overrides, path)
    }

    /// The resolved config as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Config(e.to_string()))
    }

    /// Writes out the family's defaults for every unset value that applies to it.
    fn fill_defaults(&mut self) {
        let family = self.model.family;
        let t = &mut self.train;
        let counts = family.counts();
        t.iterations.get_or_insert(if counts { 100 } else { 1000 });
        t.eval_every.get_or_insert(if counts { 1 } else { 10 });
        if family.has_start_choice() {
            self.model.start.get_or_insert(Start::Data);
        }
        if counts {
            t.grid.get_or_insert(1000);
        } else if t.method == MleMethod::Sngd {
            t.lr_theta.get_or_insert(0.1);
            t.lr_lambda.get_or_insert(match (t.lambda_step, family) {
                (Some(LambdaRule::QuasiNewton), _) => 1.0,
                (_, Family::TCopula) => 0.03,
                _ => 0.01,
            });
        } else {
            t.lr_adam.get_or_insert(0.01);
        }
    }

    /// Checks the combinations the types do not.
    pub fn validate(&self) -> Result<()> {
        let (d, m, t) = (&self.data, &self.model, &self.train);
        let family = m.family;
        let bad = |message: String| Err(Error::Config(message));
        if !family.methods().contains(&t.method) {
            let accepted: Vec<&str> = family.methods().iter().map(|m| m.name()).collect();
            return bad(format!(
                "train.method = \"{}\" does not apply to the {} family; accepted: {}",
                t.method.name(),
                family.name(),
                accepted.join(", ")
            ));
        }
        match (family, m.components) {
            (Family::NbMixture, None) => {
                return bad(
                    "model.components is required for an nb-mixture (the number of components, at least 1)"
                        .into(),
                );
            }
            (Family::NbMixture, Some(0)) => {
                return bad(
                    "model.components = 0: an nb-mixture needs at least 1 component".into(),
                );
            }
            (Family::NbMixture, Some(_)) | (_, None) => {}
            (other, Some(_)) => {
                return bad(format!(
                    "model.components applies to the nb-mixture family only, not to {}",
                    other.name()
                ));
            }
        }
        if m.start.is_some() && !family.has_start_choice() {
            return bad(format!(
                "model.start applies to the nb-mixture, skew-normal and skew-t families, not to {} (which starts as the SNGD paper's runs do)",
                family.name()
            ));
        }
        for (key, value) in [
            ("train.iterations", t.iterations),
            ("train.batch", t.batch),
            ("train.eval_every", t.eval_every),
            ("train.grid", t.grid),
        ] {
            if value == Some(0) {
                return bad(format!("{key} = 0: it must be at least 1"));
            }
        }
        let counts = family.counts();
        let sngd = t.method == MleMethod::Sngd;
        let not_for = |key: &str, what: &str| {
            Err(Error::Config(format!(
                "{key} applies to {what}; remove it for the {} family with train.method = \"{}\"",
                family.name(),
                t.method.name()
            )))
        };
        if counts {
            if t.batch.is_some() {
                return not_for(
                    "train.batch",
                    "the continuous families (counts are fitted on the whole file)",
                );
            }
            if t.lr_theta.is_some() || t.lr_lambda.is_some() || t.lr_adam.is_some() {
                return not_for(
                    "train.lr_theta, lr_lambda and lr_adam",
                    "the continuous families (counts take the best step of a grid line search, train.grid)",
                );
            }
            if d.transform != TransformKind::None {
                return bad(format!(
                    "data.transform = \"{}\" does not apply to counts; remove it (the {} family models the integers as they are)",
                    d.transform.name(),
                    family.name()
                ));
            }
        } else {
            if t.grid.is_some() {
                return not_for("train.grid", "the count families");
            }
            if sngd && t.lr_adam.is_some() {
                return not_for("train.lr_adam", "the Adam baselines");
            }
            if !sngd
                && (t.lr_theta.is_some()
                    || t.lr_lambda.is_some()
                    || t.search.is_some()
                    || t.lambda_step.is_some())
            {
                return not_for("train.lr_theta, lr_lambda, lambda_step and search", "SNGD");
            }
            if t.coordinates.is_some() && !(sngd && family == Family::SkewNormal) {
                return not_for("train.coordinates", "SNGD on the skew-normal family");
            }
            if t.lambda_step == Some(LambdaRule::QuasiNewton)
                && t.search != Some(SearchRule::Decrease)
            {
                return bad(
                    "train.lambda_step = \"quasi-newton\" needs train.search = \"decrease\": its joint step must not increase the NLL (with \"validity\" it can climb)".into(),
                );
            }
            if family == Family::TCopula && d.transform != TransformKind::None {
                return bad(format!(
                    "data.transform = \"{}\" does not apply to the t-copula, which models values in (0, 1) as they are; transform each column to ranks/(n + 1) before writing the file",
                    d.transform.name()
                ));
            }
        }
        for (key, value) in [
            ("train.lr_theta", t.lr_theta),
            ("train.lr_lambda", t.lr_lambda),
            ("train.lr_adam", t.lr_adam),
        ] {
            if let Some(value) = value {
                check_step_size(key, value)?;
            }
        }
        if let Some(delimiter) = d.delimiter
            && !delimiter.is_ascii()
        {
            return bad(format!(
                "data.delimiter = {delimiter:?}: the delimiter must be one ASCII character, e.g. \",\" or \"\\t\""
            ));
        }
        Ok(())
    }

    /// Steps in all.
    pub fn iterations(&self) -> usize {
        self.train.iterations.unwrap_or(1)
    }

    /// Steps between evaluations.
    pub fn eval_every(&self) -> usize {
        self.train.eval_every.unwrap_or(1)
    }

    /// Checks that `resumed` changes only what a resume may change, and lists the changes.
    pub fn resume_changes(&self, resumed: &MleConfig) -> Result<Vec<String>> {
        let changes = crate::run::config_changes(self, resumed)?;
        for change in &changes {
            let key = change.split(':').next().unwrap_or_default();
            if !RESUMABLE.contains(&key) {
                return Err(Error::Config(format!(
                    "{key} cannot change when resuming (only {} can: the checkpoint holds the state of this method on this data); start a new run instead",
                    RESUMABLE.join(", ")
                )));
            }
        }
        Ok(changes)
    }
}

/// Whether `dir` holds an `mle` run (its config has a `model.family`).
pub fn is_mle_run(dir: &Path) -> bool {
    super::config::run_command(dir) == Some("mle")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<MleConfig> {
        let text = "name = \"t\"\n[data]\ntrain = \"x.csv\"\n[model]\nfamily = \"skew-normal\"\n";
        let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        MleConfig::parse(text, &overrides, Path::new("folder/c.toml"))
    }

    #[test]
    fn defaults_are_the_family_s_and_wrong_values_name_their_key() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.train.lr_theta, Some(0.1));
        assert_eq!(config.train.lr_lambda, Some(0.01));
        assert_eq!(config.train.lr_adam, None);
        assert!(config.data.train.is_absolute());
        assert!(config.data.train.ends_with("folder/x.csv"));
        assert_eq!(config.model.start, Some(Start::Data));
        let err = parse(&["model.family=t-copula", "model.start=paper"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not to t-copula"), "{err}");
        let copula = parse(&["model.family=t-copula"]).unwrap();
        assert_eq!(copula.train.lr_lambda, Some(0.03));
        let adam = parse(&["train.method=adam-precision"]).unwrap();
        assert_eq!(
            (adam.train.lr_adam, adam.train.lr_theta),
            (Some(0.01), None)
        );
        let from_cwd = parse(&["data.train=y.csv"]).unwrap();
        assert!(!from_cwd.data.train.to_string_lossy().contains("folder"));
        for (set, words) in [
            ("train.method=bfgs", "sngd, adam-covariance, adam-precision"),
            ("train.iterations=0", "train.iterations = 0"),
            ("train.batch=0", "train.batch = 0"),
            ("train.lr_theta=0", "train.lr_theta"),
            ("train.lr_theta=nan", "train.lr_theta"),
            ("train.grid=10", "train.grid applies to the count families"),
            ("model.components=2", "nb-mixture family only"),
            ("model.start=random", "random"),
            ("data.transform=log", "log"),
            ("data.delimiter=é", "ASCII"),
        ] {
            let err = parse(&[set]).unwrap_err().to_string();
            assert!(err.contains(words), "{set}: {err}");
        }
        let mixture = ["model.family=nb-mixture"];
        let err = parse(&mixture).unwrap_err().to_string();
        assert!(err.contains("model.components is required"), "{err}");
        let err = parse(&["model.family=nb-mixture", "model.components=0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1 component"), "{err}");
        let err = parse(&[
            "model.family=negative-binomial",
            "data.transform=standardize",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not apply to counts"), "{err}");
        let err = parse(&["model.family=t-copula", "data.transform=min-max"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ranks"), "{err}");
    }

    #[test]
    fn a_resume_changes_only_the_iterations() {
        let stored = parse(&[]).unwrap();
        let longer = parse(&["train.iterations=2000"]).unwrap();
        assert_eq!(stored.resume_changes(&longer).unwrap().len(), 1);
        let other = parse(&["train.lr_theta=0.2"]).unwrap();
        let err = stored.resume_changes(&other).unwrap_err().to_string();
        assert!(err.contains("train.lr_theta cannot change"), "{err}");
    }
}
