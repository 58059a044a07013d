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
``report.html`` (all of it on one page) under `out`, from every record there
(results/reports.py). Interrupting the suite (Ctrl-C, SIGKILL) leaves checkpoints behind; the same
command resumes.

The rooms: `plan` (the grid, its cells and what their directories hold), `process` (one run in its
own process, and the record of one that died), `launchers` (local processes and SLURM jobs, one
polling loop) and `runner` (`run_suite`).
"""

from .plan import (
    DAMAGED,
    Cell,
    SlurmOptions,
    SuiteConfig,
    cell_state,
    default_tasks,
    plan,
    resolution_lines,
)
from .process import CONFIG_NAME, LOG_NAME, NOT_RUN, Outcome, conclude, failed_record, run_cell
from .runner import SuiteResult, run_suite

__all__ = [
    "CONFIG_NAME",
    "DAMAGED",
    "LOG_NAME",
    "NOT_RUN",
    "Cell",
    "Outcome",
    "SlurmOptions",
    "SuiteConfig",
    "SuiteResult",
    "cell_state",
    "conclude",
    "default_tasks",
    "failed_record",
    "plan",
    "resolution_lines",
    "run_cell",
    "run_suite",
]
