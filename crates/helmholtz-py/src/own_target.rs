//! A user's own target as a Python callable, driven by the library's SNGD
//! (`helmholtz.sngd.minimize`): `fun(params) -> (value, gradient)` with params and gradient
//! dicts of numpy arrays in the coordinates of a surrogate
//! ([`helmholtz::dist::surrogate_coordinates`]): a Gaussian's `mean` and `covariance`, or a
//! Gamma's `shape` and `rate`, each with optional auxiliary `lambda`. [`SngdMean`] takes the
//! steps; each evaluation calls back into Python with the GIL held for the call only. An
//! exception raised by `fun` stops the fit and is raised again as it is; a gradient of the
//! wrong keys or shapes is a `ValueError` naming the key.

use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use faer::Mat;
use helmholtz::dist::exponential_family::{ExponentialFamily, Gamma};
use helmholtz::dist::surrogate::{GaussianMixture, Gaussians, MeanCoordinates, Surrogated};
use helmholtz::dist::surrogate_coordinates::{
    GammaCoordinates, GammaGradient, GaussianCoordinates, GaussianGradient,
};
use helmholtz::objectives::targets::{Target, check_gradient};
use helmholtz::optim::sngd::{LineSearch, Method, SngdMean};
use numpy::{PyArrayMethods, PyUntypedArrayMethods, ToPyArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::tuple;
use crate::errors::{IntoPy, internal, to_py};
use crate::hm::json_to_py;
use crate::threads::detached_until_signal;

/// A point in a surrogate's coordinates as Python sees it: a dict of numpy arrays, its
/// gradient read back from a dict, and a flat view for gradient checks.
trait Coordinates: Surrogated<Gradient: Send> + Clone + Send + Sync + 'static {
    /// The params dict.
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>>;
    /// The gradient dict `g` at this point, every key checked.
    fn gradient_from_py(&self, g: &Bound<'_, PyAny>) -> PyResult<Self::Gradient>;
    /// The coordinates as a flat vector (a symmetric matrix by its upper triangle), with names.
    fn flatten(&self) -> (Vec<f64>, Vec<String>);
    /// The point at flat coordinates `x` (the layout of [`Coordinates::flatten`]).
    fn unflatten(&self, x: &[f64]) -> Self;
    /// A gradient in the flat coordinates (an off-diagonal entry moves both (j, k) and (k, j)).
    fn flatten_gradient(g: &Self::Gradient) -> Vec<f64>;
}

/// `value` as a float64 array of `shape`, or a ValueError naming `fun`'s `what[key]`.
fn array_of(
    value: &Bound<'_, PyAny>,
    what: &str,
    key: &str,
    shape: &[usize],
) -> PyResult<Vec<f64>> {
    let numpy = value.py().import("numpy")?;
    // numpy.array keeps a 0-d shape (ascontiguousarray would make it (1,)).
    let kwargs = pyo3::types::PyDict::new(value.py());
    kwargs.set_item("dtype", "float64")?;
    kwargs.set_item("order", "C")?;
    let array = numpy
        .call_method("array", (value,), Some(&kwargs))
        .map_err(|e| {
            PyValueError::new_err(format!("{what}[{key:?}] cannot be read as numbers: {e}"))
        })?;
    let array = array.cast_into::<numpy::PyArrayDyn<f64>>().map_err(|_| {
        PyValueError::new_err(format!("{what}[{key:?}] is not an array of numbers"))
    })?;
    if array.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "{what}[{key:?}] has shape {}, expected {}{}",
            tuple(array.shape()),
            tuple(shape),
            if shape.is_empty() { " (a number)" } else { "" }
        )));
    }
    let values = array.readonly().as_slice()?.to_vec();
    Ok(values)
}

