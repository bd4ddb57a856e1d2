"""The Helmholtz machine as a scikit-learn estimator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from helmholtz import _core
from helmholtz._base import RunDirectory, RunEstimator, progress_callback
from helmholtz._core import ConfigError
from helmholtz._results import choice, config_text, estimator_seed

_ALGORITHMS = ("rws", "ws", "bihm")
_BINARIZE = ("none", "fixed", "dynamic")
_OPTIMIZERS = ("adam", "sgd")


class HelmholtzMachine(RunEstimator, TransformerMixin, DensityMixin, BaseEstimator):
    """A Helmholtz machine: a sigmoid belief net p(x, h₁, …, h_L) with a recognition net
    q(h | x), trained by reweighted wake-sleep (``"rws"``), wake-sleep (``"ws"``) or the
    bidirectional Helmholtz machine's rule (``"bihm"``), optionally with natural gradients
    (the exact per-unit Fisher blocks).

    Parameters
    ----------
    hidden : sequence of int
        Hidden layer sizes, bottom to top.
    algorithm : {"rws", "ws", "bihm"}
    k : int
        Importance samples per point in training.
    natural : dict or None
        Natural gradient, e.g. ``{"alpha": 0.2, "refresh_every": 1000, "fisher": "blocks"}``
        (the keys of a config's ``train.natural``); None for ordinary gradients.
    optimizer : {"adam", "sgd"}
    learning_rate : float
    batch_size, epochs : int
    wake_fraction : float
        The share of q's update from wake (data) samples; the rest from sleep (dreams).
    binarize : {"none", "fixed", "dynamic"}
        How grey values in [0, 1] become binary: not at all (the data must be 0/1), once with
        ``random_state``, or anew every epoch.
    init : str
        Weight initialisation, as in a config (``"glorot-normal"``, ...).
    bias : float
        Initial bias of every unit.
    eval_k : int
        Importance samples of the validation estimates (with ``validation_fraction``).
    validation_fraction : float or None
        Share of the rows held out for early stopping (estimated every ``eval_every`` epochs,
        ``patience`` evaluations without improvement); None trains all epochs on all rows.
    eval_every, patience : int
    random_state : int, numpy RandomState or None
        The run's seed (None: a fresh one, kept as ``seed_``).
    run_dir : str or path or None
        Where the run is written; None uses a temporary directory removed with the estimator.
        The directory is a run like the command line's: ``helmholtz eval``, ``helmholtz train
        --resume`` and :class:`helmholtz.Run` read it.
    n_threads : int or None
        Threads for training and evaluation (None: one per core). Results do not depend on it.
    verbose : int
        0: silent; 1: a progress bar (tqdm, when installed) or one line per epoch.

    Attributes
    ----------
    run_dir_ : pathlib.Path
    seed_ : int
        The seed the fit drew from (``random_state``, or a fresh one when it is None); scores,
        samples and posterior means draw from it too.
    sizes_ : list of int
        Layer sizes, data first.
    n_features_in_ : int
    outcome_ : str
        "Completed", "EarlyStopped" (or "Interrupted" after Ctrl-C, which raises).
    params_ : dict of numpy arrays
        The parameters by name (``p.0.w`` ...: generative; ``q.0.w`` ...: recognition).
    """

    _run_class = "HmRun"

    def __init__(
        self,
        hidden=(100, 50, 10),
        algorithm="rws",
        k=10,
        natural=None,
        optimizer="adam",
        learning_rate=0.003,
        batch_size=20,
        epochs=100,
        wake_fraction=0.5,
        binarize="fixed",
        init="glorot-normal",
        bias=-1.0,
        eval_k=100,
        validation_fraction=None,
        eval_every=10,
        patience=None,
        random_state=0,
        run_dir=None,
        n_threads=None,
        verbose=0,
    ):
        self.hidden = hidden
        self.algorithm = algorithm
        self.k = k
        self.natural = natural
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.wake_fraction = wake_fraction
        self.binarize = binarize
        self.init = init
        self.bias = bias
        self.eval_k = eval_k
        self.validation_fraction = validation_fraction
        self.eval_every = eval_every
        self.patience = patience
        self.random_state = random_state
        self.run_dir = run_dir
        self.n_threads = n_threads
        self.verbose = verbose

    # -- configuration ---------------------------------------------------------------

    def _check_params(self) -> None:
        choice(self.algorithm, "algorithm", _ALGORITHMS)
        choice(self.binarize, "binarize", _BINARIZE)
        choice(self.optimizer, "optimizer", _OPTIMIZERS)
        hidden = list(self.hidden) if self.hidden is not None else []
        if not hidden or any(int(h) != h or h < 1 for h in hidden):
            raise ConfigError(f"hidden = {self.hidden!r}: give one or more layer sizes ≥ 1")
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise ConfigError(
                f"validation_fraction = {self.validation_fraction!r}: give a number in (0, 1) or None"
            )

    def _config(self, seed: int, validating: bool, epochs: int) -> str:
        train = {
            "algorithm": self.algorithm,
            "k": self.k,
            "batch_size": self.batch_size,
            "epochs": epochs,
            "wake_fraction": self.wake_fraction,
            "natural": dict(self.natural) if self.natural is not None else None,
        }
        sections = {
            "data": {"source": "npy", "binarize": self.binarize, "binarize_seed": seed},
            "model": {"hidden": [int(h) for h in self.hidden], "init": self.init, "bias": self.bias},
            "train": train,
            "optimizer": {"lr": self.learning_rate, "rule": {"kind": self.optimizer}},
        }
        if validating:
            sections["eval"] = {
                "every": int(self.eval_every),
                "k": int(self.eval_k),
                "patience": None if self.patience is None else int(self.patience),
            }
        return config_text({"name": "estimator", "seed": seed}, sections)

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None):
        """Trains on the rows of ``X`` (values in [0, 1]; binary unless ``binarize`` says
        how to binarize them) in a new run directory. Returns self."""
        self._check_params()
        X = validate_data(self, X, dtype=np.float32, order="C", reset=True)
        X = self._unit_interval(X)
        seed = estimator_seed(self.random_state)
        self.seed_ = seed
        valid = None
        if self.validation_fraction is not None:
            order = np.random.default_rng(seed).permutation(len(X))
            n_valid = max(1, int(round(self.validation_fraction * len(X))))
            if n_valid >= len(X):
                raise ConfigError(
                    f"validation_fraction = {self.validation_fraction} leaves no training rows of {len(X)}"
                )
            valid, X = X[order[:n_valid]], X[order[n_valid:]]
        self._directory = RunDirectory(self.run_dir)
        config = self._config(seed, valid is not None, int(self.epochs))
        run = _core.HmRun.create(
            config, os.fspath(self._directory.path), X, valid, None, self.n_threads
        )
        self._train(run)
        return self

    def partial_fit(self, X, y=None):
        """One more epoch on the rows of ``X``. The first call starts a run (one epoch); each
        later call stores ``X`` as the run's training data and resumes it for one epoch, as
        ``helmholtz train --resume RUN --set train.epochs=E+1`` does. Returns self."""
        first = not hasattr(self, "run_dir_")
        self._check_params()
        X = validate_data(self, X, dtype=np.float32, order="C", reset=first)
        X = self._unit_interval(X)
        if first:
            seed = estimator_seed(self.random_state)
            self.seed_ = seed
            self._directory = RunDirectory(self.run_dir)
            config = self._config(seed, False, 1)
            run = _core.HmRun.create(
                config, os.fspath(self._directory.path), X, None, None, self.n_threads
            )
        else:
            path = Path(self.run_dir_)
            epoch = self._run.epoch
            self._run.close()
            self._run = None
            np.save(path / "data" / "train.npy", X)
            run = _core.HmRun.resume(
                os.fspath(path), [f"train.epochs={epoch + 1}"]
            )
        self._train(run)
        return self

    def _train(self, run) -> None:
        if getattr(self, "_run", None) is not None:
            self._run.close()
        progress = progress_callback(self.verbose, int(self.epochs))
        try:
            outcome, _ = run.train(progress, self.n_threads)
        finally:
            if progress is not None:
                progress.close()
            self._run = run
            self.run_dir_ = Path(run.dir)
            self.sizes_ = list(run.sizes)
        self.outcome_ = outcome
        self.params_ = dict(run.params())

    def _unit_interval(self, X: np.ndarray) -> np.ndarray:
        """``X``, which must hold values in [0, 1] (a ValueError says so otherwise)."""
        if X.size and X.min() < 0:
            raise ConfigError(
                f"Negative values in data passed to HelmholtzMachine (min {X.min():g}): it models "
                "binary data; pass 0/1 data or grey values in [0, 1]"
            )
        if X.size and X.max() > 1:
            raise ConfigError(
                f"X holds values outside [0, 1] (min {X.min():g}, max {X.max():g}): a Helmholtz "
                "machine models binary data; scale grey values to [0, 1] (they are binarized "
                "as `binarize` says) or pass 0/1 data"
            )
        return X

    # -- using the fit ---------------------------------------------------------------

    def _points(self, X) -> np.ndarray:
        """``X`` validated, with grey values binarized (each value v becomes 1 with probability
        v, from a stream named by the random state and the row's values, so a row is binarized
        the same way in any batch) so that a model of binary data can score them."""
        check_is_fitted(self, "run_dir_")
        X = validate_data(self, X, dtype=np.float32, order="C", reset=False)
        X = self._unit_interval(X)
        if not np.all((X == 0) | (X == 1)):
            if self.binarize == "none":
                raise ConfigError(
                    "X holds values other than 0 and 1 and binarize = 'none': pass binary data"
                )
            X = _core.binarize_rows(X, self.seed_)
        return X

    def score_samples(self, X, k: int | None = None) -> np.ndarray:
        """The importance-sampling estimate of log p(x) for each row (nats), with ``k`` samples
        (default ``eval_k``). The draws of a row depend on its values only: a row gets the same
        estimate in any batch."""
        X = self._points(X)
        return self._run.score_samples(X, int(k or self.eval_k), self.seed_, self.n_threads)

    def score(self, X, y=None, k: int | None = None) -> float:
        """The mean log-likelihood per row (nats; higher is better), by importance sampling."""
        return float(np.mean(self.score_samples(X, k)))

    def score_with_error(self, X, k: int | None = None) -> tuple[float, float]:
        """The mean log-likelihood per row and its standard error over the rows."""
        values = self.score_samples(X, k)
        se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
        return float(np.mean(values)), se

    def sample(self, n_samples: int = 1, random_state: int | None = None) -> np.ndarray:
        """``n_samples`` binary draws x ~ p(x), float32 (n_samples, n_features)."""
        check_is_fitted(self, "run_dir_")
        seed = self.seed_ if random_state is None else estimator_seed(random_state)
        return self._run.sample(int(n_samples), seed)

    def transform(self, X, layer: int = 1, k: int = 100) -> np.ndarray:
        """Posterior means E_q[h_layer | x] of each row (exact for layer 1; an average of ``k``
        draws from q for deeper layers)."""
        X = self._points(X)
        return self._run.transform(X, int(layer), int(k), self.seed_, self.n_threads)

    def entropy_sum(self, X, samples: int = 100) -> dict:
        """The ELBO of the rows of ``X`` and its entropy decomposition (``posterior``,
        ``prior``, ``observable``, ``intermediate``), the ``gap``, and whether the ELBO = sum of
        entropies identity applies to this training (``identity_applies``, ``why``)."""
        X = self._points(X)
        return self._run.entropy_sum(X, int(samples), self.n_threads)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
