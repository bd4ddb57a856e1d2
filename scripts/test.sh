#!/usr/bin/env bash
# Every test of the repository, Rust and Python, in one command:
#   1. the Rust workspace (the Python bindings' crate has no Rust tests of its own);
#   2. the Python package: a wheel built with maturin and installed with pip into a virtual
#      environment (python-venv in the target directory, or $HELMHOLTZ_VENV), then its pytest
#      suite, which also runs the command-line binary that step 1 built.
# Needs Rust and Python ≥ 3.11 with venv; pip fetches maturin, numpy, scikit-learn, pytest, ray,
# pandas and mypy from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --exclude helmholtz-py
cargo build -p helmholtz-cli

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "scripts/test.sh: the Python package needs Python ≥ 3.11; $python is $("$python" --version 2>&1)" >&2
    exit 1
fi
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
venv=$(realpath -m "${HELMHOLTZ_VENV:-$target/python-venv}")
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir "maturin>=1.16,<2" pytest pandas "ray>=2.40" "mypy>=1.18"

rm -rf "$target/wheels"
"$venv/bin/maturin" build -q -m crates/helmholtz-py/Cargo.toml --out "$target/wheels"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir --force-reinstall "$target"/wheels/helmholtz_ml-*.whl

# Run from outside the source tree so that the installed wheel, not python/helmholtz, is tested.
tests="$PWD/crates/helmholtz-py/tests"
cd "$target"
HELMHOLTZ_CLI="$target/debug/helmholtz" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$tests"
