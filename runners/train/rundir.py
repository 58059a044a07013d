"""One writer per run directory: a lock file held by the process that writes the run.

`python -m runners.train` (what `lra run`, the suite's children, torchrun's rank 0 and SLURM jobs
all execute) takes `<run_dir>/.lock` before it reads or writes anything of the run, and holds it to
its end. A second writer (another `lra run`, `lra run --resume` on a cell a suite is running, a
second suite on the same `--out`) gets `RunDirBusy` -- one line, "busy: <dir> is being written by
another process" -- and writes nothing; a process that dies releases the lock with it (`flock`,
through the `filelock` library). The suite never holds a cell's lock while that cell's own process
runs (they would deadlock); it takes it only for the moments it writes into the directory itself
(a `failed` record for a run that died, moving a stale run aside).

Holding the lock, a writer also removes the temporary files (`.<name>.<random>.tmp`, see
`lra.io.atomic_path`) that a writer killed mid-write left behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import filelock

LOCK_NAME = ".lock"
# The exit status of `python -m runners.train` (and `lra run`, `lra suite`) when a run directory is
# held by another process: EX_TEMPFAIL of sysexits.h, "try again later", not a failure of the run.
BUSY_EXIT_CODE = 75


class RunDirBusy(RuntimeError):
    """Another process holds the run directory's lock."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        super().__init__(f"busy: {run_dir} is being written by another process")
        self.run_dir = Path(run_dir)


def _lock(run_dir: Path) -> filelock.BaseFileLock:
    return filelock.FileLock(run_dir / LOCK_NAME, timeout=0)


@contextlib.contextmanager
def run_dir_lock(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lock of `run_dir` (created if needed) for the block; RunDirBusy at once when another
    process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock(run_dir)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunDirBusy(run_dir) from None
    try:
        yield
    finally:
        lock.release()


def is_busy(run_dir: str | os.PathLike[str]) -> bool:
    """Whether another process holds the lock of `run_dir` right now (False when it does not exist)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    try:
        with run_dir_lock(run_dir):
            return False
    except RunDirBusy:
        return True


def remove_stale_temporaries(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the atomic-write temporaries left in `run_dir` and its `checkpoints/` by a writer that
    was killed mid-write; call it holding the lock (no live writer can own them then)."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        for path in folder.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
