"""`run_suite`: plan the grid, bring every run that is not finished to a result, then write the
reports (results/reports.py). See runners/suite/__init__.py for what happens to each run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from results.records import RECORD_NAME, write_record

from ..train.rundir import BUSY_EXIT_CODE, RunDirBusy, run_dir_lock
from . import launchers
from .plan import (
    DAMAGED,
    Cell,
    SuiteConfig,
    archive,
    cell_state,
    damage,
    plan,
    read_record_or_none,
    resolution_lines,
    write_plan,
)
from .process import Outcome, failed_record


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


def check_plugin_attentions(cells: Sequence[Cell]) -> None:
    """The smoke check of the attention contract for every plugin attention about to train, once per
    attention and parameters (runners/plugin_checks.py); ValueError (one line) before any run starts."""
    from ..plugin_checks import smoke_check
    from ..specs import attention_spec

    for cell in cells:
        if cell.config.plugins:  # a cell holds plain values (it travels to SLURM jobs): its spec again
            attention = attention_spec(cell.attention, cell.attention_params)
            smoke_check(attention, cell.resolved_config["device_type"])


def prepare_data(cells: list[Cell], echo: Callable[[str], None]) -> tuple[set[str], list[Outcome]]:
    """Generate / cache each task's data once before the runs fan out.

    Returns the tasks whose data could not be prepared here (their first run prepares them) and a
    failed outcome for every cell of a task whose data are unavailable.
    """
    from ..train import error_line

    try:
        from lra.data import prepare
    except ImportError:
        return {c.task for c in cells}, []
    failures: list[Outcome] = []
    for task in dict.fromkeys(c.task for c in cells):
        first = next(c for c in cells if c.task == task)
        echo(f"preparing {task} data ...")
        try:
            prepare(task, first.data)
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
    """Plan, run what is not finished, and write the tables and plots; see runners/suite/__init__.py.

    `command` replaces `python -m runners.train` (the run's config path is appended), e.g. to run
    the suite against another runner.
    """
    cells = plan(cfg)
    deadline = None if cfg.max_minutes is None else launchers.clock() + 60.0 * cfg.max_minutes
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    outcomes: list[Outcome] = []
    todo: list[Cell] = []
    for cell in cells:
        state = cell_state(cell)
        if state in ("done", "diverged"):
            outcomes.append(Outcome(cell, "skipped", record=read_record_or_none(cell.run_dir / RECORD_NAME)))
            continue
        if state in ("stale", DAMAGED):
            try:
                with run_dir_lock(cell.run_dir):  # a run of that configuration may still be going
                    problem = damage(cell) if state == DAMAGED else None
                    moved = archive(cell, out, stamp)
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
    write_plan(cfg, cells, out)
    for line in resolution_lines(cells):
        echo(line)
    echo(
        f"{len(cells)} runs ({len(cells) - len(todo)} already finished, {len(todo)} to run) -> {out / 'runs'}"
    )
    if todo:
        check_plugin_attentions(todo)
        gated, failures = prepare_data(todo, echo)
        outcomes += failures
        failed_ids = {o.cell.run_id for o in failures}
        todo = [c for c in todo if c.run_id not in failed_ids]
        launcher: launchers.Launcher
        if cfg.launcher == "submitit":
            launcher = launchers.SubmititLauncher(todo, cfg.slurm, out, command)
        else:
            launcher = launchers.LocalLauncher(todo, cfg.jobs, command, gated, deadline)
        outcomes += launchers.poll(launcher, len(todo))
    result = SuiteResult(outcomes=outcomes, out=out)
    if reports:
        from results.reports import write_suite_reports

        result.written = write_suite_reports(out, echo=echo)
    return result
