"""Maximum-likelihood fits by surrogate natural gradient descent (SNGD; So & Turner, AISTATS
2024) or a baseline, and SNGD on a target of your own written in Python.

:func:`fit` fits one of five distributions to an array, in a run directory the command line's
``helmholtz mle`` makes: ``helmholtz mle --resume DIR``, ``helmholtz eval DIR --data FILE`` and
``helmholtz sample DIR`` work on it, and :func:`resume` continues a command-line run.

    >>> import numpy as np
    >>> from helmholtz import sngd
    >>> counts = np.random.default_rng(0).negative_binomial(5, 1 / 11, size=1000)
    >>> result = sngd.fit(counts, family="negative-binomial")
    >>> result.params["r"], result.params["s"]  # doctest: +SKIP

:func:`minimize` steps a distribution the library does not ship, given as
``fun(params) -> (value, gradient)`` in the coordinates of a Gaussian (``mean``,
``covariance``) or a Gamma (``shape``, ``rate``) surrogate, with auxiliary ``lambda``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

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

__all__ = [
    "FAMILIES",
    "METHODS",
    "GradientCheck",
    "MinimizeResult",
    "SngdResult",
    "check_gradient",
    "fit",
    "load",
    "minimize",
    "resume",
]

#: The distributions :func:`fit` fits (``model.family`` of an ``mle`` config).
FAMILIES = ("negative-binomial", "nb-mixture", "skew-normal", "skew-t", "t-copula")
#: The methods (``train.method``): SNGD for every family; BFGS and GD for counts; Adam with a
#: covariance or precision square root for the continuous families.
METHODS = ("sngd", "bfgs", "gd", "adam-covariance", "adam-precision")
_COUNTS = ("negative-binomial", "nb-mixture")


def _observations(data: Any, name: str, family: str) -> np.ndarray:
    """``data`` as the (n, d) float64 array the library reads: counts (one column) from a 1-D
    array, continuous points from a 2-D one."""
    if family in _COUNTS:
        array = numbers(data, name)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise DataError(
                f"{name}: the {family} family models one column of counts: expected a 1-D array "
                f"of non-negative integers, got shape {array.shape}"
            )
        return finite_rows(np.ascontiguousarray(array, dtype=np.float64), name).reshape(-1, 1)
    return matrix(data, name)


def _run_name(directory: RunDirectory, default: str) -> str:
    """The directory's name for a run in a given directory, ``default`` in a temporary one."""
    return default if directory.owned else (directory.path.name or default)


def _reporter(verbose: int) -> Callable | None:
    """Prints the run's log lines (one per evaluation) to stderr when ``verbose``."""
    if not verbose:
        return None

    def report(event: str, info: dict) -> None:
        if event == "message":
            print(info.get("text", ""), file=sys.stderr)

    return report


