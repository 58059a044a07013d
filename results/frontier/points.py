"""The points of every preset table of the frontier: each attention label's accuracy (a cell, or its
row's Avg) with its interval, its cost relative to full attention, and its place on the frontier
(the package docstring's rules, results/frontier/__init__.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import order as order_
from ..costs import MARK, RULE
from ..leaderboard import FAIL, Leaderboard, average_tasks, averages
from ..leaderboard import build as build_leaderboard
from ..store import Store, with_reported_accuracy
from .cost_sources import CostSource, TaskCosts, costs_of_task
from .pareto import is_missing, noise_marks, pareto_front

AVG = "avg"

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


@dataclass
class Frontier:
    """Frontier points of every preset table and where their costs come from.

    Attributes:
        points: one row per (preset, panel, attention label), columns `POINT_COLUMNS`; panel is
            "avg" or a task name; rows in leaderboard order.
        sources: one `CostSource` per (preset, task).
        root: the results directory read (for the command that would produce a cost).
        order: the titles and order of the tasks and attentions (the leaderboard's).
    """

    points: pd.DataFrame
    sources: list[CostSource]
    root: Path | None = None
    order: order_.Order = field(default_factory=order_.Order)

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
            methods.setdefault(source.method(), []).append(source.where(self.order.task_title(source.task)))
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
        per_task: dict[str, TaskCosts] = {}
        for task in tasks:
            of_task = of_preset[of_preset["task"] == task]
            present = [label for label in labels if label in set(of_task["attention_label"])]
            per_task[task] = costs_of_task(preset, task, of_task, store.efficiency, present)
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
            known = [c for c in task_costs if c is not None]
            complete = len(known) == len(task_costs)
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
                    "speed_vs_full": _geomean([c["speed_vs_full"] for c in known]) if complete else math.nan,
                    "memory_vs_full": _geomean([c["memory_vs_full"] for c in known])
                    if complete
                    else math.nan,
                    "cost_source": _joined(c["source"] for c in known) if complete else "",
                    "device": _joined(s.device for s in used) if complete else "",
                    "seq_len": _single([s.seq_len for s in used]),
                    "backend": _joined(c["backend"] for c in known) if complete else "",
                    "batch": math.nan,
                    "cost_unreliable": "; ".join(
                        f"{lb.task_title(t)}: {c['unreliable']}"
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
    return Frontier(points=points, sources=sources, root=store.root, order=lb.order)


def _add_accuracy_intervals(lb: Leaderboard, preset: str, rows: list[dict[str, Any]]) -> None:
    """Each point's accuracy interval (%): its leaderboard cell's, or its row's Avg interval."""
    cells = lb.cells[lb.cells["preset"] == preset].set_index(["attention_label", "task"])
    averaged = lb.stats[preset].averages["avg"] if preset in lb.stats else {}
    for row in rows:
        key = (row["attention_label"], row["panel"])
        if row["panel"] == AVG and row["attention_label"] in averaged:
            stat = averaged[row["attention_label"]]
            row["ci_low"], row["ci_high"] = stat.low, stat.high
        elif key in cells.index and not is_missing(row["accuracy"]):
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
    if any(is_missing(v) or v <= 0 for v in values) or not values:
        return math.nan
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _joined(values: Any) -> str:
    return ", ".join(dict.fromkeys(str(v) for v in values if v))


def _single(values: list[Any]) -> Any:
    distinct = {v for v in values if v is not None}
    return distinct.pop() if len(distinct) == 1 else None
