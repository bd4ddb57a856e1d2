"""The models of the ELBO = entropy-sum identity as scikit-learn estimators: probabilistic PCA,
factor analysis, Gaussian and Bernoulli mixtures (EM) and Gaussian VAEs 1–3 (Adam).

Each ``fit`` is a run of ``helmholtz fit``: the estimator writes the config (:meth:`config`),
stores the rows of ``X`` in the run directory (``data/train.npy``) and trains there, so that
``helmholtz eval RUN --data FILE``, ``helmholtz eval RUN --entropy``, ``helmholtz fit --resume
RUN`` and :class:`helmholtz.Run` read it like any other run.

``score`` is the exact mean log-likelihood per row (nats) for PPCA, factor analysis and the
mixtures, and the mean ELBO per row (a lower bound on it, by Monte Carlo) for the VAEs, whose
likelihood is intractable. ``entropy_sum`` gives the ELBO with its entropy decomposition and
says whether the identity applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from helmholtz._core import ConfigError, DataError
from helmholtz._base import RunEstimator
from helmholtz._results import choice, config_text, estimator_seed, positive_float, positive_int

_TRANSFORMS = ("none", "min-max", "standardize")
_ACTIVATIONS = ("tanh", "relu")


class _EntropyFit(RunEstimator, ClassNamePrefixFeaturesOutMixin, BaseEstimator):
    """What the entropy-sum estimators share: the run, scoring, decomposition."""

    _run_class = "FitRun"

    #: ``model.kind`` of the config.
    _kind: str = ""
    #: Whether the model is of binary data (``data.binarize``).
    _binary = False

    # -- configuration (subclasses add their model and train keys) -------------------

    def _model_keys(self) -> dict:
        return {}

    def _train_keys(self) -> dict:
        return {}

    def _kind_name(self) -> str:
        return self._kind

    def _check_params(self, n_samples: int, n_features: int) -> None:
        choice(self.data_transform, "data_transform", _TRANSFORMS)
        if self.dequantize is not None:
            positive_int(self.dequantize, "dequantize", 2)

    def config(self, seed: int | None = None) -> str:
        """The ``helmholtz fit`` config (TOML) of this estimator's fit, its data read from
        ``data/train.npy`` next to the config: ``helmholtz fit CONFIG`` runs the same fit.
        ``seed`` defaults to the fit's (``seed_``), or to one from ``random_state``."""
        if seed is None:
            seed = getattr(self, "seed_", None)
        seed = estimator_seed(self.random_state) if seed is None else int(seed)
        data: dict[str, Any] = {"source": "npy", "train": "data/train.npy"}
        if self._binary:
            data.update(binarize=True, binarize_seed=seed)
        else:
            data["transform"] = self.data_transform
            if self.dequantize is not None:
                data["dequantize"] = int(self.dequantize)
        model = {"kind": self._kind_name(), "latents": int(self.n_components), **self._model_keys()}
        return config_text(
            {"name": self._kind_name(), "seed": seed},
            {"data": data, "model": model, "train": self._train_keys()},
        )

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fits the model to the rows of ``X`` (n_samples, n_features) in a new run directory
        (``run_dir``, or a temporary one). Returns self."""
        X = validate_data(self, X, dtype=np.float64, order="C", reset=True, ensure_min_samples=2)
        self._check_params(*X.shape)
        X = self._check_values(X)
        seed = estimator_seed(self.random_state)
        self._start_run(self.config(seed), X, seed)
        return self

    def _set_run(self, run) -> None:
        self._run = run
        self.run_dir_ = Path(run.dir)
        summary = run.summary
        self.n_iter_ = int(summary["steps"])
        self.stopped_ = summary["stopped"]
        self._set_params(run.params())

    def _set_params(self, params: dict) -> None:
        """Sets the fitted attributes from the run's parameters."""

    def _check_values(self, X: np.ndarray) -> np.ndarray:
        """``X`` as the run stores it (binary models: thresholded, or checked to be
        probabilities)."""
        return X

    def _points(self, X) -> np.ndarray:
        check_is_fitted(self, "run_dir_")
        X = validate_data(self, X, dtype=np.float64, order="C", reset=False)
        return self._check_values(X)

    # -- using the fit ---------------------------------------------------------------

    def score_samples(self, X) -> np.ndarray:
        """The log-likelihood of each row (nats), exact; for :class:`GaussianVAE` the ELBO of
        each row (one Monte Carlo draw that depends only on the row's values)."""
        X = self._points(X)
        return self._run.score_samples(X, self.n_threads)

    def score(self, X, y=None) -> float:
        """The mean of :meth:`score_samples` over the rows (higher is better)."""
        return float(np.mean(self.score_samples(X)))

    def entropy_sum(self, X=None) -> dict:
        """The ELBO per row of ``X`` (None: the training rows) and its entropy decomposition.

        Keys: ``elbo``; ``posterior_entropy`` (mean entropy of q), ``prior_entropy``,
        ``observable_entropy`` (mean expected entropy of p(x | z)); ``entropy_sum`` (posterior
        − prior − observable) and ``gap`` (ELBO − sum), ``relative_gap``; ``identity_applies``
        and ``why`` (the library's reason: the ELBO equals the sum at stationary points of the
        plain ELBO with learned variances, so the gap is ≈ 0 at convergence, or what is
        violated); ``log_likelihood`` (exact, None for VAEs); ``points``; ``log_scale`` (the
        numbers are in the units of ``data_transform``; subtract it for the data's own units);
        VAEs also ``latent_entropies``, ``prior_entropies``, ``collapsed``."""
        check_is_fitted(self, "run_dir_")
        points = None if X is None else self._points(X)
        return self._run.entropy_sum(points, self.n_threads)

    def _sample(self, n_samples: int, random_state):
        check_is_fitted(self, "run_dir_")
        n = positive_int(n_samples, "n_samples")
        seed = self.seed_ if random_state is None else estimator_seed(random_state)
        return self._run.sample(n, seed)

    @property
    def _n_features_out(self) -> int:
        return int(self.n_components)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class _LinearGaussian(TransformerMixin, _EntropyFit):
    """PPCA and factor analysis: z ~ N(0, I), x | z ~ N(Wz + μ, Ψ)."""

    def _check_params(self, n_samples: int, n_features: int) -> None:
        super()._check_params(n_samples, n_features)
        k = positive_int(self.n_components, "n_components")
        if k >= n_features:
            raise ConfigError(
                f"n_components = {k}: {type(self).__name__} needs 1 ≤ n_components < n_features "
                f"= {n_features}"
            )
        if self.fixed_noise is not None:
            positive_float(self.fixed_noise, "fixed_noise")
        positive_int(self.max_steps, "max_steps")
        positive_float(self.tol, "tol", allow_zero=True)

    def _model_keys(self) -> dict:
        return {"fixed_noise": None if self.fixed_noise is None else float(self.fixed_noise)}

    def _set_params(self, params: dict) -> None:
        self.components_ = np.asarray(params["components"])
        self.mean_ = np.asarray(params["mean"])
        self.noise_variance_ = params["noise_variance"]

    def transform(self, X) -> np.ndarray:
        """The posterior means E[z | x] of each row, (n_samples, n_components)."""
        X = self._points(X)
        return self._run.transform(X, self.n_threads)

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """``n_samples`` draws x = μ + Wz + ε, (n_samples, n_features)."""
        x, _ = self._sample(n_samples, random_state)
        return x

    def get_covariance(self) -> np.ndarray:
        """The covariance of x under the model, WWᵀ + Ψ."""
        check_is_fitted(self, "run_dir_")
        noise = np.broadcast_to(np.asarray(self.noise_variance_, dtype=float), self.mean_.shape)
        return self.components_.T @ self.components_ + np.diag(noise)


