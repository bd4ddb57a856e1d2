"""The Python package's overhead: HelmholtzMachine.fit against `helmholtz train` on binarized
MNIST (hidden 200-100-10, K = 10, batch 100), side by side on one machine, alternating.

    python crates/helmholtz-py/bench/overhead.py --cli target/release/helmholtz \\
        --data data/mnist --epochs 2 --repeats 3

Neither side estimates a validation log-likelihood (the estimator holds no validation split,
and the config evaluates every 10⁶ epochs). Build both in release first (`cargo build --release -p helmholtz-cli` and `maturin develop
--release -m crates/helmholtz-py/Cargo.toml`). Prints each run's mean epoch time (the
trainer's own `epoch_s`) and wall time, the medians and the ratio Python / CLI."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import helmholtz

CONFIG = """
name = "overhead"
seed = 0
[data]
source = "mnist"
dir = "{data}"
binarize = "fixed"
binarize_seed = 0
[model]
hidden = [200, 100, 10]
init = "glorot-normal"
bias = -1.0
[train]
algorithm = "rws"
k = 10
batch_size = 100
epochs = {epochs}
wake_fraction = 0.5
[optimizer]
lr = 0.003
rule = {{ kind = "adam" }}
[eval]
every = 1000000
"""


def epoch_seconds(run_dir: Path) -> float:
    with open(run_dir / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    return statistics.mean(r["epoch_s"] for r in records if r.get("split") == "train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="helmholtz-overhead-"))
    config = work / "config.toml"
    config.write_text(CONFIG.format(data=args.data.resolve().parent, epochs=args.epochs))
    X, _ = helmholtz.datasets.load_mnist(args.data, "train")
    X = X[:50000]  # the CLI's training split
    results = {"cli": [], "python": []}
    for repeat in range(args.repeats):
        for side in ("cli", "python"):
            run_dir = work / f"{side}-{repeat}"
            started = time.perf_counter()
            if side == "cli":
                subprocess.run(
                    [str(args.cli), "train", str(config), "--out", str(run_dir), "--quiet"],
                    check=True,
                )
            else:
                helmholtz.HelmholtzMachine(
                    hidden=(200, 100, 10), k=10, batch_size=100, epochs=args.epochs,
                    binarize="fixed", learning_rate=0.003, random_state=0, run_dir=run_dir,
                ).fit(X)
            wall = time.perf_counter() - started
            epoch = epoch_seconds(run_dir)
            results[side].append((epoch, wall))
            print(f"{side:6s} repeat {repeat}: epoch {epoch:.3f} s, wall {wall:.2f} s", flush=True)
    cli_epoch = statistics.median(e for e, _ in results["cli"])
    py_epoch = statistics.median(e for e, _ in results["python"])
    cli_wall = statistics.median(w for _, w in results["cli"])
    py_wall = statistics.median(w for _, w in results["python"])
    print(textwrap.dedent(f"""
        median epoch: CLI {cli_epoch:.3f} s, Python {py_epoch:.3f} s, ratio {py_epoch / cli_epoch:.3f}
        median wall ({args.epochs} epochs, data loading included): CLI {cli_wall:.2f} s, Python {py_wall:.2f} s, ratio {py_wall / cli_wall:.3f}
    """))


if __name__ == "__main__":
    main()
