//! Reading what a run directory holds that Python cannot read by itself: the safetensors
//! checkpoints (config, metrics and summaries are TOML and JSON, read in `helmholtz.runs`).

use numpy::{PyArrayDyn, ToPyArray};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use crate::errors::{IntoPy, internal};
use crate::hm::{PyObserver, json_to_py};
use crate::threads::detached_until_signal;
use helmholtz::run::Observer;

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
    m.add_function(wrap_pyfunction!(config_command, m)?)?;
    m.add_function(wrap_pyfunction!(run_config, m)?)?;
    Ok(())
}

/// Lines of a run's log, sent to `progress("message", {"text": line})`; a failing callback
/// does not stop the run.
pub fn report<'a>(progress: Option<&'a Py<PyAny>>) -> impl FnMut(&str) + 'a {
    move |line: &str| {
        if let Some(callback) = progress {
            Python::attach(|py| {
                let info = serde_json::json!({ "text": line });
                if let Ok(info) = json_to_py(py, &info) {
                    let _ = callback.call1(py, ("message", info));
                }
            });
        }
    }
}

/// Runs `work(lines, stop)` with the GIL released in the pool of `n_threads` threads while the
/// main thread watches for Ctrl-C ([`detached_until_signal`]). Each line the work logs goes to
/// `progress("message", {"text": line})`; an exception from that callback, like the signal,
/// sets `stop`, so the work finishes its step and writes its checkpoint. Returns the work's
/// result and the first exception raised meanwhile (the signal's, else the callback's).
pub fn with_lines_until_signal<T, F>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
    work: F,
) -> PyResult<(T, Option<PyErr>)>
where
    F: FnOnce(&mut dyn FnMut(&str), &AtomicBool) -> T + Send,
    T: Send,
{
    let stop = AtomicBool::new(false);
    let failed: Mutex<Option<PyErr>> = Mutex::new(None);
    let (result, signal) = detached_until_signal(py, n_threads, &stop, || {
        let mut lines = |text: &str| {
            let Some(callback) = progress.as_ref() else {
                return;
            };
            Python::attach(|py| {
                let info = PyDict::new(py);
                let called = info
                    .set_item("text", text)
                    .and_then(|()| callback.call1(py, ("message", info)));
                if let Err(error) = called {
                    let mut slot = failed.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert(error);
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            });
        };
        work(&mut lines, &stop)
    })?;
    let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok((result, signal.or(failed)))
}

/// The `summary.json` of the run in `dir` as a dict.
pub fn read_summary<'py>(py: Python<'py>, dir: &std::path::Path) -> PyResult<Bound<'py, PyAny>> {
    let path = dir.join(helmholtz::run::SUMMARY_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| crate::errors::to_py(helmholtz::Error::io(&path, e)))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A finished run's summary as Python (as its `summary.json`), or the exception of the signal
/// that stopped it (KeyboardInterrupt after Ctrl-C: the checkpoint is written and a resume
/// continues it).
pub fn finished<'py, S: serde::Serialize>(
    py: Python<'py>,
    summary: helmholtz::Result<S>,
    signal: Option<PyErr>,
) -> PyResult<Bound<'py, PyAny>> {
    let summary = summary.py_err()?;
    if let Some(signal) = signal {
        return Err(signal);
    }
    let summary = serde_json::to_value(&summary).map_err(|e| internal(e.to_string()))?;
    json_to_py(py, &summary)
}

/// The command a config's TOML text is meant for ("train", "fit", "mle", "vi", "sparse"), as
/// the command line judges it from its keys; None when nothing tells.
#[pyfunction]
fn config_command(config: &str) -> PyResult<Option<&'static str>> {
    let table: toml::Table = toml::from_str(config)
        .map_err(|e| crate::errors::ConfigError::new_err(format!("not a TOML config: {e}")))?;
    Ok(helmholtz::run::config::config_command(&table).map(|(command, _)| command))
}

/// Runs a config of any kind the library trains (train, fit, mle, vi) into a new run
/// directory `dir`, as `helmholtz COMMAND CONFIG --out DIR --set ...` does, and returns the
/// command. `origin` is the config file (relative data paths resolve against its folder).
/// Lines of the log go to `progress("message", {"text": line})`. Ctrl-C ends the run with a
/// checkpoint and raises KeyboardInterrupt; a diverged run raises DivergedError.
#[pyfunction]
#[pyo3(signature = (config, dir, overrides = Vec::new(), origin = None, progress = None, n_threads = None))]
fn run_config(
    py: Python<'_>,
    config: &str,
    dir: std::path::PathBuf,
    overrides: Vec<String>,
    origin: Option<std::path::PathBuf>,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
) -> PyResult<&'static str> {
    use helmholtz::Error;
    let command = config_command(config)?.ok_or_else(|| {
        crate::errors::ConfigError::new_err(
            "cannot tell which command this config is for (train, fit, mle, vi); see the configs/ folder for each kind",
        )
    })?;
    let origin = origin.unwrap_or_else(|| std::path::PathBuf::from("<config>"));
    let stop = AtomicBool::new(false);
    let error = Mutex::new(None);
    let (result, signal) = detached_until_signal(py, n_threads, &stop, || {
        let mut observer = PyObserver::new(progress.as_ref(), &stop, &error);
        let mut say = |line: &str| observer.message(line);
        match command {
            "train" => {
                let config = helmholtz::run::Config::parse(config, &overrides, &origin)?;
                let mut run = helmholtz::run::Run::create(config, &dir)?;
                let mut trainer_observer = PyObserver::new(progress.as_ref(), &stop, &error);
                let outcome = run.train(&mut trainer_observer, &stop)?;
                run.finish(&outcome, true, &mut say)?;
                match outcome {
                    helmholtz::run::Outcome::Diverged(message) => Err(Error::Diverged(message)),
                    _ => Ok(()),
                }
            }
            "mle" => {
                let config = helmholtz::run::mle::MleConfig::parse(config, &overrides, &origin)?;
                helmholtz::run::mle::run_mle(&config, &dir, &mut say, &stop).map(|_| ())
            }
            "vi" => {
                let config = helmholtz::run::vi::ViConfig::parse(config, &overrides, &origin)?;
                helmholtz::run::vi::run_vi(&config, &dir, &mut say, &stop).map(|_| ())
            }
            "fit" => {
                let config = helmholtz::run::fit::FitConfig::parse(config, &overrides, &origin)?;
                helmholtz::run::fit::run_fit_until(&config, &dir, &mut say, &stop).map(|_| ())
            }
            other => Err(Error::Config(format!(
                "this config is for `helmholtz {other}`; from Python, train, fit, mle and vi configs run (use the command line for {other})"
            ))),
        }
    })?;
    let raised = error
        .into_inner()
        .expect("the error slot is never poisoned");
    if let Some(error) = signal.or(raised) {
        return Err(error);
    }
    result.py_err()?;
    Ok(command)
}
