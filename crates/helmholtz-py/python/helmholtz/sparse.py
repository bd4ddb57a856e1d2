"""Sparse coding with the entropy-based ELBO ("Learning Sparse Codes with Entropy-Based
ELBOs") as a scikit-learn estimator.

The model: a Laplace prior p(z_h) = exp(−|z_h|/λ_h)/(2λ_h) on H latents, x | z ~ N(Wz, σ²I)
with a dictionary W of unit-norm atoms, and Gaussian posteriors q(z | x) — one per training row
(``posterior="full"`` or ``"diagonal"``) or from an MLP encoder (``"amortized"``). Training
maximises the entropy objective, the ELBO with λ and σ² in closed form: the mean posterior
entropy minus the prior's and the noise's entropies.

Each ``fit`` is a run of ``helmholtz sparse`` on a ``data.source = "points"`` config
(:meth:`SparseCoding.config`): the rows of ``X`` are stored in the run directory, EM and Adam
runs resume from the command line, and the model is read the same way on both sides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from helmholtz._core import ConfigError, DataError, match_fields
from helmholtz._base import RunEstimator
from helmholtz._results import choice, config_text, estimator_seed, positive_float, positive_int

__all__ = ["SparseCoding", "match_fields"]

_POSTERIORS = ("full", "diagonal", "amortized")
_METHODS = ("lbfgs", "em", "adam")
_ANNEALING = ("em-prior", "linear")


class SparseCoding(RunEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Sparse coding with Laplace priors and Gaussian posteriors, trained on the entropy
    objective.

    Parameters
    ----------
    n_components : int
        Atoms H (``model.n_latents``).
    posterior : {"full", "diagonal", "amortized"}
        ``model.posterior``: one full-covariance or diagonal Gaussian per training row, or an
        MLP encoder (trained by Adam).
    anneal : None, "em-prior", "linear" or sequence of float
        ``train.anneal``: the weight β ≥ 1 on the prior entropy by epoch (EM and Adam only):
        "em-prior" 10, 8, 6, 4, 2, then 1; "linear" from 2 to 1 over 10 epochs; a sequence,
        one β per epoch (the last repeating). While β > 1 the objective is not the ELBO.
    method : {"lbfgs", "em", "adam"} or None
        ``train.method``: full-batch L-BFGS on the dictionary and every posterior, EM in
        mini-batches (an L-BFGS E-step on the batch's posteriors, a gradient M-step on W), or
        Adam (amortized posteriors). None: "adam" for amortized posteriors, else "lbfgs", or
        "em" when ``anneal`` is given.
    max_iters, history, tol_grad, tol_cost
        L-BFGS (``train.*``): iterations (of the whole fit, or of each E-step for EM), past
        steps kept, and the gradient-norm and objective-change tolerances. The E-step of new
        rows (:meth:`transform`) uses them too.
    history_precision : {"f64", "f32"}
        ``train.history_precision``: how L-BFGS stores its past steps (products are in f64
        either way); "f32" halves the memory each iteration reads.
    posterior_scale : float
        ``train.posterior_scale``, ``method="lbfgs"`` only: the posteriors' entries enter
        L-BFGS divided by it, the atoms' as they are (a fixed diagonal preconditioner: the same
        optimum, reached in another number of iterations; 3 on the bars takes about a quarter
        fewer). 1 is plain L-BFGS.
    batch_size, epochs : int
        EM and Adam: rows per batch and epochs.
    lr : float or None
        EM: the M-step's step size (None: 0.5); Adam: its learning rate (None: 1e-3).
    refine_every : int
        Adam: refine the encoder's posteriors by the E-step every this many epochs (metrics).
    scale_floor : float
        ``model.scale_floor``: added to every posterior standard deviation (needed with
        annealing; the authors use 1e-3).
    scale_param : {"log", "linear"}
        ``model.scale_param``: s = floor + e^ρ, or floor + |ρ| (per-row posteriors).
    encoder_hidden : sequence of int
        Amortized: the encoder's hidden widths.
    encoder_rank : int
        Amortized: rank of the covariance factor (0: diagonal posteriors).
    encoder_activation : {"tanh", "relu"}
    whiten : {"none", "zca"}
        ``data.whiten``: use the rows as given, or ZCA-whiten them (ε = ``whiten_epsilon`` ×
        the mean eigenvalue); new rows are whitened with the same filter.
    whiten_epsilon : float
    random_state : int, RandomState or None
        The run's seed (dictionary, encoder and batch order).
    run_dir : path or None
        Where the run is written (a new or empty directory); None: a temporary directory
        removed with the estimator.
    n_threads : int or None
        Threads (None: one per core); results do not depend on it.
    verbose : int
        0 silent, 1 progress lines.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
        The atoms (unit norm), in the whitened space when ``whiten="zca"``.
    lambda_ : ndarray (n_components,)
        λ, the Laplace scales (the closed-form values at the end of training).
    noise_variance_ : float
        σ².
    n_iter_ : int
        L-BFGS iterations, or epochs.
    run_dir_ : pathlib.Path
    n_features_in_ : int
    """

    _run_class = "SparseRun"

    def __init__(
        self,
        n_components=10,
        posterior="full",
        anneal=None,
        method=None,
        max_iters=20000,
        history=20,
        tol_grad=1e-6,
        tol_cost=1e-12,
        history_precision="f64",
        posterior_scale=1.0,
        batch_size=512,
        epochs=10,
        lr=None,
        refine_every=10,
        scale_floor=0.0,
        scale_param="log",
        encoder_hidden=(64,),
        encoder_rank=0,
        encoder_activation="tanh",
        whiten="none",
        whiten_epsilon=1.0,
        random_state=0,
        run_dir=None,
        n_threads=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.posterior = posterior
        self.anneal = anneal
        self.method = method
        self.max_iters = max_iters
        self.history = history
        self.tol_grad = tol_grad
        self.tol_cost = tol_cost
        self.history_precision = history_precision
        self.posterior_scale = posterior_scale
        self.batch_size = batch_size
        self.epochs = epochs
        self.lr = lr
        self.refine_every = refine_every
        self.scale_floor = scale_floor
        self.scale_param = scale_param
        self.encoder_hidden = encoder_hidden
        self.encoder_rank = encoder_rank
        self.encoder_activation = encoder_activation
        self.whiten = whiten
        self.whiten_epsilon = whiten_epsilon
        self.random_state = random_state
        self.run_dir = run_dir
        self.n_threads = n_threads
        self.verbose = verbose

    # -- configuration ---------------------------------------------------------------

    def _method(self) -> str:
        posterior = choice(self.posterior, "posterior", _POSTERIORS)
        if self.method is not None:
            method = choice(self.method, "method", _METHODS)
            if (posterior == "amortized") != (method == "adam"):
                raise ConfigError(
                    f"method = {method!r} with posterior = {posterior!r}: Adam trains amortized "
                    "posteriors, and amortized posteriors are trained by Adam"
                )
            return method
        if posterior == "amortized":
            return "adam"
        return "em" if self.anneal is not None else "lbfgs"

    def _anneal(self):
        anneal = self.anneal
        if anneal is None:
            return None
        if isinstance(anneal, str):
            return {"kind": choice(anneal, "anneal", _ANNEALING)}
        try:
            values = [float(v) for v in anneal]
        except (TypeError, ValueError):
            raise ConfigError(
                f"anneal = {anneal!r}: give None, 'em-prior', 'linear' or a sequence of β ≥ 1"
            ) from None
        if not values or any(not np.isfinite(v) or v < 1 for v in values):
            raise ConfigError(f"anneal = {anneal!r}: every β must be a finite number ≥ 1")
        return {"kind": "steps", "values": values}

    def _check_params(self) -> str:
        method = self._method()
        positive_int(self.n_components, "n_components")
        anneal = self._anneal()
        if anneal is not None and method == "lbfgs":
            raise ConfigError(
                "anneal changes β by epoch; method = 'lbfgs' is one full-batch fit: use "
                "method = 'em' (or posterior = 'amortized')"
            )
        positive_int(self.max_iters, "max_iters")
        positive_int(self.history, "history")
        positive_float(self.tol_grad, "tol_grad")
        positive_float(self.tol_cost, "tol_cost", allow_zero=True)
        choice(self.history_precision, "history_precision", ("f64", "f32"))
        positive_float(self.posterior_scale, "posterior_scale")
        positive_int(self.batch_size, "batch_size")
        positive_int(self.epochs, "epochs")
        if self.lr is not None:
            positive_float(self.lr, "lr")
        positive_int(self.refine_every, "refine_every")
        positive_float(self.scale_floor, "scale_floor", allow_zero=True)
        choice(self.scale_param, "scale_param", ("log", "linear"))
        for width in self.encoder_hidden or ():
            positive_int(width, "encoder_hidden")
        positive_int(self.encoder_rank, "encoder_rank", 0)
        if self.encoder_rank > self.n_components:
            raise ConfigError(
                f"encoder_rank = {self.encoder_rank}: at most n_components = {self.n_components}"
            )
        choice(self.encoder_activation, "encoder_activation", ("tanh", "relu"))
        choice(self.whiten, "whiten", ("none", "zca"))
        positive_float(self.whiten_epsilon, "whiten_epsilon")
        return method

    def config(self, seed: int | None = None, n_samples: int | None = None) -> str:
        """The ``helmholtz sparse`` config (TOML) of this estimator's fit, its points read from
        ``data/train.npy`` next to the config (``data.n`` = ``n_samples``, default: the rows of
        the last fit): ``helmholtz sparse CONFIG --out DIR`` trains the same run in
        ``DIR/seed-<seed>``."""
        method = self._check_params()
        if seed is None:
            seed = getattr(self, "seed_", None)
        seed = estimator_seed(self.random_state) if seed is None else int(seed)
        n = getattr(self, "_n_rows", None) if n_samples is None else positive_int(n_samples, "n_samples")
        data = {
            "source": "points",
            "train": "data/train.npy",
            "n": n,
            "whiten": self.whiten,
            "whiten_epsilon": float(self.whiten_epsilon),
        }
        model = {
            "n_latents": int(self.n_components),
            "posterior": self.posterior,
            "scale_floor": float(self.scale_floor),
            "scale_param": self.scale_param,
        }
        if self.posterior == "amortized":
            model["encoder"] = {
                "hidden": [int(h) for h in (self.encoder_hidden or ())],
                "rank": int(self.encoder_rank),
                "activation": self.encoder_activation,
            }
        lr = self.lr if self.lr is not None else (1e-3 if method == "adam" else 0.5)
        train = {
            "method": method,
            "history": int(self.history),
            "max_iters": int(self.max_iters),
            "tol_grad": float(self.tol_grad),
            "tol_cost": float(self.tol_cost),
            "history_precision": self.history_precision,
            "posterior_scale": float(self.posterior_scale),
            "batch_size": int(self.batch_size),
            "epochs": int(self.epochs),
            "lr": float(lr),
            "refine_every": int(self.refine_every),
            "anneal": self._anneal() or {"kind": "none"},
        }
        return config_text(
            {"name": "sparse-coding", "seed": seed}, {"data": data, "model": model, "train": train}
        )

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None):
        """Trains on the rows of ``X`` (n_samples, n_features) in a new run directory. Returns
        self."""
        X = validate_data(self, X, dtype=np.float64, order="C", reset=True, ensure_min_samples=2)
        self._check_params()
        self._n_rows = len(X)
        seed = estimator_seed(self.random_state)
        self._start_run(self.config(seed), X, seed)
        return self

    def _set_run(self, run) -> None:
        self._run = run
        self.run_dir_ = Path(run.dir)
        self.components_ = np.asarray(run.components)
        self.lambda_ = np.asarray(run.lambda_)
        self.noise_variance_ = float(run.sigma2)
        summary = run.summary
        self.n_iter_ = int(summary["iterations"]) if "iterations" in summary else len(summary["epochs"])

    # -- using the fit ---------------------------------------------------------------

    def _posteriors(self, X):
        check_is_fitted(self, "run_dir_")
        X = validate_data(self, X, dtype=np.float64, order="C", reset=False)
        return self._run.posteriors(X, self.n_threads)

    def transform(self, X, return_covariance: bool = False):
        """The posterior means E[z | x] of each row, (n_samples, n_components); with
        ``return_covariance``, also the covariances (n_samples, n_components, n_components).
        Each row's posterior is its own: the encoder's (amortized), or the maximiser of the
        row's ELBO at the learned dictionary, λ and σ² (L-BFGS from the unit Gaussian at 0)."""
        means, covariances, _ = self._posteriors(X)
        return (means, covariances) if return_covariance else means

    def score_samples(self, X) -> np.ndarray:
        """The ELBO of each row (nats) with its posterior (:meth:`transform`) under the learned
        dictionary, λ and σ²: a lower bound on log p(x)."""
        return self._posteriors(X)[2]

    def score(self, X, y=None) -> float:
        """The mean ELBO per row (:meth:`score_samples`)."""
        return float(np.mean(self.score_samples(X)))

    def denoise(self, image, sigma: float, stride: int = 1, map_iterations: int = 300,
                random_state=None) -> dict:
        """Adds Gaussian noise of standard deviation ``sigma`` to the clean ``image`` (2-D,
        values in [0, 1]; the rows of ``X`` must be square s × s patches of such images) and
        denoises it with the learned dictionary, patch by patch every ``stride`` pixels, the
        overlaps averaged: by posterior means (λ and σ² in closed form on the noisy patches, so
        the model adapts to the noise), and by MAP codes with κ_h = σ²/λ_h (FISTA,
        ``map_iterations``).

        Returns a dict: ``noisy``, ``posterior`` (the denoised image), ``map`` (arrays of the
        image's shape) and ``psnr`` (dB, peak 1: ``noisy``, ``posterior``, ``map``, ``map_best``
        over κ scaled by 1/16 … 4 with its ``map_best_scale`` (chosen with the clean image),
        ``patches``)."""
        check_is_fitted(self, "run_dir_")
        sigma = positive_float(sigma, "sigma")
        stride = positive_int(stride, "stride")
        map_iterations = positive_int(map_iterations, "map_iterations")
        image = np.asarray(image, dtype=np.float64)
        if image.ndim != 2:
            raise DataError(f"image: expected a 2-D array (height, width), got shape {image.shape}")
        side = int(round(np.sqrt(self.n_features_in_)))
        if side * side != self.n_features_in_:
            raise ConfigError(
                f"denoise: the model's rows have {self.n_features_in_} values, not a square "
                "patch; train on s × s patches (s² values per row) to denoise images"
            )
        if image.shape[0] < side or image.shape[1] < side:
            raise DataError(f"image of shape {image.shape}: smaller than a {side}×{side} patch")
        seed = self.seed_ if random_state is None else estimator_seed(random_state)
        return self._run.denoise(image, sigma, stride, map_iterations, seed, self.n_threads)

    @property
    def _n_features_out(self) -> int:
        return int(self.n_components)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
