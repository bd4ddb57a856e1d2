"""The ``helmholtz`` command-line binary the tests compare the package with, and runs' files
compared without their timings."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# The fields of runs' files that depend on the machine.
TIMINGS = {"seconds", "fit_s", "epoch_s", "points_per_s", "train_s"}


def cli() -> Path:
    """The binary: ``$HELMHOLTZ_CLI``, else the newest of ``{$CARGO_TARGET_DIR or
    target}/{release,debug}/helmholtz``; a test that needs it fails when none is built (``cargo
    build -p helmholtz-cli``; ``scripts/test.sh`` builds it and sets ``$HELMHOLTZ_CLI``)."""
    given = os.environ.get("HELMHOLTZ_CLI")
    if given:
        return Path(given)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    found = [p for p in (target / "release" / "helmholtz", target / "debug" / "helmholtz") if p.is_file()]
    if not found:
        pytest.fail("no helmholtz binary: run cargo build -p helmholtz-cli (or set HELMHOLTZ_CLI)")
    return max(found, key=lambda p: p.stat().st_mtime)


def run_cli(*args: str | os.PathLike) -> str:
    """Runs the binary with ``args``; its stdout, or an assertion naming its stderr."""
    done = subprocess.run([os.fspath(cli()), *map(os.fspath, args)], capture_output=True, text=True)
    assert done.returncode == 0, f"helmholtz {' '.join(map(str, args))}: {done.stderr}"
    return done.stdout


def metrics(run_dir: Path) -> list[dict]:
    """``metrics.jsonl`` without the seconds (the only field that depends on the machine)."""
    records = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("seconds", None)
        records.append(record)
    return records


def read(run_dir: Path, name: str) -> dict:
    return json.loads((Path(run_dir) / name).read_text())


def without_timings(value):
    """``value`` (parsed JSON) without the :data:`TIMINGS` fields, at any depth."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def json_lines(path: Path) -> list:
    """The records of a JSON-lines file without their timings."""
    return [without_timings(json.loads(line)) for line in Path(path).read_text().splitlines()]
