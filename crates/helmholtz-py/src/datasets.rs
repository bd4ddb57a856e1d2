//! The library's data sets as numpy arrays (points as rows).

use numpy::{PyArray1, PyArray2, ToPyArray};
use pyo3::prelude::*;

use crate::convert::columns_to_numpy;

/// Points and their labels.
type Labelled<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<i64>>);

/// The embedded 8 × 8 digits (1,797 images, values in [0, 1]) and their labels 0–9: no file is
/// read.
#[pyfunction]
fn load_digits<'py>(py: Python<'py>) -> PyResult<Labelled<'py>> {
    let digits = helmholtz::data::embedded::embedded_digits();
    let labels: Vec<i64> = digits
        .labels
        .as_ref()
        .map(|l| l.iter().map(|&v| v as i64).collect())
        .unwrap_or_default();
    Ok((
        columns_to_numpy(py, digits.x.as_ref()),
        labels.to_pyarray(py),
    ))
}

/// `n` bars images of side × side pixels (sparse coding's bars: Laplace latents, Gaussian
/// noise of standard deviation `noise`): (X (n, side²), fields (2·side, side²), latents
/// (n, 2·side)).
#[pyfunction]
#[pyo3(signature = (side = 5, n = 1000, noise = 0.1, seed = 0))]
#[allow(clippy::type_complexity)]
fn make_bars<'py>(
    py: Python<'py>,
    side: usize,
    n: usize,
    noise: f64,
    seed: u64,
) -> PyResult<(
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<f64>>,
)> {
    if side == 0 || n == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "make_bars: side = {side} and n = {n} must both be at least 1"
        )));
    }
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "make_bars: noise = {noise} must be a finite number ≥ 0"
        )));
    }
    helmholtz::memory::check_allocation(
        &format!("{n} bars images"),
        helmholtz::memory::bytes_of(&[n, side * side + 2 * side], 16),
    )
    .map_err(crate::errors::to_py)?;
    let bars = helmholtz::data::synthetic::bars(side, n, noise, seed);
    Ok((
        columns_to_numpy(py, bars.x.as_ref()),
        columns_to_numpy(py, bars.fields.as_ref()),
        columns_to_numpy(py, bars.latents.as_ref()),
    ))
}

/// `n` binary 3 × 3 line images (the Helmholtz-machine toy of the papers), drawn from `seed`.
#[pyfunction]
#[pyo3(signature = (n = 1000, seed = 0))]
fn make_lines3x3(py: Python<'_>, n: usize, seed: u64) -> PyResult<Bound<'_, PyArray2<f32>>> {
    if n == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "make_lines3x3: n = 0; give at least 1",
        ));
    }
    let set = helmholtz::data::lines3x3(n, seed);
    Ok(columns_to_numpy(py, set.x.as_ref()))
}

/// The MNIST images (values in [0, 1]) and labels of one split ("train" or "test") from the
/// IDX files in `path` (as `helmholtz data fetch mnist` writes them).
#[pyfunction]
#[pyo3(signature = (path, split = "train"))]
fn load_mnist<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    split: &str,
) -> PyResult<Labelled<'py>> {
    let splits = py
        .detach(|| helmholtz::data::load_mnist_dir(&path))
        .map_err(crate::errors::to_py)?;
    let set = match split {
        "train" => splits.0,
        "test" => splits.1,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "load_mnist: split = {other:?}; accepted: \"train\", \"test\""
            )));
        }
    };
    let labels: Vec<i64> = set
        .labels
        .as_ref()
        .map(|l| l.iter().map(|&v| v as i64).collect())
        .unwrap_or_default();
    Ok((columns_to_numpy(py, set.x.as_ref()), labels.to_pyarray(py)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_digits, m)?)?;
    m.add_function(wrap_pyfunction!(make_bars, m)?)?;
    m.add_function(wrap_pyfunction!(make_lines3x3, m)?)?;
    m.add_function(wrap_pyfunction!(load_mnist, m)?)?;
    Ok(())
}
