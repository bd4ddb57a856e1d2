//! `HmRun`: a Helmholtz-machine run directory driven from Python, the one the command line
//! makes (`helmholtz train`), so that either side resumes the other's run bit for bit.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use helmholtz::eval::{IsConfig, importance_log_likelihood};
use helmholtz::math::rng::{Stream, ids};
use helmholtz::models::{HelmholtzMachine, Pass};
use helmholtz::run::{Config, EpochRecord, Observer, Outcome, Run, StepRecord, TrainState};
use numpy::{PyArray1, PyArray2, ToPyArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::points;
use crate::errors::{DivergedError, IntoPy, internal};
use crate::runs::tensor_to_numpy;
use crate::threads::{detached, detached_until_signal};

/// A Helmholtz-machine run bound to its directory (locked while open).
#[pyclass(module = "helmholtz._core", name = "HmRun")]
pub struct HmRun {
    run: Option<Run>,
}

impl HmRun {
    fn run(&self) -> PyResult<&Run> {
        self.run
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("this run was closed"))
    }

    fn run_mut(&mut self) -> PyResult<&mut Run> {
        self.run
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this run was closed"))
    }
}

/// Reports progress to a Python callable `progress(event, info)`; an exception the callable
/// raises stops training as Ctrl-C does (the trainer finishes the batch and writes the
/// checkpoint) and is raised after.
pub(crate) struct PyObserver<'a> {
    progress: Option<&'a Py<PyAny>>,
    stop: &'a AtomicBool,
    /// The first Python exception raised during training (a signal, or the callback's own).
    error: &'a Mutex<Option<PyErr>>,
    last_report: Instant,
}

impl<'a> PyObserver<'a> {
    /// Reports to `progress`; stops with `stop` and keeps the first exception in `error`.
    pub(crate) fn new(
        progress: Option<&'a Py<PyAny>>,
        stop: &'a AtomicBool,
        error: &'a Mutex<Option<PyErr>>,
    ) -> Self {
        PyObserver {
            progress,
            stop,
            error,
            last_report: Instant::now(),
        }
    }

    fn call(&mut self, event: &str, info: serde_json::Value) {
        let Some(callback) = self.progress else {
            return;
        };
        Python::attach(|py| {
            let result = json_to_py(py, &info).and_then(|info| callback.call1(py, (event, info)));
            if let Err(error) = result {
                self.fail(error);
            }
        });
    }