/// Every key of the dict `g` is one of `keys`, and each of those is present (an empty λ may be
/// left out).
fn check_keys(g: &Bound<'_, PyAny>, what: &str, keys: &[&str], optional: &[&str]) -> PyResult<()> {
    let mapping = g.cast::<PyDict>().map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a dict with keys {}; got {}",
            keys.join(", "),
            g.get_type().name().map_or("?".into(), |n| n.to_string())
        ))
    })?;
    for key in mapping.keys() {
        let key: String = key.extract().unwrap_or_else(|_| "?".into());
        if !keys.contains(&key.as_str()) {
            return Err(PyValueError::new_err(format!(
                "{what} has the key {key:?}, which is not a parameter (the keys are {})",
                keys.join(", ")
            )));
        }
    }
    for key in keys {
        if !optional.contains(key) && !mapping.contains(key)? {
            return Err(PyValueError::new_err(format!(
                "{what} has no key {key:?} (the keys are {})",
                keys.join(", ")
            )));
        }
    }
    Ok(())
}

/// λ from the dict `g` (absent or empty when there is none).
fn lambda_from(g: &Bound<'_, PyAny>, what: &str, k: usize) -> PyResult<Vec<f64>> {
    let dict = g.cast::<PyDict>()?;
    match dict.get_item("lambda")? {
        Some(value) => array_of(&value, what, "lambda", &[k]),
        None if k == 0 => Ok(Vec::new()),
        None => Err(PyValueError::new_err(format!(
            "{what} has no key \"lambda\" ({k} auxiliary parameters)"
        ))),
    }
}

fn optional_lambda(k: usize) -> &'static [&'static str] {
    if k == 0 { &["lambda"] } else { &[] }
}

impl Coordinates for GaussianCoordinates {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = self.mean.len();
        let out = PyDict::new(py);
        out.set_item("mean", self.mean.to_pyarray(py))?;
        let covariance =
            numpy::ndarray::Array2::from_shape_fn((d, d), |(r, c)| self.covariance[(r, c)]);
        out.set_item("covariance", covariance.to_pyarray(py))?;
        if !self.lambda.is_empty() {
            out.set_item("lambda", self.lambda.to_pyarray(py))?;
        }
        Ok(out)
    }

    fn gradient_from_py(&self, g: &Bound<'_, PyAny>) -> PyResult<GaussianGradient> {
        let (d, k) = (self.mean.len(), self.lambda.len());
        let what = "fun's gradient";
        check_keys(
            g,
            what,
            &["mean", "covariance", "lambda"],
            optional_lambda(k),
        )?;
        let dict = g.cast::<PyDict>()?;
        let item = |key: &str| -> PyResult<Bound<'_, PyAny>> {
            dict.get_item(key)?
                .ok_or_else(|| PyValueError::new_err(format!("{what} has no key {key:?}")))
        };
        let mean = array_of(&item("mean")?, what, "mean", &[d])?;
        let covariance = array_of(&item("covariance")?, what, "covariance", &[d, d])?;
        let lambda = lambda_from(g, what, k)?;
        Ok(GaussianGradient {
            mean,
            covariance: Mat::from_fn(d, d, |r, c| covariance[r * d + c]),
            lambda,
        })
    }

    fn flatten(&self) -> (Vec<f64>, Vec<String>) {
        let d = self.mean.len();
        let mut x = self.mean.clone();
        let mut names: Vec<String> = (0..d).map(|i| format!("mean[{i}]")).collect();
        for r in 0..d {
            for c in r..d {
                x.push(self.covariance[(r, c)]);
                names.push(format!("covariance[{r}, {c}]"));
            }
        }
        for (i, v) in self.lambda.iter().enumerate() {
            x.push(*v);
            names.push(format!("lambda[{i}]"));
        }
        (x, names)
    }

    fn unflatten(&self, x: &[f64]) -> Self {
        let d = self.mean.len();
        let mut covariance = Mat::zeros(d, d);
        let mut next = d;
        for r in 0..d {
            for c in r..d {
                covariance[(r, c)] = x[next];
                covariance[(c, r)] = x[next];
                next += 1;
            }
        }
        GaussianCoordinates {
            mean: x[..d].to_vec(),
            covariance,
            lambda: x[next..].to_vec(),
        }
    }

    fn flatten_gradient(g: &GaussianGradient) -> Vec<f64> {
        let d = g.mean.len();
        let mut out = g.mean.clone();
        for r in 0..d {
            for c in r..d {
                out.push(if r == c {
                    g.covariance[(r, r)]
                } else {
                    g.covariance[(r, c)] + g.covariance[(c, r)]
                });
            }
        }
        out.extend(&g.lambda);
        out
    }
}

