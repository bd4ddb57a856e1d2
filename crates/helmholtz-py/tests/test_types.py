"""The type information the package ships: the stubs of the compiled core (``_core.pyi``)
against the module itself (mypy's stubtest: every name, signature and default), and the package
checked by mypy against them."""

from __future__ import annotations

import subprocess
import sys



def mypy(*args: str) -> subprocess.CompletedProcess:
    """``python -m ARGS`` (mypy is among the test extras)."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)


def test_core_stubs_match_the_compiled_module():
    done = mypy("mypy.stubtest", "helmholtz._core")
    assert done.returncode == 0, done.stdout + done.stderr


def test_package_type_checks_against_its_stubs():
    done = mypy("mypy", "-p", "helmholtz", "--ignore-missing-imports", "--no-incremental")
    assert done.returncode == 0, done.stdout + done.stderr
