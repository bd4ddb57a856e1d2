//! numpy ↔ library. Points arrive as (n_samples, n_features) arrays, one point per row; the
//! library holds a batch as a column-major d × n matrix, one point per column, which is the same
//! memory as a C-contiguous (n, d) array. Such an array of float32 is read in place (no copy);
//! any other dtype or memory order is copied once by `numpy.ascontiguousarray`. A wrong number
//! of dimensions or an empty axis is a `ValueError` that says what was expected.

use faer::MatRef;
use numpy::{
    Element, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods, ToPyArray,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A (n, d) C-contiguous array of `T` borrowed from Python: the library's d × n columns.
pub struct Points<'py, T: Element> {
    array: PyReadonlyArray2<'py, T>,
}

impl<'py, T: Element> Points<'py, T> {
    /// n points.
    pub fn n(&self) -> usize {
        self.array.shape()[0]
    }

    /// d features.
    pub fn d(&self) -> usize {
        self.array.shape()[1]
    }

    /// The values, point after point.
    pub fn slice(&self) -> &[T] {
        self.array
            .as_slice()
            .expect("the array was made C-contiguous")
    }

    /// The d × n column-major view the library reads (no copy).
    pub fn columns(&self) -> MatRef<'_, T> {
        MatRef::from_column_major_slice(self.slice(), self.d(), self.n())
    }
}

/// `x` as points of dtype `T` ("float32" or "float64"): in place when it already is a
/// C-contiguous 2-D array of `T`, else copied once. `name` names the argument in errors.
pub fn points<'py, T: Element>(
    x: &Bound<'py, PyAny>,
    name: &str,
    dtype: &str,
) -> PyResult<Points<'py, T>> {
    let py = x.py();
    let array = match x.cast::<PyArray2<T>>() {
        Ok(array) if array.is_c_contiguous() => array.clone(),
        _ => {
            let numpy = py.import("numpy")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("dtype", dtype)?;
            let converted = numpy
                .call_method("ascontiguousarray", (x,), Some(&kwargs))
                .map_err(|e| {
                    PyValueError::new_err(format!(
                        "{name}: cannot be read as an array of {dtype}: {e}"
                    ))
                })?;
            let shape: Vec<usize> = converted.getattr("shape")?.extract()?;
            if shape.len() != 2 {
                return Err(PyValueError::new_err(format!(
                    "{name}: expected a 2-D array of shape (n_samples, n_features), got an array of shape {}",
                    tuple(&shape)
                )));
            }
            converted.cast_into::<PyArray2<T>>().map_err(|_| {
                PyValueError::new_err(format!("{name}: cannot be read as an array of {dtype}"))
            })?
        }
    };
    let shape = array.shape().to_vec();
    if shape[0] == 0 || shape[1] == 0 {
        return Err(PyValueError::new_err(format!(
            "{name}: expected at least one sample and one feature, got an array of shape {}",
            tuple(&shape)
        )));
    }
    Ok(Points {
        array: array.readonly(),
    })
}

/// Python's spelling of a shape: (5,) or (3, 4).
pub fn tuple(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A d × n column-major matrix as a (n, d) numpy array (one point per row).
pub fn columns_to_numpy<'py, T: Element + Copy>(
    py: Python<'py>,
    x: MatRef<'_, T>,
) -> Bound<'py, PyArray2<T>> {
    let (d, n) = (x.nrows(), x.ncols());
    let rows = numpy::ndarray::Array2::from_shape_fn((n, d), |(i, j)| x[(j, i)]);
    rows.to_pyarray(py)
}

/// The address of the first value the library reads from `x` as float32 points: the array's
/// own buffer when no copy is made (tests compare it with `x.__array_interface__`).
#[pyfunction]
fn points_address(x: &Bound<'_, PyAny>) -> PyResult<usize> {
    let points = points::<f32>(x, "X", "float32")?;
    Ok(points.slice().as_ptr() as usize)
}

/// The sum of every value of `x` read as float32 points, in the library's column order (a test
/// of the layout: the sum of column j is the sum of feature j).
#[pyfunction]
fn feature_sums(x: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    let points = points::<f32>(x, "X", "float32")?;
    let columns = points.columns();
    Ok((0..columns.nrows())
        .map(|i| (0..columns.ncols()).map(|j| columns[(i, j)] as f64).sum())
        .collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(points_address, m)?)?;
    m.add_function(wrap_pyfunction!(feature_sums, m)?)?;
    Ok(())
}
