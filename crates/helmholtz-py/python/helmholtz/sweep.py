"""Sweeps: one run directory per point of a grid of config overrides, run on Ray or on local
processes, and a table of their final metrics."""

from __future__ import annotations

import itertools
import json
import os
import traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from helmholtz import _core
from helmholtz._results import toml_value

#: The final metrics a row of the table carries, where the run's summary has them.
SUMMARY_KEYS = (
    "outcome",
    "epochs",
    "steps",
    "train_s",
    "best_valid_ll",
    "test_nll_nats",
    "train_nll",
    "test_nll",
    "negative_elbo",
    "negative_elbo_se",
    "test_accuracy",
    "test_log_predictive",
    "elbo",
    "gap",
)


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order: {"seed": [0, 1], "optimizer.lr":
    [1e-3, 3e-3]} gives four points."""
    if not grid:
        return [{}]
    keys = list(grid)
    for key in keys:
        values = grid[key]
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"grid[{key!r}] = {values!r}: give a list of values")
        if len(list(values)) == 0:
            raise ValueError(f"grid[{key!r}] is empty: give at least one value")
    return [dict(zip(keys, combination)) for combination in itertools.product(*(list(grid[k]) for k in keys))]


def _run_point(config_text: str, origin: str, run_dir: str, overrides: list[str], n_threads: int | None) -> dict:
    """Runs one grid point; returns its row (never raises: a failure is reported in it)."""
    try:
        command = _core.run_config(config_text, run_dir, overrides, origin, None, n_threads)
        row = {"status": "ok", "command": command, "error": None}
        summary_file = Path(run_dir) / "summary.json"
        if summary_file.is_file():
            summary = json.loads(summary_file.read_text())
            row.update({key: summary[key] for key in SUMMARY_KEYS if key in summary})
        return row
    except Exception as error:  # reported in the table: the other points go on
        return {
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }


def sweep(
    base_config: str | os.PathLike,
    grid: Mapping[str, Sequence[Any]],
    out: str | os.PathLike | None = None,
    *,
    backend: str = "processes",
    max_workers: int | None = None,
    n_threads: int | None = 1,
):
    """Runs ``base_config`` (a train, fit, mle or vi config file) once per point of ``grid``
    (config keys to lists of values, e.g. ``{"seed": [0, 1], "optimizer.lr": [1e-3, 3e-3]}``)
    into ``out/point-<i>`` (``out`` defaults to ``runs/<config name>-sweep``; it must not hold a
    sweep already), and returns the table of final metrics: one row per point with its values,
    ``run_dir``, ``status`` ("ok" or "failed"), ``error`` and the summary's metrics. A failing
    point is reported in its row; the others finish.

    ``backend="ray"`` runs the points as Ray tasks of ``n_threads`` CPUs each: on the cluster
    that ``ray.init(address=...)`` connected to, or on a local cluster this function starts
    (and leaves running for later sweeps) when none is. ``backend="processes"`` runs them in
    ``max_workers`` local processes (default: cores / n_threads). The table is a pandas
    DataFrame when pandas is installed, else a list of dicts; it is also written to
    ``out/sweep.jsonl``."""
    path = Path(base_config)
    text = path.read_text()
    name = _config_name(text) or path.stem
    out = Path(out) if out is not None else Path("runs") / f"{name}-sweep"
    if (out / "sweep.jsonl").exists():
        raise ValueError(f"{out} already holds a sweep; give another `out`")
    out.mkdir(parents=True, exist_ok=True)
    if n_threads is not None and n_threads < 1:
        raise ValueError(f"n_threads = {n_threads}: give at least 1, or None for one per core")
    points = grid_points(grid)
    jobs = []
    for i, point in enumerate(points):
        overrides = [f"{key}={toml_value(value)}" for key, value in point.items()]
        jobs.append((text, os.fspath(path.resolve()), os.fspath((out / f"point-{i}").resolve()), overrides, n_threads))

    if backend == "ray":
        rows = _on_ray(jobs, n_threads)
    elif backend == "processes":
        workers = max_workers or max(1, (os.cpu_count() or 1) // (n_threads or 1))
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            rows = list(pool.map(_run_point, *zip(*jobs)))
    else:
        raise ValueError(f"backend = {backend!r}; accepted: 'ray', 'processes'")

    table = []
    for point, job, row in zip(points, jobs, rows):
        row.pop("traceback", None)
        table.append({**point, "run_dir": job[2], **row})
    with open(out / "sweep.jsonl", "w") as f:
        for row in table:
            f.write(json.dumps(row) + "\n")
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the environment
        return table
    return pd.DataFrame(table)


def _on_ray(jobs: list[tuple], n_threads: int | None) -> list[dict]:
    try:
        import ray
    except ImportError as error:
        raise ImportError("backend='ray' needs Ray: pip install 'helmholtz-ml[sweep]' (or ray)") from error
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=n_threads or 1)(_run_point)
    refs = [task.remote(*job) for job in jobs]
    rows = []
    for ref in refs:
        try:
            rows.append(ray.get(ref))
        except Exception as error:  # a worker that died: reported, the others go on
            rows.append({"status": "failed", "error": f"{type(error).__name__}: {error}"})
    return rows


def _config_name(text: str) -> str | None:
    import tomllib

    try:
        return tomllib.loads(text).get("name")
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"the base config is not TOML: {error}") from error
