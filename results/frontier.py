"""The accuracy–cost frontier: which attention, at what accuracy and what cost (the LRA paper's Figure 3).

For every preset table of the leaderboard and every attention label in it, one point per panel
(``avg`` and each task):

* ``accuracy`` -- the leaderboard's number in %: the task's cell, or the row's Avg over the table's
  tasks (`results.leaderboard.averages`: only for rows with an accuracy in every column);
* ``speed_vs_full`` -- examples per second relative to full attention on the same machine (> 1 is
  faster);
* ``memory_vs_full`` -- peak memory relative to full attention (< 1 is less);
* ``on_frontier`` -- Pareto-optimal in (accuracy, speed): no other attention of the panel is at
  least as accurate and at least as fast while better on one of the two;
* ``ci_low``, ``ci_high`` -- the accuracy's 95% interval in % (the leaderboard's: results/stats.py),
  drawn as error bars;
* ``within_noise`` -- the point's place on or off the frontier rests on accuracy differences the
  tests cannot resolve (`noise_marks`): a point on the frontier is on it *only within noise* when an
  attention at least as fast cannot be told apart from it in accuracy (with noise, it may be
  dominated); a point off the frontier is on it *within noise* when no attention dominating it is
  resolved as more accurate. The tests are the leaderboard's (paired where both kept per-example
  predictions), Holm-corrected over the attentions each point is compared with; speed is taken as
  measured (its noise is the cost records' business).

Where the cost of a task comes from (stated in every caption, with the machine and the length):

1. ``bench`` -- `lra bench model` records (one training step of the LRA Text model) at the task's
   sequence length, measured on the device the task's full-attention runs trained on. A ratio is
   formed only within one bench call (`bench_call_id`, results/costs.py): per attention, the newest
   call that measured both it and full attention there; in that call the fastest backend measured.
   Speed is per example (the bench may halve the batch of an attention that does not fit). A ratio
   is marked unreliable (†, `cost_unreliable`) when either record is, by the rule of results/costs.py.
2. ``runs`` -- for an attention without such a bench record (none measured, or measured with other
   parameters than the table's, or only in another call than full attention's), the runs' own median
   training throughput (``train_tokens_per_s``) and peak memory (`run_peak_memory`), mean over the
   seeds the leaderboard counts, from runs on the device of the task's full-attention runs, relative
   to full attention's. Only comparable within one machine and one ``--jobs``. The caption names the
   attentions whose cost comes from here when others come from the bench.

Costs are relative to full attention; a task without a full-attention cost has no costs. The Avg
panel's costs are geometric means of the per-task ratios over the table's tasks (the ratio itself
when the table has one task or one length), for attentions with a cost on every task.

The frontier, exactly:

* only points with both an accuracy and a cost take part; the others are listed, never dropped;
* points at chance (a task's FAIL cell; in Avg, a row whose every cell is FAIL) are drawn but
  neither join the frontier nor push others off it: the frontier is among attentions that learned;
* accuracies are compared at the precision the tables show (0.01 percentage points), speeds at
  three significant digits; points equal on both are all on the frontier or all off it.

No torch import: this reads records only.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import atomic_write, atomic_write_text

from . import stats
from .costs import MARK, RULE, ratio_reason, unreliable_warning
from .leaderboard import (
    FAIL,
    Leaderboard,
    accuracy_text,
    average_tasks,
    averages,
    one_configuration,
    task_title,
)
from .leaderboard import build as build_leaderboard
from .records import RUN_FIELDS, plugin_label
from .store import Store, with_reported_accuracy

AVG = "avg"
REFERENCE = "full"
BENCH, RUNS = "bench", "runs"

# `frontier.csv`: accuracy in %; ratios to full attention; cost_source "bench" / "runs" ("" = no
# cost); device, seq_len, backend and batch of the cost (bench: the record's batch, halved where
# the requested one did not fit); cost_unreliable: why the speed ratio cannot be trusted ("" when
# it can or nobody knows: run costs carry no load measurement).
POINT_COLUMNS = [
    "preset",
    "panel",
    "attention",
    "attention_label",
    "accuracy",
    "ci_low",
    "ci_high",
    "status",
    "speed_vs_full",
    "memory_vs_full",
    "on_frontier",
    "within_noise",
    "cost_source",
    "device",
    "seq_len",
    "backend",
    "batch",
    "cost_unreliable",
    "plugin",
]

FOOTNOTES = (
    "Speed: examples per second relative to full attention on the same machine (> 1 is faster); memory: peak "
    "memory relative to full attention (< 1 is less). Avg: accuracy as in the leaderboard; speed and memory "
    "as geometric means of the per-task ratios.",
    "Frontier (✓): no other attention is at least as accurate and at least as fast while better on one of the "
    "two (accuracy compared at 0.01 points, speed at three significant digits; exact ties are all on it). "
    "FAIL points (at chance; in Avg: every task FAIL) and points without a cost take no part.",
    "Accuracy: mean [95% interval] as in the leaderboard. ✓ within noise: on the frontier, but an attention "
    "at least as fast cannot be told apart from it in accuracy, so with noise it may be dominated; within "
    "noise (no ✓): off the frontier, but no attention that dominates it is resolved as more accurate. Tests "
    "as the leaderboard's bold (paired where both kept per-example predictions), Holm over the attentions a "
    "point is compared with, at 0.05; speeds as measured.",
)


def run_peak_memory(runs: pd.DataFrame) -> pd.Series:
    """The peak memory the frontier reads from run records, in bytes (NaN where unrecorded).

    The record field's meaning (`records.RUN_FIELDS["peak_memory_bytes"]`) is quoted in every
    caption that uses it; this is the one place that reads it."""
    return pd.to_numeric(runs["peak_memory_bytes"], errors="coerce")


def run_memory_meaning() -> str:
    """What a run record's `peak_memory_bytes` holds, as the record schema describes it."""
    return RUN_FIELDS["peak_memory_bytes"]


