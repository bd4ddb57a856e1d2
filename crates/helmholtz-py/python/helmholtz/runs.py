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


def train(
    config: str | os.PathLike,
    run_dir: str | os.PathLike,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    n_threads: int | None = None,
    verbose: int = 0,
) -> Run:
    """Trains a Helmholtz machine from a config file into ``run_dir``, as ``helmholtz train
    CONFIG --out RUN_DIR --set KEY=VALUE ...`` does (same run directory, same metrics), and
    returns the finished :class:`Run`. Ctrl-C writes the checkpoint and raises
    KeyboardInterrupt; :func:`resume` continues."""
    path = Path(config)
    text = path.read_text()
    run = _core.HmRun.create_from_config(text, os.fspath(run_dir), list(overrides), os.fspath(path))
    return _train(run, run_dir, n_threads, verbose)


def resume(
    run_dir: str | os.PathLike,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    n_threads: int | None = None,
    verbose: int = 0,
) -> Run:
    """Continues the Helmholtz-machine run in ``run_dir`` from its last checkpoint (made by
    Python or by ``helmholtz train``), as ``helmholtz train --resume RUN_DIR --set ...``; e.g.
    ``resume(path, ["train.epochs=20"])``. Returns the :class:`Run`."""
    run = _core.HmRun.resume(os.fspath(run_dir), list(overrides))
    return _train(run, run_dir, n_threads, verbose)


def _train(run, run_dir: str | os.PathLike, n_threads: int | None, verbose: int) -> Run:
    """Trains an opened Helmholtz-machine run to its end, closes it and reads it."""
    from helmholtz._base import progress_callback

    progress = progress_callback(verbose)
    try:
        run.train(progress, n_threads)
    finally:
        if progress is not None:
            progress.close()
        run.close()
    return Run.open(run_dir)
