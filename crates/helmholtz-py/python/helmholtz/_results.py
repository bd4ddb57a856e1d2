"""What the result objects of fits share: the metrics of a run as a trace, the config's TOML
text, and checks of the arrays and options they are given."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from helmholtz._base import RunDirectory, pack_directory, unpack_directory
from helmholtz._core import ConfigError, DataError


class Trace(list):
    """The metrics a run logged (``metrics.jsonl``): a list of dicts, one per evaluation, with
    each metric also as an array (``trace.steps``, ``trace.seconds``, ``trace.metric(name)``)."""

    @property
    def steps(self) -> np.ndarray:
        """The step of each record."""
        return self.metric("step")

    @property
    def seconds(self) -> np.ndarray:
        """Training seconds at each record (evaluations excluded)."""
        return self.metric("seconds")

    def metric(self, name: str) -> np.ndarray:
        """The values of ``name`` in record order (NaN where a record lacks it)."""
        if not any(name in record for record in self):
            known = sorted({key for record in self for key in record})
            raise KeyError(f"no metric {name!r} in this trace (it has {', '.join(known)})")
        return np.array([record.get(name, math.nan) for record in self], dtype=np.float64)

    def frame(self):
        """The records as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("Trace.frame needs pandas: pip install pandas") from error
        return pd.DataFrame(list(self))


def read_trace(run_dir: Path) -> Trace:
    """The run's ``metrics.jsonl`` as a :class:`Trace`."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return Trace()
    with path.open() as f:
        return Trace(json.loads(line) for line in f if line.strip())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def toml_value(value: Any) -> str:
    """``value`` in TOML syntax (strings, booleans, integers, floats, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return "nan"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return repr(number)
    raise ConfigError(f"{value!r} ({type(value).__name__}) cannot be a config value")


def config_text(top: dict[str, Any], sections: dict[str, dict[str, Any]]) -> str:
    """A config's TOML text: top-level keys, then one table per section; None values are left
    out (the library writes its defaults)."""
    lines = [f"{key} = {toml_value(value)}" for key, value in top.items() if value is not None]
    for section, entries in sections.items():
        lines.append(f"[{section}]")
        lines.extend(
            f"{key} = {toml_value(value)}" for key, value in entries.items() if value is not None
        )
    return "\n".join(lines) + "\n"


def choice(value: Any, name: str, accepted: Sequence[str]) -> str:
    """``value`` when it is one of ``accepted``, else a ConfigError naming ``name``."""
    if not isinstance(value, str) or value not in accepted:
        raise ConfigError(f"{name} = {value!r}: accepted are {', '.join(map(repr, accepted))}")
    return value


def seed_of(random_state: Any) -> int:
    """A run's seed from ``random_state`` (a non-negative integer; None is 0)."""
    if random_state is None:
        return 0
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, (int, np.integer)):
        raise ConfigError(
            f"random_state = {random_state!r}: give a non-negative integer (the run's seed)"
        )
    if random_state < 0:
        raise ConfigError(f"random_state = {random_state}: give a non-negative integer")
    return int(random_state)


def numbers(x: Any, name: str) -> np.ndarray:
    """``x`` as a numpy array of numbers, or a DataError naming ``name``."""
    try:
        array = np.asarray(x)
    except Exception as error:  # noqa: BLE001 - any failure to read is the user's input
        raise DataError(f"{name}: cannot be read as an array: {error}") from error
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{name}: expected numbers, got an array of dtype {array.dtype}")
    return array


def finite_rows(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` (float64) when every value is finite and there is at least one row, else a
    DataError naming ``name``, the first bad row and column (0-based)."""
    if values.size == 0:
        raise DataError(f"{name}: the array of shape {values.shape} holds no values")
    bad = ~np.isfinite(values)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"row {index[0]}" + (f", column {index[1]}" if len(index) > 1 else "")
        raise DataError(f"{name}: {where} (0-based) is {values[index]}; every value must be finite")
    return values


def matrix(x: Any, name: str) -> np.ndarray:
    """``x`` as a C-contiguous float64 (n, d) array of finite values, or a DataError naming
    ``name``."""
    array = numbers(x, name)
    if array.ndim != 2:
        raise DataError(
            f"{name}: expected a 2-D array of shape (n_samples, n_features), got shape {array.shape}"
        )
    return finite_rows(np.ascontiguousarray(array, dtype=np.float64), name)


class RunResult:
    """A finished run read from its directory: ``run_dir``, and a temporary directory the
    result owns (removed with it) when the run was made without one. ``_load`` reads the run;
    pickling packs an owned directory into the pickle and unpacks it into a fresh one, and
    keeps a given directory's path."""

    def __init__(self, run_dir: str | os.PathLike, _directory: RunDirectory | None = None):
        self._directory = _directory
        self.run_dir = Path(run_dir)
        self._load()

    def _load(self) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        if self._directory is not None and self._directory.owned:
            return {"archive": pack_directory(self.run_dir)}
        return {"run_dir": os.fspath(self.run_dir)}

    def __setstate__(self, state: dict) -> None:
        if "archive" in state:
            self._directory = unpack_directory(state["archive"])
            self.run_dir = self._directory.path
        else:
            self._directory = None
            self.run_dir = Path(state["run_dir"])
        self._load()
