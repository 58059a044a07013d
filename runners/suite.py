"""The suite: every (task x attention x seed) run of a grid, resumable, locally or on SLURM.

`run_suite(SuiteConfig(...))` plans one independent run per combination in
``<out>/runs/<task>/<attention slug>/<seed>/`` and brings each to a result:

* a run whose record says ``ok`` (or ``diverged``, a final outcome of its configuration) with the
  same configuration hash is skipped;
* a run that failed or was interrupted is started again with ``resume=True``, so it continues from
  its last checkpoint;
* a run directory holding another configuration (the preset or an override changed) is moved to
  ``<out>/.replaced/<time>/...`` and the run starts afresh;
* each run is its own process (`python -m runners.train <run_dir>/run_config.json`) with stdout and
  stderr appended to ``<run_dir>/log.txt``; when that process dies without a final record (a
  signal, the out-of-memory killer, a segfault) the suite writes a ``failed`` record itself, with the
  signal or the last line of the log as `error`, and carries on with the other runs.

Local runs go through a pool of `jobs` processes, the CPU cores split between them
(`OMP_NUM_THREADS`); `launcher="submitit"` sends each run to SLURM (optional dependency
``submitit``, extra ``slurm``). At the end the suite writes ``leaderboard.csv``, ``results_long.csv``,
``leaderboard.md``, ``frontier.md``, ``frontier.csv`` (accuracy against cost), ``plots/`` and
``report.html`` (all of it on one page, results/report.py) under `out`, from every record there.
Interrupting the suite (Ctrl-C, SIGKILL) leaves checkpoints behind; the same command resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from lra.io import atomic_write_json
from results.records import (
    OPTIONAL_RUN_FIELDS,
    RECORD_NAME,
    RUN_FIELDS,
    SCHEMA_VERSION,
    plugin_fields,
    read_record,
    reported_accuracy_text,
    write_record,
)

from .defaults import DEFAULT_RUNS_DIR
from .provenance import utc_now
from .rundir import BUSY_EXIT_CODE, RunDirBusy, run_dir_lock
from .specs import parse_spec, parse_specs

DEFAULT_OUT = DEFAULT_RUNS_DIR
# Presets that run on generated data only default to the two offline tasks.
OFFLINE_PRESET_TASKS = {"tiny": ("listops", "pathfinder"), "quick": ("listops", "pathfinder")}
LAUNCHERS = ("local", "submitit")
CONFIG_NAME = "run_config.json"
LOG_NAME = "log.txt"
FINAL_STATUSES = ("ok", "diverged", "failed")
NOT_RUN = "not run"  # the status of runs not started because --max-minutes was reached
DAMAGED = "damaged"  # the cell state of a run whose checkpoint fails its integrity check


@dataclass(frozen=True)
class SlurmOptions:
    """Executor options of `--launcher submitit` (one SLURM job per run).

    Attributes:
        partition: SLURM partition (None = the cluster default).
        time_min: wall-time limit per run, minutes.
        gpus_per_run: GPUs per run; more than one runs the run with DDP (torchrun, one process per GPU).
        mem_gb: memory per run in GB (None = the cluster default).
        cpus_per_run: CPU cores per run (None = 4 per GPU, at least 4).
        cluster: submitit cluster: None = SLURM (an error when `sbatch` is not available),
            "local" or "debug" to try the launcher on one machine.
    """

    partition: str | None = None
    time_min: int = 240
    gpus_per_run: int = 1
    mem_gb: int | None = None
    cpus_per_run: int | None = None
    cluster: str | None = None


@dataclass(frozen=True)
class SuiteConfig:
    """A grid of runs.

    Attributes:
        tasks: task names; empty = listops and pathfinder for the tiny / quick presets (generated
            data), every registered task otherwise.
        attentions: attention specs, a registry name optionally with parameters
            (`mita(num_landmarks=64,topk=64)`); empty = every registered attention with defaults.
        seeds: random seeds; every (task, attention) runs once per seed.
        preset: preset name of every run (`lra.configs.PRESET_NAMES`).
        out: output directory (runs under `<out>/runs`, tables and plots at the top).
        jobs: local runs in parallel.
        launcher: "local" or "submitit".
        attn_params: per-attention parameters for every spec of that name, {name: {key: value}}.
        overrides: dotted preset overrides for every run ({"train.steps": "200"}).
        max_steps, checkpoint_every, device, amp, data_dir, source: passed to every RunConfig.
        slurm: executor options of the submitit launcher.
        max_minutes: start no new run after this many minutes from the start of the suite (data
            preparation included; None = no limit). Runs in progress finish; the runs left are
            reported as "not run" and the same command continues with them.
        log: loggers of every run's training curves (`RunConfig.log`, e.g. ("tensorboard",)).
    """

    tasks: tuple[str, ...] = ()
    attentions: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    preset: str = "quick"
    out: str = DEFAULT_OUT
    jobs: int = 1
    launcher: str = "local"
    attn_params: dict[str, dict[str, str]] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    max_steps: int | None = None
    checkpoint_every: int | None = None
    device: str = "auto"
    amp: bool | None = None
    data_dir: str | None = None
    source: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    max_minutes: float | None = None
    log: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cell:
    """One planned run: its configuration, where it lives, and what the runner will call it."""

    run_id: str
    task: str
    attention: str
    label: str
    seed: int
    run_dir: Path
    config: Any  # runners.train.RunConfig (kept untyped so that this module imports without torch)
    config_hash: str
    resolved_config: dict[str, Any]
    attention_params: dict[str, Any]
    max_steps: int
    num_classes: int
    test_examples: int = 0  # the test examples it will be scored on (`runners.train.planned_test_examples`)


@dataclass
class Outcome:
    """What happened to one cell in this invocation."""

    cell: Cell
    status: str  # ok | diverged | failed | busy | skipped | not run
    error: str | None = None
    record: dict[str, Any] | None = None
    seconds: float = 0.0


@dataclass
class SuiteResult:
    outcomes: list[Outcome]
    out: Path
    written: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every run has a result (ok or diverged); 1 when any failed; otherwise
        `BUSY_EXIT_CODE` (75) when runs were left to another process writing them (not a failure:
        the same command, once that process is done, tabulates them)."""
        if any(o.status == "failed" for o in self.outcomes):
            return 1
        return BUSY_EXIT_CODE if any(o.status == "busy" for o in self.outcomes) else 0

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts


