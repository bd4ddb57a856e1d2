//! `FitRun`: a run of `helmholtz fit` (PPCA, factor analysis, mixtures, Gaussian VAEs) made
//! and used from Python. The points are stored in the run (`run_fit_with_array`), so the
//! directory is the one the command line makes: `helmholtz fit --resume` and `helmholtz eval
//! RUN --data FILE` work on it, and new points go through the same `FitRunModel` as the
//! command line's evaluation.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use faer::Mat;
use helmholtz::models::linear_gaussian::Noise;
use helmholtz::models::mixture::Components;
use helmholtz::run::fit::{
    Decomposition, FitConfig, FitRunModel, FitSummary, FittedModel, entropy_fields, open_fit,
    resume_fit, run_fit_with_array,
};
use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{PyArray1, PyArray2, ToPyArray};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{columns_to_numpy, points};
use crate::errors::IntoPy;
use crate::hm::json_to_py;
use crate::runs::{read_summary, tensor_to_numpy, with_lines_until_signal};
use crate::threads::detached;

/// What the identity needs and these fits give, said where it applies.
const IDENTITY_APPLIES: &str = "the model is trained on the plain ELBO with its variances and prior learned, and its distributions are exponential families with a constant base measure: at a stationary point (EM's fixed point, the closed-form PPCA, a converged VAE) the ELBO equals the entropy sum, so the gap measures the distance from one";

/// Runs `fit` off the GIL with progress lines and Ctrl-C ([`with_lines_until_signal`]); a
/// Python exception raised meanwhile (the signal, or the callback's own) is raised after the
/// fit stopped and wrote its checkpoint.
fn fit_with_lines(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
    fit: impl FnOnce(&mut dyn FnMut(&str), &AtomicBool) -> helmholtz::Result<(FittedModel, FitSummary)>
    + Send,
) -> PyResult<FitSummary> {
    let (result, raised) = with_lines_until_signal(py, progress, n_threads, fit)?;
    let (_, summary) = result.py_err()?;
    if let Some(error) = raised {
        return Err(error);
    }
    if summary.stopped.starts_with("interrupted") {
        return Err(PyKeyboardInterrupt::new_err(summary.stopped));
    }
    Ok(summary)
}

/// Draws (n, d) with their components (a mixture's) or None.
type Draws<'py> = (Bound<'py, PyArray2<f64>>, Option<Bound<'py, PyArray1<i64>>>);

/// A fit run bound to its directory.
#[pyclass(module = "helmholtz._core", name = "FitRun")]
pub struct FitRun {
    fit: FitRunModel,
}

impl FitRun {
    fn open_dir(dir: &Path) -> PyResult<Self> {
        Ok(FitRun {
            fit: FitRunModel::open(dir).py_err()?,
        })
    }

    /// `x` (n, d) as the model sees it (D × n).
    fn prepared(&self, x: &Bound<'_, PyAny>) -> PyResult<Mat<f64>> {
        let points = points::<f64>(x, "X", "float64")?;
        let raw = points.columns().to_owned();
        self.fit.prepare(raw, "X").py_err()
    }
}

#[pymethods]
impl FitRun {
    /// Fits the model of a `helmholtz fit` config (TOML text) to the rows of `x` in the new run
    /// directory `dir` (which must not exist or be empty); the rows are stored in the run.
    /// `progress(event, info)` gets each progress line as ("message", {"text": line}).
    #[staticmethod]
    #[pyo3(signature = (config, dir, x, progress = None, n_threads = None))]
    fn create(
        py: Python<'_>,
        config: &str,
        dir: PathBuf,
        x: &Bound<'_, PyAny>,
        progress: Option<Py<PyAny>>,
        n_threads: Option<usize>,
    ) -> PyResult<Self> {
        let config = FitConfig::parse(config, &[], Path::new("<estimator>")).py_err()?;
        let points = points::<f64>(x, "X", "float64")?;
        let columns = points.columns();
        fit_with_lines(py, progress, n_threads, |lines, stop| {
            run_fit_with_array(&config, &dir, columns, lines, stop)
        })?;
        Self::open_dir(&dir)
    }

