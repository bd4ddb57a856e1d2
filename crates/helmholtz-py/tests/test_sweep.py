"""Sweeps on Ray (a local cluster started by the sweep) and on local processes: one run per
grid point, a failing point reported without losing the others, the same numbers on both."""

import textwrap

import numpy as np
import pytest

import helmholtz

TIMINGS = {"train_s"}


@pytest.fixture(scope="module")
def config(tmp_path_factory, binary_digits):
    folder = tmp_path_factory.mktemp("sweep")
    np.save(folder / "train.npy", binary_digits[:200])
    np.save(folder / "test.npy", binary_digits[1600:1650])
    path = folder / "small.toml"
    path.write_text(
        textwrap.dedent(
            """
            name = "small"
            seed = 0
            [data]
            source = "npy"
            train = "train.npy"
            test = "test.npy"
            binarize = "none"
            [model]
            hidden = [10]
            [train]
            algorithm = "rws"
            k = 5
            batch_size = 20
            epochs = 2
            [optimizer]
            lr = 0.003
            rule = { kind = "adam" }
            [eval]
            every = 2
            k = 10
            final_k = 20
            """
        )
    )
    return path


GRID = {"optimizer.lr": [0.001, 0.003, -1.0], "seed": [0], "train.k": [5]}
FOUR = {"optimizer.lr": [0.001, 0.003, 0.01, -1.0]}


def without_timings(table):
    return table.drop(columns=[c for c in table.columns if c in TIMINGS | {"run_dir"}])


@pytest.fixture(scope="module")
def on_processes(config, tmp_path_factory):
    return helmholtz.sweep(config, FOUR, tmp_path_factory.mktemp("p") / "out", backend="processes", max_workers=2)


def test_processes_run_every_point_and_report_the_failure(on_processes):
    table = on_processes
    assert len(table) == 4
    assert list(table["status"]) == ["ok", "ok", "ok", "failed"]
    failed = table.iloc[3]
    assert "ConfigError" in failed["error"] and "lr" in failed["error"]
    ok = table.iloc[:3]
    assert ok["outcome"].eq("Completed").all() and np.isfinite(ok["test_nll_nats"]).all()
    # Different learning rates, different fits.
    assert ok["test_nll_nats"].nunique() == 3
    for run_dir in ok["run_dir"]:
        assert helmholtz.Run.open(run_dir).summary["outcome"] == "Completed"


def test_ray_runs_the_same_points_with_the_same_numbers(config, tmp_path, on_processes):
    pytest.importorskip("ray")
    import ray

    try:
        table = helmholtz.sweep(config, FOUR, tmp_path / "out", backend="ray")
    finally:
        ray.shutdown()
    import pandas as pd

    assert len(table) == 4
    pd.testing.assert_frame_equal(without_timings(table), without_timings(on_processes))


def test_a_sweep_does_not_overwrite_another(config, on_processes):
    out = on_processes["run_dir"].iloc[0].rsplit("/", 1)[0]
    with pytest.raises(ValueError, match="already holds a sweep"):
        helmholtz.sweep(config, FOUR, out)


def test_bad_grids_are_refused(config, tmp_path):
    with pytest.raises(ValueError, match="list of values"):
        helmholtz.sweep(config, {"seed": 3}, tmp_path / "a")
    with pytest.raises(ValueError, match="empty"):
        helmholtz.sweep(config, {"seed": []}, tmp_path / "b")
    with pytest.raises(ValueError, match="backend"):
        helmholtz.sweep(config, {"seed": [0]}, tmp_path / "c", backend="slurm")
