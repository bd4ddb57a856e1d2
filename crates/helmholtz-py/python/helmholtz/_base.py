"""What every estimator shares: its run directory, progress reporting, and pickling."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable


def toml_value(value: Any) -> str:
    """``value`` (bool, int, float, str, sequence or dict) written as a TOML value."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))


def progress_callback(verbose: int, total_epochs: int | None = None) -> Callable | None:
    """A ``progress(event, info)`` callable for the core's training loops: a tqdm bar over
    epochs when tqdm is installed and ``verbose >= 1``, epoch lines otherwise, nothing when
    ``verbose == 0``."""
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - depends on the environment
        tqdm = None
    state: dict[str, Any] = {"bar": None}

    def report(event: str, info: dict) -> None:
        if event == "epoch_start" and tqdm is not None and state["bar"] is None:
            state["bar"] = tqdm(total=total_epochs, initial=info["epoch"], unit="epoch")
        elif event == "epoch":
            bar = state["bar"]
            bound = info.get("bound")
            if bar is not None:
                bar.update(1)
                if bound is not None:
                    bar.set_postfix(bound=f"{bound:.4f}")
            elif verbose >= 1:
                extra = f" bound {bound:.4f}" if bound is not None else ""
                print(f"epoch {info.get('epoch')}{extra}")
        elif event == "message" and verbose >= 1:
            text = info.get("text", "")
            if state["bar"] is not None:
                state["bar"].write(text)
            else:
                print(text)

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    report.close = close  # type: ignore[attr-defined]
    return report


class RunDirectory:
    """The run directory of a fitted estimator: the one given (``run_dir``), or a fresh
    temporary one the estimator owns and removes when it is garbage-collected."""

    def __init__(self, given: str | os.PathLike | None):
        if given is None:
            self.owned = tempfile.mkdtemp(prefix="helmholtz-")
            self.path = Path(self.owned) / "run"
        else:
            self.owned = None
            self.path = Path(given)

    def __del__(self) -> None:
        if getattr(self, "owned", None):
            shutil.rmtree(self.owned, ignore_errors=True)


def pack_directory(path: Path) -> bytes:
    """The directory as a gzip tar archive (for pickling a fitted estimator)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(path, arcname="run", filter=lambda info: None if info.name.endswith("/lock") else info)
    return buffer.getvalue()


def unpack_directory(data: bytes) -> RunDirectory:
    """A fresh temporary run directory holding the archive of :func:`pack_directory`."""
    directory = RunDirectory(None)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(directory.owned, filter="data")
    return directory