class PPCA(_LinearGaussian):
    """Probabilistic PCA (Tipping & Bishop 1999): x = μ + Wz + ε with z ~ N(0, I_H) and
    ε ~ N(0, σ²I), fitted by its closed-form maximum-likelihood solution or by EM.

    Parameters
    ----------
    n_components : int
        Latent dimensions H, 1 ≤ H < n_features (``model.latents``).
    method : {"closed-form", "default"}
        ``train.method``: the closed-form solution, or EM (``"default"``) from a random start.
    fixed_noise : float or None
        ``model.fixed_noise``: hold σ² at this value (EM only); the identity then does not
        apply, and ``entropy_sum`` says so.
    max_steps : int
        EM steps at most (``train.max_steps``).
    tol : float
        EM stops when the log-likelihood per row changes by less (``train.tol``).
    data_transform : {"none", "min-max", "standardize"}
        ``data.transform``, fitted on the training rows and stored in the run; scores are in the
        data's own units.
    dequantize : int or None
        ``data.dequantize``: grey levels k/(L−1) are spread uniformly over their bin (L levels),
        drawn from the seed for the training rows and from the next seed, in row order, for the
        rows given to ``score`` and the like (as ``helmholtz eval RUN --data FILE``): a row's
        score then depends on the rows scored with it.
    random_state : int, RandomState or None
        The run's ``seed`` (EM's start, the dequantisation).
    run_dir : path or None
        Where the run is written (a new or empty directory); None: a temporary directory
        removed with the estimator.
    n_threads : int or None
        Threads (None: one per core); results do not depend on it.
    verbose : int
        0 silent, 1 the fit's progress lines.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
        The loadings Wᵀ (not orthonormal: scikit-learn's ``PCA.components_`` are the unit
        principal axes; these are the axes scaled by √(λ − σ²)).
    mean_ : ndarray (n_features,)
    noise_variance_ : float
        σ².
    n_iter_ : int
        EM steps (0 for the closed form).
    stopped_ : str
        Why the fit stopped.
    run_dir_ : pathlib.Path
    n_features_in_ : int
    """

    _kind = "ppca"

    def __init__(
        self,
        n_components=1,
        method="closed-form",
        fixed_noise=None,
        max_steps=1000,
        tol=1e-10,
        data_transform="none",
        dequantize=None,
        random_state=0,
        run_dir=None,
        n_threads=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.method = method
        self.fixed_noise = fixed_noise
        self.max_steps = max_steps
        self.tol = tol
        self.data_transform = data_transform
        self.dequantize = dequantize
        self.random_state = random_state
        self.run_dir = run_dir
        self.n_threads = n_threads
        self.verbose = verbose

    def _check_params(self, n_samples: int, n_features: int) -> None:
        super()._check_params(n_samples, n_features)
        choice(self.method, "method", ("closed-form", "default"))
        if self.method == "closed-form" and self.fixed_noise is not None:
            raise ConfigError(
                "fixed_noise is for method = 'default' (EM): the closed form learns σ²"
            )

    def _train_keys(self) -> dict:
        return {"method": self.method, "max_steps": int(self.max_steps), "tol": float(self.tol)}


class FactorAnalysis(_LinearGaussian):
    """Factor analysis: x = μ + Wz + ε with z ~ N(0, I_H) and ε ~ N(0, diag ψ), fitted by EM
    (Rubin & Thayer 1982).

    Parameters
    ----------
    n_components : int
        Factors H, 1 ≤ H < n_features (``model.latents``).
    fixed_noise : float or None
        Hold every ψ_d at this value (``model.fixed_noise``; the identity then does not apply).
    max_steps, tol, data_transform, dequantize, random_state, run_dir, n_threads, verbose
        As for :class:`PPCA`.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
        The loadings Wᵀ, as scikit-learn's ``FactorAnalysis.components_``.
    mean_ : ndarray (n_features,)
    noise_variance_ : ndarray (n_features,)
        ψ.
    n_iter_, stopped_, run_dir_, n_features_in_
        As for :class:`PPCA`.
    """

    _kind = "factor-analysis"

    def __init__(
        self,
        n_components=1,
        fixed_noise=None,
        max_steps=1000,
        tol=1e-10,
        data_transform="none",
        dequantize=None,
        random_state=0,
        run_dir=None,
        n_threads=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.fixed_noise = fixed_noise
        self.max_steps = max_steps
        self.tol = tol
        self.data_transform = data_transform
        self.dequantize = dequantize
        self.random_state = random_state
        self.run_dir = run_dir
        self.n_threads = n_threads
        self.verbose = verbose

    def _train_keys(self) -> dict:
        return {"max_steps": int(self.max_steps), "tol": float(self.tol)}


class _Mixture(DensityMixin, _EntropyFit):
    """Mixtures fitted by EM from C distinct training rows drawn with the seed."""

    def _check_params(self, n_samples: int, n_features: int) -> None:
        super()._check_params(n_samples, n_features)
        k = positive_int(self.n_components, "n_components")
        if k > n_samples:
            raise ConfigError(
                f"n_components = {k}: more components than the {n_samples} rows of X"
            )
        positive_int(self.max_steps, "max_steps")
        positive_float(self.tol, "tol", allow_zero=True)

    def _train_keys(self) -> dict:
        return {"max_steps": int(self.max_steps), "tol": float(self.tol)}

    # DensityMixin's placeholder would shadow it.
    score = _EntropyFit.score

    def _set_run(self, run) -> None:
        super()._set_run(run)
        self.converged_ = self.stopped_.startswith("log-likelihood change below")

    def predict_proba(self, X) -> np.ndarray:
        """The responsibilities p(c | x) of each row, (n_samples, n_components)."""
        X = self._points(X)
        return self._run.transform(X, self.n_threads)

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row."""
        return np.argmax(self.predict_proba(X), axis=1)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fits, then predicts the components of the training rows."""
        return self.fit(X).predict(X)

    def sample(self, n_samples: int = 1, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` draws and their components, as scikit-learn's mixtures:
        (X (n_samples, n_features), y (n_samples,))."""
        x, components = self._sample(n_samples, random_state)
        return x, components


class GaussianMixture(_Mixture):
    """A mixture of Gaussians with full or diagonal covariances, fitted by EM.

    Parameters
    ----------
    n_components : int
        Components C (``model.latents``).
    covariance : {"full", "diagonal"}
        ``model.kind`` "gmm-full" or "gmm-diagonal".
    max_steps : int
        EM steps at most (``train.max_steps``).
    tol : float
        EM stops when the log-likelihood per row changes by less (``train.tol``).
    data_transform, dequantize, random_state, run_dir, n_threads, verbose
        As for :class:`PPCA`; the seed picks the C training rows the components start at.

    Attributes
    ----------
    weights_ : ndarray (n_components,)
    means_ : ndarray (n_components, n_features)
    covariances_ : ndarray
        (n_components, n_features, n_features) full, (n_components, n_features) diagonal, as
        scikit-learn's ``covariance_type`` "full" and "diag".
    converged_ : bool
        EM stopped on ``tol`` (not ``max_steps``).
    n_iter_, stopped_, run_dir_, n_features_in_
    """

    def __init__(
        self,
        n_components=1,
        covariance="full",
        max_steps=1000,
        tol=1e-10,
        data_transform="none",
        dequantize=None,
        random_state=0,
        run_dir=None,
        n_threads=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.covariance = covariance
        self.max_steps = max_steps
        self.tol = tol
        self.data_transform = data_transform
        self.dequantize = dequantize
        self.random_state = random_state
        self.run_dir = run_dir
        self.n_threads = n_threads
        self.verbose = verbose

    def _kind_name(self) -> str:
        choice(self.covariance, "covariance", ("full", "diagonal"))
        return {"full": "gmm-full", "diagonal": "gmm-diagonal"}[self.covariance]

    def _check_params(self, n_samples: int, n_features: int) -> None:
        choice(self.covariance, "covariance", ("full", "diagonal"))
        super()._check_params(n_samples, n_features)

    def _set_params(self, params: dict) -> None:
        self.weights_ = np.asarray(params["weights"])
        self.means_ = np.asarray(params["means"])
        self.covariances_ = np.asarray(params["covariances"])


class BernoulliMixture(_Mixture):
    """A mixture of products of Bernoullis (binary data), fitted by EM.

    Parameters
    ----------
    n_components : int
        Components C (``model.latents``).
    threshold : float or None
        How ``X`` becomes binary: a value above ``threshold`` is 1, others 0 (as scikit-learn's
        ``BernoulliNB(binarize=…)``; 0/1 data is unchanged); None: ``X`` must hold values in
        [0, 1], each drawn once as the probability of a 1 (``data.binarize``, from the seed for
        the training rows, from the next seed for new rows).
    max_steps, tol, random_state, run_dir, n_threads, verbose
        As for :class:`GaussianMixture`; the seed is also ``data.binarize_seed``.

    Attributes
    ----------
    weights_ : ndarray (n_components,)
    means_ : ndarray (n_components, n_features)
        The probabilities of a 1.
    converged_, n_iter_, stopped_, run_dir_, n_features_in_
    """

    _kind = "bernoulli-mixture"
    _binary = True
    # Binary data has no transform or dequantisation.
    data_transform = "none"
    dequantize = None

    def __init__(
        self,
        n_components=1,
        threshold=0.5,
        max_steps=1000,
        tol=1e-10,
        random_state=0,
        run_dir=None,
        n_threads=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.threshold = threshold
        self.max_steps = max_steps
        self.tol = tol
        self.random_state = random_state
        self.run_dir = run_dir
        self.n_threads = n_threads
        self.verbose = verbose

    def _check_values(self, X: np.ndarray) -> np.ndarray:
        if self.threshold is not None:
            threshold = self.threshold
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) or not np.isfinite(threshold):
                raise ConfigError(f"threshold = {threshold!r}: give a finite number, or None")
            return (X > threshold).astype(np.float64)
        if X.size and (X.min() < 0 or X.max() > 1):
            raise DataError(
                f"X holds values outside [0, 1] (min {X.min():g}, max {X.max():g}) and threshold "
                "= None: each value is the probability of a 1; pass values in [0, 1], or set "
                "threshold to binarise by X > threshold"
            )
        return X

    def _set_params(self, params: dict) -> None:
        self.weights_ = np.asarray(params["weights"])
        self.means_ = np.asarray(params["means"])


class GaussianVAE(TransformerMixin, _EntropyFit):
    """A Gaussian VAE with learned variances, trained by Adam on the reparameterised ELBO:
    z ~ p(z), x | z ~ N(f(z), Σ(z)), q(z | x) = N(μ(x), diag τ²(x)).

    * ``variant=1``: p(z) = N(0, I), Σ = σ²I with a learned σ²;
    * ``variant=2``: p(z) = N(0, diag α²) with learned α², σ²I, and the decoder's first weight
      columns held at unit norm;
    * ``variant=3``: p(z) = N(0, I), Σ(z) = diag σ²(z) from a second decoder head.

    The likelihood is intractable: :meth:`score` is the mean ELBO per row (one Monte Carlo
    draw per row), a lower bound on the mean log-likelihood.

    Parameters
    ----------
    variant : {1, 2, 3}
        ``model.kind`` "vae-1", "vae-2" or "vae-3".
    n_components : int
        Latents H (``model.latents``).
    hidden : sequence of int
        Encoder widths, mirrored in the decoder (``model.hidden``).
    activation : {"tanh", "relu"}
        ``model.activation``.
    epochs, batch_size : int
        ``train.epochs``, ``train.batch_size``.
    lr : float
        Adam's learning rate (``train.lr``).
    optimal_variances : bool
        Variants 1 and 2: set σ² (and α²) to their closed-form optima on every batch
        (``train.optimal_variances``).
    eval_every : int
        Evaluate the ELBO and its decomposition on the training rows every this many epochs.
    gap_tolerance : float or None
        Stop once |gap| / |ELBO| stays below this for ``gap_window`` evaluations.
    gap_window : int
    data_transform, dequantize, random_state, run_dir, n_threads, verbose
        As for :class:`PPCA`; the seed draws the weights, the batches and the noise.

    Attributes
    ----------
    params_ : dict of ndarray
        The network's tensors by name (float32).
    noise_variance_ : float or None
        σ² (variants 1 and 2).
    prior_variances_ : ndarray (n_components,) or None
        α² (variant 2).
    n_iter_ : int
        Epochs.
    stopped_, run_dir_, n_features_in_
    """

    def __init__(
        self,
        variant=1,
        n_components=2,
        hidden=(64,),
        activation="tanh",
        epochs=100,
        batch_size=100,
        lr=1e-3,
        optimal_variances=False,
        eval_every=1,
        gap_tolerance=None,
        gap_window=3,
        data_transform="none",
        dequantize=None,
        random_state=0,
        run_dir=None,
        n_threads=None,
        verbose=0,
    ):
        self.variant = variant
        self.n_components = n_components
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimal_variances = optimal_variances
        self.eval_every = eval_every
        self.gap_tolerance = gap_tolerance
        self.gap_window = gap_window
        self.data_transform = data_transform
        self.dequantize = dequantize
        self.random_state = random_state
        self.run_dir = run_dir
        self.n_threads = n_threads
        self.verbose = verbose

    def _kind_name(self) -> str:
        choice(self.variant, "variant", (1, 2, 3))
        return f"vae-{self.variant}"

    def _check_params(self, n_samples: int, n_features: int) -> None:
        super()._check_params(n_samples, n_features)
        choice(self.variant, "variant", (1, 2, 3))
        positive_int(self.n_components, "n_components")
        hidden = list(self.hidden) if self.hidden is not None else []
        for width in hidden:
            positive_int(width, "hidden")
        choice(self.activation, "activation", _ACTIVATIONS)
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch_size")
        positive_float(self.lr, "lr")
        positive_int(self.eval_every, "eval_every")
        positive_int(self.gap_window, "gap_window")
        if self.gap_tolerance is not None:
            positive_float(self.gap_tolerance, "gap_tolerance")
        if self.optimal_variances and self.variant == 3:
            raise ConfigError(
                "optimal_variances = True: VAE-3's variances depend on z and have no closed form; "
                "use variant 1 or 2"
            )

    def _model_keys(self) -> dict:
        return {"hidden": [int(h) for h in (self.hidden or [])], "activation": self.activation}

    def _train_keys(self) -> dict:
        return {
            "epochs": int(self.epochs),
            "batch_size": int(self.batch_size),
            "lr": float(self.lr),
            "optimal_variances": bool(self.optimal_variances),
            "eval_every": int(self.eval_every),
            "gap_tolerance": None if self.gap_tolerance is None else float(self.gap_tolerance),
            "gap_window": int(self.gap_window),
        }

    def _set_params(self, params: dict) -> None:
        params = dict(params)
        self.noise_variance_ = params.pop("noise_variance", None)
        self.prior_variances_ = params.pop("prior_variances", None)
        self.params_ = params

    def transform(self, X) -> np.ndarray:
        """The encoder's posterior means μ(x) of each row, (n_samples, n_components)."""
        X = self._points(X)
        return self._run.transform(X, self.n_threads)

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """``n_samples`` draws z ~ p(z), x ~ p(x | z), (n_samples, n_features)."""
        x, _ = self._sample(n_samples, random_state)
        return x
