//! `SparseRun`: a sparse-coding run of `helmholtz sparse` on the user's points, made and used
//! from Python. The points are stored in the run (`run_points_with_array`), so the directory is
//! one seed's directory of `helmholtz sparse` on a `data.source = "points"` config: EM and Adam
//! runs resume with `helmholtz sparse --resume`, and the model is opened the same way
//! (`SparseRunModel`) on both sides.

use std::path::{Path, PathBuf};

use faer::Mat;
use helmholtz::data::patches::GrayImage;
use helmholtz_experiments::sparse::denoise::{DenoiseConfig, denoise_image};
use helmholtz_experiments::sparse::{SparseConfig, SparseRunModel, run_points_with_array};
use numpy::ndarray::{Array2, Array3};
use numpy::{PyArray1, PyArray2, PyArray3, PyArrayMethods, PyUntypedArrayMethods, ToPyArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::points;
use crate::errors::IntoPy;
use crate::runs::{read_summary, with_lines_until_signal};
use crate::threads::detached;

/// A sparse-coding run bound to its directory.
#[pyclass(module = "helmholtz._core", name = "SparseRun")]
pub struct SparseRun {
    model: SparseRunModel,
}

/// The posteriors of points: means (n, H), covariances (n, H, H) and each point's ELBO.
type Posteriors<'py> = (
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray3<f64>>,
    Bound<'py, PyArray1<f64>>,
);

