//! `helmholtz._core`: the thin layer between the `helmholtz` Python package
//! (`python/helmholtz/`) and the Rust library.
//!
//! * [`convert`]: numpy ↔ library. A C-contiguous float32 array of shape (n, d) is the
//!   library's column-major d × n matrix and is read in place; other dtypes and orders are
//!   copied once; a wrong shape is a `ValueError` that says what was expected.
//! * [`errors`]: the library's errors as Python exceptions (subclasses of `ValueError`,
//!   `OSError`, `RuntimeError`, `MemoryError`) carrying its message; an interrupted run raises
//!   `KeyboardInterrupt` after its checkpoint is written.
//! * [`threads`]: every fit, evaluation and sampling runs with the GIL released, in a private
//!   rayon pool of `n_threads` threads.
//! * the runs ([`hm`]) and the data sets ([`datasets`]);
//! * entropy-sum fits ([`fit`]) and sparse coding ([`sparse`]);
//! * maximum-likelihood fits ([`mle`]), variational inference ([`vi`]) and SNGD on a Python
//!   target ([`own_target`]).

mod convert;
mod datasets;
mod errors;
mod fit;
mod hm;
mod mle;
mod own_target;
mod runs;
mod sparse;
mod threads;
mod vi;

use pyo3::prelude::*;

/// The compiled core of the `helmholtz` package.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    convert::register(m)?;
    datasets::register(m)?;
    runs::register(m)?;
    hm::register(m)?;
    fit::register(m)?;
    sparse::register(m)?;
    mle::register(m)?;
    vi::register(m)?;
    own_target::register(m)?;
    Ok(())
}