    /// Continues the fit run in `dir` from its last checkpoint with `overrides` such as
    /// "train.max_steps=500" (as `helmholtz fit --resume DIR --set ...`).
    #[staticmethod]
    #[pyo3(signature = (dir, overrides = Vec::new(), progress = None, n_threads = None))]
    fn resume(
        py: Python<'_>,
        dir: PathBuf,
        overrides: Vec<String>,
        progress: Option<Py<PyAny>>,
        n_threads: Option<usize>,
    ) -> PyResult<Self> {
        fit_with_lines(py, progress, n_threads, |lines, stop| {
            resume_fit(&dir, &overrides, lines, stop)
        })?;
        Self::open_dir(&dir)
    }

    /// Opens the fit run in `dir` (made here or by `helmholtz fit`).
    #[staticmethod]
    fn open(py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        py.detach(|| FitRunModel::open(&dir))
            .py_err()
            .map(|fit| FitRun { fit })
    }

    /// The score of each row of `x` in the data's own units: the exact log-likelihood log p(x)
    /// (PPCA, factor analysis, mixtures), or the ELBO (VAEs, one fixed draw per row).
    #[pyo3(signature = (x, n_threads = None))]
    fn score_samples<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let x = self.prepared(x)?;
        let scores = detached(py, n_threads, || self.fit.scores(x.as_ref()))?.py_err()?;
        Ok(scores.to_pyarray(py))
    }

    /// Whether `score_samples` gives exact log-likelihoods (false: ELBOs).
    #[getter]
    fn exact(&self) -> bool {
        self.fit.model.exact_scores()
    }

    /// The ELBO and its entropy decomposition on the rows of `x` (None: the run's training
    /// points), as a dict; see `helmholtz.fit` for the keys.
    #[pyo3(signature = (x = None, n_threads = None))]
    fn entropy_sum<'py>(
        &self,
        py: Python<'py>,
        x: Option<&Bound<'py, PyAny>>,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (dec, points) = match x {
            Some(x) => {
                let x = self.prepared(x)?;
                let dec = detached(py, n_threads, || self.fit.evaluate(x.as_ref()))?
                    .py_err()?
                    .1;
                (dec, x.ncols())
            }
            None => {
                let dir = self.fit.dir.clone();
                detached(py, n_threads, || {
                    let (config, model, x) = open_fit(&dir)?;
                    Ok::<_, helmholtz::Error>((model.decompose(x.as_ref(), &config)?, x.ncols()))
                })?
                .py_err()?
            }
        };
        json_to_py(
            py,
            &decomposition_json(&dec, points, self.fit.transform.log_scale()),
        )
    }

    /// Posterior means of the latents of each row of `x` (n, H); responsibilities (n, C) for
    /// mixtures.
    #[pyo3(signature = (x, n_threads = None))]
    fn transform<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let x = self.prepared(x)?;
        let means =
            detached(py, n_threads, || self.fit.model.posterior_means(x.as_ref()))?.py_err()?;
        Ok(columns_to_numpy(py, means.as_ref()))
    }

    /// `n` draws from the model, (n, d), in the data's own units, from `seed`, with the
    /// component of each draw (int64 (n,)) for a mixture, else None.
    #[pyo3(signature = (n, seed = 0))]
    fn sample<'py>(&self, py: Python<'py>, n: usize, seed: u64) -> PyResult<Draws<'py>> {
        if n == 0 {
            return Err(PyValueError::new_err(
                "n_samples = 0: give at least 1 sample",
            ));
        }
        let d = self.fit.transform.shift.len();
        helmholtz::memory::check_allocation(
            &format!("drawing {n} samples"),
            helmholtz::memory::bytes_of(&[n, d], 16),
        )
        .py_err()?;
        let (x, components) = py.detach(|| self.fit.sample(n, seed)).py_err()?;
        let components = components.map(|c| {
            c.into_iter()
                .map(|k| k as i64)
                .collect::<Vec<_>>()
                .to_pyarray(py)
        });
        Ok((columns_to_numpy(py, x.as_ref()), components))
    }

    /// The model's parameters by name: PPCA / factor analysis `components` (H, d) (the loadings
    /// Wᵀ), `mean` (d), `noise_variance` (a float, or (d,) for factor analysis); mixtures
    /// `weights` (C), `means` (C, d) and, for Gaussians, `covariances` ((C, d, d) full, (C, d)
    /// diagonal); VAEs their tensors by name (float32, matrices (rows, cols)) with
    /// `noise_variance` (VAE-1/2) and `prior_variances` (VAE-2).
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        let matrix =
            |m: &Mat<f64>| Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)]);
        match &self.fit.model {
            FittedModel::Linear(model) => {
                let w = &model.w;
                out.set_item(
                    "components",
                    matrix(&w.transpose().to_owned()).to_pyarray(py),
                )?;
                out.set_item("mean", model.mean.to_pyarray(py))?;
                match &model.noise {
                    Noise::Isotropic(v) => out.set_item("noise_variance", *v)?,
                    Noise::Diagonal(v) => out.set_item("noise_variance", v.to_pyarray(py))?,
                }
            }
            FittedModel::Mixture(model) => {
                out.set_item("weights", model.weights.to_pyarray(py))?;
                let rows = |m: &Mat<f64>| matrix(&m.transpose().to_owned());
                match &model.components {
                    Components::DiagonalGaussian { means, variances } => {
                        out.set_item("means", rows(means).to_pyarray(py))?;
                        out.set_item("covariances", rows(variances).to_pyarray(py))?;
                    }
                    Components::FullGaussian { means, covariances } => {
                        out.set_item("means", rows(means).to_pyarray(py))?;
                        let d = means.nrows();
                        let stacked =
                            Array3::from_shape_fn((covariances.len(), d, d), |(k, i, j)| {
                                covariances[k][(i, j)]
                            });
                        out.set_item("covariances", stacked.to_pyarray(py))?;
                    }
                    Components::Bernoulli { probs } => {
                        out.set_item("means", rows(probs).to_pyarray(py))?;
                    }
                }
            }
            FittedModel::Sbn(model) => {
                out.set_item("theta", Array1::from(model.theta.clone()).to_pyarray(py))?;
            }
            FittedModel::Vae(model) => {
                for tensor in &model.params.tensors {
                    out.set_item(
                        &tensor.name,
                        tensor_to_numpy(py, &tensor.shape, &tensor.data)?,
                    )?;
                }
                if let Some(log_sigma2) = model.log_sigma2() {
                    out.set_item("noise_variance", log_sigma2.exp())?;
                }
                if model.kind == helmholtz::models::vae::VaeKind::Vae2 {
                    let alpha2: Vec<f64> = model.log_alpha2().iter().map(|l| l.exp()).collect();
                    out.set_item("prior_variances", alpha2.to_pyarray(py))?;
                }
            }
        }
        Ok(out)
    }

    /// The run's `summary.json` as a dict.
    #[getter]
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        read_summary(py, &self.fit.dir)
    }

    /// The run directory.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.fit.dir.clone()
    }

    /// The model kind as in configs ("ppca", "gmm-full", "vae-1", ...).
    #[getter]
    fn kind(&self) -> &'static str {
        helmholtz::run::fit::kind_name(self.fit.config.model.kind)
    }
}

