//! The fitted models of `helmholtz fit`, their entropy decomposition and their f64 files.

use std::path::Path;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::dist::{Conditions, EntropySum};
use crate::error::{Error, Result};
use crate::models::linear_gaussian::{LinearGaussian, Noise};
use crate::models::mixture::{Components, Mixture};
use crate::models::sbn_exact::ExactSbn;
use crate::models::vae::GaussianVae;
use crate::run::checkpoint::{read_tensors, write_tensors};
use crate::train::em::EmModel;
use crate::train::vae::evaluate_vae;

/// The model file of non-VAE fits (f64 JSON, so the stored stationary point is exact).
use super::*;

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
pub(crate) const VAE_EVAL_BATCH: usize = 500;

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
                    conditions: Conditions {
                        floored_variances: model.floored,
                        ..Conditions::plain()
                    },
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

    /// A score per column of `x`: the exact log-likelihood log p(x_n) where the model has one
    /// (PPCA, factor analysis, mixtures, the SBN; their mean is the decomposition's
    /// log-likelihood), else (VAEs) the ELBO of the point with one draw that depends only on the
    /// point's values and the run's seed ([`crate::train::vae::vae_point_elbos`]; their mean
    /// estimates the decomposition's ELBO, which uses other draws).
    pub fn point_scores(&self, x: MatRef<'_, f64>, config: &FitConfig) -> Result<Vec<f64>> {
        match self {
            FittedModel::Linear(model) => model.log_likelihoods(x),
            FittedModel::Mixture(model) => model.log_likelihoods(x),
            FittedModel::Sbn(model) => (0..x.ncols())
                .map(|j| model.log_likelihood(x.subcols(j, 1), None))
                .collect(),
            FittedModel::Vae(model) => crate::train::vae::vae_point_elbos(model, x, config.seed),
        }
    }

    /// Whether [`FittedModel::point_scores`] are exact log-likelihoods (false: ELBOs).
    pub fn exact_scores(&self) -> bool {
        !matches!(self, FittedModel::Vae(_))
    }

    /// The posterior means of the latents for each column of `x` (H × N, or C × N
    /// responsibilities for a mixture): exact for PPCA, factor analysis and mixtures, the
    /// encoder's means for a VAE, E[z | x] by enumeration for the SBN.
    pub fn posterior_means(&self, x: MatRef<'_, f64>) -> Result<Mat<f64>> {
        match self {
            FittedModel::Linear(model) => model.posteriors(x).map(|(means, _)| means),
            FittedModel::Mixture(model) => model.responsibilities(x).map(|(resp, _)| resp),
            FittedModel::Sbn(model) => model.posterior_means(x),
            FittedModel::Vae(model) => model.encode(x).map(|(means, _)| means),
        }
    }

    /// `n` draws x ~ p(x) (D × n) from `seed`, in the units the model was fitted in, with the
    /// component of each draw for a mixture.
    pub fn sample(&self, n: usize, seed: u64) -> Result<(Mat<f64>, Option<Vec<usize>>)> {
        match self {
            FittedModel::Linear(model) => Ok((model.sample(n, seed), None)),
            FittedModel::Mixture(model) => model.sample(n, seed).map(|(x, c)| (x, Some(c))),
            FittedModel::Sbn(model) => Ok((model.sample(n, seed), None)),
            FittedModel::Vae(model) => model.sample(n, seed).map(|x| (x, None)),
        }
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

    /// The data dimension of the model stored in the fit run `dir` (whose config is `config`).
    pub fn stored_dim(dir: &Path, config: &FitConfig) -> Result<usize> {
        if config.model.kind.vae().is_some() {
            let path = dir.join(MODEL_TENSORS);
            let tensors = crate::run::checkpoint::read_all_tensors(&path)?;
            return tensors
                .tensors
                .iter()
                .find(|t| t.name == "encoder.0.w")
                .and_then(|t| t.shape.get(1).copied())
                .ok_or_else(|| Error::format(&path, "no encoder.0.w weights".to_string()));
        }
        let path = dir.join(MODEL_JSON);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let saved: SavedModel = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidData(format!("{}: {e}", path.display())))?;
        Ok(match saved {
            SavedModel::Linear { mean, .. } => mean.len(),
            SavedModel::Mixture { means, .. } => means.first().map_or(0, Vec::len),
            SavedModel::Sbn { dim, .. } => dim,
        })
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

fn is_zero(n: &usize) -> bool {
    *n == 0
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
        /// Values the last M-step held at the variance floor (absent: none).
        #[serde(default, skip_serializing_if = "is_zero")]
        floored: usize,
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
                    floored: m.floored,
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
                floored,
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
                    floored,
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

    fn log_likelihood(&self, x: MatRef<'_, f64>) -> Result<f64> {
        match self {
            FittedModel::Linear(model) => EmModel::log_likelihood(model, x),
            FittedModel::Mixture(model) => EmModel::log_likelihood(model, x),
            _ => Err(Error::Config(
                "EM exists for linear models and mixtures".into(),
            )),
        }
    }
}