# ----------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------


def default_tasks(preset: str) -> list[str]:
    from lra import tasks

    return list(OFFLINE_PRESET_TASKS.get(preset, tasks.names()))


def plan(cfg: SuiteConfig) -> list[Cell]:
    """Validate the grid and resolve every run; ValueError (one line) on any bad name or value."""
    import attention_zoo
    from lra import tasks
    from runners.train import RunConfig, planned_test_examples, resolve

    if cfg.jobs < 1:
        raise ValueError(f"--jobs must be at least 1; got {cfg.jobs}")
    if cfg.max_minutes is not None and not cfg.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0; got {cfg.max_minutes:g}")
    if cfg.max_minutes is not None and cfg.launcher != "local":
        raise ValueError("--max-minutes applies to local runs; with --launcher submitit use --slurm-time")
    if cfg.launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {cfg.launcher!r}; valid launchers: {', '.join(LAUNCHERS)}")
    if not cfg.seeds:
        raise ValueError("no seeds given; pass --seeds 0 (or 0,1,2)")
    task_names = list(dict.fromkeys(cfg.tasks)) or default_tasks(cfg.preset)
    _load_suite_plugins(Path(cfg.out), cfg.attentions)
    specs = parse_specs(cfg.attentions or attention_zoo.names(), cfg.attn_params)
    out = Path(cfg.out)
    # SLURM jobs with GPUs run on CUDA whatever this (login) machine has: settle "auto" here, so
    # that the configuration hash planned here is the one the job computes and records.
    slurm_gpus = cfg.launcher == "submitit" and cfg.slurm.gpus_per_run > 0
    device = "cuda" if slurm_gpus and cfg.device == "auto" else cfg.device
    cells: dict[str, Cell] = {}
    for task in task_names:
        for name, params in specs:
            for seed in cfg.seeds:
                run_cfg = RunConfig(
                    task=task,
                    attention=name,
                    attn_params=params,
                    preset=cfg.preset,
                    overrides=dict(cfg.overrides),
                    seed=seed,
                    max_steps=cfg.max_steps,
                    checkpoint_every=cfg.checkpoint_every,
                    resume=True,
                    device=device,
                    amp=cfg.amp,
                    data_dir=cfg.data_dir,
                    source=cfg.source,
                    quiet=True,
                    log=list(cfg.log),
                )
                r = resolve(run_cfg, elsewhere=slurm_gpus)
                run_dir = out / "runs" / task / r.mechanism.slug(r.params) / str(seed)
                # The run's own configuration names its attention's plugin: the child process, a
                # torchrun worker or a SLURM job imports it from there.
                run_cfg = dataclasses.replace(run_cfg, run_dir=str(run_dir), plugins=list(r.plugins))
                run_id = f"{task}/{r.label}/{seed}"
                if run_id in cells:
                    continue
                cells[run_id] = Cell(
                    run_id=run_id,
                    task=task,
                    attention=r.mechanism.name,
                    label=r.label,
                    seed=seed,
                    run_dir=run_dir,
                    config=run_cfg,
                    config_hash=r.config_hash,
                    resolved_config=r.config_dict(),
                    attention_params=r.params.to_dict(),
                    max_steps=r.preset.train.steps,
                    num_classes=tasks.get(task).num_classes,
                    test_examples=planned_test_examples(r),
                )
    return list(cells.values())