impl Coordinates for GammaCoordinates {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        out.set_item("shape", self.shape)?;
        out.set_item("rate", self.rate)?;
        if !self.lambda.is_empty() {
            out.set_item("lambda", self.lambda.to_pyarray(py))?;
        }
        Ok(out)
    }

    fn gradient_from_py(&self, g: &Bound<'_, PyAny>) -> PyResult<GammaGradient> {
        let k = self.lambda.len();
        let what = "fun's gradient";
        check_keys(g, what, &["shape", "rate", "lambda"], optional_lambda(k))?;
        let dict = g.cast::<PyDict>()?;
        let number = |key: &str| -> PyResult<f64> {
            let value = dict
                .get_item(key)?
                .ok_or_else(|| PyValueError::new_err(format!("{what} has no key {key:?}")))?;
            Ok(array_of(&value, what, key, &[])?[0])
        };
        Ok(GammaGradient {
            shape: number("shape")?,
            rate: number("rate")?,
            lambda: lambda_from(g, what, k)?,
        })
    }

    fn flatten(&self) -> (Vec<f64>, Vec<String>) {
        let mut x = vec![self.shape, self.rate];
        let mut names = vec!["shape".to_string(), "rate".to_string()];
        for (i, v) in self.lambda.iter().enumerate() {
            x.push(*v);
            names.push(format!("lambda[{i}]"));
        }
        (x, names)
    }

    fn unflatten(&self, x: &[f64]) -> Self {
        GammaCoordinates {
            shape: x[0],
            rate: x[1],
            lambda: x[2..].to_vec(),
        }
    }

    fn flatten_gradient(g: &GammaGradient) -> Vec<f64> {
        let mut out = vec![g.shape, g.rate];
        out.extend(&g.lambda);
        out
    }
}

/// The Python callable as a [`Target`]: each evaluation calls `fun(params)` with the GIL held.
/// The first exception (raised by `fun`, or a malformed return value) is kept and every later
/// evaluation fails at once, so the step ends and the exception is raised as it is.
struct PyTarget<'a, P> {
    fun: &'a Py<PyAny>,
    error: Mutex<Option<PyErr>>,
    calls: AtomicUsize,
    point: PhantomData<fn() -> P>,
}

impl<'a, P: Coordinates> PyTarget<'a, P> {
    fn new(fun: &'a Py<PyAny>) -> Self {
        PyTarget {
            fun,
            error: Mutex::new(None),
            calls: AtomicUsize::new(0),
            point: PhantomData,
        }
    }

    /// The exception that stopped an evaluation, if one did.
    fn take_error(&self) -> Option<PyErr> {
        self.error.lock().ok().and_then(|mut slot| slot.take())
    }

    fn failed(&self) -> bool {
        self.error.lock().map_or(true, |slot| slot.is_some())
    }

    fn fail(&self, error: PyErr) -> helmholtz::Error {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(error);
        }
        helmholtz::Error::InvalidData("the Python target raised an exception".into())
    }

    /// `fun(params)`: the value and the gradient object, unchecked.
    fn call<'py>(&self, py: Python<'py>, q: &P) -> PyResult<(f64, Bound<'py, PyAny>)> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let returned = self.fun.bind(py).call1((q.to_py(py)?,))?;
        let pair = returned
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "fun must return a pair (value, gradient dict); it returned {}",
                    returned
                        .get_type()
                        .name()
                        .map_or("?".into(), |n| n.to_string())
                ))
            })?;
        let value = py
            .import("builtins")?
            .getattr("float")?
            .call1((pair.get_item(0)?,))
            .and_then(|v| v.extract::<f64>())
            .map_err(|e| PyValueError::new_err(format!("fun's value is not a number: {e}")))?;
        Ok((value, pair.get_item(1)?))
    }
}

