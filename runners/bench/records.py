"""Efficiency records of `lra bench attention|model`: what one invocation's records share
(`Context`), one record (`make_record`) and where it lives (`record_path`), which stored record
`resume` may reuse instead of measuring again (`reusable_record`), and the rows, progress lines and
counts of the run loops in runners/bench/attention.py and runners/bench/model.py.

A record holds every schema field of results/records.py (``kind="efficiency"``) plus the settings
that must match for reuse: device, CPU model and threads, dtype, requested warm-up and repeats,
time budget, torch and Triton versions and the hash of the package's sources (`code_hash`); and
what says how far its time can be trusted (results/costs.py): the spread of its timed calls, how
busy the machine was, and the id of the bench call that measured it (`bench_call_id`: tables form
ratios only within one call). `--resume` continues the newest earlier call whose records it can
reuse: it reuses that call's records only, and its new records take that call's id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lra.io import slug
from results.cost_tables import NOT_RUN
from results.records import SCHEMA_VERSION, plugin_fields, read_record

from ..cpu_pinning import cpu_model
from ..devices import device_name
from ..provenance import code_hash, git_commit, installed_version, utc_now
from .options import BenchConfig, Grid
from .series import Series
from .timing import CPU_LIMIT_MESSAGE, Measurement


@dataclass(frozen=True)
class Context:
    """What every record of one invocation shares."""

    bench: str
    device: torch.device
    device_name: str
    dtype: str
    heads: int
    head_dim: int
    warmup: int
    repeats: int
    time_budget_s: float
    memory_limit_bytes: int | None
    out: Path
    config_slug: str
    provenance: dict[str, Any]
    resume: bool = False
    deadline: float | None = None  # time.monotonic() after which no new measurement starts
    call_id: str = ""  # this invocation's `bench_call_id` (an earlier one's when resuming it)

    @property
    def directory(self) -> Path:
        return self.out / "efficiency" / self.bench / slug(self.device_name) / self.config_slug

    def settings(self) -> dict[str, Any]:
        """The record fields that must match for `resume` to reuse a record (beyond its path,
        which already names the bench, device, shape, attention parameters, backend, pass and N;
        the CPU memory limit is compared by what it changes, in `reusable_record`). "Same code" is
        the hash of the package's sources, not the commit, which cannot tell two dirty trees apart."""
        cpu = self.device.type == "cpu"
        return {
            "device": self.device_name,
            "cpu_model": cpu_model() if cpu else None,
            "cpu_threads": torch.get_num_threads() if cpu else None,
            "dtype": self.dtype,
            "warmup_requested": self.warmup,
            "repeats_requested": self.repeats,
            "time_budget_s": self.time_budget_s,
            **{k: v for k, v in self.provenance.items() if k != "git_commit"},
        }

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


