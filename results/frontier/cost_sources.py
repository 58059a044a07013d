"""Where the costs of one (preset, task) come from: the bench records of one call, else the runs'
own throughput and peak memory, relative to full attention (the package docstring's rules,
results/frontier/__init__.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..costs import ratio_reason
from ..leaderboard import one_configuration
from ..records import RUN_FIELDS
from .pareto import is_missing

REFERENCE = "full"
BENCH, RUNS = "bench", "runs"


def run_peak_memory(runs: pd.DataFrame) -> pd.Series:
    """The peak memory the frontier reads from run records, in bytes (NaN where unrecorded).

    The record field's meaning (`records.RUN_FIELDS["peak_memory_bytes"]`) is quoted in every
    caption that uses it; this is the one place that reads it."""
    return pd.to_numeric(runs["peak_memory_bytes"], errors="coerce")


def run_memory_meaning() -> str:
    """What a run record's `peak_memory_bytes` holds, as the record schema describes it."""
    return RUN_FIELDS["peak_memory_bytes"]


@dataclass
class CostSource:
    """Where the costs of one (preset, task) come from, for captions and the missing-cost hint.

    Attributes:
        kind: "bench", "runs", or "" (no cost).
        device: the device the costs were measured on (that of the task's full-attention runs).
        machine: the device with the CPU model where the records name it.
        seq_len: the task's sequence length.
        setting: bench only: "batch 32, bfloat16" and the model's shape (several joined by "; ").
        reason: kind "": why there is no cost.
        fallback: kind "bench": the attentions whose cost comes from the runs instead (no bench
            record of the same call as full attention's at this length).
    """

    preset: str
    task: str
    kind: str
    device: str
    machine: str
    seq_len: int | None
    setting: str = ""
    reason: str = ""
    fallback: list[str] = field(default_factory=list)

    def method(self) -> str:
        """How the costs were obtained, without the task and length."""
        if self.kind == BENCH:
            text = (
                f"`lra bench model` ({self.setting}): one training step, speed per example, peak memory of "
                f"the whole step, relative to full attention measured in the same bench call, on {self.machine}"
            )
            if self.fallback:
                text += (
                    f"; without such a bench record, from the runs' own training throughput and peak memory "
                    f"instead: {', '.join(self.fallback)}"
                )
            return text
        if self.kind == RUNS:
            return (
                f"the runs' own training throughput (median tokens/s) and peak memory ({run_memory_meaning()}), "
                f"on {self.machine}; comparable only between runs made on one machine with one --jobs"
            )
        return f"no cost ({self.reason})"

    def where(self, title: str) -> str:
        """ "ListOps at N=2000": the task's `title` and length."""
        return f"{title} at N={self.seq_len if self.seq_len is not None else '?'}"


@dataclass
class TaskCosts:
    source: CostSource
    # attention label -> speed_vs_full, memory_vs_full, backend, batch
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _counted_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of one cell the leaderboard counts: status ok, one configuration."""
    ok = runs[(runs["status"] == "ok") & runs["reported_acc"].notna()]
    if "config" in ok and len(ok):
        ok, _ = one_configuration(ok)
    return ok


def _mode(values: pd.Series) -> Any:
    values = values.dropna()
    return values.mode().iloc[0] if len(values) else None


def _devices(records: pd.DataFrame) -> pd.Series:
    """The `device` field as text; records without one read "unknown device"."""
    return records["device"].map(lambda v: v if isinstance(v, str) and v else "unknown device")


def _reference_label(labels: Sequence[str], attention_of: dict[str, str]) -> str | None:
    fulls = [label for label in labels if attention_of.get(label) == REFERENCE]
    return REFERENCE if REFERENCE in fulls else (fulls[0] if fulls else None)


def costs_of_task(
    preset: str, task: str, runs: pd.DataFrame, efficiency: pd.DataFrame, labels: Sequence[str]
) -> TaskCosts:
    """The costs of `labels` on one task of a preset table, relative to full attention's, and where
    they come from: the bench records of one call, else the runs' own (module docstring)."""
    counted = {label: _counted_runs(runs[runs["attention_label"] == label]) for label in labels}
    attention_of = {
        label: str(runs[runs["attention_label"] == label]["attention"].iloc[0]) for label in labels
    }
    seq_len = _mode(pd.concat([c["seq_len"] for c in counted.values()])) if counted else None
    seq_len = int(seq_len) if seq_len is not None else None
    reference = _reference_label(labels, attention_of)
    if reference is None or counted[reference].empty:
        return TaskCosts(
            CostSource(
                preset, task, "", "", "", seq_len, reason="no finished full-attention run to relate costs to"
            )
        )
    device = str(_mode(_devices(counted[reference])))
    runs = _run_costs(preset, task, counted, device, seq_len, reference)
    bench = _bench_costs(preset, task, efficiency, device, seq_len, labels)
    if bench is None:
        return runs
    # Attentions the bench did not measure in a call with full attention: their training throughput.
    bench.source.fallback = [label for label in labels if label not in bench.costs and label in runs.costs]
    for label in bench.source.fallback:
        bench.costs[label] = runs.costs[label]
    return bench