def _load_suite_plugins(out: Path, attentions: Sequence[str]) -> None:
    """Re-running a suite: check that the plugins its suite.json records, whose attentions are asked
    for (all of them when every attention is), are loaded -- named with --plugin / LRA_PLUGINS or
    trusted with --trust-recorded-plugins (`plugins.require_plugins`); a PluginError (one line) says
    which plugin and how to allow it otherwise. The file is validated (results/schema.py)."""
    path = out / "suite.json"
    if not path.exists():
        return
    from results.schema import read_suite_file

    try:
        recorded = read_suite_file(path).get("plugins") or []
    except ValueError as err:
        raise ValueError(f"{err}; delete it (the suite writes it again) or choose another --out") from None
    from attention_zoo.plugins import require_plugins

    names = {parse_spec(spec)[0] for spec in attentions}
    wanted = [p for p in recorded if not names or names & set(p.get("mechanisms", ()))]
    require_plugins(wanted, source=f"the suite in {out} (its suite.json)")


def _stored_config_hash(run_dir: Path) -> str | None:
    """The configuration hash the directory's record or checkpoint belongs to (None if neither;
    `DAMAGED` for a checkpoint, without a record, that fails its integrity check)."""
    record_path = run_dir / RECORD_NAME
    if record_path.exists():
        with contextlib.suppress(ValueError):
            return read_record(record_path).get("config_hash")
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if checkpoint.exists():
        from .checkpoints import CheckpointError, load_checkpoint

        try:
            return load_checkpoint(checkpoint, remedy="").get("config_hash")
        except (OSError, CheckpointError):  # a checkpoint that cannot be read cannot be resumed either
            return DAMAGED
    return None


