"""A run made in Python and one made by `helmholtz train` from the same config are the same
run: equal metrics (but for timings) and equal parameters; and each side resumes the other's
run bit for bit. Ctrl-C during a fit writes a checkpoint and raises KeyboardInterrupt."""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import helmholtz

TIMINGS = {"epoch_s", "points_per_s", "eval_s", "seconds", "train_s"}


def metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.jsonl") as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in f]


def params(run_dir: Path) -> bytes:
    return (run_dir / "checkpoints" / "last" / "params.safetensors").read_bytes()


@pytest.fixture(scope="module")
def config(tmp_path_factory, binary_digits):
    folder = tmp_path_factory.mktemp("interop")
    np.save(folder / "train.npy", binary_digits[:400])
    np.save(folder / "test.npy", binary_digits[1600:1700])
    path = folder / "config.toml"
    path.write_text(
        textwrap.dedent(
            """
            name = "interop"
            seed = 3
            [data]
            source = "npy"
            train = "train.npy"
            test = "test.npy"
            binarize = "none"
            [model]
            hidden = [20, 5]
            [train]
            algorithm = "rws"
            k = 5
            batch_size = 25
            epochs = 4
            [optimizer]
            lr = 0.003
            rule = { kind = "adam" }
            [eval]
            every = 2
            k = 20
            final_k = 50
            [checkpoint]
            every = 1
            """
        )
    )
    return path


def test_python_and_cli_runs_are_the_same(config, cli, tmp_path):
    cli("train", config, "--out", tmp_path / "cli", "--quiet")
    run = helmholtz.train(config, tmp_path / "py")
    assert metrics(tmp_path / "cli") == metrics(tmp_path / "py")
    assert params(tmp_path / "cli") == params(tmp_path / "py")
    assert run.summary["outcome"] == "Completed" and run.kind == "train"
    assert set(run.params) >= {"p.0.w", "q.0.w"}
    ll = [m for m in run.metrics if m.get("split") == "test" and m.get("k") == 50]
    assert len(ll) == 1 and ll[0]["nll_nats"] == pytest.approx(run.summary["test_nll_nats"])


def test_each_side_resumes_the_other(config, cli, tmp_path):
    cli("train", config, "--out", tmp_path / "whole", "--quiet")
    # CLI starts, Python resumes.
    cli("train", config, "--out", tmp_path / "a", "--quiet", "--set", "train.epochs=2")
    helmholtz.resume(tmp_path / "a", ["train.epochs=4"])
    # Python starts, CLI resumes.
    helmholtz.train(config, tmp_path / "b", ["train.epochs=2"])
    cli("train", "--resume", tmp_path / "b", "--set", "train.epochs=4", "--quiet")
    for side in ("a", "b"):
        assert params(tmp_path / side) == params(tmp_path / "whole"), side
        whole = [m for m in metrics(tmp_path / "whole") if m.get("split") == "train"]
        resumed = [m for m in metrics(tmp_path / side) if m.get("split") == "train"]
        assert resumed == whole, side


def test_an_estimator_run_is_evaluated_by_the_cli(binary_digits, cli, tmp_path):
    hm = helmholtz.HelmholtzMachine(hidden=(10,), epochs=2, binarize="none", run_dir=tmp_path / "est")
    hm.fit(binary_digits[:300])
    hm._run.close()
    np.save(tmp_path / "more.npy", binary_digits[300:340])
    out = cli("eval", tmp_path / "est", "--data", tmp_path / "more.npy", "--k", "30").stdout
    assert "NLL" in out


def test_ctrl_c_checkpoints_and_raises_keyboard_interrupt(binary_digits, tmp_path):
    np.save(tmp_path / "x.npy", binary_digits)
    run_dir = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import numpy as np, helmholtz
        X = np.load({str(tmp_path / 'x.npy')!r})
        def progress(event, info):
            if event == "epoch":
                print("EPOCH", info["epoch"], flush=True)
        hm = helmholtz.HelmholtzMachine(hidden=(50, 20), epochs=10000, binarize="none",
                                        run_dir={str(run_dir)!r})
        try:
            hm._check_params()
            import os
            from helmholtz import _core
            run = _core.HmRun.create(hm._config(0, False, 10000), {str(run_dir)!r}, X)
            run.train(progress)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
            raise
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = process.stdout.readline()
    assert line.startswith("EPOCH"), line + process.stderr.read()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert "INTERRUPTED" in out, out + err
    assert "KeyboardInterrupt" in err
    assert process.returncode != 0
    state = json.loads((run_dir / "checkpoints" / "last" / "state.json").read_text())
    assert state["state"]["epoch"] >= 1 or state["state"]["step"] >= 1
    # The run resumes from its checkpoint.
    resumed = helmholtz.resume(run_dir, [f"train.epochs={state['state']['epoch'] + 1}"])
    assert resumed.summary["outcome"] == "Completed"
