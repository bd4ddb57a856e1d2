"""Run directories, as the command line and the estimators write them."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helmholtz import _core


@dataclass
class Run:
    """What a run directory holds: ``config`` (the resolved config as a dict), ``metrics``
    (the records of ``metrics.jsonl``), ``summary`` (``summary.json``, None while training)
    and ``params`` (name → numpy array: a Helmholtz machine's checkpoint tensors, or the
    fitted parameters of an mle, fit or vi run).

    ``Run.open(path)`` reads a run made by any command or estimator. ``metrics_frame()`` gives
    the metrics as a pandas DataFrame when pandas is installed."""

    path: Path
    kind: str
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    summary: dict[str, Any] | None
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Run":
        path = Path(path)
        config_file = path / "config.toml"
        if not config_file.is_file():
            raise FileNotFoundError(f"{path} holds no run (no config.toml)")
        text = config_file.read_text()
        config = tomllib.loads(text)
        metrics = []
        metrics_file = path / "metrics.jsonl"
        if metrics_file.is_file():
            with metrics_file.open() as f:
                metrics = [json.loads(line) for line in f if line.strip()]
        summary_file = path / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
        kind, params = _params(path, config)
        return cls(path, kind, config, metrics, summary, params)

    def metrics_frame(self):
        """The metrics as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("Run.metrics_frame needs pandas: pip install pandas") from error
        return pd.DataFrame(self.metrics)


def _arrays(value: Any) -> Any:
    """JSON parameters with lists of numbers turned into numpy arrays."""
    if isinstance(value, dict):
        return {k: _arrays(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(
        isinstance(v, (int, float)) or (isinstance(v, list) and v and all(isinstance(u, (int, float)) for u in v))
        for v in value
    ):
        try:
            return np.asarray(value, dtype=np.float64)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_arrays(v) for v in value]
    return value


def _params(path: Path, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The run's kind and its parameters."""
    tensors = path / "checkpoints" / "last" / "params.safetensors"
    if tensors.is_file():
        return "train", dict(_core.read_tensors(os.fspath(tensors)))
    for name, kind in [("params.json", "mle"), ("posterior.json", "vi")]:
        file = path / name
        if file.is_file():
            return kind, _arrays(json.loads(file.read_text()))
    fitted = path / "model.json"
    if fitted.is_file():
        return "fit", _arrays(json.loads(fitted.read_text()))
    return "unknown", {}