def cell_state(cell: Cell) -> str:
    """'done' | 'diverged' (final results of this configuration), 'stale' (another configuration),
    'damaged' (its checkpoint fails its integrity check), 'resume' (interrupted or failed, continues
    from its checkpoint), 'retry' (failed before its first checkpoint) or 'new'."""
    stored = _stored_config_hash(cell.run_dir)
    if stored is None:
        return "new"
    if stored == DAMAGED:
        return DAMAGED
    if stored != cell.config_hash:
        return "stale"
    record = _read_record_or_none(cell.run_dir / RECORD_NAME)
    status = record.get("status") if record else None
    if status in ("ok", "diverged"):
        return "done" if status == "ok" else "diverged"
    checkpoint = cell.run_dir / "checkpoints" / "last.pt"
    if not checkpoint.exists():
        return "retry"
    # A torn, bit-flipped or old-format checkpoint cannot be resumed (the runner would refuse it at
    # every try): the directory is set aside and the run starts again. Its digest is checked here;
    # nothing is unpickled.
    from .checkpoints import checkpoint_problem

    return "resume" if checkpoint_problem(checkpoint) is None else DAMAGED


def _damage(cell: Cell) -> str:
    """What is wrong with the checkpoint of a `damaged` cell, in one line."""
    from .checkpoints import checkpoint_problem

    return checkpoint_problem(cell.run_dir / "checkpoints" / "last.pt") or "its checkpoint cannot be read"


def _read_record_or_none(path: Path) -> dict[str, Any] | None:
    try:
        return read_record(path)
    except ValueError:
        return None


def _archive(cell: Cell, out: Path, stamp: str) -> Path:
    """Move a run directory of another configuration out of the way (hidden from the store)."""
    target = out / ".replaced" / stamp / cell.run_dir.relative_to(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(cell.run_dir), str(target))
    return target


# ----------------------------------------------------------------------------------------------
# One run in its own process
# ----------------------------------------------------------------------------------------------


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
class _Attempt:
    cell: Cell
    process: subprocess.Popen[bytes]
    threads: int
    log: IO[bytes]
    log_offset: int
    record_stamp: tuple[int, int] | None
    started: float


def _record_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _start(
    cell: Cell,
    threads: int,
    command: Sequence[str] | None,
    nproc: int = 1,
    plugin_env: dict[str, str] | None = None,
) -> _Attempt | None:
    from .train import runner_command

    # The run's process takes the directory's lock itself (runners/rundir.py); the suite only looks,
    # so that a cell another process is writing is reported busy without starting anything.
    try:
        with run_dir_lock(cell.run_dir):
            config_path = cell.run_dir / CONFIG_NAME
            atomic_write_json(config_path, json.loads(cell.config.to_json()))
    except RunDirBusy:
        return None
    argv = [*command, str(config_path)] if command is not None else runner_command(config_path, nproc)
    from attention_zoo.plugins import child_env

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
    return _Attempt(
        cell, process, threads, log, offset, _record_stamp(cell.run_dir / RECORD_NAME), time.monotonic()
    )


def _finish(attempt: _Attempt) -> Outcome:
    attempt.log.close()
    return conclude(
        attempt.cell,
        attempt.process.returncode,
        record_stamp=attempt.record_stamp,
        log_offset=attempt.log_offset,
        seconds=time.monotonic() - attempt.started,
        threads=attempt.threads,
    )