    fn fail(&mut self, error: PyErr) {
        let mut slot = self.error.lock().expect("the error slot is never poisoned");
        if slot.is_none() {
            *slot = Some(error);
        }
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Observer<HelmholtzMachine> for PyObserver<'_> {
    fn on_epoch_start(&mut self, epoch: usize, n_batches: usize, first_batch: usize) {
        self.call(
            "epoch_start",
            serde_json::json!({"epoch": epoch, "n_batches": n_batches, "first_batch": first_batch}),
        );
    }

    fn on_step(&mut self, record: &StepRecord, _: &TrainState) -> helmholtz::run::Control {
        if self.last_report.elapsed() >= Duration::from_millis(100)
            || record.batch + 1 == record.n_batches
        {
            self.last_report = Instant::now();
            self.call(
                "step",
                serde_json::json!({"epoch": record.epoch, "batch": record.batch,
                    "n_batches": record.n_batches, "step": record.step,
                    "bound": record.bound_mean, "points_per_s": record.points_per_s}),
            );
        }
        helmholtz::run::Control::Continue
    }

    fn on_epoch(
        &mut self,
        _: &HelmholtzMachine,
        record: &mut EpochRecord,
        _: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> helmholtz::Result<helmholtz::run::Control> {
        let info = serde_json::to_value(&*record).unwrap_or(serde_json::Value::Null);
        self.call("epoch", info);
        Ok(helmholtz::run::Control::Continue)
    }

    fn message(&mut self, text: &str) {
        self.call("message", serde_json::json!({ "text": text }));
    }
}

/// A JSON value as the Python object `json.loads` would give.
pub fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| internal(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

#[pymethods]
impl HmRun {
    /// A new run in `dir` (which must not exist or be empty) from a config's TOML text, on the
    /// points of `train` (and `valid`, `test`): (n, d) arrays, stored in the run as NPY.
    #[staticmethod]
    #[pyo3(signature = (config, dir, train, valid = None, test = None, n_threads = None))]
    fn create(
        py: Python<'_>,
        config: &str,
        dir: PathBuf,
        train: &Bound<'_, PyAny>,
        valid: Option<&Bound<'_, PyAny>>,
        test: Option<&Bound<'_, PyAny>>,
        n_threads: Option<usize>,
    ) -> PyResult<Self> {
        // The data section names the files the run will write (Run::create_with_arrays).
        let absolute = std::path::absolute(&dir).map_err(|e| internal(e.to_string()))?;
        let file = |name: &str| {
            let path = absolute.join("data").join(format!("{name}.npy"));
            format!(
                "data.{name}=\"{}\"",
                path.display().to_string().replace('\\', "/")
            )
        };
        let config = Config::parse(config, &[file("train")], Path::new("<estimator>")).py_err()?;
        let train = points::<f32>(train, "X", "float32")?;
        let valid = valid
            .map(|v| points::<f32>(v, "X_valid", "float32"))
            .transpose()?;
        let test = test
            .map(|t| points::<f32>(t, "X_test", "float32"))
            .transpose()?;
        let (train, valid, test) = (
            train.columns(),
            valid.as_ref().map(|v| v.columns()),
            test.as_ref().map(|t| t.columns()),
        );
        let run = detached(py, n_threads, || {
            Run::create_with_arrays(config, &dir, train, valid, test)
        })?
        .py_err()?;
        Ok(HmRun { run: Some(run) })
    }

    /// A new run in `dir` from a config file's TOML text whose data section names its data
    /// (a built-in source or files), as `helmholtz train CONFIG --out DIR`.
    #[staticmethod]
    #[pyo3(signature = (config, dir, overrides = Vec::new(), origin = None))]
    fn create_from_config(
        py: Python<'_>,
        config: &str,
        dir: PathBuf,
        overrides: Vec<String>,
        origin: Option<PathBuf>,
    ) -> PyResult<Self> {
        let origin = origin.unwrap_or_else(|| PathBuf::from("<config>"));
        let config = Config::parse(config, &overrides, &origin).py_err()?;
        let run = py.detach(|| Run::create(config, &dir)).py_err()?;
        Ok(HmRun { run: Some(run) })
    }

    /// Continues the run in `dir` from its last checkpoint, with `overrides` such as
    /// "train.epochs=20" (as `helmholtz train --resume DIR --set ...`).
    #[staticmethod]
    #[pyo3(signature = (dir, overrides = Vec::new()))]
    fn resume(py: Python<'_>, dir: PathBuf, overrides: Vec<String>) -> PyResult<Self> {
        let run = py.detach(|| Run::resume(&dir, &overrides)).py_err()?;
        Ok(HmRun { run: Some(run) })
    }

    /// Opens the run in `dir` for evaluation and sampling (last checkpoint, no lock).
    #[staticmethod]
    fn open(py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        let run = py.detach(|| Run::open(&dir)).py_err()?;
        Ok(HmRun { run: Some(run) })
    }

    /// Trains to the configured epochs (or early stopping), then estimates the test NLL with
    /// `eval.final_k` and writes the summary, as `helmholtz train` does. Returns (outcome, test
    /// NLL or None). Ctrl-C finishes the batch, writes the checkpoint and raises
    /// KeyboardInterrupt; a diverged run raises DivergedError and keeps its last good
    /// checkpoint.
    #[pyo3(signature = (progress = None, n_threads = None))]
    fn train(
        &mut self,
        py: Python<'_>,
        progress: Option<Py<PyAny>>,
        n_threads: Option<usize>,
    ) -> PyResult<(String, Option<f64>)> {
        let run = self.run_mut()?;
        let stop = AtomicBool::new(false);
        let error = Mutex::new(None);
        let (result, signal) = detached_until_signal(py, n_threads, &stop, || {
            let mut observer = PyObserver {
                progress: progress.as_ref(),
                stop: &stop,
                error: &error,
                last_report: Instant::now(),
            };
            let step_before = run.state.step;
            let had_summary = run.dir.join(helmholtz::run::SUMMARY_FILE).exists();
            let outcome = run.train(&mut observer, &stop)?;
            let stepped = run.state.step != step_before || !had_summary;
            let nll = run.finish(&outcome, stepped, &mut |line| observer.message(line))?;
            Ok::<_, helmholtz::Error>((outcome, nll))
        })?;
        let raised = error
            .into_inner()
            .expect("the error slot is never poisoned");
        if let Some(error) = signal.or(raised) {
            // The checkpoint is written: a resume continues from it.
            result.py_err()?;
            return Err(error);
        }
        let (outcome, nll) = result.py_err()?;
        match outcome {
            Outcome::Diverged(message) => Err(DivergedError::new_err(format!(
                "training diverged: {message}; the run keeps its last good checkpoint"
            ))),
            outcome => Ok((outcome.name().to_string(), nll)),
        }
    }

    /// The importance-sampling estimate of log p(x) for each row of `x` with `k` samples
    /// (float64 array of n values). The draws of a row depend on (seed, the row's values)
    /// only, so a row gets the same estimate in any batch.
    #[pyo3(signature = (x, k = 100, seed = 0, n_threads = None))]
    fn score_samples<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        k: usize,
        seed: u64,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let run = self.run()?;
        let points = points::<f32>(x, "X", "float32")?;
        check_dim(&run.model, points.d())?;
        let (slice, n) = (points.slice(), points.n());
        let d = points.d();
        let model = &run.model;
        model.check_batch(slice, n).py_err()?;
        let values = detached(py, n_threads, || {
            use rayon::prelude::*;
            slice
                .par_chunks(d)
                .map(|row| {
                    let id = row_id(row);
                    importance_log_likelihood(model, row, 1, id, IsConfig::new(k, seed))
                        .map(|v| v[0])
                })
                .collect::<helmholtz::Result<Vec<f64>>>()
        })?
        .py_err()?;
        Ok(values.to_pyarray(py))
    }

    /// `n` draws x ~ p(x) as a binary float32 array (n, d), from `seed`.
    #[pyo3(signature = (n, seed = 0))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let run = self.run()?;
        if n == 0 {
            return Err(PyValueError::new_err("sample: n = 0; give at least 1"));
        }
        let model = &run.model;
        let width: usize = model.sizes.iter().sum();
        helmholtz::memory::check_allocation(
            &format!("drawing {n} samples"),
            helmholtz::memory::bytes_of(&[n, width], 16),
        )
        .py_err()?;
        let x = py.detach(|| {
            let mut pass = Pass::new(&model.sizes, n);
            model.dream(n, false, &mut pass, &mut Stream::new(seed, &[ids::SAMPLE]));
            pass.h[0][..model.x_dim() * n].to_vec()
        });
        let d = model.x_dim();
        let rows = numpy::ndarray::Array2::from_shape_vec((n, d), x)
            .map_err(|e| internal(e.to_string()))?;
        Ok(rows.to_pyarray(py))
    }

    /// The posterior means E_q[h_layer | x] of each row of `x` (layer 1 … L): exact for the
    /// first layer, an average of `k` draws from q for deeper ones (the draws of a row depend
    /// on (seed, its values) only).
    #[pyo3(signature = (x, layer = 1, k = 100, seed = 0, n_threads = None))]
    fn transform<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        layer: usize,
        k: usize,
        seed: u64,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let run = self.run()?;
        let model = &run.model;
        let levels = model.sizes.len() - 1;
        if layer == 0 || layer > levels {
            return Err(PyValueError::new_err(format!(
                "layer = {layer}: the model has hidden layers 1 to {levels}"
            )));
        }
        if k == 0 {
            return Err(PyValueError::new_err("k = 0: give at least 1 sample"));
        }
        let points = points::<f32>(x, "X", "float32")?;
        check_dim(model, points.d())?;
        let (slice, n) = (points.slice(), points.n());
        model.check_batch(slice, n).py_err()?;
        let width = model.sizes[layer];
        let means = detached(py, n_threads, || {
            posterior_means(model, slice, n, layer, k, seed)
        })?;
        let rows = numpy::ndarray::Array2::from_shape_vec((n, width), means)
            .map_err(|e| internal(e.to_string()))?;
        Ok(rows.to_pyarray(py))
    }

