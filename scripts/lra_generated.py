"""The LRA-scale leaderboard on generated data, in resumable slices on fresh GPU machines.

`STEPS=lra-generated bash scripts/gpu_checks.sh` (see its header) runs `lra suite` for ListOps,
Pathfinder-32 and Path-X on generated `lra` data over every registered attention, a few minutes
per call, on machines where nothing survives between calls. The records that get committed (one
folder, laid out like a suite's output: ``runs/<task>/<attention>/<seed>/``) carry the state from
one call to the next. This module holds the script's bookkeeping:

* `restore` copies the committed records into the suite's output, so that the suite skips the
  finished runs (same configuration hash) and starts the others;
* `out_of_memory` names the attentions whose run of a task ran out of memory: the script leaves
  them out of the next calls (the same configuration runs out of memory again) and the README
  lists them as OOM, where the LRA paper wrote FAIL;
* `collect` copies out exactly what gets committed: each finished run's ``result.json``,
  ``config.json`` and ``log.txt`` (no checkpoints, no run that was cut off);
* `probe_table` turns the records of a short timed suite (``lra-measure``) into steps/s per
  attention and the minutes a run of the full budget would take, to choose the step budget.

`python scripts/lra_generated.py restore|out-of-memory|collect|probe-table ...` (used by the script, from
the repository root with the checkout's packages importable: the script sets PYTHONPATH).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from results.records import RECORD_NAME, read_record
from results.records import is_out_of_memory as out_of_memory_error

COMMITTED_FILES = (RECORD_NAME, "config.json", "log.txt")  # per run; checkpoints stay behind
FINISHED = ("ok", "diverged", "failed")  # 'running': cut off with the call, run again next time


def _records(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(run directory, record) of every readable run record under `root`/runs."""
    found = []
    for path in sorted((root / "runs").glob(f"*/*/*/{RECORD_NAME}")):
        try:
            found.append((path.parent, read_record(path)))
        except ValueError:
            continue  # a torn record: the suite runs that cell again
    return found


def is_out_of_memory(record: dict[str, Any]) -> bool:
    """Whether a run record says the run failed because it ran out of (GPU) memory."""
    return record.get("status") == "failed" and out_of_memory_error(record.get("error"))


def restore(records: Path, out: Path) -> int:
    """Copy the committed run folders of `records` into `out`/runs where `out` has no record of
    that run yet (a record written on this machine is newer); returns the runs copied."""
    copied = 0
    for run_dir, _ in _records(records):
        target = out / run_dir.relative_to(records)
        if (target / RECORD_NAME).exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in COMMITTED_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, target / name)
        copied += 1
    return copied


def out_of_memory(out: Path, task: str) -> list[str]:
    """Registry names of the attentions whose latest run of `task` under `out` ran out of memory."""
    return sorted({r["attention"] for _, r in _records(out) if r.get("task") == task and is_out_of_memory(r)})


def collect(out: Path, dest: Path) -> int:
    """Copy what gets committed of every finished run under `out`/runs into `dest`/runs (the
    folder is replaced, so a run moved aside by the suite does not linger); returns the runs."""
    runs = dest / "runs"
    if runs.exists():
        shutil.rmtree(runs)
    count = 0
    for run_dir, record in _records(out):
        if record.get("status") not in FINISHED:
            continue
        target = dest / run_dir.relative_to(out)
        target.mkdir(parents=True, exist_ok=True)
        for name in COMMITTED_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, target / name)
        count += 1
    return count


def oom_lines(out: Path) -> list[str]:
    """Markdown list items of the runs under `out` that ran out of memory."""
    return [f"- {r['run_id']}: {r.get('error')}" for _, r in _records(out) if is_out_of_memory(r)]


def probe_table(probe: Path, steps: dict[str, int], run_minutes: float) -> str:
    """Markdown: per task and attention, the probe's training steps/s, peak memory and wall time,
    the minutes the task's step budget would take -- training alone, and at the probe's wall time
    per step (start-up, data loading and evaluations included: an upper bound) -- and the largest
    budget with which every attention fits in `run_minutes` by each measure."""
    lines = []
    for task in steps:
        rows = [r for _, r in _records(probe) if r.get("task") == task]
        if not rows:
            continue
        lines += [
            f"### {task}: {steps[task]} steps",
            "",
            "| attention | status | steps/s | peak memory GiB | probe wall s (steps) | minutes: training "
            "| minutes: at the probe's wall time per step |",
            "|---|---|---|---|---|---|---|",
        ]
        per_step = {"training": 0.0, "wall": 0.0}  # the slowest attention's seconds per step
        for r in sorted(rows, key=lambda r: r["attention_label"]):
            rate, memory, wall, done = (
                r.get(k) for k in ("train_steps_per_s", "peak_memory_bytes", "wall_time_s", "steps")
            )
            status = "OOM" if is_out_of_memory(r) else r.get("status")
            train_s = 1 / rate if rate else None
            wall_s = wall / done if wall and done else None
            per_step["training"] = max(per_step["training"], train_s or 0.0)
            per_step["wall"] = max(per_step["wall"], wall_s or 0.0)
            lines.append(
                f"| {r['attention_label']} | {status} | {f'{rate:.1f}' if rate else '–'} | "
                f"{f'{memory / 2**30:.2f}' if memory else '–'} | {f'{wall:.0f} ({done})' if wall_s else '–'} | "
                f"{f'{steps[task] * train_s / 60:.1f}' if train_s else '–'} | "
                f"{f'{steps[task] * wall_s / 60:.1f}' if wall_s else '–'} |"
            )
        if per_step["training"]:
            fits = {k: int(run_minutes * 60 / v) for k, v in per_step.items() if v}
            lines += [
                "",
                f"Largest budget with which every attention fits in {run_minutes:g} min: "
                + ", ".join(f"{n} steps ({k})" for k, n in fits.items())
                + ".",
            ]
        lines.append("")
    return "\n".join(lines) if lines else "no probe records\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/lra_generated.py", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("restore", help="copy committed records into a suite's output")
    p.add_argument("records", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser(
        "out-of-memory", help="attentions of TASK whose run ran out of memory (comma-separated)"
    )
    p.add_argument("out", type=Path)
    p.add_argument("task")
    p = sub.add_parser("collect", help="copy what gets committed of a suite's output")
    p.add_argument("out", type=Path)
    p.add_argument("dest", type=Path)
    p = sub.add_parser("oom", help="markdown list of the runs that ran out of memory")
    p.add_argument("out", type=Path)
    p = sub.add_parser("probe-table", help="steps/s per attention from a short timed suite")
    p.add_argument("probe", type=Path)
    p.add_argument("--steps", nargs="+", required=True, metavar="TASK=STEPS")
    p.add_argument("--run-minutes", type=float, required=True)
    args = parser.parse_args(argv)
    if args.verb == "restore":
        print(f"restored {restore(args.records, args.out)} committed runs from {args.records}")
    elif args.verb == "out-of-memory":
        print(",".join(out_of_memory(args.out, args.task)))
    elif args.verb == "collect":
        print(f"collected {collect(args.out, args.dest)} finished runs into {args.dest}")
    elif args.verb == "oom":
        print("\n".join(oom_lines(args.out)) or "none")
    else:
        try:
            steps = {task: int(n) for task, _, n in (s.partition("=") for s in args.steps)}
        except ValueError:
            parser.error(f"--steps expects TASK=STEPS pairs; got {' '.join(args.steps)}")
        print(probe_table(args.probe, steps, args.run_minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