def _stop(attempt: _Attempt, grace_s: float = 10.0) -> None:
    """Terminate a run's process group (SIGTERM, then SIGKILL after `grace_s`)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(attempt.process.pid, signal.SIGTERM)
    try:
        attempt.process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(attempt.process.pid, signal.SIGKILL)
        attempt.process.wait()
    attempt.log.close()


def run_cell(
    cell: Cell,
    threads: int,
    command: Sequence[str] | None = None,
    nproc: int = 1,
    plugin_env: dict[str, str] | None = None,
) -> Outcome:
    """Run one cell to its end in a child process (blocking); used by the SLURM jobs, to which
    `plugin_env` carries the submitting process's LRA_PLUGINS and PYTHONPATH (`plugins.child_env`)."""
    attempt = _start(cell, threads, command, nproc, plugin_env)
    if attempt is None:
        return Outcome(cell, "busy", error=str(RunDirBusy(cell.run_dir)))
    try:
        attempt.process.wait()
    except BaseException:
        _stop(attempt)
        raise
    return _finish(attempt)


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
    fresh = _record_stamp(path) != record_stamp
    record = _read_record_or_none(path) if path.exists() else None
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
    except RunDirBusy as busy:  # another process took the run over since this attempt ended
        return Outcome(cell, "busy", error=str(busy), seconds=seconds)
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
    record: dict[str, Any] = dict.fromkeys(RUN_FIELDS)
    if base is not None:  # the runner's `running` record: keep what it knew
        record.update({k: v for k, v in base.items() if k in RUN_FIELDS or k in OPTIONAL_RUN_FIELDS})
    config = (base or {}).get("config") or _planned_config(cell, threads)
    record.update(
        schema_version=SCHEMA_VERSION,
        kind="run",
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
    from .cpu_pinning import cpu_numerics

    return {**cell.resolved_config, "cpu_numerics": cpu_numerics(threads)}


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _report(bar: tqdm, outcome: Outcome) -> None:
    record = outcome.record or {}
    acc = reported_accuracy_text(record)  # Text: the last checkpoint's, said so
    detail = acc if outcome.status == "ok" and acc is not None else (outcome.error or "")
    bar.write(f"[{outcome.status}] {outcome.cell.run_id}  {detail}  ({outcome.seconds:.0f} s)")


def _run_local(
    cells: list[Cell],
    jobs: int,
    command: Sequence[str] | None,
    gated_tasks: set[str],
    deadline: float | None = None,
) -> list[Outcome]:
    """Run cells with at most `jobs` processes at once. For a task in `gated_tasks` (data not
    prepared beforehand) one run goes first and the others wait until it ends, so that the task's
    data are generated once. No run starts after `deadline` (on `_clock()`); the cells left
    come back as "not run"."""
    threads = max(1, available_cores() // jobs)
    pending = deque(cells)
    first_of_task = {}
    for cell in cells:
        if cell.task in gated_tasks:
            first_of_task.setdefault(cell.task, cell.run_id)
    opened: set[str] = {task for task in {c.task for c in cells} if task not in gated_tasks}
    active: list[_Attempt] = []
    outcomes: list[Outcome] = []
    with tqdm(total=len(cells), desc="suite", unit="run", dynamic_ncols=True) as bar:
        try:
            while pending or active:
                if pending and _past(deadline):
                    outcomes += [Outcome(cell, NOT_RUN, error="--max-minutes reached") for cell in pending]
                    bar.update(len(pending))
                    pending.clear()
                started_any = True
                while started_any and len(active) < jobs:
                    started_any = False
                    for cell in list(pending):
                        if cell.task in opened or first_of_task.get(cell.task) == cell.run_id:
                            pending.remove(cell)
                            attempt = _start(cell, threads, command)
                            if attempt is None:
                                outcome = Outcome(cell, "busy", error=str(RunDirBusy(cell.run_dir)))
                                outcomes.append(outcome)
                                _report(bar, outcome)
                                bar.update()
                                opened.add(cell.task)
                            else:
                                active.append(attempt)
                            started_any = True
                            break
                for attempt in [a for a in active if a.process.poll() is not None]:
                    active.remove(attempt)
                    outcome = _finish(attempt)
                    opened.add(attempt.cell.task)
                    outcomes.append(outcome)
                    _report(bar, outcome)
                    bar.update()
                if active:
                    time.sleep(0.1)
        except BaseException:
            for attempt in active:
                _stop(attempt)
            raise
    return outcomes


def _clock() -> float:
    """Seconds on the clock of --max-minutes (monotonic)."""
    return time.monotonic()


def _past(deadline: float | None) -> bool:
    return deadline is not None and _clock() > deadline


def _job_done(job: Any) -> bool:
    try:
        return bool(job.done())
    except Exception:  # a job that cannot report its state is over; result() says how
        return True


def _run_submitit(
    cells: list[Cell], slurm: SlurmOptions, out: Path, command: Sequence[str] | None
) -> list[Outcome]:
    """One submitit job per cell; waits for all of them."""
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
    from attention_zoo.plugins import ENV_VAR, TRUST_RECORDED_ENV_VAR, child_env

    from .cpu_pinning import CPU_PINS, OPT_OUT_ENV

    # What the job must see as this process does: the plugins, and the CPU pinning (or the opt-out).
    carried = (ENV_VAR, TRUST_RECORDED_ENV_VAR, "PYTHONPATH", OPT_OUT_ENV, *CPU_PINS)
    plugin_env = {k: v for k, v in child_env().items() if k in carried}
    jobs = []
    for cell in cells:
        stamp = _record_stamp(cell.run_dir / RECORD_NAME)
        jobs.append(
            (cell, stamp, executor.submit(run_cell, cell, cpus // nproc or 1, command, nproc, plugin_env))
        )
    outcomes: list[Outcome] = []
    with tqdm(total=len(jobs), desc="suite (submitit)", unit="run", dynamic_ncols=True) as bar:
        try:
            waiting = list(jobs)
            while waiting:
                for item in [j for j in waiting if _job_done(j[2])]:
                    waiting.remove(item)
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
                    outcomes.append(outcome)
                    _report(bar, outcome)
                    bar.update()
                if waiting:
                    time.sleep(1.0)
        except BaseException:
            for _, _, job in jobs:
                if not job.done():
                    with contextlib.suppress(Exception):
                        job.cancel()
            raise
    return outcomes


# ----------------------------------------------------------------------------------------------
# The suite
# ----------------------------------------------------------------------------------------------


def check_plugin_attentions(cells: Sequence[Cell]) -> None:
    """The smoke check of the attention contract for every plugin attention about to train, once per
    attention and parameters (runners/plugin_checks.py); ValueError (one line) before any run starts."""
    from runners.plugin_checks import smoke_check

    for cell in cells:
        if cell.config.plugins:
            smoke_check(cell.attention, cell.attention_params, cell.resolved_config["device_type"])


def _prepare_data(cells: list[Cell], echo: Callable[[str], None]) -> tuple[set[str], list[Outcome]]:
    """Generate / cache each task's data once before the runs fan out.

    Returns the tasks whose data could not be prepared here (their first run prepares them) and a
    failed outcome for every cell of a task whose data are unavailable.
    """
    from runners.train import error_line, resolve

    try:
        from lra.data import prepare
    except ImportError:
        return {c.task for c in cells}, []
    failures: list[Outcome] = []
    for task in dict.fromkeys(c.task for c in cells):
        first = next(c for c in cells if c.task == task)
        echo(f"preparing {task} data ...")
        try:
            prepare(task, resolve(first.config).preset.data)
        except Exception as err:
            error = error_line(err)
            for cell in (c for c in cells if c.task == task):
                record = failed_record(cell, f"data not available: {error}")
                try:
                    with run_dir_lock(cell.run_dir):
                        write_record(cell.run_dir / RECORD_NAME, record)
                except RunDirBusy as busy:
                    failures.append(Outcome(cell, "busy", error=str(busy)))
                    continue
                failures.append(Outcome(cell, "failed", error=record["error"], record=record))
    return set(), failures


def run_suite(
    cfg: SuiteConfig,
    *,
    command: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
    reports: bool = True,
) -> SuiteResult:
    """Plan, run what is not finished, and write the tables and plots; see the module docstring.

    `command` replaces `python -m runners.train` (the run's config path is appended), e.g. to run
    the suite against another runner.
    """
    cells = plan(cfg)
    deadline = None if cfg.max_minutes is None else _clock() + 60.0 * cfg.max_minutes
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    outcomes: list[Outcome] = []
    todo: list[Cell] = []
    for cell in cells:
        state = cell_state(cell)
        if state in ("done", "diverged"):
            outcomes.append(Outcome(cell, "skipped", record=_read_record_or_none(cell.run_dir / RECORD_NAME)))
            continue
        if state in ("stale", DAMAGED):
            try:
                with run_dir_lock(cell.run_dir):  # a run of that configuration may still be going
                    problem = _damage(cell) if state == DAMAGED else None
                    moved = _archive(cell, out, stamp)
            except RunDirBusy:
                what = "another configuration" if state == "stale" else "a damaged checkpoint"
                error = f"{cell.run_dir} holds {what}, still running in another process"
                outcomes.append(Outcome(cell, "busy", error=error))
                continue
            if problem is not None:
                echo(
                    f"{cell.run_id}: {problem}; the run directory was moved to {moved} and the run starts again"
                )
            else:
                echo(f"{cell.run_id}: the directory held another configuration; moved to {moved}")
        todo.append(cell)
    _write_plan(cfg, cells, out)
    for line in resolution_lines(cells):
        echo(line)
    echo(
        f"{len(cells)} runs ({len(cells) - len(todo)} already finished, {len(todo)} to run) -> {out / 'runs'}"
    )
    if todo:
        check_plugin_attentions(todo)
        gated, failures = _prepare_data(todo, echo)
        outcomes += failures
        failed_ids = {o.cell.run_id for o in failures}
        todo = [c for c in todo if c.run_id not in failed_ids]
        if cfg.launcher == "submitit":
            outcomes += _run_submitit(todo, cfg.slurm, out, command)
        else:
            outcomes += _run_local(todo, cfg.jobs, command, gated, deadline)
    result = SuiteResult(outcomes=outcomes, out=out)
    if reports:
        result.written = write_reports(out, echo=echo)
    return result


def resolution_lines(cells: Sequence[Cell]) -> list[str]:
    """One line per task of the plan: the resolution its test set gives (`runners.train.resolution`),
    printed before anything trains."""
    from runners.train import resolution

    sizes = dict.fromkeys((cell.task, cell.test_examples) for cell in cells if cell.test_examples > 0)
    return [resolution(task, n) for task, n in sizes]


def _write_plan(cfg: SuiteConfig, cells: list[Cell], out: Path) -> None:
    atomic_write_json(
        out / "suite.json",
        {
            "suite": dataclasses.asdict(cfg),
            "written_at": utc_now(),
            # The attention plugins of the runs: a re-run of the suite imports them by itself.
            "plugins": list({p["module"]: p for c in cells for p in c.config.plugins}.values()),
            "runs": [
                {"run_id": c.run_id, "run_dir": str(c.run_dir), "config_hash": c.config_hash} for c in cells
            ],
        },
    )


def write_reports(out: str | os.PathLike[str], *, echo: Callable[[str], None] = print) -> list[Path]:
    """Print the leaderboard and the accuracy–cost frontier of every record under `out` and write
    leaderboard.csv, results_long.csv, leaderboard.md, frontier.md, frontier.csv, plots/ and
    report.html there."""
    from results import frontier, leaderboard, plots, report, store
    from results.published import load_published

    out = Path(out)
    st = store.load(out)
    for problem in st.problems:
        echo(f"warning: {problem}")
    if st.runs.empty:
        echo("no run records yet; nothing to tabulate")
        return []
    lb = leaderboard.build(st.runs)
    published = load_published()
    echo(leaderboard.render(lb, markdown=False, published=published, skipped=st.invalid))
    written = [out / "leaderboard.csv", out / "leaderboard.md", out / "results_long.csv"]
    leaderboard.write_all(lb, csv=written[0], markdown=written[1], published=published, skipped=st.invalid)
    store.write_long_csv(st.runs, written[2])
    fr = frontier.build(st, lb)
    echo(frontier.render(fr, markdown=False, panels=[frontier.AVG]))
    warning = frontier.unreliable_line(fr)
    if warning:
        echo(warning)
    written += [out / "frontier.md", out / "frontier.csv"]
    frontier.write_all(fr, markdown=written[-2], csv=written[-1])
    figures = plots.plot_all(st, out / "plots")
    written += figures
    written.append(report.write_report(out, st=st, lb=lb, fr=fr, figures=figures))
    echo("wrote " + ", ".join(str(p) for p in written))
    return written
