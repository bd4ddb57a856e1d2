"""Shared fixtures: the command-line binary (for runs made on one side and resumed on the
other) and small binary data."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]


def cli_binary() -> Path:
    """The `helmholtz` binary: $HELMHOLTZ_BIN, else the debug build of this checkout (built by
    `cargo test` / `cargo build -p helmholtz-cli`), else `helmholtz` on PATH."""
    given = os.environ.get("HELMHOLTZ_BIN")
    if given:
        return Path(given)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        candidate = target / profile / "helmholtz"
        if candidate.is_file():
            return candidate
    found = shutil.which("helmholtz")
    if found:
        return Path(found)
    pytest.fail("no helmholtz binary: build it with `cargo build -p helmholtz-cli` or set HELMHOLTZ_BIN")


@pytest.fixture(scope="session")
def cli():
    binary = cli_binary()

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