/// The decomposition as the dict of `entropy_sum()`.
fn decomposition_json(dec: &Decomposition, points: usize, log_scale: f64) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    entropy_fields(&dec.sum, &dec.conditions, &mut map);
    let violation = dec.conditions.violation();
    map.remove("notice");
    map.insert("entropy_sum".into(), dec.sum.entropy_sum().into());
    map.insert("gap".into(), dec.sum.gap().into());
    map.insert("relative_gap".into(), dec.sum.relative_gap().into());
    map.insert("identity_applies".into(), violation.is_none().into());
    map.insert(
        "why".into(),
        violation.unwrap_or_else(|| IDENTITY_APPLIES.into()).into(),
    );
    map.insert("log_likelihood".into(), dec.log_likelihood.into());
    map.insert("points".into(), points.into());
    map.insert("log_scale".into(), log_scale.into());
    if let Some(latent) = &dec.latent_entropies {
        map.insert("latent_entropies".into(), serde_json::json!(latent));
    }
    if let Some(prior) = &dec.prior_entropies {
        map.insert("prior_entropies".into(), serde_json::json!(prior));
    }
    if let Some(collapsed) = dec.collapsed {
        map.insert("collapsed".into(), collapsed.into());
    }
    serde_json::Value::Object(map)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FitRun>()?;
    Ok(())
}