# ---------------------------------------------------------------------------------------------
# The Pareto frontier
# ---------------------------------------------------------------------------------------------


def _speed_key(speed: float) -> float:
    return float(f"{speed:.3g}")


def pareto_front(
    accuracy: Sequence[float], speed: Sequence[float], eligible: Sequence[bool] | None = None
) -> list[bool]:
    """Which points are on the accuracy–speed Pareto frontier (see the module docstring).

    `accuracy` in %, `speed` relative to a reference; NaN in either (or `eligible` False) keeps a
    point off the frontier and out of the comparison."""
    if len(accuracy) != len(speed) or (eligible is not None and len(eligible) != len(accuracy)):
        raise ValueError("accuracy, speed and eligible must have one value per point")
    keys = []
    for i, (acc, spd) in enumerate(zip(accuracy, speed, strict=True)):
        ok = eligible is None or bool(eligible[i])
        usable = ok and not (_nan(acc) or _nan(spd))
        keys.append((round(float(acc), 2), _speed_key(float(spd))) if usable else None)
    front = []
    for key in keys:
        if key is None:
            front.append(False)
            continue
        dominated = any(
            other is not None and other[0] >= key[0] and other[1] >= key[1] and other != key for other in keys
        )
        front.append(not dominated)
    return front


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def noise_marks(
    accuracy: Sequence[float],
    speed: Sequence[float],
    on_frontier: Sequence[bool],
    p_value: Callable[[int, int], float],
    eligible: Sequence[bool] | None = None,
) -> list[bool]:
    """Which points are on or off the frontier only within noise (the module docstring's
    ``within_noise``). `p_value(i, j)`: the two-sided p-value of "points i and j are equally
    accurate"; Holm over the points each point is compared with, at `stats.ALPHA`."""
    usable = [
        (eligible is None or bool(eligible[i])) and not (_nan(a) or _nan(s))
        for i, (a, s) in enumerate(zip(accuracy, speed, strict=True))
    ]
    marks = []
    for i in range(len(accuracy)):
        if not usable[i]:
            marks.append(False)
            continue
        speed_i, accuracy_i = _speed_key(float(speed[i])), round(float(accuracy[i]), 2)
        as_fast = [
            j for j in range(len(accuracy)) if j != i and usable[j] and _speed_key(float(speed[j])) >= speed_i
        ]
        if on_frontier[i]:  # robust only if every attention at least as fast is resolved as less accurate
            _, rejected = stats.holm([p_value(i, j) for j in as_fast])
            marks.append(not all(rejected))
        else:  # within noise if no attention dominating it is resolved as more accurate
            dominating = [j for j in as_fast if round(float(accuracy[j]), 2) >= accuracy_i]
            _, rejected = stats.holm([p_value(j, i) for j in dominating])
            marks.append(bool(dominating) and not any(rejected))
    return marks