#[pymethods]
impl SparseRun {
    /// Trains the sparse-coding config (TOML text of `helmholtz sparse`; its data section is
    /// replaced by the rows of `x`, stored in the run) in the new run directory `dir`.
    /// `progress(event, info)` gets each progress line as ("message", {"text": line}); Ctrl-C
    /// stops EM and Adam runs after the current batch (checkpointed) and raises
    /// KeyboardInterrupt (an L-BFGS fit is one solve: the interrupt is raised when it ends).
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
        let config = SparseConfig::parse(config, &[], Path::new("<estimator>")).py_err()?;
        let points = points::<f64>(x, "X", "float64")?;
        let columns = points.columns();
        let (result, raised) = with_lines_until_signal(py, progress, n_threads, |lines, stop| {
            run_points_with_array(&config, &dir, columns, lines, stop)
        })?;
        result.py_err()?;
        if let Some(error) = raised {
            // The run stopped after its step and wrote its checkpoint.
            return Err(error);
        }
        Self::open(py, dir)
    }

    /// Opens the sparse-coding run in `dir` (one seed's directory).
    #[staticmethod]
    fn open(py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        let model = py.detach(|| SparseRunModel::open(&dir)).py_err()?;
        Ok(SparseRun { model })
    }

    /// The posterior of each row of `x` (whitened as the run's data): means (n, H), covariances
    /// (n, H, H) and the row's standard ELBO at the run's λ and σ² (n,). Each row's posterior
    /// is its own (the encoder's, or its E-step at the run's dictionary, λ and σ²).
    #[pyo3(signature = (x, n_threads = None))]
    fn posteriors<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        n_threads: Option<usize>,
    ) -> PyResult<Posteriors<'py>> {
        let points = points::<f64>(x, "X", "float64")?;
        if points.d() != self.model.dim() {
            return Err(crate::errors::DataError::new_err(format!(
                "X has {} features; the model was trained on {}",
                points.d(),
                self.model.dim()
            )));
        }
        let raw = points.columns().to_owned();
        let (q, values) = detached(py, n_threads, || {
            let x = self.model.whiten(raw.as_ref())?;
            self.model.posteriors(x.as_ref())
        })?
        .py_err()?;
        let (n, h) = (q.n_points, q.n_latents);
        let means = Array2::from_shape_fn((n, h), |(i, k)| q.mean(i)[k]);
        let mut covariances = Array3::<f64>::zeros((n, h, h));
        for i in 0..n {
            let l = q.cholesky(i);
            let sigma: Mat<f64> = &l * l.transpose();
            for r in 0..h {
                for c in 0..h {
                    covariances[(i, r, c)] = sigma[(r, c)];
                }
            }
        }
        Ok((
            means.to_pyarray(py),
            covariances.to_pyarray(py),
            values.to_pyarray(py),
        ))
    }

    /// The dictionary, one unit-norm atom per row (H, D).
    #[getter]
    fn components<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let w = &self.model.dictionary;
        Array2::from_shape_fn((w.ncols(), w.nrows()), |(k, r)| w[(r, k)]).to_pyarray(py)
    }

    /// λ_h, the scales of the Laplace prior (H,).
    #[getter]
    fn lambda_<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.model.lambda.to_pyarray(py)
    }

    /// σ², the noise variance.
    #[getter]
    fn sigma2(&self) -> f64 {
        self.model.sigma2
    }

    /// Adds Gaussian noise of standard deviation `sigma` (from `seed`) to the clean `image`
    /// (2-D, values in [0, 1]) and denoises it patch by patch (every `stride` pixels) with the
    /// dictionary: posterior means, and MAP codes with κ_h = σ²/λ_h. Returns a dict of the
    /// images (`noisy`, `posterior`, `map`) and their PSNRs in dB (`psnr`).
    #[pyo3(signature = (image, sigma, stride = 1, map_iterations = 300, seed = 0, n_threads = None))]
    #[allow(clippy::too_many_arguments)]
    fn denoise<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        sigma: f64,
        stride: usize,
        map_iterations: usize,
        seed: u64,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let numpy = py.import("numpy")?;
        let array = numpy
            .call_method1("ascontiguousarray", (image, "float64"))
            .map_err(|e| {
                PyValueError::new_err(format!("image: cannot be read as an array of float64: {e}"))
            })?;
        let array = array
            .cast_into::<PyArray2<f64>>()
            .map_err(|_| PyValueError::new_err("image: expected a 2-D array (height, width)"))?;
        let (height, width) = (array.shape()[0], array.shape()[1]);
        let values = array.readonly().as_slice()?.to_vec();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(PyValueError::new_err("image: holds NaN or infinite values"));
        }
        let clean = GrayImage {
            path: PathBuf::from("image"),
            height,
            width,
            values,
        };
        let config = DenoiseConfig {
            image: String::new(),
            noise_sd: sigma,
            stride,
            map_iterations,
            seed,
        };
        let (outcome, images) = detached(py, n_threads, || {
            denoise_image(&self.model, &clean, &config)
        })?
        .py_err()?;
        let out = PyDict::new(py);
        let [_, noisy, posterior, map] = &images.images;
        for (name, values) in [("noisy", noisy), ("posterior", posterior), ("map", map)] {
            let array = Array2::from_shape_vec((height, width), values.clone())
                .map_err(|e| crate::errors::internal(e.to_string()))?;
            out.set_item(name, array.to_pyarray(py))?;
        }
        let psnr =
            serde_json::to_value(&outcome).map_err(|e| crate::errors::internal(e.to_string()))?;
        out.set_item("psnr", crate::hm::json_to_py(py, &psnr)?)?;
        Ok(out)
    }

    /// The run's `summary.json` as a dict.
    #[getter]
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        read_summary(py, &self.model.dir)
    }

    /// The run directory.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.model.dir.clone()
    }
}

/// For each true field (row of `truth`, (K, D)), the |cosine| with a distinct learned atom (row
/// of `learned`, (H, D)) by a greedy one-to-one matching: the library's recovery score of the
/// bars experiment.
#[pyfunction]
fn match_fields(learned: &Bound<'_, PyAny>, truth: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    let learned = points::<f64>(learned, "learned", "float64")?;
    let truth = points::<f64>(truth, "truth", "float64")?;
    if learned.d() != truth.d() {
        return Err(PyValueError::new_err(format!(
            "learned atoms of {} values and true fields of {}",
            learned.d(),
            truth.d()
        )));
    }
    Ok(helmholtz::data::synthetic::match_fields(
        learned.columns(),
        truth.columns(),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SparseRun>()?;
    m.add_function(wrap_pyfunction!(match_fields, m)?)?;
    Ok(())
}
