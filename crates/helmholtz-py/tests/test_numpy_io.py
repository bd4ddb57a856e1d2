"""numpy in and out: dtypes, memory orders, shapes, and zero copy for C-contiguous float32."""

import numpy as np
import pytest

import helmholtz
from helmholtz import _core


def test_c_contiguous_float32_is_read_in_place():
    X = np.random.default_rng(0).random((7, 5), dtype=np.float32)
    assert _core.points_address(X) == X.__array_interface__["data"][0]


@pytest.mark.parametrize(
    "make",
    [
        lambda X: X.astype(np.float64),
        lambda X: np.asfortranarray(X),
        lambda X: X[::2],  # a strided view
        lambda X: X.astype(np.int64),
    ],
    ids=["float64", "fortran", "strided", "int64"],
)
def test_other_layouts_are_copied_once_and_read_the_same(make):
    X = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    Y = make(X)
    if Y.dtype == np.float32 and Y.flags.c_contiguous:
        pytest.skip("not a copying case")
    assert _core.points_address(Y) != Y.__array_interface__["data"][0]
    # The library's columns are points: feature sums agree with numpy's.
    np.testing.assert_allclose(_core.feature_sums(Y), np.asarray(Y, dtype=np.float64).sum(axis=0))


def test_layout_is_points_as_rows():
    X = np.array([[1, 2, 3], [10, 20, 30]], dtype=np.float32)
    assert _core.feature_sums(X) == [11.0, 22.0, 33.0]


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros(5, dtype=np.float32), ["2-D", "(n_samples, n_features)", "(5,)"]),
        (np.zeros((2, 3, 4), dtype=np.float32), ["2-D", "(2, 3, 4)"]),
        (np.zeros((0, 3), dtype=np.float32), ["at least one sample", "(0, 3)"]),
        (np.array([["a", "b"]]), ["float32"]),
    ],
)
def test_wrong_shapes_and_types_are_value_errors(bad, words):
    with pytest.raises(ValueError) as error:
        _core.points_address(bad)
    for word in words:
        assert word in str(error.value)


def test_library_errors_are_python_exception_subclasses():
    assert issubclass(helmholtz.DataError, ValueError)
    assert issubclass(helmholtz.ConfigError, ValueError)
    assert issubclass(helmholtz.FileError, OSError)
    assert issubclass(helmholtz.DivergedError, RuntimeError)
    assert issubclass(helmholtz.CheckpointError, RuntimeError)
    assert issubclass(helmholtz.MemoryLimitError, MemoryError)
    with pytest.raises(helmholtz.FileError, match="nowhere"):
        helmholtz.datasets.load_mnist("nowhere")


def test_datasets_shapes():
    X, y = helmholtz.datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and 0 <= X.min() and X.max() <= 1
    assert y.shape == (1797,) and set(np.unique(y)) == set(range(10))
    lines = helmholtz.datasets.make_lines3x3(50, random_state=1)
    assert lines.shape == (50, 9) and set(np.unique(lines)) <= {0.0, 1.0}
    X, fields, latents = helmholtz.datasets.make_bars(side=4, n=30, noise=0.0)
    assert X.shape == (30, 16) and fields.shape == (8, 16) and latents.shape == (30, 8)
    # Noise-free bars are exactly latents × fields.
    np.testing.assert_allclose(X, latents @ fields, atol=1e-12)
    with pytest.raises(ValueError, match="noise"):
        helmholtz.datasets.make_bars(noise=float("nan"))