# ---------------------------------------------------------------------------------------------
# Costs of one task
# ---------------------------------------------------------------------------------------------


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

    def where(self) -> str:
        return f"{task_title(self.task)} at N={self.seq_len if self.seq_len is not None else '?'}"


@dataclass
class _TaskCosts:
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


def _task_costs(
    preset: str, task: str, runs: pd.DataFrame, efficiency: pd.DataFrame, labels: Sequence[str]
) -> _TaskCosts:
    counted = {label: _counted_runs(runs[runs["attention_label"] == label]) for label in labels}
    attention_of = {
        label: str(runs[runs["attention_label"] == label]["attention"].iloc[0]) for label in labels
    }
    seq_len = _mode(pd.concat([c["seq_len"] for c in counted.values()])) if counted else None
    seq_len = int(seq_len) if seq_len is not None else None
    reference = _reference_label(labels, attention_of)
    if reference is None or counted[reference].empty:
        return _TaskCosts(
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
) -> _TaskCosts:
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
        return _TaskCosts(source)
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
    return _TaskCosts(source, costs)


def _bench_costs(
    preset: str,
    task: str,
    efficiency: pd.DataFrame,
    device: str,
    seq_len: int | None,
    labels: Sequence[str],
) -> _TaskCosts | None:
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
        memory = float(row["peak_memory_bytes"]) if not _nan(row["peak_memory_bytes"]) else math.nan
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
        requested = full["batch_requested"] if not _nan(full["batch_requested"]) else full["batch"]
        settings.append(
            f"LRA Text model, width {_int_text(full['head_dim'])}, {_int_text(full['heads'])} heads, "
            f"batch {_int_text(requested)}, {full['dtype']}"
        )
    chosen = rows[rows["call"].isin(set(used))]
    cpu_model = _mode(chosen["cpu_model"].astype(object).where(chosen["cpu_model"].notna()))
    machine = device + (f" ({cpu_model})" if cpu_model and device == "cpu" else "")
    setting = "; ".join(dict.fromkeys(settings))
    return _TaskCosts(CostSource(preset, task, BENCH, device, machine, seq_len, setting=setting), costs)


