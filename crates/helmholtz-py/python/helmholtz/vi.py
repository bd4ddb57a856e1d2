"""Variational inference for Bayesian logistic regression: an approximate posterior q(w) over
the weights of p(y | X, w) = Π σ(y_i x_iᵀw) with the prior w ~ N(0, s² I), fitted by maximising
the ELBO over a Gaussian, skew-normal, skew-t or skew-normal-mixture family with SNGD, Adam or
MCEF (docs/VI.md).

Every fit is the run ``helmholtz vi`` makes of a config with these keys and NPY files of the
arrays (stored in the run): ``helmholtz vi --resume DIR`` and ``helmholtz sample DIR`` work on
it, and :func:`resume` continues a command-line run.

    >>> import numpy as np
    >>> from helmholtz import vi
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(150, 2))
    >>> y = rng.random(150) < 1 / (1 + np.exp(-X @ [1.5, -1.0]))
    >>> q = vi.logistic_regression(X, y, family="gaussian", prior_scale=2.0, intercept=False)
    >>> q.mean, q.negative_elbo  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np

from helmholtz import _core
from helmholtz._base import RunDirectory
from helmholtz._core import ConfigError, DataError
from helmholtz._results import (
    RunResult,
    Trace,
    choice,
    config_text,
    finite_rows,
    matrix,
    numbers,
    read_json,
    read_trace,
    seed_of,
)
from helmholtz.runs import _arrays

__all__ = ["FAMILIES", "METHODS", "ViResult", "load", "logistic_regression", "resume"]

#: The variational families (``model.family``); ``"mixture"`` is accepted for the last.
FAMILIES = ("gaussian", "skew-normal", "skew-t", "skew-normal-mixture")
#: The methods (``train.method``); ``mcef`` is for the skew-normal only.
METHODS = ("sngd", "adam-covariance", "adam-precision", "mcef")


def _labels(y: Any, name: str, rows: int, rows_name: str) -> np.ndarray:
    """``y`` as a 1-D float64 array of one label per row (booleans are 0/1)."""
    array = numbers(y, name)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array of labels (0/1 or -1/+1), got shape {array.shape}")
    if array.shape[0] != rows:
        raise DataError(f"{name}: {array.shape[0]} labels for the {rows} rows of {rows_name}")
    return finite_rows(np.ascontiguousarray(array, dtype=np.float64), name)


def _reporter(verbose: int) -> Callable | None:
    if not verbose:
        return None

    def report(event: str, info: dict) -> None:
        if event == "message":
            print(info.get("text", ""), file=sys.stderr)

    return report


class ViResult(RunResult):
    """A fitted posterior q(w): the run directory of ``helmholtz vi`` and what it holds.

    Attributes
    ----------
    run_dir : Path
    family, method : str
    features : list of str
        One name per weight: ``x1``, ``x2``, … for the columns of X, then ``intercept``.
    mean : numpy.ndarray
        The posterior mean (closed form for every family).
    covariance : numpy.ndarray
        The posterior covariance (closed form).
    quantile_levels : numpy.ndarray
        0.025, 0.25, 0.5, 0.75, 0.975.
    quantiles : numpy.ndarray
        (weights, 5): the marginal quantiles per weight (closed form for the Gaussian, else from
        ``final_draws`` draws).
    sd : numpy.ndarray
        The marginal standard deviations.
    params : dict
        The family's parameters (``posterior.json``'s ``parameters``): ``mean``, ``covariance``
        (gaussian); ``xi``, ``omega``, ``eta`` (skew-normal); and ``nu`` (skew-t); ``weights``
        and ``components`` (mixture).
    negative_elbo, negative_elbo_se : float
        −ELBO of the final q by plain Monte Carlo over ``final_draws`` draws, and its standard
        error; −ELBO ≥ −ln p(y | X) up to that error.
    train : dict
        On the training points: ``log_predictive_per_point`` and ``accuracy``.
    test_log_predictive, test_accuracy : float or None
        The same on the held-out pair, when given.
    classes_ : numpy.ndarray
        The label coding of ``y``: [0, 1], or [-1, 1] when ``y`` was coded -1/+1 (known for
        runs made from arrays, whose labels are stored in the run; other runs report [0, 1]).
    trace : Trace
        ``metrics.jsonl``: ``step``, ``seconds``, ``negative_elbo`` per evaluation.
    summary : dict
    config : dict
    """

    def _load(self) -> None:
        import tomllib

        path = self.run_dir
        if not (path / "posterior.json").is_file():
            raise FileNotFoundError(
                f"{path} holds no finished vi run (no posterior.json); resume it with "
                "helmholtz.vi.resume"
            )
        self.config = tomllib.loads((path / "config.toml").read_text())
        posterior = read_json(path / "posterior.json")
        self.summary: dict = read_json(path / "summary.json")
        self.family: str = self.summary["family"]
        self.method: str = self.summary["method"]
        self.features: list[str] = list(posterior["features"])
        self.mean = np.asarray(posterior["mean"], dtype=np.float64)
        self.covariance = np.asarray(posterior["covariance"], dtype=np.float64)
        self.quantile_levels = np.asarray(posterior["quantile_levels"], dtype=np.float64)
        self.quantiles = np.array([m["quantiles"] for m in posterior["marginals"]], dtype=np.float64)
        self.sd = np.array([m["sd"] for m in posterior["marginals"]], dtype=np.float64)
        self.params: dict = _arrays(posterior["parameters"])
        self.transform: dict = posterior["transform"]
        self.intercept: bool = bool(posterior["intercept"])
        self.negative_elbo: float = self.summary["negative_elbo"]
        self.negative_elbo_se: float = self.summary["negative_elbo_se"]
        self.train: dict = self.summary["train"]
        test = self.summary.get("test")
        self.test_log_predictive: float | None = test["log_predictive_per_point"] if test else None
        self.test_accuracy: float | None = test["accuracy"] if test else None
        self.steps: int = int(self.summary["steps"])
        self.trace: Trace = read_trace(path)
        labels = path / "data" / "train-labels.npy"
        minus = labels.is_file() and bool((np.load(labels) < 0).any())
        self.classes_ = np.array([-1, 1] if minus else [0, 1])

    def sample(self, n: int, random_state: int | None = 0) -> np.ndarray:
        """``n`` posterior draws of the weights, (n, weights), as ``helmholtz sample DIR --n N
        --seed S`` draws them."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n = {n!r}: give a positive number of draws")
        return _core.vi_sample(os.fspath(self.run_dir), int(n), seed_of(random_state))

    def predict_proba(
        self,
        X: Any,
        draws: int = 1000,
        random_state: int | None = 0,
        n_threads: int | None = None,
    ) -> np.ndarray:
        """The posterior predictive of each row of ``X`` (features as in training: the run's
        transform and intercept are applied), (1/S) Σ_s σ(xᵀw_s) over S = ``draws`` posterior
        draws: an (n, 2) array of the probabilities of ``classes_[0]`` and ``classes_[1]``."""
        values = matrix(X, "X")
        if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
            raise ConfigError(f"draws = {draws!r}: give a positive number of posterior draws")
        p = _core.vi_predict(
            os.fspath(self.run_dir), values, int(draws), seed_of(random_state), n_threads
        )
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, draws: int = 1000, random_state: int | None = 0) -> np.ndarray:
        """The more probable label of each row under the posterior predictive, in ``classes_``."""
        p = self.predict_proba(X, draws, random_state)[:, 1]
        return np.where(p > 0.5, self.classes_[1], self.classes_[0])

    def resume(
        self, iterations: int, verbose: int = 0, n_threads: int | None = None
    ) -> "ViResult":
        """Continues the fit to ``iterations`` steps in all (``helmholtz vi --resume DIR --set
        train.iterations=N``)."""
        return resume(self.run_dir, iterations=iterations, verbose=verbose,
                      n_threads=n_threads, _directory=self._directory)

    def __repr__(self) -> str:
        return (
            f"ViResult(family={self.family!r}, method={self.method!r}, steps={self.steps}, "
            f"negative_elbo={self.negative_elbo:.4f} ± {self.negative_elbo_se:.4f}, "
            f"run_dir={os.fspath(self.run_dir)!r})"
        )