impl<P: Coordinates> Target for PyTarget<'_, P> {
    type Point = P;
    type Gradient = P::Gradient;

    fn evaluate(&self, q: &P) -> helmholtz::Result<(f64, P::Gradient)> {
        if self.failed() {
            return Err(helmholtz::Error::InvalidData(
                "the Python target raised an exception".into(),
            ));
        }
        Python::attach(|py| {
            let (value, g) = self.call(py, q)?;
            let gradient = q.gradient_from_py(&g)?;
            if !P::flatten_gradient(&gradient).iter().all(|v| v.is_finite()) && value.is_finite() {
                return Err(PyValueError::new_err(format!(
                    "fun's gradient holds a non-finite value where its value is {value}"
                )));
            }
            Ok((value, gradient))
        })
        .map_err(|e| self.fail(e))
    }

    fn value(&self, q: &P) -> helmholtz::Result<f64> {
        if self.failed() {
            return Err(helmholtz::Error::InvalidData(
                "the Python target raised an exception".into(),
            ));
        }
        Python::attach(|py| self.call(py, q).map(|(value, _)| value)).map_err(|e| self.fail(e))
    }
}

/// What ended a minimisation besides its step count.
enum Stopped {
    Python(PyErr),
    Library(helmholtz::Error),
}

/// The result of [`minimize_with`].
struct Minimized<P> {
    point: P,
    value: f64,
    values: Vec<f64>,
    ended: &'static str,
}

/// How steps are taken.
struct Options {
    iterations: usize,
    search: LineSearch,
    lr_lambda: f64,
    quasi_newton: bool,
    tol: Option<f64>,
}

/// SNGD from `start` on the target, `options.iterations` steps
/// unless the objective changes by at most `tol` in a step or `stop` is raised.
fn minimize_with<P: Coordinates>(
    target: &PyTarget<'_, P>,
    start: Start<P>,
    options: &Options,
    progress: Option<&Py<PyAny>>,
    stop: &AtomicBool,
) -> Result<Minimized<P>, Stopped> {
    let library = Stopped::Library;
    let mut method = SngdMean::<P>::new(
        start.surrogate,
        start.point,
        start.lambda,
        options.lr_lambda,
        options.search,
    )
    .map_err(library)?;
    if options.quasi_newton {
        method = method
            .quasi_newton_lambda(options.lr_lambda)
            .map_err(library)?;
    }
    let failed = |e: helmholtz::Error| match target.take_error() {
        Some(py_error) => Stopped::Python(py_error),
        None => Stopped::Library(e),
    };
    let mut values = Vec::with_capacity(options.iterations + 1);
    let mut ended = "completed";
    for t in 0..options.iterations {
        if stop.load(Ordering::SeqCst) {
            ended = "interrupted";
            break;
        }
        let step = method.step(target);
        // An exception raised by fun wins over whatever the step made of it.
        if let Some(py_error) = target.take_error() {
            return Err(Stopped::Python(py_error));
        }
        let step = step.map_err(|e| {
            Stopped::Library(match e {
                helmholtz::Error::Diverged(m) => {
                    helmholtz::Error::Diverged(format!("step {}: {m}", t + 1))
                }
                other => other,
            })
        })?;
        values.push(step.value);
        if let Some(callback) = progress {
            Python::attach(|py| {
                let info = serde_json::json!({"step": t + 1, "value": step.value});
                if let Ok(info) = json_to_py(py, &info) {
                    let _ = callback.call1(py, ("step", info));
                }
            });
        }
        if let Some(tol) = options.tol {
            let now = match step.searched {
                Some(v) => v,
                None => target
                    .value(&method.distribution().map_err(failed)?)
                    .map_err(failed)?,
            };
            if (step.value - now).abs() <= tol {
                ended = "converged";
                break;
            }
        }
    }
    let point = method.distribution().map_err(failed)?;
    let value = target.value(&point).map_err(failed)?;
    values.push(value);
    Ok(Minimized {
        point,
        value,
        values,
        ended,
    })
}

