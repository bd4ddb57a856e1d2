//! Maximum-likelihood fits of a distribution to arrays (`helmholtz.sngd.fit`): the library's
//! `mle` runs ([`helmholtz::run::mle`]) in a run directory the command line's `helmholtz mle`
//! makes, the arrays stored in it, so `helmholtz mle --resume` and `helmholtz eval` work on it
//! and `resume` here continues a command-line run.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use faer::MatRef;
use helmholtz::run::mle::{MleConfig, eval_values, resume_mle, run_mle_with_arrays, sample_run};
use numpy::{PyArray2, ToPyArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::points;
use crate::errors::IntoPy;
use crate::runs::{finished, report};
use crate::threads::{detached, detached_until_signal};

/// A new mle run in `dir` from a config's TOML text (its data paths are replaced) on the
/// observations `train` (and `test`): (n, d) float64 arrays, one observation per row (counts
/// in one column). Returns the summary.
#[pyfunction]
#[pyo3(signature = (config, dir, train, test = None, progress = None, n_threads = None))]
fn mle_fit<'py>(
    py: Python<'py>,
    config: &str,
    dir: PathBuf,
    train: &Bound<'py, PyAny>,
    test: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let config = MleConfig::parse(config, &[], Path::new("<sngd.fit>")).py_err()?;
    let train = points::<f64>(train, "data", "float64")?;
    let test = test
        .map(|t| points::<f64>(t, "test", "float64"))
        .transpose()?;
    let train: MatRef<'_, f64> = train.columns().transpose();
    let test = test.as_ref().map(|t| t.columns().transpose());
    let stop = AtomicBool::new(false);
    let (result, signal) = detached_until_signal(py, n_threads, &stop, || {
        run_mle_with_arrays(config, &dir, train, test, report(progress.as_ref()), &stop)
    })?;
    finished(py, result.map(|outcome| outcome.summary), signal)
}

/// Continues the mle run in `dir` (made here or by `helmholtz mle`) from its last checkpoint,
/// with `overrides` such as "train.iterations=200". Returns the summary.
#[pyfunction]
#[pyo3(signature = (dir, overrides = Vec::new(), progress = None, n_threads = None))]
fn mle_resume<'py>(
    py: Python<'py>,
    dir: PathBuf,
    overrides: Vec<String>,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let stop = AtomicBool::new(false);
    let (result, signal) = detached_until_signal(py, n_threads, &stop, || {
        resume_mle(&dir, &overrides, report(progress.as_ref()), &stop)
    })?;
    finished(py, result.map(|outcome| outcome.summary), signal)
}

/// The mean and total NLL (nats, in the data's units) of the rows of `x` ((n, d) float64, as
/// the training data were given) under the mle run in `dir`, as `helmholtz eval` computes it
/// for a file: (rows, mean, total).
#[pyfunction]
#[pyo3(signature = (dir, x, name = "data".to_string(), n_threads = None))]
fn mle_eval(
    py: Python<'_>,
    dir: PathBuf,
    x: &Bound<'_, PyAny>,
    name: String,
    n_threads: Option<usize>,
) -> PyResult<(usize, f64, f64)> {
    let x = points::<f64>(x, &name, "float64")?;
    let rows = x.columns().transpose();
    let nll = detached(py, n_threads, || eval_values(&dir, rows, Path::new(&name)))?.py_err()?;
    Ok((nll.rows, nll.mean, nll.total))
}

/// `n` draws from the fit of the mle run in `dir` from `seed`, in the data's units: a float64
/// array (n, d) (counts in one column), the draws `helmholtz sample` writes.
#[pyfunction]
#[pyo3(signature = (dir, n, seed = 0))]
fn mle_sample<'py>(
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

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mle_fit, m)?)?;
    m.add_function(wrap_pyfunction!(mle_resume, m)?)?;
    m.add_function(wrap_pyfunction!(mle_eval, m)?)?;
    m.add_function(wrap_pyfunction!(mle_sample, m)?)?;
    Ok(())
}
