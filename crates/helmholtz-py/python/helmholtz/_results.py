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


def choice(value: Any, name: str, accepted: Sequence[Any]) -> Any:
    """The one of ``accepted`` (strings or integers) that ``value`` is, else a ConfigError
    naming ``name``."""
    for option in accepted:
        if isinstance(option, str):
            same = isinstance(value, str) and value == option
        else:
            same = (
                isinstance(value, (int, np.integer))
                and not isinstance(value, (bool, np.bool_))
                and value == option
            )
        if same:
            return option
    raise ConfigError(f"{name} = {value!r}: accepted are {', '.join(map(repr, accepted))}")


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


def estimator_seed(random_state: Any) -> int:
    """An estimator's seed from ``random_state``, as scikit-learn reads it: an integer ≥ 0 is
    the seed; None or a numpy ``RandomState`` gives a fresh draw (the fit keeps it as
    ``seed_``)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, (bool, np.bool_)):
        if random_state < 0:
            raise ConfigError(f"random_state = {random_state}: give an integer ≥ 0")
        return int(random_state)
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    raise ConfigError(
        f"random_state = {random_state!r}: give an integer ≥ 0, a numpy RandomState or None"
    )


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` when it is an integer ≥ ``minimum``, else a ConfigError naming ``name``."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ConfigError(f"{name} = {value!r}: give an integer ≥ {minimum}")
    return int(value)


def positive_float(value: Any, name: str, allow_zero: bool = False) -> float:
    """``value`` when it is a finite number > 0 (≥ 0 with ``allow_zero``), else a ConfigError
    naming ``name``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not ok or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        relation = "≥ 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} = {value!r}: give a finite number {relation}")
    return float(value)


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