def logistic_regression(
    X: Any,
    y: Any,
    family: str = "skew-normal",
    method: str = "sngd",
    *,
    prior_scale: float = 1.0,
    intercept: bool = True,
    transform: str = "none",
    components: int | None = None,
    iterations: int | None = None,
    draws: int | None = None,
    eval_every: int | None = None,
    eval_draws: int | None = None,
    lr: float | None = None,
    lr_lambda: float | None = None,
    final_draws: int | None = None,
    X_test: Any = None,
    y_test: Any = None,
    random_state: int | None = 0,
    run_dir: str | os.PathLike | None = None,
    name: str | None = None,
    n_threads: int | None = None,
    verbose: int = 0,
) -> ViResult:
    """Fits q(w) ≈ p(w | X, y) for Bayesian logistic regression: the run ``helmholtz vi``
    makes of a config with these keys (docs/VI.md) and NPY files of the arrays.

    Parameters
    ----------
    X : array-like, (n, d)
        Features, one point per row (stored in the run as ``data/train.npy``).
    y : array-like, (n,)
        Labels 0/1 (or booleans) or −1/+1 (``data/train-labels.npy``).
    family : {"gaussian", "skew-normal", "skew-t", "skew-normal-mixture"}
        The variational family (``"mixture"`` stands for ``"skew-normal-mixture"``).
    method : {"sngd", "adam-covariance", "adam-precision", "mcef"}
        ``mcef`` needs the skew-normal.
    prior_scale : float
        s in the prior N(0, s² I).
    intercept : bool
        Append a constant-1 feature named ``intercept``.
    transform : {"none", "min-max", "standardize"}
        Fitted on X's columns, applied to ``X_test`` and in :meth:`ViResult.predict_proba`.
    components : int
        Components of the mixture (default 2).
    iterations, draws, eval_every, eval_draws, lr, lr_lambda, final_draws
        ``train.*`` (defaults 2000 steps, 10 draws of q per step, an evaluation of −ELBO with
        100 draws every 50 steps, lr 0.1 for SNGD and MCEF and 0.01 for Adam, lr_lambda 0.01,
        20000 final draws).
    X_test, y_test : array-like, optional
        A held-out pair: its log predictive density and accuracy are reported.
    random_state : int
        The run's seed (start, every step's draws, the final draws).
    run_dir : path, optional
        Where the run is written (must not exist or be empty); None uses a temporary directory
        removed with the result.
    name : str, optional
        The run's name (default: the directory's name).
    n_threads : int, optional
        Threads (None: one per core). The result does not depend on it.
    verbose : int
        1 or more prints the run's log to stderr.

    Returns
    -------
    ViResult
    """
    if family == "mixture":
        family = "skew-normal-mixture"
    family = choice(family, "family", FAMILIES)
    method = choice(method, "method", METHODS)
    choice(transform, "transform", ("none", "min-max", "standardize"))
    if not isinstance(intercept, (bool, np.bool_)):
        raise ConfigError(f"intercept = {intercept!r}: give True or False")
    features = matrix(X, "X")
    labels = _labels(y, "y", features.shape[0], "X")
    test = None
    if (X_test is None) != (y_test is None):
        raise ConfigError("X_test and y_test go together: give both or neither")
    if X_test is not None:
        test_features = matrix(X_test, "X_test")
        if test_features.shape[1] != features.shape[1]:
            raise DataError(
                f"X_test has {test_features.shape[1]} columns, X {features.shape[1]}: give the "
                "same columns"
            )
        test = (test_features, _labels(y_test, "y_test", test_features.shape[0], "X_test"))
    directory = RunDirectory(run_dir)
    default_name = "vi-logistic" if directory.owned else (directory.path.name or "vi-logistic")
    text = config_text(
        {"name": name or default_name, "seed": seed_of(random_state)},
        {
            "data": {
                "train": "data/train.npy",
                "labels": "data/train-labels.npy",
                "intercept": bool(intercept),
                "transform": None if transform == "none" else transform,
            },
            "model": {
                "kind": "logistic-regression",
                "prior_scale": prior_scale,
                "family": family,
                "components": components,
            },
            "train": {
                "method": method,
                "iterations": iterations,
                "draws": draws,
                "eval_every": eval_every,
                "eval_draws": eval_draws,
                "lr": lr,
                "lr_lambda": lr_lambda,
                "final_draws": final_draws,
            },
        },
    )
    _core.vi_fit(
        text,
        os.fspath(directory.path),
        features,
        labels,
        None if test is None else test[0],
        None if test is None else test[1],
        _reporter(verbose),
        n_threads,
    )
    return ViResult(directory.path, directory)


def resume(
    run_dir: str | os.PathLike,
    iterations: int | None = None,
    *,
    verbose: int = 0,
    n_threads: int | None = None,
    _directory: RunDirectory | None = None,
) -> ViResult:
    """Continues the vi run in ``run_dir`` (made here or by ``helmholtz vi``) from its last
    checkpoint, to ``iterations`` steps in all when given, bit for bit as an uninterrupted run."""
    overrides = [] if iterations is None else [f"train.iterations={int(iterations)}"]
    _core.vi_resume(os.fspath(run_dir), overrides, _reporter(verbose), n_threads)
    return ViResult(run_dir, _directory)


def load(run_dir: str | os.PathLike) -> ViResult:
    """The finished vi run in ``run_dir`` (made here or by ``helmholtz vi``)."""
    return ViResult(run_dir)