/// The line search of `search` ("decrease", "backtracking", "grid", "fixed").
fn line_search(search: &str, lr: f64, halvings: usize, grid: usize) -> PyResult<LineSearch> {
    let found = match search {
        "decrease" => LineSearch::Decrease {
            start: lr,
            halvings,
        },
        "backtracking" => LineSearch::Backtracking {
            start: lr,
            halvings,
        },
        "grid" => LineSearch::Grid { points: grid },
        "fixed" => LineSearch::Fixed(lr),
        other => {
            return Err(PyValueError::new_err(format!(
                "search = {other:?}: accepted are \"decrease\", \"backtracking\", \"grid\", \"fixed\""
            )));
        }
    };
    found.validate().py_err()?;
    Ok(found)
}

/// The start of a Gaussian-coordinates fit from the dict `start` (mean, covariance, lambda).
fn gaussian_start(start: &Bound<'_, PyAny>, what: &str) -> PyResult<(Gaussians, Vec<f64>)> {
    check_keys(start, what, &["mean", "covariance", "lambda"], &["lambda"])?;
    let dict = start.cast::<PyDict>()?;
    let mean_value = dict.get_item("mean")?.ok_or_else(|| internal("checked"))?;
    let numpy = start.py().import("numpy")?;
    let d: usize = numpy
        .call_method1("size", (&mean_value,))?
        .extract()
        .unwrap_or(0);
    if d == 0 {
        return Err(PyValueError::new_err(format!(
            "{what}[\"mean\"] is empty: give the mean of at least one dimension"
        )));
    }
    let mean = array_of(&mean_value, what, "mean", &[d])?;
    let cov = array_of(
        &dict
            .get_item("covariance")?
            .ok_or_else(|| internal("checked"))?,
        what,
        "covariance",
        &[d, d],
    )?;
    let covariance = Mat::from_fn(d, d, |r, c| cov[r * d + c]);
    let lambda = match dict.get_item("lambda")? {
        Some(value) => {
            let k: usize = numpy.call_method1("size", (&value,))?.extract()?;
            array_of(&value, what, "lambda", &[k])?
        }
        None => Vec::new(),
    };
    for (key, values) in [("mean", &mean), ("covariance", &cov), ("lambda", &lambda)] {
        if values.iter().any(|v| !v.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "{what}[{key:?}] holds a non-finite value"
            )));
        }
    }
    for r in 0..d {
        for c in 0..r {
            let (a, b) = (covariance[(r, c)], covariance[(c, r)]);
            if (a - b).abs() > 1e-12 * (1.0 + a.abs().max(b.abs())) {
                return Err(PyValueError::new_err(format!(
                    "{what}[\"covariance\"] is not symmetric: entry [{r}, {c}] is {a}, entry [{c}, {r}] is {b}"
                )));
            }
        }
    }
    helmholtz::math::linalg::cholesky(&covariance, &format!("{what}[\"covariance\"]")).py_err()?;
    Ok((Gaussians::single(mean, covariance), lambda))
}

