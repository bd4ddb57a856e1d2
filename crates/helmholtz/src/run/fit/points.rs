//! A fit run's model on new points: read and prepared as the run's training points were
//! (binarised or dequantised from the next seeds, mapped by the run's stored transform, never
//! refitted), then scored, decomposed, encoded or sampled. `helmholtz eval RUN --data FILE` and
//! the Python estimators go through it, so both report the same numbers.

use std::path::{Path, PathBuf};

use faer::{Mat, MatRef};
use serde::Serialize;

use super::*;
use crate::run::CONFIG_FILE;

/// A fit run's model on new data (see [`evaluate_file`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileEvaluation {
    /// Points evaluated.
    pub points: usize,
    /// The ELBO per point, in the data's own units.
    pub elbo: f64,
    /// The exact log-likelihood per point in the data's own units, where the model has one.
    pub log_likelihood: Option<f64>,
    /// Σ ln scale of the run's transform, subtracted from the transformed values (0 without one).
    pub log_scale: f64,
}

/// The fitted model of a run, opened to be used on new points.
#[derive(Clone, Debug)]
pub struct FitRunModel {
    /// The run directory.
    pub dir: PathBuf,
    /// The run's resolved config.
    pub config: FitConfig,
    /// The model.
    pub model: FittedModel,
    /// The run's transform (the identity for `data.transform = "none"`).
    pub transform: Transform,
}

impl FitRunModel {
    /// Opens the fit run in `dir` (its data is not read).
    pub fn open(dir: &Path) -> Result<Self> {
        let config = FitConfig::load(&dir.join(CONFIG_FILE), &[])?;
        let dim = FittedModel::stored_dim(dir, &config)?;
        let transform: Transform = match config.data.transform {
            TransformKind::None => Transform::identity(dim),
            _ => {
                let file = dir.join(TRANSFORM_FILE);
                let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
                serde_json::from_str(&text).map_err(|e| Error::format(&file, e.to_string()))?
            }
        };
        let model = FittedModel::load(dir, &config, dim)?;
        Ok(FitRunModel {
            dir: dir.to_path_buf(),
            config,
            model,
            transform,
        })
    }

    /// The points of the file `path`, read with the run's data keys (its format from the run's
    /// source, or from the path for the built-in sets), as raw values (D × N).
    pub fn read_file(&self, path: &Path) -> Result<Mat<f64>> {
        read_points(&reading(&self.config, Some(path)))
    }

    /// `raw` points (D × N, as a file holds them) as the model sees them: binarised or
    /// dequantised as the training points were (from the next seeds), then mapped by the run's
    /// stored transform. `what` names the points in errors.
    pub fn prepare(&self, raw: Mat<f64>, what: &str) -> Result<Mat<f64>> {
        let (x, _) = prepare(&reading(&self.config, None), raw)?;
        let rows = x.transpose();
        self.transform.check_columns(rows, what)?;
        Ok(self.transform.apply(rows).transpose().to_owned())
    }

    /// The ELBO and exact log-likelihood per point of the prepared points `x`, in the data's own
    /// units, with the decomposition (in the transformed units).
    pub fn evaluate(&self, x: MatRef<'_, f64>) -> Result<(FileEvaluation, Decomposition)> {
        let dec = self.model.decompose(x, &self.config)?;
        let log_scale = self.transform.log_scale();
        Ok((
            FileEvaluation {
                points: x.ncols(),
                elbo: dec.sum.elbo - log_scale,
                log_likelihood: dec.log_likelihood.map(|ll| ll - log_scale),
                log_scale,
            },
            dec,
        ))
    }

    /// A score per prepared point in the data's own units: the exact log-likelihood, whose mean
    /// is [`FitRunModel::evaluate`]'s, or the ELBO for VAEs ([`FittedModel::point_scores`]).
    pub fn scores(&self, x: MatRef<'_, f64>) -> Result<Vec<f64>> {
        let log_scale = self.transform.log_scale();
        let scores = self.model.point_scores(x, &self.config)?;
        Ok(scores.into_iter().map(|s| s - log_scale).collect())
    }

    /// `n` draws x ~ p(x) (D × n) from `seed`, in the data's own units (the transform
    /// inverted), with the component of each draw for a mixture.
    pub fn sample(&self, n: usize, seed: u64) -> Result<(Mat<f64>, Option<Vec<usize>>)> {
        let (z, components) = self.model.sample(n, seed)?;
        if self.config.data.transform == TransformKind::None {
            return Ok((z, components));
        }
        let x = self.transform.invert(z.transpose()).transpose().to_owned();
        Ok((x, components))
    }
}

/// The fitted model of the run in `dir` on the points of `path`: read with the run's data keys
/// (its format from the run's source, or from the path for the built-in sets), binarised or
/// dequantised as the training points were, mapped by the run's stored transform (not refitted),
/// and reported in the data's own units.
pub fn evaluate_file(dir: &Path, path: &Path) -> Result<FileEvaluation> {
    let config = FitConfig::load(&dir.join(CONFIG_FILE), &[])?;
    let raw = read_points(&reading(&config, Some(path)))?;
    let fit = FitRunModel::open(dir)?;
    let x = fit.prepare(raw, &path.display().to_string())?;
    fit.evaluate(x.as_ref()).map(|(evaluation, _)| evaluation)
}

/// The config that reads new points as the run of `config` read its training points: the same
/// data keys, with `source` and `train` from `path` (when given), and the next seeds for the
/// binarisation and dequantisation draws.
fn reading(config: &FitConfig, path: Option<&Path>) -> FitConfig {
    let mut reading = config.clone();
    if let Some(path) = path {
        let ext = |e: &str| path.extension().is_some_and(|x| x.eq_ignore_ascii_case(e));
        reading.data.source = match config.data.source {
            DataSource::Idx | DataSource::Csv | DataSource::PngDir | DataSource::Npy => {
                config.data.source
            }
            _ if path.is_dir() => DataSource::PngDir,
            _ if ext("npy") || ext("npz") => DataSource::Npy,
            _ if ext("csv") || ext("tsv") || ext("gz") => DataSource::Csv,
            _ => DataSource::Idx,
        };
        reading.data.train = Some(path.to_path_buf());
    }
    reading.data.points = None;
    reading.data.transform = TransformKind::None;
    reading.data.binarize_seed = config.data.binarize_seed.wrapping_add(1);
    reading.seed = config.seed.wrapping_add(1);
    reading
}