def _run_costs(
    preset: str, task: str, counted: dict[str, pd.DataFrame], device: str, seq_len: int | None, reference: str
) -> TaskCosts:
    source = CostSource(preset, task, RUNS, device, device, seq_len)
    means = {}
    for label, group in counted.items():
        group = group[_devices(group) == device]
        tokens = pd.to_numeric(group["train_tokens_per_s"], errors="coerce").dropna()
        memory = run_peak_memory(group).dropna()
        means[label] = (
            float(tokens.mean()) if len(tokens) else math.nan,
            float(memory.mean()) if len(memory) else math.nan,
        )
    full_tokens, full_memory = means[reference]
    if math.isnan(full_tokens):
        source.kind = ""
        source.reason = (
            "no `lra bench model` record at this length on this device, and the full-attention runs "
            "recorded no training throughput"
        )
        return TaskCosts(source)
    costs = {}
    for label, (tokens, memory) in means.items():
        if math.isnan(tokens):
            continue
        costs[label] = {
            "speed_vs_full": tokens / full_tokens,
            "memory_vs_full": memory / full_memory
            if full_memory and not math.isnan(full_memory)
            else math.nan,
            "backend": "",
            "batch": math.nan,
            "source": RUNS,
            "unreliable": "",
        }
    return TaskCosts(source, costs)


def _bench_costs(
    preset: str,
    task: str,
    efficiency: pd.DataFrame,
    device: str,
    seq_len: int | None,
    labels: Sequence[str],
) -> TaskCosts | None:
    """Costs from `lra bench model` records at the task's length on `device`: per attention, relative
    to full attention in the newest bench call that measured both; None when no attention has one."""
    if efficiency.empty or seq_len is None:
        return None
    extra = ["batch_requested", "cpu_model", "bench_call_id", "other_cpu_load"]
    eff = efficiency.reindex(columns=list(dict.fromkeys([*efficiency.columns, *extra])))
    rows = eff[
        (eff["bench"] == "model")
        & (eff["status"] == "ok")
        & (pd.to_numeric(eff["seq_len"], errors="coerce") == seq_len)
        & (_devices(eff) == device)
        & eff["time_ms_median"].notna()
        & eff["batch"].notna()
    ]
    if rows.empty:
        return None
    rows = rows.assign(
        per_example_ms=pd.to_numeric(rows["time_ms_median"]) / pd.to_numeric(rows["batch"]),
        call=rows["bench_call_id"].map(lambda v: v if isinstance(v, str) else ""),  # "" = before call ids
    ).sort_values("per_example_ms", kind="stable")
    calls = {}  # call -> (its newest measurement, its fastest record per label, its full attention)
    for call, group in rows.groupby("call", sort=True):
        fastest = group.drop_duplicates("attention_label")  # sorted: the fastest backend of each label
        fulls = fastest[fastest["attention"] == REFERENCE]
        if fulls.empty:
            continue
        full = fulls[fulls["attention_label"] == REFERENCE]
        full = (full if len(full) else fulls).iloc[0]
        calls[call] = (str(group["measured_at"].max()), fastest.set_index("attention_label"), full)
    costs: dict[str, dict[str, Any]] = {}
    used: dict[str, Any] = {}  # call -> its full attention record, for the calls a ratio came from
    for label in labels:
        having = [c for c in calls if label in calls[c][1].index]
        if not having:
            continue
        call = max(having, key=lambda c: (calls[c][0], c))
        _, fastest, full = calls[call]
        row = fastest.loc[label]
        memory = float(row["peak_memory_bytes"]) if not is_missing(row["peak_memory_bytes"]) else math.nan
        reference = label == full["attention_label"]  # full attention itself: only its own record counts
        reason = ratio_reason(row.to_dict(), {} if reference else full.to_dict())
        costs[label] = {
            "speed_vs_full": float(full["per_example_ms"]) / float(row["per_example_ms"]),
            "memory_vs_full": memory / float(full["peak_memory_bytes"])
            if full["peak_memory_bytes"]
            else math.nan,
            "backend": str(row["backend"]),
            "batch": float(row["batch"]),
            "source": BENCH,
            "unreliable": reason or "",
        }
        used[call] = full
    if not costs:
        return None
    settings = []
    for full in used.values():
        requested = full["batch_requested"] if not is_missing(full["batch_requested"]) else full["batch"]
        settings.append(
            f"LRA Text model, width {_int_text(full['head_dim'])}, {_int_text(full['heads'])} heads, "
            f"batch {_int_text(requested)}, {full['dtype']}"
        )
    chosen = rows[rows["call"].isin(set(used))]
    cpu_model = _mode(chosen["cpu_model"].astype(object).where(chosen["cpu_model"].notna()))
    machine = device + (f" ({cpu_model})" if cpu_model and device == "cpu" else "")
    setting = "; ".join(dict.fromkeys(settings))
    return TaskCosts(CostSource(preset, task, BENCH, device, machine, seq_len, setting=setting), costs)


def _int_text(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return "?"