/// The start of a Gamma-coordinates fit from the dict `start` (shape, rate, lambda).
fn gamma_start(start: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<f64>, Vec<f64>)> {
    check_keys(start, what, &["shape", "rate", "lambda"], &["lambda"])?;
    let dict = start.cast::<PyDict>()?;
    let number = |key: &str| -> PyResult<f64> {
        let value = dict.get_item(key)?.ok_or_else(|| internal("checked"))?;
        let v = array_of(&value, what, key, &[])?[0];
        if !(v > 0.0 && v.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "{what}[{key:?}] = {v}: the Gamma's {key} must be a positive number"
            )));
        }
        Ok(v)
    };
    let (shape, rate) = (number("shape")?, number("rate")?);
    let lambda = match dict.get_item("lambda")? {
        Some(value) => {
            let k: usize = start
                .py()
                .import("numpy")?
                .call_method1("size", (&value,))?
                .extract()?;
            array_of(&value, what, "lambda", &[k])?
        }
        None => Vec::new(),
    };
    if lambda.iter().any(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "{what}[\"lambda\"] holds a non-finite value"
        )));
    }
    let mu = Gamma
        .mean_from_natural(&Gamma::natural(shape, rate))
        .py_err()?;
    Ok((mu, lambda))
}

/// Where a minimisation starts: the surrogate, its member and λ.
struct Start<P: Surrogated> {
    surrogate: P::Surrogate,
    point: <P::Surrogate as helmholtz::dist::surrogate::Surrogate>::Point,
    lambda: Vec<f64>,
}

/// Runs [`minimize_with`] off the GIL with Ctrl-C watched, and returns the result dict.
fn run<'py, P: Coordinates>(
    py: Python<'py>,
    fun: &Py<PyAny>,
    start: Start<P>,
    options: Options,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>>
where
    P::Surrogate: Send,
{
    let target = PyTarget::<P>::new(fun);
    let stop = AtomicBool::new(false);
    let (result, signal) = detached_until_signal(py, n_threads, &stop, || {
        minimize_with(&target, start, &options, progress.as_ref(), &stop)
    })?;
    let fitted = match result {
        Ok(fitted) => fitted,
        Err(Stopped::Python(error)) => return Err(error),
        Err(Stopped::Library(error)) => return Err(to_py(error)),
    };
    if let Some(signal) = signal {
        return Err(signal);
    }
    let out = PyDict::new(py);
    out.set_item("params", fitted.point.to_py(py)?)?;
    out.set_item("value", fitted.value)?;
    out.set_item("values", fitted.values.to_pyarray(py))?;
    out.set_item("steps", fitted.values.len() - 1)?;
    out.set_item("evaluations", target.calls.load(Ordering::Relaxed))?;
    out.set_item("ended", fitted.ended)?;
    Ok(out)
}

/// Minimises the Python target `fun(params) -> (value, gradient)` by SNGD in the mean form of
/// the `surrogate` ("gaussian": params `mean`, `covariance`; "gamma": `shape`, `rate`; each
/// with `lambda` when `start` has one) from `start`.
#[pyfunction]
#[pyo3(signature = (fun, surrogate, start, iterations = 100, search = "decrease", lr = 1.0,
    halvings = 20, grid = 100, lr_lambda = None, lambda_step = "adam", tol = None,
    progress = None, n_threads = Some(1)))]
