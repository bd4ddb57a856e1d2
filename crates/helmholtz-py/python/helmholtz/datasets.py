"""Data sets: the embedded 8 × 8 digits (no file needed), the synthetic bars and 3 × 3 lines,
and MNIST from the IDX files ``helmholtz data fetch mnist`` writes. Points are rows."""

from __future__ import annotations

import os

import numpy as np

from helmholtz import _core


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8 × 8 digits embedded in the library: ``X`` float32 (1797, 64) with values in
    [0, 1] (grey levels / 16) and labels ``y`` int64 (1797,)."""
    return _core.load_digits()


def make_bars(
    side: int = 5, n: int = 1000, noise: float = 0.1, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` bars images of ``side`` × ``side`` pixels, the sparse-coding benchmark: returns
    ``X`` (n, side²), the generating ``fields`` (2·side, side²) and the Laplace ``latents``
    (n, 2·side); Gaussian noise of standard deviation ``noise``."""
    return _core.make_bars(side, n, noise, random_state)


def make_lines3x3(n: int = 1000, random_state: int = 0) -> np.ndarray:
    """``n`` binary 3 × 3 images of lines (float32 (n, 9)), the Helmholtz machines' toy data."""
    return _core.make_lines3x3(n, random_state)


def load_mnist(path: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST's ``split`` ("train": 60,000, "test": 10,000) from the IDX files in ``path``:
    ``X`` float32 (n, 784) in [0, 1] and labels ``y`` int64."""
    return _core.load_mnist(os.fspath(path), split)