def make_record(
    ctx: Context,
    series: Series,
    pass_: str,
    seq_len: int,
    batch: int,
    m: Measurement,
    *,
    peak_memory_bytes: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An efficiency record with every schema field, plus the method fields and `extra`."""
    median = m.median_ms
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": "efficiency",
        "bench": ctx.bench,
        "attention": series.mechanism.name,
        "attention_params": series.params.to_dict(),
        "attention_label": series.label,
        **plugin_fields(series.plugin),
        "backend": series.backend,
        "pass": pass_,
        "seq_len": seq_len,
        "batch": batch,
        "heads": ctx.heads,
        "head_dim": ctx.head_dim,
        "dtype": ctx.dtype,
        "device": ctx.device_name,
        "status": m.status,
        "error": m.error,
        "time_ms_median": median,
        "time_ms_p20": m.p20_ms,
        "time_ms_p80": m.p80_ms,
        "steps_per_s": 1000.0 / median if median else None,
        "peak_memory_bytes": m.peak_memory_bytes if peak_memory_bytes is None else peak_memory_bytes,
        "repeats": m.repeats,
        "warmup": m.warmup,
        "time_method": m.time_method,
        "memory_method": m.memory_method,
        "memory_limit_bytes": ctx.memory_limit_bytes if ctx.device.type == "cpu" else None,
        "measured_at": utc_now(),
        "git_commit": ctx.provenance["git_commit"],
        **ctx.settings(),
        "bench_call_id": ctx.call_id,
        "time_spread": m.spread,
        **m.load.record_fields(),
    }
    record.update(extra)
    return record


def record_path(ctx: Context, series: Series, pass_: str, seq_len: int) -> Path:
    return ctx.directory / series.slug / f"{pass_}-N{seq_len}.json"


def reusable_record(ctx: Context, series: Series, pass_: str, seq_len: int) -> dict[str, Any] | None:
    """With `resume`: the cell's record if it holds a measurement (ok or oom, not an error and not
    a skipped cell) taken with this invocation's settings in the call it continues (`ctx.call_id`,
    see `resumed_call`); else None (the cell is measured)."""
    path = record_path(ctx, series, pass_, seq_len)
    if not ctx.resume or not path.is_file():
        return None
    try:
        record = read_record(path)
    except ValueError:  # torn or of another schema: measure again
        return None
    if record.get("bench_call_id") != ctx.call_id:  # another call's: ratios are formed within one call
        return None
    if record["status"] not in ("ok", "oom") or (record["error"] or "").startswith("skipped"):
        return None
    expected = {**ctx.settings(), "attention_params": json.loads(json.dumps(series.params.to_dict()))}
    if any(record.get(name) != value for name, value in expected.items()):
        return None
    # The CPU memory limit (by default half the free memory, so it moves between runs) only
    # matters where it would change the outcome: a measurement that now exceeds it, or an OOM
    # under a tighter limit than now.
    limit = ctx.memory_limit_bytes if ctx.device.type == "cpu" else None
    was_limit = record.get("memory_limit_bytes")
    # what the limit was checked against: the call's own allocations (the model bench's
    # peak_memory_bytes adds the weights, optimizer state and inputs held before the step)
    tracked = record.get("step_peak_memory_bytes", record["peak_memory_bytes"]) or 0
    if record["status"] == "ok" and limit is not None and tracked > limit:
        return None
    looser = was_limit is not None and (limit is None or limit > was_limit)
    if looser and record["status"] == "oom" and CPU_LIMIT_MESSAGE in (record["error"] or ""):
        return None
    if looser and record.get("batch_halved_by_cpu_limit"):
        return None  # the batch was halved under a tighter limit: a larger one may fit now
    return record


def new_call_id() -> str:
    """A new `bench_call_id`: the UTC time to the microsecond and a random suffix, e.g.
    "20261207T075600.123456Z-1a2b3c4d"; later calls sort after earlier ones."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + uuid.uuid4().hex[:8]


def resumed_call(ctx: Context, cells: Iterable[tuple[Series, str, int]]) -> Context:
    """`ctx` with the call it continues: without `resume` a new call; with it, the newest earlier call
    (call ids start with their time) that has a reusable record among `cells` (series, pass, length),
    else a new one."""
    if not ctx.resume:
        return ctx
    newest: str | None = None
    for series, pass_, length in cells:
        path = record_path(ctx, series, pass_, length)
        if not path.is_file():
            continue
        try:
            record = read_record(path)
        except ValueError:
            continue
        call = record.get("bench_call_id")
        if not call:
            continue
        candidate = dataclasses.replace(ctx, call_id=call)
        if (newest is None or call > newest) and reusable_record(
            candidate, series, pass_, length
        ) is not None:
            newest = call
    return dataclasses.replace(ctx, call_id=newest) if newest else ctx


def measurement_of(record: dict[str, Any]) -> Measurement:
    """The part of a reused record that decides whether longer lengths run."""
    median = record["time_ms_median"]
    times = (median,) if record["status"] == "ok" and median is not None else ()
    return Measurement(record["status"], times_ms=times, error=record["error"])


