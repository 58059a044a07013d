"""Where the suite's runs execute: local processes (`LocalLauncher`, a pool of `jobs`, the CPU cores
split between them) or SLURM jobs through submitit (`SubmititLauncher`, optional dependency
``submitit``, extra ``slurm``), both driven by one polling loop (`poll`) that starts what may start,
collects what ended, reports each outcome on the progress bar and stops everything when interrupted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from results.records import RECORD_NAME, reported_accuracy_text

from .plan import Cell, SlurmOptions
from .process import NOT_RUN, Attempt, Outcome, busy, conclude, run_cell, stamp_of, start


class Launcher(Protocol):
    """What the polling loop asks of a launcher."""

    desc: str  # the progress bar's label
    poll_s: float  # seconds between polls while runs are in progress

    def start_ready(self) -> list[Outcome]:
        """Start what may start now; the outcomes of cells that ended without running (busy, not run)."""
        ...

    def collect(self) -> list[Outcome]:
        """The outcomes of the runs that ended since the last call."""
        ...

    def pending(self) -> bool:
        """Whether any cell has still to start or to end."""
        ...

    def in_progress(self) -> bool:
        """Whether any run is in progress (the loop waits `poll_s` before asking again)."""
        ...

    def stop(self) -> None:
        """Stop every run in progress (the suite was interrupted)."""
        ...


def clock() -> float:
    """Seconds on the clock of --max-minutes (monotonic)."""
    return time.monotonic()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def report(bar: Any, outcome: Outcome) -> None:
    """One line on the progress bar for an outcome: its status, run and accuracy (or error)."""
    record = outcome.record or {}
    acc = reported_accuracy_text(record)  # Text: the last checkpoint's, said so
    detail = acc if outcome.status == "ok" and acc is not None else (outcome.error or "")
    bar.write(f"[{outcome.status}] {outcome.cell.run_id}  {detail}  ({outcome.seconds:.0f} s)")


@contextlib.contextmanager
def interrupts_between_polls() -> Iterator[list[int]]:
    """Ctrl-C (SIGINT) is noted while inside and raised by the polling loop between two polls.

    Raised wherever the signal lands, KeyboardInterrupt can leave a `subprocess.Popen` holding its
    internal wait lock (between the lock's acquire and the ``try`` that releases it), and stopping
    that run then waits forever. Off the main thread, where handlers cannot be set, nothing changes."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def poll(launcher: Launcher, total: int) -> list[Outcome]:
    """Drive `launcher` until every cell has an outcome; on an interruption (Ctrl-C, an error) every
    run in progress is stopped before the exception goes on. Cells never started (--max-minutes) are
    counted on the bar, not listed: the suite's summary line says how many."""
    outcomes: list[Outcome] = []
    with (
        tqdm(total=total, desc=launcher.desc, unit="run", dynamic_ncols=True) as bar,
        interrupts_between_polls() as interrupted,
    ):
        try:
            while launcher.pending():
                if interrupted:
                    raise KeyboardInterrupt
                for outcome in [*launcher.start_ready(), *launcher.collect()]:
                    outcomes.append(outcome)
                    if outcome.status != NOT_RUN:
                        report(bar, outcome)
                    bar.update()
                if launcher.in_progress():
                    time.sleep(launcher.poll_s)
        except BaseException:
            launcher.stop()  # a second Ctrl-C meanwhile is only noted: the runs are stopped whole
            raise
    return outcomes


class LocalLauncher:
    """At most `jobs` local processes at once, the cores split between them. For a task in
    `gated_tasks` (data not prepared beforehand) one run goes first and the others wait until it
    ends, so that the task's data are generated once. No run starts after `deadline` (on `clock()`);
    the cells left come back as "not run"."""

    desc = "suite"
    poll_s = 0.1

    def __init__(
        self,
        cells: Sequence[Cell],
        jobs: int,
        command: Sequence[str] | None,
        gated_tasks: set[str],
        deadline: float | None = None,
    ) -> None:
        self.jobs, self.command, self.deadline = jobs, command, deadline
        self.threads = max(1, available_cores() // jobs)
        self.waiting = deque(cells)
        self.first_of_task: dict[str, str] = {}
        for cell in cells:
            if cell.task in gated_tasks:
                self.first_of_task.setdefault(cell.task, cell.run_id)
        self.opened = {task for task in {c.task for c in cells} if task not in gated_tasks}
        self.active: list[Attempt] = []

    def start_ready(self) -> list[Outcome]:
        ended: list[Outcome] = []
        if self.waiting and self.deadline is not None and clock() > self.deadline:
            ended += [Outcome(cell, NOT_RUN, error="--max-minutes reached") for cell in self.waiting]
            self.waiting.clear()
        started_any = True
        while started_any and len(self.active) < self.jobs:
            started_any = False
            for cell in list(self.waiting):
                if cell.task in self.opened or self.first_of_task.get(cell.task) == cell.run_id:
                    self.waiting.remove(cell)
                    attempt = start(cell, self.threads, self.command)
                    if attempt is None:
                        ended.append(busy(cell))
                        self.opened.add(cell.task)
                    else:
                        self.active.append(attempt)
                    started_any = True
                    break
        return ended

    def collect(self) -> list[Outcome]:
        ended = []
        for attempt in [a for a in self.active if a.process.poll() is not None]:
            self.active.remove(attempt)
            ended.append(attempt.finish())
            self.opened.add(attempt.cell.task)
        return ended

    def pending(self) -> bool:
        return bool(self.waiting or self.active)

    def in_progress(self) -> bool:
        return bool(self.active)

    def stop(self) -> None:
        for attempt in self.active:
            attempt.stop()


def _job_done(job: Any) -> bool:
    try:
        return bool(job.done())
    except Exception:  # a job that cannot report its state is over; result() says how
        return True


class SubmititLauncher:
    """One submitit job per cell, all submitted at once; the jobs run `process.run_cell` on their node."""

    desc = "suite (submitit)"
    poll_s = 1.0

    def __init__(
        self, cells: Sequence[Cell], slurm: SlurmOptions, out: Path, command: Sequence[str] | None
    ) -> None:
        try:
            import submitit
        except ImportError:
            raise ValueError(
                "--launcher submitit needs the optional dependency submitit: pip install 'lra-arena[slurm]'"
            ) from None
        if slurm.cluster is None and shutil.which("sbatch") is None:
            raise ValueError(
                "--launcher submitit found no SLURM here (sbatch is not on PATH); use --launcher local"
            )
        from attention_zoo.plugins import ENV_VAR, TRUST_RECORDED_ENV_VAR, child_env

        from ..cpu_pinning import CPU_PINS, OPT_OUT_ENV

        executor = submitit.AutoExecutor(folder=str(out / "slurm" / "%j"), cluster=slurm.cluster)
        cpus = slurm.cpus_per_run or max(4, 4 * slurm.gpus_per_run)
        params: dict[str, Any] = {"timeout_min": slurm.time_min, "cpus_per_task": cpus, "name": "lra-suite"}
        if slurm.gpus_per_run:
            params["gpus_per_node"] = slurm.gpus_per_run
        if slurm.mem_gb is not None:
            params["mem_gb"] = slurm.mem_gb
        if slurm.partition is not None:
            params["slurm_partition"] = slurm.partition
        executor.update_parameters(**params)
        nproc = max(1, slurm.gpus_per_run)
        # What the job must see as this process does: the plugins, and the CPU pinning (or the opt-out).
        carried = (ENV_VAR, TRUST_RECORDED_ENV_VAR, "PYTHONPATH", OPT_OUT_ENV, *CPU_PINS)
        plugin_env = {k: v for k, v in child_env().items() if k in carried}
        self.jobs: list[tuple[Cell, tuple[int, int] | None, Any]] = []
        for cell in cells:
            stamp = stamp_of(cell.run_dir / RECORD_NAME)
            job = executor.submit(run_cell, cell, cpus // nproc or 1, command, nproc, plugin_env)
            self.jobs.append((cell, stamp, job))
        self.waiting = list(self.jobs)

    def start_ready(self) -> list[Outcome]:
        return []  # every job was submitted at once

    def collect(self) -> list[Outcome]:
        ended = []
        for item in [j for j in self.waiting if _job_done(j[2])]:
            self.waiting.remove(item)
            cell, stamp, job = item
            try:
                outcome = job.result()
            except Exception as err:  # the job itself failed (timeout, node failure, cancelled)
                message = str(err).strip().splitlines()
                outcome = conclude(
                    cell,
                    None,
                    record_stamp=stamp,
                    error=f"job {job.job_id}: {message[0] if message else err}",
                )
            ended.append(outcome)
        return ended

    def pending(self) -> bool:
        return bool(self.waiting)

    def in_progress(self) -> bool:
        return bool(self.waiting)

    def stop(self) -> None:
        for _, _, job in self.jobs:
            if not job.done():
                with contextlib.suppress(Exception):
                    job.cancel()