    /// The ELBO of the rows of `x` and its entropy sum, by Monte Carlo with `samples` draws
    /// from q per point, as a dict (elbo, posterior, prior, observable, intermediate, gap).
    #[pyo3(signature = (x, samples = 100, n_threads = None))]
    fn entropy_sum<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        samples: usize,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let run = self.run()?;
        let points = points::<f32>(x, "X", "float32")?;
        check_dim(&run.model, points.d())?;
        let (slice, n) = (points.slice(), points.n());
        let seed = run.config.seed ^ 0xE17B_0501;
        let sum = detached(py, n_threads, || {
            helmholtz::eval::entropy::hm_entropy_sum(&run.model, slice, n, samples, seed)
        })?
        .py_err()?;
        let mut value = serde_json::to_value(&sum).map_err(|e| internal(e.to_string()))?;
        value["gap"] = serde_json::json!(sum.gap());
        value["intermediate"] = serde_json::json!(sum.intermediate);
        let violation = run.conditions().violation();
        value["identity_applies"] = serde_json::json!(violation.is_none());
        value["why"] = serde_json::json!(violation.unwrap_or_else(|| {
            "the generative model follows the ELBO's gradient and its layers are exponential families with a constant base measure: at a stationary point the gap is zero".into()
        }));
        json_to_py(py, &value)
    }

    /// The model's parameters by name (float32 arrays; matrices (rows, cols)).
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let run = self.run()?;
        let out = PyDict::new(py);
        for tensor in &run.model.params.tensors {
            out.set_item(
                &tensor.name,
                tensor_to_numpy(py, &tensor.shape, &tensor.data)?,
            )?;
        }
        Ok(out)
    }

    /// The run directory.
    #[getter]
    fn dir(&self) -> PyResult<PathBuf> {
        Ok(self.run()?.dir.path().to_path_buf())
    }

    /// Epochs done.
    #[getter]
    fn epoch(&self) -> PyResult<usize> {
        Ok(self.run()?.state.epoch)
    }

    /// Updates done.
    #[getter]
    fn step(&self) -> PyResult<u64> {
        Ok(self.run()?.state.step)
    }

    /// Layer sizes, data first.
    #[getter]
    fn sizes(&self) -> PyResult<Vec<usize>> {
        Ok(self.run()?.model.sizes.clone())
    }

    /// What a resume's overrides changed.
    #[getter]
    fn changes(&self) -> PyResult<Vec<String>> {
        Ok(self.run()?.changes.clone())
    }

    /// Releases the run (and its lock).
    fn close(&mut self) {
        self.run = None;
    }
}

