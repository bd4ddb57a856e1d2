"""Shared fixtures: the command-line binary (for runs made on one side and resumed on the
other) and small binary data."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import cli_binary


@pytest.fixture(scope="session")
def cli():
    binary = cli_binary.cli()

    def run(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(binary), *map(str, args)], capture_output=True, text=True, **kwargs
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"helmholtz {' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture(scope="session")
def digits():
    from helmholtz import datasets

    X, y = datasets.load_digits()
    return X, y


@pytest.fixture(scope="session")
def binary_digits(digits):
    X, _ = digits
    return (X > 0.5).astype(np.float32)
