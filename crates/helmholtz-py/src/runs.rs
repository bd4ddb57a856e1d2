//! Reading what a run directory holds that Python cannot read by itself: the safetensors
//! checkpoints (config, metrics and summaries are TOML and JSON, read in `helmholtz.runs`).

use numpy::{PyArrayDyn, ToPyArray};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::IntoPy;

/// Every tensor of a safetensors file as a numpy float32 array, by name. Matrices are stored
/// (rows, cols) column-major and come back with that shape.
#[pyfunction]
fn read_tensors<'py>(py: Python<'py>, path: std::path::PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let set = helmholtz::run::checkpoint::read_all_tensors(&path).py_err()?;
    let out = PyDict::new(py);
    for tensor in &set.tensors {
        out.set_item(
            &tensor.name,
            tensor_to_numpy(py, &tensor.shape, &tensor.data)?,
        )?;
    }
    Ok(out)
}

/// A column-major tensor as a numpy array of its shape.
pub fn tensor_to_numpy<'py>(
    py: Python<'py>,
    shape: &[usize],
    data: &[f32],
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    use numpy::ndarray::{ArrayD, IxDyn, ShapeBuilder};
    let array = ArrayD::from_shape_vec(IxDyn(shape).f(), data.to_vec()).map_err(|e| {
        crate::errors::internal(format!(
            "a tensor of shape {shape:?} and {} values: {e}",
            data.len()
        ))
    })?;
    Ok(array.to_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_tensors, m)?)?;
    Ok(())
}