/// A stream index from a row's values (FNV-1a over the bits, 48 bits so that it stays a
/// valid index).
fn row_id(row: &[f32]) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for value in row {
        for byte in value.to_bits().to_le_bytes() {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (hash >> 16) as usize
}

/// The rows of `x` binarised with `seed`: each value v becomes 1 with probability v, from a
/// stream named by (seed, the row's values), so that a row is binarised the same way in any
/// batch.
#[pyfunction]
fn binarize_rows<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    seed: u64,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let points = points::<f32>(x, "X", "float32")?;
    let (d, n) = (points.d(), points.n());
    if let Some(v) = points.slice().iter().find(|v| !v.is_finite()) {
        return Err(crate::errors::DataError::new_err(format!(
            "X holds the non-finite value {v}"
        )));
    }
    let slice = points.slice();
    let binary: Vec<f32> = py.detach(|| {
        slice
            .chunks(d)
            .flat_map(|row| {
                let mut rng = Stream::new(seed, &[ids::BINARIZE, row_id(row) as u64]);
                let mut uniforms = vec![0.0f32; d];
                rng.fill_uniform_f32(&mut uniforms);
                row.iter()
                    .zip(uniforms)
                    .map(|(&v, u)| if u < v { 1.0 } else { 0.0 })
                    .collect::<Vec<f32>>()
            })
            .collect()
    });
    let rows = numpy::ndarray::Array2::from_shape_vec((n, d), binary)
        .map_err(|e| internal(e.to_string()))?;
    Ok(rows.to_pyarray(py))
}

fn check_dim(model: &HelmholtzMachine, d: usize) -> PyResult<()> {
    if d != model.x_dim() {
        return Err(crate::errors::DataError::new_err(format!(
            "X has {d} features; the model was trained on {}",
            model.x_dim()
        )));
    }
    Ok(())
}

/// E_q[h_layer | x] for each of the n points (columns of `x`), rows of `sizes[layer]` values:
/// σ of the first recognition layer's preactivation for layer 1, else the mean of `k` draws
/// from a stream named by (seed, the point's values).
fn posterior_means(
    model: &HelmholtzMachine,
    x: &[f32],
    n: usize,
    layer: usize,
    k: usize,
    seed: u64,
) -> Vec<f32> {
    use rayon::prelude::*;
    let d = model.x_dim();
    let width = model.sizes[layer];
    let mut out = vec![0.0f32; n * width];
    out.par_chunks_mut(width).enumerate().for_each_init(
        || (Pass::new(&model.sizes, k), vec![0.0f32; model.sizes[1]]),
        |(pass, q0), (i, row)| {
            let point = &x[i * d..(i + 1) * d];
            let mut rng = Stream::new(seed, &[ids::EVAL, row_id(point) as u64]);
            model.wake(point, 1, k, q0, pass, &mut rng);
            if layer == 1 {
                for (value, a) in row.iter_mut().zip(q0.iter()) {
                    *value = 1.0 / (1.0 + (-a).exp());
                }
            } else {
                let h = &pass.h[layer];
                for (j, value) in row.iter_mut().enumerate() {
                    let sum: f64 = (0..k).map(|s| h[s * width + j] as f64).sum();
                    *value = (sum / k as f64) as f32;
                }
            }
        },
    );
    out
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<HmRun>()?;
    m.add_function(wrap_pyfunction!(binarize_rows, m)?)?;
    Ok(())
}