def _int_text(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return "?"


# ---------------------------------------------------------------------------------------------
# The frontier of every preset table
# ---------------------------------------------------------------------------------------------


@dataclass
class Frontier:
    """Frontier points of every preset table and where their costs come from.

    Attributes:
        points: one row per (preset, panel, attention label), columns `POINT_COLUMNS`; panel is
            "avg" or a task name; rows in leaderboard order.
        sources: one `CostSource` per (preset, task).
        root: the results directory read (for the command that would produce a cost).
    """

    points: pd.DataFrame
    sources: list[CostSource]
    root: Path | None = None

    @property
    def presets(self) -> list[str]:
        return list(dict.fromkeys(self.points["preset"])) if not self.points.empty else []

    def tasks(self, preset: str) -> list[str]:
        return [s.task for s in self.sources if s.preset == preset]

    def panels(self, preset: str) -> list[str]:
        """ "avg" and the tasks of a preset that have points, in table order."""
        present = set(self.points[self.points["preset"] == preset]["panel"])
        return [p for p in [AVG, *self.tasks(preset)] if p in present]

    def panel(self, preset: str, panel: str) -> pd.DataFrame:
        points = self.points
        return points[(points["preset"] == preset) & (points["panel"] == panel)]

    def has_cost(self, preset: str | None = None) -> bool:
        points = self.points if preset is None else self.points[self.points["preset"] == preset]
        return bool((points["speed_vs_full"].notna() & points["accuracy"].notna()).any())

    def caption(self, preset: str) -> str:
        """Where the costs of the table come from: method, machine and length of every task."""
        sources = [s for s in self.sources if s.preset == preset]
        methods: dict[str, list[str]] = {}
        for source in sources:
            methods.setdefault(source.method(), []).append(source.where())
        text = "; ".join(f"{', '.join(where)}: {method}" for method, where in methods.items())
        note = " Avg: geometric mean of the per-task ratios." if len(sources) > 1 else ""
        if not self.unreliable(preset).empty:
            note += f" {MARK}: speed unreliable ({RULE})."
        return f"Cost of {text}.{note}"

    def unreliable(self, preset: str | None = None) -> pd.DataFrame:
        """The points (of `preset`) with a speed ratio marked unreliable."""
        points = self.points if preset is None else self.points[self.points["preset"] == preset]
        return points[points["speed_vs_full"].notna() & (points["cost_unreliable"].fillna("") != "")]

    def without_cost(self, preset: str, panel: str = AVG) -> list[str]:
        """Attention labels of a panel that have an accuracy but no cost (listed under figures)."""
        points = self.panel(preset, panel)
        return list(points[points["accuracy"].notna() & points["speed_vs_full"].isna()]["attention_label"])

    def without_accuracy(self, preset: str, panel: str = AVG) -> list[str]:
        points = self.panel(preset, panel)
        return list(points[points["accuracy"].isna()]["attention_label"])


def select_labels(
    labels: Sequence[str], attention_of: dict[str, str], wanted: Sequence[str], *, strict: bool = True
) -> list[str]:
    """The labels `wanted` names, in table order: an entry matches a label exactly
    (`mita(topk=64)`) or, failing that, every label of that registry name (`mita`). With `strict`,
    ValueError naming an entry that matches nothing."""
    chosen: set[str] = set()
    for entry in wanted:
        match = [label for label in labels if label == entry] or [
            label for label in labels if attention_of.get(label) == entry
        ]
        if not match and strict:
            raise ValueError(f"no runs of attention {entry!r}; attentions with runs: {', '.join(labels)}")
        chosen.update(match)
    return [label for label in labels if label in chosen]


def build(store: Store, lb: Leaderboard | None = None, attentions: Sequence[str] = ()) -> Frontier:
    """The frontier of every preset table of the records in `store` (see the module docstring).
    `attentions` (labels or names, as `select_labels`) restricts the points and the frontier to
    those attentions; costs stay relative to full attention whether it is shown or not."""
    runs = with_reported_accuracy(store.runs)
    lb = lb if lb is not None else build_leaderboard(runs)
    if attentions:  # every entry must name an attention of some table
        kinds = dict(zip(lb.cells["attention_label"], lb.cells["attention"], strict=True))
        everywhere = list(dict.fromkeys(label for preset in lb.presets for label in lb.labels(preset)))
        select_labels(everywhere, kinds, attentions)
    rows: list[dict[str, Any]] = []
    sources: list[CostSource] = []
    for preset in lb.presets:
        labels = lb.labels(preset)
        if attentions:
            of_table = lb.cells[lb.cells["preset"] == preset]
            kinds = dict(zip(of_table["attention_label"], of_table["attention"], strict=True))
            shown = select_labels(labels, kinds, attentions, strict=False)
        else:
            shown = labels
        tasks = lb.tasks(preset)
        cells = lb.cells[lb.cells["preset"] == preset]
        of_preset = runs[runs["preset"] == preset]
        per_task: dict[str, _TaskCosts] = {}
        for task in tasks:
            of_task = of_preset[of_preset["task"] == task]
            present = [label for label in labels if label in set(of_task["attention_label"])]
            per_task[task] = _task_costs(preset, task, of_task, store.efficiency, present)
            sources.append(per_task[task].source)
        attention_of = dict(zip(cells["attention_label"], cells["attention"], strict=True))
        avg = averages(lb, preset)
        panel_rows: list[dict[str, Any]] = []
        for label in shown:
            statuses = []
            for task in tasks:
                cell = cells[(cells["attention_label"] == label) & (cells["task"] == task)]
                status = str(cell["status"].iloc[0]) if len(cell) else "missing"
                mean = float(cell["mean"].iloc[0]) if len(cell) and status != "missing" else math.nan
                statuses.append(status)
                cost = per_task[task].costs.get(label, {})
                source = per_task[task].source
                panel_rows.append(
                    _point(preset, task, attention_of[label], label, mean, status, cost, source)
                )
            task_costs = [per_task[t].costs.get(label) for t in tasks]
            complete = all(c is not None for c in task_costs)
            avg_status = (
                "missing" if math.isnan(avg[label]) else FAIL if all(s == FAIL for s in statuses) else "ok"
            )
            used = [per_task[t].source for t in tasks]
            panel_rows.append(
                {
                    "preset": preset,
                    "panel": AVG,
                    "attention": attention_of[label],
                    "attention_label": label,
                    "accuracy": avg[label],
                    "status": avg_status,
                    "speed_vs_full": _geomean([c["speed_vs_full"] for c in task_costs])
                    if complete
                    else math.nan,
                    "memory_vs_full": _geomean([c["memory_vs_full"] for c in task_costs])
                    if complete
                    else math.nan,
                    "cost_source": _joined(c["source"] for c in task_costs) if complete else "",
                    "device": _joined(s.device for s in used) if complete else "",
                    "seq_len": _single([s.seq_len for s in used]),
                    "backend": _joined(c["backend"] for c in task_costs) if complete else "",
                    "batch": math.nan,
                    "cost_unreliable": "; ".join(
                        f"{task_title(t)}: {c['unreliable']}"
                        for t, c in zip(tasks, task_costs, strict=True)
                        if c is not None and c["unreliable"]
                    )
                    if complete
                    else "",
                }
            )
        _add_accuracy_intervals(lb, preset, panel_rows)
        for panel in [AVG, *tasks]:
            mine = [r for r in panel_rows if r["panel"] == panel]
            accuracy, speed = [r["accuracy"] for r in mine], [r["speed_vs_full"] for r in mine]
            eligible = [r["status"] == "ok" for r in mine]
            front = pareto_front(accuracy, speed, eligible)
            noise = noise_marks(accuracy, speed, front, _p_value(lb, preset, panel, mine), eligible)
            for row, on, within in zip(mine, front, noise, strict=True):
                rows.append({**row, "on_frontier": on, "within_noise": within})
    plugin_of = {c.attention_label: c.plugin for c in lb.cells.itertuples() if isinstance(c.plugin, str)}
    for row in rows:  # the attention plugin a point's attention comes from (None: built in)
        row["plugin"] = plugin_of.get(row["attention_label"])
    points = pd.DataFrame(rows, columns=POINT_COLUMNS)
    return Frontier(points=points, sources=sources, root=store.root)


def _add_accuracy_intervals(lb: Leaderboard, preset: str, rows: list[dict[str, Any]]) -> None:
    """Each point's accuracy interval (%): its leaderboard cell's, or its row's Avg interval."""
    cells = lb.cells[lb.cells["preset"] == preset].set_index(["attention_label", "task"])
    averaged = lb.stats[preset].averages["avg"] if preset in lb.stats else {}
    for row in rows:
        key = (row["attention_label"], row["panel"])
        if row["panel"] == AVG and row["attention_label"] in averaged:
            stat = averaged[row["attention_label"]]
            row["ci_low"], row["ci_high"] = stat.low, stat.high
        elif key in cells.index and not _nan(row["accuracy"]):
            row["ci_low"], row["ci_high"] = float(cells.loc[key, "ci_low"]), float(cells.loc[key, "ci_high"])
        else:
            row["ci_low"] = row["ci_high"] = math.nan


def _p_value(
    lb: Leaderboard, preset: str, panel: str, rows: list[dict[str, Any]]
) -> Callable[[int, int], float]:
    """p-values of accuracy differences between two points of a panel, by their index in `rows`
    (the leaderboard's tests: its cells', or its Avg's bootstrap)."""
    table = lb.stats[preset]
    tasks = average_tasks(lb, preset)

    def p_value(i: int, j: int) -> float:
        a, b = rows[i]["attention_label"], rows[j]["attention_label"]
        try:
            if panel == AVG:
                return table.average_difference(tasks, a, b).p_value
            return table.cell_difference(panel, a, b).p_value
        except KeyError:  # no sample for one of the two: nothing resolved
            return 1.0

    return p_value


def _point(
    preset: str,
    task: str,
    attention: str,
    label: str,
    mean: float,
    status: str,
    cost: dict[str, Any],
    source: CostSource,
) -> dict[str, Any]:
    return {
        "preset": preset,
        "panel": task,
        "attention": attention,
        "attention_label": label,
        "accuracy": mean,
        "status": status,
        "speed_vs_full": cost.get("speed_vs_full", math.nan),
        "memory_vs_full": cost.get("memory_vs_full", math.nan),
        "cost_source": cost.get("source", ""),
        "device": source.device if cost else "",
        "seq_len": source.seq_len,
        "backend": cost.get("backend", ""),
        "batch": cost.get("batch", math.nan),
        "cost_unreliable": cost.get("unreliable", ""),
    }


def _geomean(values: list[float]) -> float:
    if any(_nan(v) or v <= 0 for v in values) or not values:
        return math.nan
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _joined(values: Any) -> str:
    return ", ".join(dict.fromkeys(str(v) for v in values if v))


def _single(values: list[Any]) -> Any:
    distinct = {v for v in values if v is not None}
    return distinct.pop() if len(distinct) == 1 else None


# ---------------------------------------------------------------------------------------------
# Tables and the missing-cost hint
# ---------------------------------------------------------------------------------------------


def ratio_text(value: float) -> str:
    """A relative speed or memory as the tables show it: three significant digits."""
    if _nan(value):
        return "–"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:#.3g}"


def _accuracy_text(value: float, status: str, low: float = math.nan, high: float = math.nan) -> str:
    if _nan(value):
        return "–"
    return (f"{FAIL} " if status == FAIL else "") + accuracy_text(value, low, high)  # as the leaderboard


def frontier_mark(on_frontier: bool, within_noise: bool) -> str:
    """The Frontier column of the tables: "✓", "✓ within noise", "within noise" or ""."""
    if on_frontier:
        return "✓ within noise" if within_noise else "✓"
    return "within noise" if within_noise else ""


def panel_title(tasks: Sequence[str], panel: str) -> str:
    if panel != AVG:
        return task_title(panel)
    return "Avg over " + ", ".join(task_title(t) for t in tasks) if len(tasks) > 1 else task_title(tasks[0])


def table(fr: Frontier, preset: str, panel: str = AVG) -> pd.DataFrame:
    """The display table of one panel: Attention, accuracy, speed and memory vs full, frontier."""
    points = fr.panel(preset, panel)
    tasks = fr.tasks(preset)
    title = "Avg" if panel == AVG and len(tasks) > 1 else task_title(tasks[0] if panel == AVG else panel)
    out = pd.DataFrame(
        {
            "Attention": [
                plugin_label(label, plugin)
                for label, plugin in zip(points["attention_label"], points["plugin"], strict=True)
            ],
            f"{title} accuracy (%) [95% CI]": [
                _accuracy_text(a, s, lo, hi)
                for a, s, lo, hi in zip(
                    points["accuracy"], points["status"], points["ci_low"], points["ci_high"], strict=True
                )
            ],
            "Speed vs full (×)": [
                ratio_text(v) + (MARK if isinstance(why, str) and why and not _nan(v) else "")
                for v, why in zip(points["speed_vs_full"], points["cost_unreliable"], strict=True)
            ],
            "Memory vs full (×)": [ratio_text(v) for v in points["memory_vs_full"]],
            "Frontier": [
                frontier_mark(bool(on), bool(noise))
                for on, noise in zip(points["on_frontier"], points["within_noise"], strict=True)
            ],
        }
    )
    return out.reset_index(drop=True)


def render(fr: Frontier, *, markdown: bool = True, panels: Sequence[str] | None = None) -> str:
    """The frontier tables of every preset (Avg, then each task), with captions and footnotes.
    `panels` restricts the tables to those panels ("avg" and / or task names)."""
    fmt = "github" if markdown else "simple"
    heading = "## " if markdown else ""
    sub = "### " if markdown else ""
    parts: list[str] = []
    if fr.points.empty:
        parts.append("No finished runs.")
    for preset in fr.presets:
        parts.append(f"{heading}Accuracy–cost frontier, preset {preset}")
        parts.append(fr.caption(preset))
        tasks = fr.tasks(preset)
        shown = [
            p
            for p in fr.panels(preset)
            if (panels is None or p in panels)
            and not (p != AVG and AVG in fr.panels(preset) and len(tasks) == 1)
        ]  # a single task's table would repeat the Avg one
        without: dict[str, list[str]] = {}
        for panel in shown:
            name = panel_title(tasks, panel)
            if len(shown) > 1 or len(tasks) > 1:
                parts.append(f"{sub}{name}")
            parts.append(
                table(fr, preset, panel).to_markdown(index=False, tablefmt=fmt, disable_numparse=True)
            )
            if fr.has_cost(preset) and not fr.panel(preset, panel)["on_frontier"].any():
                parts.append("No attention with a cost is above chance here, so there is no frontier.")
            missing = fr.without_cost(preset, panel)
            if missing:
                without.setdefault(", ".join(missing), []).append(name)
        for missing, where in without.items():
            scope = f" ({'; '.join(where)})" if len(shown) > 1 else ""
            parts.append(f"Without a cost{scope}, not on the frontier: {missing}")
        hint = missing_cost_line(fr, preset)
        if hint:
            parts.append(hint)
    if not fr.points.empty:
        parts.append("\n".join(f"- {note}" for note in FOOTNOTES))
    return "\n\n".join(parts) + "\n"


def unreliable_line(fr: Frontier) -> str | None:
    """One warning line when some speed ratios of the frontier are unreliable (results/costs.py)."""
    with_cost = fr.points[fr.points["speed_vs_full"].notna()]
    return unreliable_warning(
        len(fr.unreliable()), len(with_cost), "speed ratios of the accuracy–cost frontier"
    )


def missing_cost_line(fr: Frontier, preset: str | None = None) -> str | None:
    """One line naming the command that would produce a cost, when no attention of the table(s)
    has both an accuracy and a cost; None otherwise."""
    presets = [preset] if preset is not None else fr.presets
    if not presets or any(fr.has_cost(p) for p in presets):
        return None
    sources = [s for s in fr.sources if s.preset in presets]
    points = fr.points[fr.points["preset"].isin(presets)]
    labels = list(dict.fromkeys(["full", *points["attention_label"]]))
    lengths = sorted({s.seq_len for s in sources if s.seq_len is not None})
    reasons = "; ".join(dict.fromkeys(f"{task_title(s.task)}: {s.reason}" for s in sources if s.reason))
    command = ["lra", "bench", "model", "--attentions", ",".join(labels)]
    if lengths:
        command += ["--lengths", ",".join(str(n) for n in lengths)]
    command += ["--out", str(fr.root) if fr.root is not None else "RESULTS_DIR"]
    return f"no cost for the accuracy–cost frontier ({reasons}); `{shlex.join(command)}` measures one"


def frontier_view(
    store: Store,
    task: str | None = None,
    attentions: Sequence[str] = (),
    *,
    csv: str | os.PathLike[str] | None = None,
    markdown: str | os.PathLike[str] | None = None,
) -> tuple[str, str | None]:
    """`lra compare --frontier`: (the frontier tables as text, Avg and every task or only `task`; the
    warning line about unreliable speed ratios, None without any), optionally written as CSV /
    markdown. ValueError when the task or an attention has no runs, or when no attention has a cost
    (naming the command that would measure one)."""
    fr = build(store, attentions=attentions)
    if fr.points.empty:
        raise ValueError(f"no finished runs under {store.root}; run `lra suite --out {store.root}` first")
    if task is not None:
        tasks = list(dict.fromkeys(s.task for s in fr.sources))
        if task not in tasks:
            raise ValueError(f"no runs of task {task!r} in the results; tasks with runs: {', '.join(tasks)}")
        fr = Frontier(
            points=fr.points[fr.points["panel"] == task],
            sources=[s for s in fr.sources if s.task == task],
            root=fr.root,
        )
    missing = missing_cost_line(fr)
    if missing:
        raise ValueError(missing)
    write_all(fr, csv=csv, markdown=markdown)
    text = render(fr, markdown=False) + "".join(f"wrote {path}\n" for path in (csv, markdown) if path)
    return text, unreliable_line(fr)


def long_table(fr: Frontier) -> pd.DataFrame:
    """`frontier.csv`: one row per (preset, panel, attention label), `POINT_COLUMNS`."""
    return fr.points.reset_index(drop=True)


def write_all(
    fr: Frontier,
    *,
    csv: str | os.PathLike[str] | None = None,
    markdown: str | os.PathLike[str] | None = None,
) -> None:
    """Atomically write `frontier.csv` and / or `frontier.md`."""
    if csv is not None:
        frame = long_table(fr)
        atomic_write(csv, lambda fh: frame.to_csv(fh, index=False, float_format="%.6g"))
    if markdown is not None:
        atomic_write_text(markdown, "# Accuracy and cost\n\n" + render(fr, markdown=True))
