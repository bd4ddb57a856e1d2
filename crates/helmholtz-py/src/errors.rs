//! The library's errors as Python exceptions, each carrying the library's message.
//!
//! | library | Python |
//! |---|---|
//! | `Dimension`, `InvalidData`, `Format` | `DataError(ValueError)` |
//! | `Config` | `ConfigError(ValueError)` |
//! | `Io` | `FileError(OSError)` |
//! | `Diverged` | `DivergedError(RuntimeError)` |
//! | `Checkpoint` | `CheckpointError(RuntimeError)` |
//! | `TooLarge` | `MemoryLimitError(MemoryError)` |
//! | `Interrupted` | `KeyboardInterrupt` (the checkpoint is written) |

use pyo3::exceptions::{
    PyKeyboardInterrupt, PyMemoryError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::{PyErr, create_exception};

create_exception!(
    helmholtz,
    DataError,
    PyValueError,
    "Data of the wrong shape, with non-finite or out-of-range values, or in a bad file format."
);
create_exception!(
    helmholtz,
    ConfigError,
    PyValueError,
    "A hyper-parameter or config value that cannot be used; the message names it."
);
create_exception!(
    helmholtz,
    FileError,
    PyOSError,
    "A file that cannot be read or written; the message names it."
);
create_exception!(
    helmholtz,
    DivergedError,
    PyRuntimeError,
    "Training produced a non-finite objective or parameter; the last good checkpoint is kept."
);
create_exception!(
    helmholtz,
    CheckpointError,
    PyRuntimeError,
    "A run's checkpoint that cannot be read or does not match the model."
);
create_exception!(
    helmholtz,
    MemoryLimitError,
    PyMemoryError,
    "Work refused before allocating because it needs more memory than the machine has."
);

/// The Python exception for a library error.
pub fn to_py(error: helmholtz::Error) -> PyErr {
    use helmholtz::Error as E;
    let message = error.to_string();
    match error {
        E::Dimension(_) | E::InvalidData(_) | E::Format { .. } => DataError::new_err(message),
        E::Config(_) => ConfigError::new_err(message),
        E::Io { .. } => FileError::new_err(message),
        E::Diverged(_) => DivergedError::new_err(message),
        E::Checkpoint(_) => CheckpointError::new_err(message),
        E::TooLarge(_) => MemoryLimitError::new_err(message),
        E::Interrupted(_) => PyKeyboardInterrupt::new_err(message),
    }
}

/// A library result as a Python one.
pub trait IntoPy<T> {
    /// Maps the error with [`to_py`].
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for helmholtz::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// A `RuntimeError` for a failure of the binding itself (not of the library).
pub fn internal(message: impl Into<String>) -> PyErr {
    PyRuntimeError::new_err(message.into())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("FileError", py.get_type::<FileError>())?;
    m.add("DivergedError", py.get_type::<DivergedError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("MemoryLimitError", py.get_type::<MemoryLimitError>())?;
    Ok(())
}
