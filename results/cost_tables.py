"""Efficiency tables: ratios against full attention at the same pass and length, as strings for
markdown (`lra bench`) and HTML (`lra report`).

Pure functions of efficiency records (no torch): `ratio_table` forms the ratios, `bench_tables`
lays them out, `table_notes` says what the tables leave out. A ratio is formed only with full
attention's record of the same bench call (`bench_call_id`), and marked † when either record is
unreliable under the rule of results/costs.py (the timed calls' spread, or other processes' load
while measuring). runners/bench/tables.py writes them beside the records of a bench call.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from .costs import MARK, RULE, ratio_reason, time_spread, unreliable_reason, unreliable_warning
from .records import plugin_label

PASSES = ("forward", "forward_backward")
REFERENCE = "full"
NOT_RUN = "not run"  # the status of cells left when --max-minutes ran out


def format_length(n: int) -> str:
    """1024 -> "1K", 3072 -> "3K", 2**20 -> "1M", 1000 -> "1000"."""
    if n % 2**20 == 0:
        return f"{n // 2**20}M"
    return f"{n // 2**10}K" if n % 2**10 == 0 else str(n)


TABLE_COLUMNS = [
    "bench", "pass", "attention", "attention_label", "backend", "series", "seq_len", "batch", "status",
    "time_ms_median", "time_ms_p20", "time_ms_p80", "time_spread", "other_cpu_load", "steps_per_s",
    "peak_memory_bytes", "speedup_vs_full", "memory_vs_full", "unreliable", "bench_call_id", "error",
]  # fmt: skip


def ratio_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell with ratios against full attention at the same pass and length, measured in
    the same bench call (`bench_call_id`; records without one count as one call).

    speedup_vs_full = (full time / full batch) / (time / batch): how many times more examples per
    second than full attention (at equal batches, full time / time). memory_vs_full = peak memory /
    full attention's peak memory. Both are NaN where either side has no measurement.
    time_spread = p80 / p20; unreliable = why the time (and so the speed-up) cannot be trusted,
    this record's or full attention's (results/costs.py), "" when it can.
    """
    frame = pd.DataFrame.from_records(list(rows))
    for column in TABLE_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["bench_call_id"] = frame["bench_call_id"].fillna("").astype(str)
    plugins = frame["plugin"] if "plugin" in frame else pd.Series([None] * len(frame), index=frame.index)
    frame["series"] = [
        f"{plugin_label(str(label), plugin)} [{backend}]"
        for label, plugin, backend in zip(frame["attention_label"], plugins, frame["backend"], strict=True)
    ]
    for column in (
        "time_ms_median",
        "time_ms_p20",
        "time_ms_p80",
        "steps_per_s",
        "peak_memory_bytes",
        "batch",
    ):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["time_spread"] = [
        time_spread(a, b) for a, b in zip(frame["time_ms_p20"], frame["time_ms_p80"], strict=True)
    ]
    records = frame.to_dict("records")
    ok = frame["status"] == "ok"
    keys = ["pass", "seq_len", "bench_call_id"]
    reference = frame[ok & (frame["attention"] == REFERENCE)].drop_duplicates(keys)
    full_of = {tuple(row[k] for k in keys): row for row in reference.to_dict("records")}
    reference = reference[[*keys, "time_ms_median", "batch", "peak_memory_bytes"]].rename(
        columns={"time_ms_median": "_full_time", "batch": "_full_batch", "peak_memory_bytes": "_full_memory"}
    )
    frame = frame.merge(reference, on=keys, how="left")
    ok = frame["status"] == "ok"
    per_example = frame["time_ms_median"] / frame["batch"]
    full_per_example = frame["_full_time"] / frame["_full_batch"]
    frame["speedup_vs_full"] = (full_per_example / per_example).where(ok)
    frame["memory_vs_full"] = (frame["peak_memory_bytes"] / frame["_full_memory"]).where(ok)
    reasons = []
    for record in records:
        full = full_of.get(tuple(record[k] for k in keys))
        if full is None or record["attention"] == REFERENCE:  # full attention's own row: its own reason
            reason = unreliable_reason(record)
        else:
            reason = ratio_reason(record, full)
        reasons.append(reason or "")
    frame["unreliable"] = reasons
    return frame[TABLE_COLUMNS]


def unreliable_count(frame: pd.DataFrame) -> tuple[int, int]:
    """(unreliable speed-ups, speed-ups) of a `ratio_table`."""
    formed = frame["speedup_vs_full"].notna()
    return int((formed & (frame["unreliable"] != "")).sum()), int(formed.sum())


def warning_line(rows: Sequence[dict[str, Any]]) -> str | None:
    """The one line `lra bench` prints when some ratios of its table are unreliable."""
    return unreliable_warning(*unreliable_count(ratio_table(rows)))


def format_number(x: float) -> str:
    """Three significant digits without exponents: 0.0123, 1.23, 12.3, 123, 12345."""
    if x == 0 or abs(x) >= 100:
        return f"{x:.0f}"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{digits}f}"


def _cell(row: pd.Series, value: float, ratio: float, requested_batch: int | None, timed: bool = True) -> str:
    """ "12.3 (2.10×)" for a measurement, with "[b16]" if it ran with a smaller batch and † when the
    time is unreliable (`timed`: the value is a time or speed); else the status."""
    if row["status"] == "ok":
        text = format_number(value) if pd.notna(value) else "–"
        if pd.notna(ratio):
            text += f" ({ratio:.1f}×)" if ratio >= 10 else f" ({ratio:.2f}×)"
        if timed and row["unreliable"]:
            text += MARK
        if requested_batch is not None and row["batch"] != requested_batch:
            text += f" [b{int(row['batch'])}]"
        return text
    return {"oom": "OOM", "error": "error", "skipped": "–", "n/a": "n/a", NOT_RUN: "not run"}.get(
        str(row["status"]), str(row["status"])
    )


