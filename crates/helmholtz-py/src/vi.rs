//! Variational inference for Bayesian logistic regression on arrays
//! (`helmholtz.vi.logistic_regression`): the library's vi runs ([`helmholtz::run::vi`]) in a run
//! directory the command line's `helmholtz vi` makes, the arrays stored in it, so `helmholtz vi
//! --resume` and `helmholtz sample` work on it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use helmholtz::run::vi::{ViConfig, predict_run, resume_vi, run_vi_with_arrays, sample_run};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, ToPyArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::points;
use crate::errors::{IntoPy, internal};
use crate::runs::{finished, report};
use crate::threads::{detached, detached_until_signal};

/// A 1-D float64 array of labels, `name` in errors.
fn labels<'py>(y: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArray1<'py, f64>> {
    let numpy = y.py().import("numpy")?;
    let array = numpy
        .call_method1("ascontiguousarray", (y, "float64"))
        .map_err(|e| PyValueError::new_err(format!("{name}: cannot be read as numbers: {e}")))?;
    let array = array.cast_into::<PyArray1<f64>>().map_err(|_| {
        PyValueError::new_err(format!(
            "{name}: expected a 1-D array of labels (0/1 or -1/+1), one per row"
        ))
    })?;
    Ok(array.readonly())
}

/// A new vi run in `dir` from a config's TOML text (its data paths and label options are
/// replaced) on features `x` ((n, d) float64) and labels `y` (0/1 or −1/+1), with an optional
/// held-out pair. Returns the summary.
#[pyfunction]
#[pyo3(signature = (config, dir, x, y, x_test = None, y_test = None, progress = None, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn vi_fit<'py>(
    py: Python<'py>,
    config: &str,
    dir: PathBuf,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    x_test: Option<&Bound<'py, PyAny>>,
    y_test: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let config = ViConfig::parse(config, &[], Path::new("<vi.logistic_regression>")).py_err()?;
    let x = points::<f64>(x, "X", "float64")?;
    let y = labels(y, "y")?;
    let test = match (x_test, y_test) {
        (Some(x), Some(y)) => Some((points::<f64>(x, "X_test", "float64")?, labels(y, "y_test")?)),
        (None, None) => None,
        _ => {
            return Err(PyValueError::new_err(
                "X_test and y_test go together: give both or neither",
            ));
        }
    };
    let y_slice = y.as_slice().map_err(|e| internal(e.to_string()))?;
    let test_views = match &test {
        Some((x, y)) => Some((
            x.columns().transpose(),
            y.as_slice().map_err(|e| internal(e.to_string()))?,
        )),
        None => None,
    };
    let x_rows = x.columns().transpose();
    let stop = AtomicBool::new(false);
    let (result, signal) = detached_until_signal(py, n_threads, &stop, || {
        run_vi_with_arrays(
            config,
            &dir,
            x_rows,
            y_slice,
            test_views,
            report(progress.as_ref()),
            &stop,
        )
    })?;
    finished(py, result.map(|outcome| outcome.summary), signal)
}

/// Continues the vi run in `dir` from its last checkpoint with `overrides` such as
/// "train.iterations=3000". Returns the summary.
#[pyfunction]
#[pyo3(signature = (dir, overrides = Vec::new(), progress = None, n_threads = None))]
fn vi_resume<'py>(
    py: Python<'py>,
    dir: PathBuf,
    overrides: Vec<String>,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let stop = AtomicBool::new(false);
    let (result, signal) = detached_until_signal(py, n_threads, &stop, || {
        resume_vi(&dir, &overrides, report(progress.as_ref()), &stop)
    })?;
    finished(py, result.map(|outcome| outcome.summary), signal)
}

/// `n` draws of the posterior of the vi run in `dir` from `seed`: a float64 array (n, weights),
/// the draws `helmholtz sample` writes.
#[pyfunction]
#[pyo3(signature = (dir, n, seed = 0))]
fn vi_sample<'py>(
    py: Python<'py>,
    dir: PathBuf,
    n: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    if n == 0 {
        return Err(PyValueError::new_err("n = 0: give at least 1 draw"));
    }
    let (draws, _) = py.detach(|| sample_run(&dir, n, seed)).py_err()?;
    let rows = numpy::ndarray::Array2::from_shape_fn((draws.nrows(), draws.ncols()), |(i, j)| {
        draws[(i, j)]
    });
    Ok(rows.to_pyarray(py))
}

/// P(y = +1 | x, data) for each row of `x` ((n, d) float64, the features as given in
/// training) by `draws` draws of the posterior of the vi run in `dir` from `seed`.
#[pyfunction]
#[pyo3(signature = (dir, x, draws = 1000, seed = 0, n_threads = None))]
fn vi_predict<'py>(
    py: Python<'py>,
    dir: PathBuf,
    x: &Bound<'py, PyAny>,
    draws: usize,
    seed: u64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let x = points::<f64>(x, "X", "float64")?;
    let rows = x.columns().transpose();
    let p = detached(py, n_threads, || predict_run(&dir, rows, draws, seed))?.py_err()?;
    Ok(p.to_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(vi_fit, m)?)?;
    m.add_function(wrap_pyfunction!(vi_resume, m)?)?;
    m.add_function(wrap_pyfunction!(vi_sample, m)?)?;
    m.add_function(wrap_pyfunction!(vi_predict, m)?)?;
    Ok(())
}