#[allow(clippy::too_many_arguments)]
fn sngd_minimize<'py>(
    py: Python<'py>,
    fun: Py<PyAny>,
    surrogate: &str,
    start: &Bound<'py, PyAny>,
    iterations: usize,
    search: &str,
    lr: f64,
    halvings: usize,
    grid: usize,
    lr_lambda: Option<f64>,
    lambda_step: &str,
    tol: Option<f64>,
    progress: Option<Py<PyAny>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    if !fun.bind(py).is_callable() {
        return Err(PyValueError::new_err(
            "fun must be callable: fun(params) -> (value, gradient dict)",
        ));
    }
    if iterations == 0 {
        return Err(PyValueError::new_err(
            "iterations = 0: give at least 1 step",
        ));
    }
    if let Some(tol) = tol
        && !(tol >= 0.0 && tol.is_finite())
    {
        return Err(PyValueError::new_err(format!(
            "tol = {tol}: give a non-negative number, or None to take every step"
        )));
    }
    let quasi_newton = match lambda_step {
        "adam" => false,
        "quasi-newton" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "lambda_step = {other:?}: accepted are \"adam\" and \"quasi-newton\""
            )));
        }
    };
    let options = Options {
        iterations,
        search: line_search(search, lr, halvings, grid)?,
        lr_lambda: lr_lambda.unwrap_or(if quasi_newton { 1.0 } else { 0.01 }),
        quasi_newton,
        tol,
    };
    helmholtz::optim::check_step_size("lr_lambda", options.lr_lambda).py_err()?;
    match surrogate {
        "gaussian" => {
            let (point, lambda) = gaussian_start(start, "start")?;
            let d = point.means[0].len();
            let start = Start::<GaussianCoordinates> {
                surrogate: GaussianMixture::single(d),
                point,
                lambda,
            };
            run(py, &fun, start, options, progress, n_threads)
        }
        "gamma" => {
            let (mu, lambda) = gamma_start(start, "start")?;
            let start = Start::<GammaCoordinates> {
                surrogate: MeanCoordinates { family: Gamma },
                point: mu,
                lambda,
            };
            run(py, &fun, start, options, progress, n_threads)
        }
        other => Err(PyValueError::new_err(format!(
            "surrogate = {other:?}: accepted are \"gaussian\" (params mean, covariance) and \"gamma\" (params shape, rate)"
        ))),
    }
}

/// Compares the gradient `fun` returns at `params` with central differences of its value (the
/// library's `check_gradient`): a list of (coordinate name, analytic, numeric, error) with
/// error |analytic − numeric| / (1 + |numeric|); an off-diagonal covariance entry moves both
/// (j, k) and (k, j), whose derivative is g_jk + g_kj.
#[pyfunction]
#[pyo3(signature = (fun, surrogate, params, h = 1e-5))]
fn sngd_check_gradient(
    py: Python<'_>,
    fun: Py<PyAny>,
    surrogate: &str,
    params: &Bound<'_, PyAny>,
    h: f64,
) -> PyResult<Vec<(String, f64, f64, f64)>> {
    match surrogate {
        "gaussian" => {
            let (point, lambda) = gaussian_start(params, "params")?;
            let q = GaussianCoordinates::from_surrogate(
                &GaussianMixture::single(point.means[0].len()),
                &point,
                &lambda,
            )
            .py_err()?;
            check_at(py, &fun, q, h)
        }
        "gamma" => {
            let (mu, lambda) = gamma_start(params, "params")?;
            let q =
                GammaCoordinates::from_surrogate(&MeanCoordinates { family: Gamma }, &mu, &lambda)
                    .py_err()?;
            check_at(py, &fun, q, h)
        }
        other => Err(PyValueError::new_err(format!(
            "surrogate = {other:?}: accepted are \"gaussian\" and \"gamma\""
        ))),
    }
}

fn check_at<P: Coordinates>(
    _py: Python<'_>,
    fun: &Py<PyAny>,
    q: P,
    h: f64,
) -> PyResult<Vec<(String, f64, f64, f64)>> {
    let target = PyTarget::<P>::new(fun);
    let evaluated = target.evaluate(&q);
    if let Some(error) = target.take_error() {
        return Err(error);
    }
    let (_, g) = evaluated.py_err()?;
    let (x, names) = q.flatten();
    let report = check_gradient(
        |x| target.value(&q.unflatten(x)),
        &x,
        &P::flatten_gradient(&g),
        h,
    );
    if let Some(error) = target.take_error() {
        return Err(error);
    }
    let report = report.py_err()?;
    Ok(names
        .into_iter()
        .zip(report.coordinates)
        .map(|(name, c)| (name, c.analytic, c.numeric, c.error))
        .collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sngd_minimize, m)?)?;
    m.add_function(wrap_pyfunction!(sngd_check_gradient, m)?)?;
    Ok(())
}