class SngdResult(RunResult):
    """A maximum-likelihood fit: the run directory of ``helmholtz mle`` and what it holds.

    Attributes
    ----------
    run_dir : Path
        The run directory (``config.toml``, ``metrics.jsonl``, ``params.json``,
        ``summary.json``, ``checkpoints/last``, ``data/`` with the arrays).
    family, method : str
    params : dict
        The fitted parameters as ``params.json`` holds them, numbers as floats and vectors and
        matrices as numpy arrays: ``r``, ``s``, ``p``, ``mean`` (negative binomial);
        ``weights`` and ``components`` (NB mixture); ``xi``, ``omega``, ``eta`` (skew-normal;
        and ``nu`` for the skew-t); ``r``, ``nu`` (t copula). With a ``transform`` they are those
        of the transformed data.
    params_in_data_units : dict or None
        The parameters mapped back to the data's units when a transform was applied.
    columns : list of str
    transform : dict
        ``kind``, ``shift``, ``scale``.
    steps : int
    train_nll, test_nll : float, float or None
        Mean NLL per row in nats, in the data's units (``test_nll`` when a test array was given).
    summary : dict
        ``summary.json``: also ``seconds``, ``ended``, ``outcome``, ``rows``.
    trace : Trace
        The records of ``metrics.jsonl`` (``step``, ``seconds``, ``train_nll``, ``test_nll``);
        ``trace.steps``, ``trace.seconds``, ``trace.metric("train_nll")`` as arrays.
    config : dict
        The resolved config.
    """

    def _load(self) -> None:
        import tomllib

        path = self.run_dir
        if not (path / "params.json").is_file():
            raise FileNotFoundError(
                f"{path} holds no finished mle run (no params.json); resume it with "
                f"helmholtz.sngd.resume"
            )
        self.config = tomllib.loads((path / "config.toml").read_text())
        stored = _arrays(read_json(path / "params.json"))
        self.family: str = stored["family"]
        self.method: str = stored["method"]
        self.columns: list[str] = list(stored["columns"])
        self.transform: dict = stored["transform"]
        self.params: dict = stored["params"]
        self.params_in_data_units: dict | None = stored.get("params_in_data_units")
        self.summary: dict = read_json(path / "summary.json")
        self.steps: int = int(self.summary["steps"])
        self.train_nll: float = self.summary["train_nll"]
        self.test_nll: float | None = self.summary.get("test_nll")
        self.trace: Trace = read_trace(path)

    def sample(self, n: int, random_state: int | None = 0) -> np.ndarray:
        """``n`` draws from the fit in the data's units, as ``helmholtz sample DIR --n N --seed
        S`` draws them: a 1-D integer array for the count families, else (n, d) floats."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n = {n!r}: give a positive number of draws")
        draws = _core.mle_sample(os.fspath(self.run_dir), int(n), seed_of(random_state))
        if self.family in _COUNTS:
            return draws[:, 0].astype(np.int64)
        return draws

    def nll(self, data: Any, n_threads: int | None = None) -> float:
        """The mean NLL per row (nats, in the data's units) of new observations, given as the
        training data were (counts 1-D, points (n, d)), as ``helmholtz eval DIR --data FILE``
        computes it for a file."""
        values = _observations(data, "data", self.family)
        _, mean, _ = _core.mle_eval(os.fspath(self.run_dir), values, "data", n_threads)
        return mean

    def resume(
        self, iterations: int, verbose: int = 0, n_threads: int | None = None
    ) -> "SngdResult":
        """Continues the fit to ``iterations`` steps in all, as ``helmholtz mle --resume DIR
        --set train.iterations=N`` does (the steps an uninterrupted run takes); returns the
        updated result."""
        return resume(self.run_dir, iterations, verbose=verbose, n_threads=n_threads,
                      _directory=self._directory)

    def __repr__(self) -> str:
        test = f", test_nll={self.test_nll:.6f}" if self.test_nll is not None else ""
        return (
            f"SngdResult(family={self.family!r}, method={self.method!r}, steps={self.steps}, "
            f"train_nll={self.train_nll:.6f}{test}, run_dir={os.fspath(self.run_dir)!r})"
        )


def fit(
    data: Any,
    family: str = "negative-binomial",
    method: str = "sngd",
    *,
    components: int | None = None,
    iterations: int | None = None,
    batch: int | None = None,
    eval_every: int | None = None,
    test: Any = None,
    transform: str = "none",
    start: str | None = None,
    lr_theta: float | None = None,
    lr_lambda: float | None = None,
    lr_adam: float | None = None,
    search: str | None = None,
    lambda_step: str | None = None,
    coordinates: str | None = None,
    grid: int | None = None,
    random_state: int | None = 0,
    run_dir: str | os.PathLike | None = None,
    name: str | None = None,
    n_threads: int | None = None,
    verbose: int = 0,
) -> SngdResult:
    """Fits ``family`` to ``data`` by maximum likelihood with ``method``: the run
    ``helmholtz mle`` makes of a config with these keys (docs/MLE.md) and an NPY file of
    ``data``.

    Parameters
    ----------
    data : array-like
        Counts (``negative-binomial``, ``nb-mixture``): a 1-D array of non-negative integers.
        Continuous families: an (n, d) array, one observation per row (the copula's values
        strictly inside (0, 1)). Stored in the run as ``data/train.npy``.
    family : {"negative-binomial", "nb-mixture", "skew-normal", "skew-t", "t-copula"}
    method : {"sngd", "bfgs", "gd", "adam-covariance", "adam-precision"}
        SNGD for every family; ``bfgs`` and ``gd`` for counts; ``adam-covariance`` and
        ``adam-precision`` for the continuous families.
    components : int
        Components of an ``nb-mixture`` (required there).
    iterations : int
        Steps (default 100 for counts, 1000 otherwise).
    batch : int
        Continuous families: rows per step, drawn with replacement (default: every row).
    eval_every : int
        Steps between evaluations of the NLLs (default 1 for counts, 10 otherwise).
    test : array-like
        Held-out observations, shaped as ``data``; their NLL is logged beside the training NLL.
    transform : {"none", "min-max", "standardize"}
        Skew families: fitted on ``data``, applied to ``test`` and to :meth:`SngdResult.nll`.
    start : {"data", "paper"}
        Where an nb-mixture or skew fit starts (default ``data``).
    lr_theta, lr_lambda, search, lambda_step, coordinates : SNGD on the continuous families
        As ``train.lr_theta`` (0.1), ``train.lr_lambda`` (0.01), ``train.search``
        (``"validity"`` or ``"decrease"``), ``train.lambda_step`` (``"adam"`` or
        ``"quasi-newton"``), ``train.coordinates`` (skew-normal: ``"direct"`` or ``"centred"``).
    lr_adam : float
        The Adam baselines' rate (0.01).
    grid : int
        Counts: the line search's number of step sizes in (0, 1] (1000).
    random_state : int
        The run's seed (the random start, the minibatches).
    run_dir : path, optional
        Where the run is written (must not exist or be empty); None uses a temporary directory
        removed with the result.
    name : str, optional
        The run's name (default: the directory's name).
    n_threads : int, optional
        Threads (None: one per core). The result does not depend on it.
    verbose : int
        1 or more prints the run's log (a line per evaluation) to stderr.

    Returns
    -------
    SngdResult

    Raises
    ------
    ConfigError
        An unknown family or method, a method or key that does not apply to the family, a
        count or step size that is not positive (the message names the key).
    DataError
        Data of the wrong shape, with non-finite values, negative or fractional counts, copula
        values outside (0, 1), or a constant column.
    KeyboardInterrupt
        After Ctrl-C: the run's checkpoint is written and :func:`resume` continues it.
    """
    family = choice(family, "family", FAMILIES)
    method = choice(method, "method", METHODS)
    choice(transform, "transform", ("none", "min-max", "standardize"))
    train = _observations(data, "data", family)
    held_out = None if test is None else _observations(test, "test", family)
    if held_out is not None and held_out.shape[1] != train.shape[1]:
        raise DataError(
            f"test has {held_out.shape[1]} columns, data {train.shape[1]}: give the same columns"
        )
    directory = RunDirectory(run_dir)
    text = config_text(
        {"name": name or _run_name(directory, "sngd-fit"), "seed": seed_of(random_state)},
        {
            "data": {"train": "data/train.npy",
                     "transform": None if transform == "none" else transform},
            "model": {"family": family, "components": components, "start": start},
            "train": {
                "method": method,
                "iterations": iterations,
                "batch": batch,
                "eval_every": eval_every,
                "grid": grid,
                "lr_theta": lr_theta,
                "lr_lambda": lr_lambda,
                "lr_adam": lr_adam,
                "search": search,
                "lambda_step": lambda_step,
                "coordinates": coordinates,
            },
        },
    )
    _core.mle_fit(
        text, os.fspath(directory.path), train, held_out, _reporter(verbose), n_threads
    )
    return SngdResult(directory.path, directory)


def resume(
    run_dir: str | os.PathLike,
    iterations: int | None = None,
    *,
    verbose: int = 0,
    n_threads: int | None = None,
    _directory: RunDirectory | None = None,
) -> SngdResult:
    """Continues the ``mle`` run in ``run_dir`` (made by :func:`fit` or by ``helmholtz mle``)
    from its last checkpoint, to ``iterations`` steps in all when given (the only key a resume
    may change), bit for bit as an uninterrupted run."""
    overrides = [] if iterations is None else [f"train.iterations={int(iterations)}"]
    _core.mle_resume(os.fspath(run_dir), overrides, _reporter(verbose), n_threads)
    return SngdResult(run_dir, _directory)


def load(run_dir: str | os.PathLike) -> SngdResult:
    """The finished ``mle`` run in ``run_dir`` (made by :func:`fit` or ``helmholtz mle``)."""
    return SngdResult(run_dir)


# --- A target of your own -------------------------------------------------------------------


@dataclass
class MinimizeResult:
    """The end of :func:`minimize`.

    Attributes
    ----------
    params : dict
        The last point, in the surrogate's coordinates (as ``fun`` receives them).
    value : float
        ``fun``'s value there.
    values : numpy.ndarray
        The value at the start of each step, then the final value (``steps + 1`` entries).
    steps : int
    evaluations : int
        Calls of ``fun`` (line-search candidates included).
    ended : str
        ``"completed"`` (all ``iterations``) or ``"converged"`` (a step changed the value by at
        most ``tol``).
    surrogate : str
    """

    params: dict
    value: float
    values: np.ndarray
    steps: int
    evaluations: int
    ended: str
    surrogate: str


def _surrogate_of(start: Mapping, surrogate: str | None) -> str:
    if surrogate is not None:
        return choice(surrogate, "surrogate", ("gaussian", "gamma"))
    if not isinstance(start, Mapping):
        raise ConfigError(
            "start must be a dict: {'mean', 'covariance'} (Gaussian surrogate) or "
            "{'shape', 'rate'} (Gamma surrogate), with 'lambda' when there are auxiliary "
            "parameters"
        )
    if "mean" in start:
        return "gaussian"
    if "shape" in start:
        return "gamma"
    raise ConfigError(
        f"start has the keys {sorted(start)}: give 'mean' and 'covariance' (Gaussian "
        "surrogate) or 'shape' and 'rate' (Gamma surrogate), or name the surrogate"
    )


def minimize(
    fun: Callable[[dict], tuple[float, dict]],
    start: Mapping[str, Any],
    *,
    surrogate: str | None = None,
    iterations: int = 100,
    search: str = "decrease",
    lr: float = 1.0,
    halvings: int = 20,
    grid: int = 100,
    lr_lambda: float | None = None,
    lambda_step: str = "adam",
    tol: float | None = None,
    n_threads: int | None = 1,
    verbose: int = 0,
) -> MinimizeResult:
    """Minimises your objective ``fun`` of a distribution the library does not ship by SNGD:
    the distribution is written in the coordinates of a surrogate, and each step is the
    surrogate's natural gradient (no Fisher matrix of your distribution anywhere).

    Parameters
    ----------
    fun : callable
        ``fun(params) -> (value, gradient)``. ``params`` is a dict in the surrogate's
        coordinates: ``mean`` (d,) and ``covariance`` (d, d) for the Gaussian surrogate,
        ``shape`` and ``rate`` (floats) for the Gamma one, and ``lambda`` (k,) when ``start``
        has auxiliary parameters. ``gradient`` is a dict of the same keys and shapes holding
        ∂f/∂ each (for ``covariance`` the symmetric G with df = tr(G dΣ); a non-symmetric G is
        taken as (G + Gᵀ)/2). Return ``inf`` (or nan) where your distribution does not exist;
        the line search then tries a smaller step. An exception raised by ``fun`` stops the fit
        and propagates as it is; a gradient with a missing, unknown or wrongly shaped key is a
        ``ValueError`` naming the key. JAX or PyTorch functions work once converted to numpy.
    start : dict
        The first point, in the same keys (the covariance symmetric positive definite, shape
        and rate positive).
    surrogate : {"gaussian", "gamma"}, optional
        Inferred from ``start``'s keys when not given.
    iterations : int
        Steps at most.
    search : {"decrease", "backtracking", "grid", "fixed"}
        How each step's size β is chosen: from ``lr``, halved up to ``halvings`` times until the
        surrogate stays valid and the value does not increase (``decrease``; where none does,
        the surrogate stays for that step) or only until it stays valid (``backtracking``, the
        SNGD paper's); the best of ``grid`` equally spaced sizes in (0, 1] (``grid``); or ``lr``
        itself (``fixed``). With β = 1 and a target that is itself the surrogate, one step lands
        on the maximum-likelihood estimate.
    lr_lambda : float, optional
        Adam's rate for ``lambda`` (0.01); with ``lambda_step = "quasi-newton"`` the scale of
        BFGS's first inverse-Hessian estimate (1).
    lambda_step : {"adam", "quasi-newton"}
        How ``lambda`` moves; ``"quasi-newton"`` needs ``search = "decrease"``.
    tol : float, optional
        Stop after a step that changes the value by at most ``tol``.
    n_threads : int, optional
        Threads of the line search (``grid`` evaluates its candidates in parallel; each call of
        ``fun`` holds the GIL). Default 1: ``fun`` is called from one thread at a time.
    verbose : int
        1 or more prints the value at each step to stderr.

    Returns
    -------
    MinimizeResult
    """
    kind = _surrogate_of(start, surrogate)
    choice(search, "search", ("decrease", "backtracking", "grid", "fixed"))
    choice(lambda_step, "lambda_step", ("adam", "quasi-newton"))

    def report(event: str, info: dict) -> None:
        print(f"step {info['step']}: value {info['value']:.10g}", file=sys.stderr)

    out = _core.sngd_minimize(
        fun,
        kind,
        dict(start),
        iterations=int(iterations),
        search=search,
        lr=float(lr),
        halvings=int(halvings),
        grid=int(grid),
        lr_lambda=None if lr_lambda is None else float(lr_lambda),
        lambda_step=lambda_step,
        tol=None if tol is None else float(tol),
        progress=report if verbose else None,
        n_threads=n_threads,
    )
    return MinimizeResult(
        params=dict(out["params"]),
        value=out["value"],
        values=np.asarray(out["values"]),
        steps=out["steps"],
        evaluations=out["evaluations"],
        ended=out["ended"],
        surrogate=kind,
    )


@dataclass
class GradientCheck:
    """The result of :func:`check_gradient`: per coordinate its name, the gradient ``fun``
    returned (``analytic``), the central difference (``numeric``) and the error
    |analytic − numeric| / (1 + |numeric|)."""

    coordinates: list[tuple[str, float, float, float]] = field(default_factory=list)

    def worst(self) -> tuple[str, float, float, float]:
        """The coordinate with the largest error."""
        return max(self.coordinates, key=lambda c: c[3])

    def passes(self, tolerance: float = 1e-6) -> bool:
        """Whether every error is at most ``tolerance``."""
        return all(c[3] <= tolerance for c in self.coordinates)

    def require(self, tolerance: float = 1e-6) -> None:
        """Raises ValueError naming the worst coordinate unless :meth:`passes`."""
        if not self.passes(tolerance):
            name, analytic, numeric, error = self.worst()
            raise ValueError(
                f"the gradient disagrees with central differences at {name}: analytic "
                f"{analytic}, numeric {numeric} (relative error {error:.3e} > {tolerance:.1e})"
            )


def check_gradient(
    fun: Callable[[dict], tuple[float, dict]],
    params: Mapping[str, Any],
    *,
    surrogate: str | None = None,
    h: float = 1e-5,
) -> GradientCheck:
    """Compares the gradient ``fun`` returns at ``params`` with central differences of its value
    (step ``h``), coordinate by coordinate: run it once before handing ``fun`` to
    :func:`minimize`. An off-diagonal covariance entry moves both (j, k) and (k, j), so its
    derivative is g_jk + g_kj. A correct gradient of a smooth ``fun`` gives errors near 1e-8."""
    kind = _surrogate_of(params, surrogate)
    return GradientCheck(_core.sngd_check_gradient(fun, kind, dict(params), float(h)))
