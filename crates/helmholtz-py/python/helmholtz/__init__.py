"""helmholtz: variational learning of latent-variable generative models with information
geometry, from Python.

Estimators follow scikit-learn's conventions (hyper-parameters in the constructor, ``fit``
returns the estimator, fitted attributes end in ``_``). Every fit trains in a run directory,
the same one the ``helmholtz`` command line makes: either side opens, evaluates and resumes the
other's runs.

    >>> from helmholtz import HelmholtzMachine, datasets
    >>> X, _ = datasets.load_digits()
    >>> hm = HelmholtzMachine(hidden=(50, 10), epochs=5, binarize="fixed").fit(X)
    >>> hm.score(X[:100])  # doctest: +SKIP

The compiled core is ``helmholtz._core``; numpy arrays of float32 in C order are read without
a copy.
"""

from helmholtz._core import (
    CheckpointError,
    ConfigError,
    DataError,
    DivergedError,
    FileError,
    MemoryLimitError,
    __version__,
)
from helmholtz import datasets, sngd, vi
from helmholtz.fit import (
    PPCA,
    BernoulliMixture,
    FactorAnalysis,
    GaussianMixture,
    GaussianVAE,
)
from helmholtz.machine import HelmholtzMachine
from helmholtz.runs import Run, resume, train
from helmholtz.sparse import SparseCoding
from helmholtz.sweep import sweep

__all__ = [
    "BernoulliMixture",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DivergedError",
    "FactorAnalysis",
    "FileError",
    "GaussianMixture",
    "GaussianVAE",
    "HelmholtzMachine",
    "MemoryLimitError",
    "PPCA",
    "Run",
    "SparseCoding",
    "__version__",
    "datasets",
    "resume",
    "sngd",
    "sweep",
    "train",
    "vi",
]
