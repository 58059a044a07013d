"""One run of the suite in its own process: started (`start`), waited for or stopped, and concluded
(`conclude`) into an `Outcome`, writing a ``failed`` record for a process that died without one.

Each run is `python -m runners.train <run_dir>/run_config.json` with stdout and stderr appended to
``<run_dir>/log.txt``; when that process dies without a final record (a signal, the out-of-memory
killer, a segfault) the suite writes a ``failed`` record itself, with the signal or the last line of
the log as `error`. `run_cell` is the blocking form a SLURM job executes on its node.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lra.io import atomic_write_json
from results.records import OPTIONAL_RUN_FIELDS, RECORD_NAME, RUN_FIELDS, plugin_fields, write_record

from ..provenance import utc_now
from ..train.rundir import BUSY_EXIT_CODE, RunDirBusy, run_dir_lock
from .plan import Cell, read_record_or_none

CONFIG_NAME = "run_config.json"
LOG_NAME = "log.txt"
FINAL_STATUSES = ("ok", "diverged", "failed")
NOT_RUN = "not run"  # the status of runs not started because --max-minutes was reached


@dataclass
class Outcome:
    """What happened to one cell in this invocation."""

    cell: Cell
    status: str  # ok | diverged | failed | busy | skipped | not run
    error: str | None = None
    record: dict[str, Any] | None = None
    seconds: float = 0.0


def busy(cell: Cell) -> Outcome:
    """The outcome of a cell whose directory another process is writing (nothing was started)."""
    return Outcome(cell, "busy", error=str(RunDirBusy(cell.run_dir)))


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function that makes the child receive SIGKILL when the suite dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the suite died before prctl took effect
            os._exit(1)

    return preexec


@dataclass
class Attempt:
    """A run's process while it runs."""

    cell: Cell
    process: subprocess.Popen[bytes]
    threads: int
    log: IO[bytes]
    log_offset: int
    record_stamp: tuple[int, int] | None
    started: float

    def finish(self) -> Outcome:
        """The outcome of the ended process (`conclude`)."""
        self.log.close()
        return conclude(
            self.cell,
            self.process.returncode,
            record_stamp=self.record_stamp,
            log_offset=self.log_offset,
            seconds=time.monotonic() - self.started,
            threads=self.threads,
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """Terminate the run's process group (SIGTERM, then SIGKILL after `grace_s`)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def stamp_of(path: Path) -> tuple[int, int] | None:
    """What identifies the file at `path` (inode, modification time); None when there is none."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def start(
    cell: Cell,
    threads: int,
    command: Sequence[str] | None,
    nproc: int = 1,
    plugin_env: dict[str, str] | None = None,
) -> Attempt | None:
    """Start the run of `cell` in its own process (None when another process writes its directory).

    `command` replaces `python -m runners.train` (the run's config path is appended)."""
    from attention_zoo.plugins import child_env

    from ..train import runner_command

    # The run's process takes the directory's lock itself (runners/train/rundir.py); the suite only
    # looks, so that a cell another process is writing is reported busy without starting anything.
    try:
        with run_dir_lock(cell.run_dir):
            config_path = cell.run_dir / CONFIG_NAME
            atomic_write_json(config_path, json.loads(cell.config.to_json()))
    except RunDirBusy:
        return None
    argv = [*command, str(config_path)] if command is not None else runner_command(config_path, nproc)
    env = child_env()  # the plugins loaded here, importable there (the run's config names its own)
    env.update(plugin_env or {})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    log = open(cell.run_dir / LOG_NAME, "ab")  # noqa: SIM115 -- closed when the attempt ends
    log.write(f"\n==== {utc_now()} lra suite: {' '.join(argv)} (threads {threads})\n".encode())
    log.flush()
    offset = log.tell()
    try:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    except OSError:
        log.close()
        raise
    return Attempt(
        cell, process, threads, log, offset, stamp_of(cell.run_dir / RECORD_NAME), time.monotonic()
    )


def run_cell(
    cell: Cell,
    threads: int,
    command: Sequence[str] | None = None,
    nproc: int = 1,
    plugin_env: dict[str, str] | None = None,
) -> Outcome:
    """Run one cell to its end in a child process (blocking); used by the SLURM jobs, to which
    `plugin_env` carries the submitting process's LRA_PLUGINS and PYTHONPATH (`plugins.child_env`)."""
    attempt = start(cell, threads, command, nproc, plugin_env)
    if attempt is None:
        return busy(cell)
    try:
        attempt.process.wait()
    except BaseException:
        attempt.stop()
        raise
    return attempt.finish()


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "the run's process did not report an exit status"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (e.g. the out-of-memory killer)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exited with code {returncode}"