def _pivot(
    frame: pd.DataFrame, render: Callable[[pd.Series], str], lengths: Sequence[int], prefix: str = ""
) -> pd.DataFrame:
    order = list(dict.fromkeys(frame["series"]))
    table = pd.DataFrame(index=order, columns=[f"{prefix}{format_length(n)}" for n in lengths], dtype=object)
    table[:] = ""
    for _, row in frame.iterrows():
        table.loc[row["series"], f"{prefix}{format_length(int(row['seq_len']))}"] = render(row)
    table.index.name = "attention"
    return table


def bench_tables(
    frame: pd.DataFrame, bench: str, lengths: Sequence[int], batch: int
) -> list[tuple[str, pd.DataFrame]]:
    """The tables a person reads, as (heading, table of strings): Table-2 layout, ratios to full
    attention in brackets, † on unreliable times. `frame` is a `ratio_table`; `batch` the requested
    batch (model cells that ran smaller say so)."""
    if bench == "model":
        speed = _pivot(frame, lambda r: _cell(r, r["steps_per_s"], r["speedup_vs_full"], batch), lengths)
        memory = _pivot(
            frame,
            lambda r: _cell(r, r["peak_memory_bytes"] / 1e9, float("nan"), None, timed=False),
            lengths,
            "Mem ",
        )
        heading = (
            "Training steps/s (speed-up over full attention in brackets, per example) and peak memory (GB) of "
            "one step. [bN]: ran with batch N, the largest that fit. OOM: out of memory even at batch 1."
        )
        return [(heading, pd.concat([speed, memory], axis=1))]
    out = []
    for pass_ in PASSES:
        part = frame[frame["pass"] == pass_]
        if part.empty:
            continue
        time_ = _pivot(part, lambda r: _cell(r, r["time_ms_median"], r["speedup_vs_full"], None), lengths)
        memory = _pivot(
            part,
            lambda r: _cell(r, r["peak_memory_bytes"] / 2**20, r["memory_vs_full"], None, timed=False),
            lengths,
        )
        name = pass_.replace("_", " + ")
        out.append((f"{name}: median time per call (ms), speed-up over full attention", time_))
        out.append((f"{name}: peak memory beyond the inputs (MiB), ratio to full attention", memory))
    return out


def table_notes(frame: pd.DataFrame, notes: Sequence[str] = ()) -> list[str]:
    """The lines under the tables: cells skipped, not applicable or failed; unreliable cells and
    cells without a ratio; then `notes` (reused and not-run cells)."""
    lines, seen = [], set()
    for _, row in frame[frame["status"].isin(["skipped", "n/a", "error"])].iterrows():
        where = "" if row["status"] == "n/a" else f" {row['pass']} from N={int(row['seq_len'])}"
        key = (row["series"], where, row["status"])
        if key not in seen:
            seen.add(key)
            lines.append(f"{row['series']}{where}: {row['status']} ({row['error']})")
    return lines + _reliability_notes(frame) + list(notes)


def markdown_tables(
    frame: pd.DataFrame,
    bench: str,
    title: str,
    lengths: Sequence[int],
    batch: int,
    notes: Sequence[str] = (),
) -> str:
    """The markdown a person reads (and pastes): `bench_tables` under `title`, `table_notes` below.

    `frame` is a `ratio_table`; `batch` the requested batch (model cells that ran smaller say so);
    `notes` are lines for the list under the tables (reused and not-run cells).
    """
    lines = [f"## {title}", ""]
    for heading, table in bench_tables(frame, bench, lengths, batch):
        if bench == "model":
            lines += [*textwrap.wrap(heading, 100), "", table.to_markdown(disable_numparse=True), ""]
        else:
            lines += [f"### {heading}", "", table.to_markdown(disable_numparse=True), ""]
    lines += [f"- {line}" for line in table_notes(frame, notes)]
    return "\n".join(lines).rstrip() + "\n"


def _where(row: dict[str, Any]) -> str:
    return f"{row['series']} {row['pass'].replace('_', ' + ')} N={format_length(int(row['seq_len']))}"


def _reliability_notes(frame: pd.DataFrame) -> list[str]:
    """Lines under the tables: the cells marked †, why, and the rule; the cells without a ratio
    because full attention was not measured in the same bench call."""
    lines = []
    ok = frame["status"] == "ok"
    marked = frame[ok & (frame["unreliable"] != "")]
    if len(marked):
        cells = "; ".join(f"{_where(row)} ({row['unreliable']})" for row in marked.to_dict("records"))
        lines.append(f"{MARK} unreliable ({RULE}): {cells}.")
    calls = frame[ok & (frame["attention"] == REFERENCE)]["bench_call_id"]
    orphans = frame[ok & frame["speedup_vs_full"].isna() & (frame["attention"] != REFERENCE)]
    if len(orphans) and len(calls):
        cells = "; ".join(
            f"{row.series} {getattr(row, 'pass')} N={format_length(int(row.seq_len))}"
            for row in orphans.itertuples()
        )
        lines.append(f"No ratio (full attention was not measured in the same bench call): {cells}.")
    calls_used = sorted(set(frame[ok]["bench_call_id"]) - {""})
    if calls_used:
        lines.append(f"Bench call{'s' if len(calls_used) > 1 else ''}: {', '.join(calls_used)}.")
    return lines
