"""Type stubs of the compiled core (``helmholtz._core``)."""

from os import PathLike
from typing import Any, Callable, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "binarize_rows",
    "CheckpointError",
    "config_command",
    "ConfigError",
    "DataError",
    "DivergedError",
    "feature_sums",
    "FileError",
    "FitRun",
    "HmRun",
    "load_digits",
    "load_mnist",
    "make_bars",
    "make_lines3x3",
    "match_fields",
    "MemoryLimitError",
    "mle_eval",
    "mle_fit",
    "mle_resume",
    "mle_sample",
    "points_address",
    "read_tensors",
    "run_config",
    "sngd_check_gradient",
    "sngd_minimize",
    "SparseRun",
    "vi_fit",
    "vi_predict",
    "vi_resume",
    "vi_sample",
]
__version__: str

class DataError(ValueError): ...
class ConfigError(ValueError): ...
class FileError(OSError): ...
class DivergedError(RuntimeError): ...
class CheckpointError(RuntimeError): ...
class MemoryLimitError(MemoryError): ...

_Progress = Callable[[str, dict[str, Any]], None]
# A target of SNGD: its value and gradient (a dict keyed as the params) at the params.
_Target = Callable[[dict[str, Any]], tuple[float, dict[str, Any]]]

def points_address(x: npt.ArrayLike) -> int: ...
def feature_sums(x: npt.ArrayLike) -> list[float]: ...
def load_digits() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def make_bars(
    side: int = 5, n: int = 1000, noise: float = 0.1, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def make_lines3x3(n: int = 1000, seed: int = 0) -> npt.NDArray[np.float32]: ...
def load_mnist(
    path: str | PathLike[str], split: str = "train"
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def read_tensors(path: str | PathLike[str]) -> dict[str, npt.NDArray[np.float32]]: ...
def binarize_rows(x: npt.ArrayLike, seed: int) -> npt.NDArray[np.float32]: ...
def config_command(config: str) -> str | None: ...
def run_config(
    config: str,
    dir: str | PathLike[str],
    overrides: list[str] = ...,
    origin: str | PathLike[str] | None = None,
    progress: _Progress | None = None,
    n_threads: int | None = None,
) -> str: ...
def mle_fit(
    config: str,
    dir: str | PathLike[str],
    train: npt.ArrayLike,
    test: npt.ArrayLike | None = None,
    progress: _Progress | None = None,
    n_threads: int | None = None,
) -> dict[str, Any]: ...
def mle_resume(
    dir: str | PathLike[str],
    overrides: list[str] = ...,
    progress: _Progress | None = None,
    n_threads: int | None = None,
) -> dict[str, Any]: ...
def mle_eval(
    dir: str | PathLike[str], x: npt.ArrayLike, name: str = ..., n_threads: int | None = None
) -> tuple[int, float, float]: ...
def mle_sample(dir: str | PathLike[str], n: int, seed: int = 0) -> npt.NDArray[np.float64]: ...
def vi_fit(
    config: str,
    dir: str | PathLike[str],
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    progress: _Progress | None = None,
    n_threads: int | None = None,
) -> dict[str, Any]: ...
def vi_resume(
    dir: str | PathLike[str],
    overrides: list[str] = ...,
    progress: _Progress | None = None,
    n_threads: int | None = None,
) -> dict[str, Any]: ...
def vi_sample(dir: str | PathLike[str], n: int, seed: int = 0) -> npt.NDArray[np.float64]: ...
def vi_predict(
    dir: str | PathLike[str],
    x: npt.ArrayLike,
    draws: int = 1000,
    seed: int = 0,
    n_threads: int | None = None,
) -> npt.NDArray[np.float64]: ...
def sngd_minimize(
    fun: _Target,
    surrogate: str,
    start: dict[str, Any],
    iterations: int = 100,
    search: str = "decrease",
    lr: float = 1.0,
    halvings: int = 20,
    grid: int = 100,
    lr_lambda: float | None = None,
    lambda_step: str = "adam",
    tol: float | None = None,
    progress: _Progress | None = None,
    n_threads: int | None = ...,
) -> dict[str, Any]: ...
def sngd_check_gradient(
    fun: _Target,
    surrogate: str,
    params: dict[str, Any],
    h: float = 1e-5,
) -> list[tuple[str, float, float, float]]: ...
def match_fields(learned: npt.ArrayLike, truth: npt.ArrayLike) -> list[float]: ...

@final
class HmRun:
    @staticmethod
    def create(
        config: str,
        dir: str | PathLike[str],
        train: npt.ArrayLike,
        valid: npt.ArrayLike | None = None,
        test: npt.ArrayLike | None = None,
        n_threads: int | None = None,
    ) -> HmRun: ...
    @staticmethod
    def create_from_config(
        config: str,
        dir: str | PathLike[str],
        overrides: list[str] = ...,
        origin: str | PathLike[str] | None = None,
    ) -> HmRun: ...
    @staticmethod
    def resume(dir: str | PathLike[str], overrides: list[str] = ...) -> HmRun: ...
    @staticmethod
    def open(dir: str | PathLike[str]) -> HmRun: ...
    def train(
        self, progress: _Progress | None = None, n_threads: int | None = None
    ) -> tuple[str, float | None]: ...
    def score_samples(
        self, x: npt.ArrayLike, k: int = 100, seed: int = 0, n_threads: int | None = None
    ) -> npt.NDArray[np.float64]: ...
    def sample(self, n: int, seed: int = 0) -> npt.NDArray[np.float32]: ...
    def transform(
        self,
        x: npt.ArrayLike,
        layer: int = 1,
        k: int = 100,
        seed: int = 0,
        n_threads: int | None = None,
    ) -> npt.NDArray[np.float32]: ...
    def entropy_sum(
        self, x: npt.ArrayLike, samples: int = 100, n_threads: int | None = None
    ) -> dict[str, Any]: ...
    def params(self) -> dict[str, npt.NDArray[np.float32]]: ...
    @property
    def dir(self) -> str: ...
    @property
    def epoch(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def sizes(self) -> list[int]: ...
    @property
    def changes(self) -> list[str]: ...
    def close(self) -> None: ...

@final
class FitRun:
    @staticmethod
    def create(
        config: str,
        dir: str | PathLike[str],
        x: npt.ArrayLike,
        progress: _Progress | None = None,
        n_threads: int | None = None,
    ) -> FitRun: ...
    @staticmethod
    def resume(
        dir: str | PathLike[str],
        overrides: list[str] = ...,
        progress: _Progress | None = None,
        n_threads: int | None = None,
    ) -> FitRun: ...
    @staticmethod
    def open(dir: str | PathLike[str]) -> FitRun: ...
    def score_samples(
        self, x: npt.ArrayLike, n_threads: int | None = None
    ) -> npt.NDArray[np.float64]: ...
    @property
    def exact(self) -> bool: ...
    def entropy_sum(
        self, x: npt.ArrayLike | None = None, n_threads: int | None = None
    ) -> dict[str, Any]: ...
    def transform(
        self, x: npt.ArrayLike, n_threads: int | None = None
    ) -> npt.NDArray[np.float64]: ...
    def sample(
        self, n: int, seed: int = 0
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64] | None]: ...
    def params(self) -> dict[str, Any]: ...
    @property
    def summary(self) -> dict[str, Any]: ...
    @property
    def dir(self) -> str: ...
    @property
    def kind(self) -> str: ...

@final
class SparseRun:
    @staticmethod
    def create(
        config: str,
        dir: str | PathLike[str],
        x: npt.ArrayLike,
        progress: _Progress | None = None,
        n_threads: int | None = None,
    ) -> SparseRun: ...
    @staticmethod
    def open(dir: str | PathLike[str]) -> SparseRun: ...
    def posteriors(
        self, x: npt.ArrayLike, n_threads: int | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    @property
    def components(self) -> npt.NDArray[np.float64]: ...
    @property
    def lambda_(self) -> npt.NDArray[np.float64]: ...
    @property
    def sigma2(self) -> float: ...
    def denoise(
        self,
        image: npt.ArrayLike,
        sigma: float,
        stride: int = 1,
        map_iterations: int = 300,
        seed: int = 0,
        n_threads: int | None = None,
    ) -> dict[str, Any]: ...
    @property
    def summary(self) -> dict[str, Any]: ...
    @property
    def dir(self) -> str: ...