def _last_log_line(path: Path, offset: int) -> str | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            tail = fh.read()[-65536:].decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in re.split(r"[\r\n]+", tail) if line.strip()]
    return lines[-1] if lines else None


def conclude(
    cell: Cell,
    returncode: int | None,
    *,
    record_stamp: tuple[int, int] | None = None,
    log_offset: int = 0,
    seconds: float = 0.0,
    error: str | None = None,
    threads: int | None = None,
) -> Outcome:
    """The outcome of a finished attempt; writes a `failed` record when the run left no final one.

    `record_stamp` identifies the record file present before the attempt, so that a record left by
    an earlier attempt is never taken for this one's. A run whose process found its directory busy
    (exit status `BUSY_EXIT_CODE`) is `busy`, and so is one whose directory another process took
    once it ended: nothing is written then. `threads`: the run's thread count (for the record's
    `cpu_numerics` when the suite writes it).
    """
    if returncode == BUSY_EXIT_CODE:
        return Outcome(cell, "busy", error=str(RunDirBusy(cell.run_dir)), seconds=seconds)
    path = cell.run_dir / RECORD_NAME
    fresh = stamp_of(path) != record_stamp
    record = read_record_or_none(path) if path.exists() else None
    if record is not None and fresh and record.get("status") in FINAL_STATUSES:
        return Outcome(cell, record["status"], error=record.get("error"), record=record, seconds=seconds)
    if error is None:
        last = _last_log_line(cell.run_dir / LOG_NAME, log_offset)
        error = _describe_exit(returncode) + (f"; last output: {last}" if last else "")
        if returncode is not None and returncode > 0 and last:
            error = last
    record = failed_record(
        cell, error, base=record if record is not None and fresh else None, threads=threads
    )
    try:
        with run_dir_lock(cell.run_dir):
            write_record(path, record)
    except RunDirBusy as taken:  # another process took the run over since this attempt ended
        return Outcome(cell, "busy", error=str(taken), seconds=seconds)
    except OSError as err:  # e.g. a full disk: the outcome still says what happened
        error = f"{error} (its record could not be written: {err})"
    return Outcome(cell, "failed", error=error, record=record, seconds=seconds)


def failed_record(
    cell: Cell, error: str, base: dict[str, Any] | None = None, threads: int | None = None
) -> dict[str, Any]:
    """A `failed` run record for a run that could not write one; unknown fields are None. Its
    `config` is the runner's own when `base` (the runner's `running` record) has one, else the
    planned configuration with, for a CPU run, the `cpu_numerics` its process had (this process's
    pinning, `threads` threads), so that tables compare it with its cell's other runs."""
    from ..train.record import blank_record

    record = blank_record()
    if base is not None:  # the runner's `running` record: keep what it knew
        record.update({k: v for k, v in base.items() if k in RUN_FIELDS or k in OPTIONAL_RUN_FIELDS})
    config = (base or {}).get("config") or _planned_config(cell, threads)
    record.update(
        run_id=cell.run_id,
        task=cell.task,
        attention=cell.attention,
        attention_params=cell.attention_params,
        attention_label=cell.label,
        preset=cell.config.preset,
        seed=cell.seed,
        status="failed",
        error=error.splitlines()[0] if error else "unknown error",
        max_steps=cell.max_steps,
        num_classes=cell.num_classes,
        config_hash=cell.config_hash,
        config=config,
        finished_at=utc_now(),
        **plugin_fields(cell.config.plugins[0] if cell.config.plugins else None),
    )
    record["history"] = record.get("history") or []
    return record


def _planned_config(cell: Cell, threads: int | None) -> dict[str, Any]:
    """The configuration a run record of `cell` carries: the resolved one, plus `cpu_numerics` on the CPU."""
    if cell.resolved_config.get("device_type") != "cpu":
        return cell.resolved_config
    from ..cpu_pinning import cpu_numerics

    return {**cell.resolved_config, "cpu_numerics": cpu_numerics(threads)}