def code_provenance() -> dict[str, Any]:
    """What the measured code is: torch and Triton versions, the commit and the sources' hash."""
    return {
        "torch_version": torch.__version__,
        "triton_version": installed_version("triton"),
        "git_commit": git_commit(),
        "code_hash": code_hash(),
    }


# ----------------------------------------------------------------------------------------------
# The rows, progress and counts of the run loops
# ----------------------------------------------------------------------------------------------


class Progress:
    """A tqdm bar on a terminal; one line per measurement in logs; nothing when quiet."""

    def __init__(self, total: int, desc: str, quiet: bool) -> None:
        tty = sys.stderr.isatty()
        self.lines = not quiet and not tty
        self.bar = tqdm(total=total, desc=desc, unit="run", disable=quiet or not tty, dynamic_ncols=True)

    def done(self, text: str) -> None:
        self.bar.update(1)
        self.bar.set_postfix_str(text[:60], refresh=False)
        if self.lines:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def describe(record: dict[str, Any]) -> str:
    """One progress line for a record or a row: the cell, then its time and memory (or why not)."""
    head = f"{record['attention_label']} [{record['backend']}] {record['pass']} N={record['seq_len']} B={record['batch']}"
    if record["status"] != "ok":
        return f"{head}: {record['status']} ({record['error']})"
    memory = record["peak_memory_bytes"]
    mem = "" if memory is None else f", {memory / 2**20:.1f} MiB"
    return f"{head}: {record['time_ms_median']:.3f} ms{mem}"


def skipped_row(
    ctx: Context, series: Series, pass_: str, seq_len: int, batch: int, why: str, status: str | None = None
) -> dict[str, Any]:
    """A table row for a cell that was not measured (and is not recorded)."""
    return {
        "bench": ctx.bench,
        "attention": series.mechanism.name,
        "attention_label": series.label,
        **plugin_fields(series.plugin),
        "backend": series.backend,
        "pass": pass_,
        "seq_len": seq_len,
        "batch": batch,
        "status": status or ("skipped" if series.applicable else "n/a"),
        "error": why,
    }


def not_run_row(ctx: Context, series: Series, pass_: str, seq_len: int, batch: int) -> dict[str, Any]:
    """The row of a cell left because --max-minutes was reached."""
    return skipped_row(ctx, series, pass_, seq_len, batch, "the --max-minutes limit was reached", NOT_RUN)


def new_context(
    cfg: BenchConfig, bench: str, device: torch.device, grid: Grid, limit: int | None, **fields: Any
) -> Context:
    """The Context of one invocation; `fields` are the bench-specific ones (dtype, shape, slug)."""
    deadline = None if cfg.max_minutes is None else time.monotonic() + 60.0 * cfg.max_minutes
    return Context(
        bench=bench,
        device=device,
        device_name=device_name(device),
        warmup=grid.warmup,
        repeats=grid.repeats,
        time_budget_s=grid.time_budget_s,
        memory_limit_bytes=limit,
        out=Path(cfg.out),
        provenance=code_provenance(),
        resume=cfg.resume,
        deadline=deadline,
        call_id=new_call_id(),
        **fields,
    )


class Tally:
    """Counts of reused and not-run cells, for the lines under the tables."""

    def __init__(self) -> None:
        self.reused = self.not_run = self.total = 0

    def add(self, row: dict[str, Any], reused: bool = False) -> None:
        self.total += row["status"] != "n/a"  # cells that could run here
        self.reused += reused
        self.not_run += row["status"] == NOT_RUN

    def notes(self, max_minutes: float | None) -> list[str]:
        lines = []
        if self.reused:
            lines.append(f"{self.reused} of {self.total} cells reused from earlier records (--resume).")
        if self.not_run:
            lines.append(
                f"{self.not_run} of {self.total} cells not run: --max-minutes {max_minutes:g} was reached; "
                "the same command with --resume measures them."
            )
        return lines
