"""What every estimator shares: its run directory, progress reporting, and pickling."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any


class Progress:
    """The ``progress(event, info)`` callable that the core's training loops call: a tqdm bar
    over epochs when tqdm is installed, epoch lines otherwise; ``close`` ends the bar."""

    def __init__(self, verbose: int, total_epochs: int | None = None):
        self.verbose = verbose
        self.total_epochs = total_epochs
        self.bar: Any = None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - depends on the environment
            tqdm = None
        self.tqdm = tqdm

    def __call__(self, event: str, info: dict) -> None:
        if event == "epoch_start" and self.tqdm is not None and self.bar is None:
            self.bar = self.tqdm(total=self.total_epochs, initial=info["epoch"], unit="epoch")
        elif event == "epoch":
            bound = info.get("bound")
            if self.bar is not None:
                self.bar.update(1)
                if bound is not None:
                    self.bar.set_postfix(bound=f"{bound:.4f}")
            else:
                extra = f" bound {bound:.4f}" if bound is not None else ""
                print(f"epoch {info.get('epoch')}{extra}")
        elif event == "message":
            text = info.get("text", "")
            if self.bar is not None:
                self.bar.write(text)
            else:
                print(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_callback(verbose: int, total_epochs: int | None = None) -> Progress | None:
    """The progress reporter of a fit: None (silent) when ``verbose == 0``."""
    return Progress(verbose, total_epochs) if verbose else None


class RunDirectory:
    """The run directory of a fitted estimator: the one given (``run_dir``), or a fresh
    temporary one the estimator owns and removes when it is garbage-collected."""

    def __init__(self, given: str | os.PathLike | None):
        self.owned: str | None
        if given is None:
            self.owned = tempfile.mkdtemp(prefix="helmholtz-")
            self.path = Path(self.owned) / "run"
        else:
            self.owned = None
            self.path = Path(given)

    def __del__(self) -> None:
        owned = getattr(self, "owned", None)
        if owned:
            shutil.rmtree(owned, ignore_errors=True)


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
        archive.extractall(directory.path.parent, filter="data")
    return directory


class RunEstimator:
    """Pickling for an estimator whose fit is a run directory (``self._run``, a ``_core`` run
    class named by ``_run_class``): the directory is packed into the pickle and unpacked into
    a fresh temporary one that the unpickled estimator owns."""

    _run_class: str = ""
    # Hyper-parameters of the estimators (set in their constructors).
    run_dir: str | os.PathLike | None
    verbose: int
    n_threads: int | None

    def _set_run(self, run) -> None:
        """Keeps the run and sets the fitted attributes from it."""
        raise NotImplementedError

    def _start_run(self, config: str, X, seed: int) -> None:
        """Trains ``config`` on the rows of ``X`` in a new run directory (``run_dir``, or a
        temporary one), showing progress as ``verbose`` asks; then keeps the run, its directory
        and ``seed_`` and sets the fitted attributes (``_set_run``)."""
        from helmholtz import _core

        directory = RunDirectory(self.run_dir)
        progress = progress_callback(self.verbose)
        try:
            run = getattr(_core, self._run_class).create(
                config, os.fspath(directory.path), X, progress, self.n_threads
            )
        finally:
            if progress is not None:
                progress.close()
        self._directory = directory
        self.seed_ = seed
        self._set_run(run)

    def __getstate__(self):
        state = self.__dict__.copy()
        run = state.pop("_run", None)
        state.pop("_directory", None)
        if run is not None:
            state["_packed_run"] = pack_directory(Path(run.dir))
        return state

    def __setstate__(self, state):
        from helmholtz import _core

        packed = state.pop("_packed_run", None)
        self.__dict__.update(state)
        if packed is not None:
            self._directory = unpack_directory(packed)
            self._run = getattr(_core, self._run_class).open(os.fspath(self._directory.path))
            self.run_dir_ = self._directory.path
