"""The leaderboard's model: one cell per (preset, attention label, task), its statistics, and each
row's Avg (the rules are the package docstring's, results/leaderboard/__init__.py).

A cell's accuracy is the mean over the counted seeds of `reported_acc`; FAIL when
``mean <= chance + 2 * sqrt(chance * (1 - chance) / n_test)``; its 95% interval and the ties with
its column's best come from results/stats.py on the cells' `stats.Sample`s and one shared set of
bootstrap replicates per preset table (`TableStats`). Avg = the mean of a row's cells over the
table's columns except Path-X, for rows with an accuracy in every one of them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import order as order_
from .. import stats
from ..predictions import cell_sample
from ..records import PLUGIN_FIELDS, is_out_of_memory
from ..store import with_reported_accuracy
from .configurations import flag_minority_configurations, last_changed, one_configuration

FAIL = "FAIL"
OOM = "OOM"
MISSING = "–"
PARTIAL = "†"
MIXED = "‡"
OTHER_SETUP = "§"
AT_CHANCE = "°"
AVG_WITH_PATHX = "Avg with Path-X"


def chance_threshold(chance_acc: float, n_test: float) -> float:
    """Accuracy (fraction) at or below which a cell is FAIL: chance + 2 binomial standard errors."""
    return chance_acc + 2.0 * math.sqrt(chance_acc * (1.0 - chance_acc) / n_test)


@dataclass
class Leaderboard:
    """Aggregated cells and the runs that could not contribute.

    Attributes:
        cells: one row per (preset, attention_label, task) with at least one record: attention,
            status ('ok' or 'FAIL'), mean and std (in %), seeds (ok runs averaged), runs (records),
            diverged, failed (failed or unfinished records), chance (fraction), n_test, threshold
            (fraction), data_source, excluded (run ids left out because they were trained with
            another configuration than the cell's newest run, each with the settings that differ),
            diverged_runs ("run_id -- error" of the counted configuration's diverged runs), config
            (that configuration), newest (time of its newest run), differs ("setting (this vs
            majority)" where the configuration beyond the attention differs from its column's
            majority; empty when it does not); and the uncertainty (`UNCERTAINTY_COLUMNS`).
        unfinished: the run records with status failed or running (run_id, preset, status, error, path).
        stats: per preset, the cells' samples and bootstrap replicates (`TableStats`).
        problems: one line per predictions file that failed its check (its run is compared unpaired).
        order: the titles and order of the tasks and attentions (`results.order.from_records`).
    """

    cells: pd.DataFrame
    unfinished: pd.DataFrame
    stats: dict[str, TableStats] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    order: order_.Order = field(default_factory=order_.Order)

    def task_title(self, task: str) -> str:
        """The column title of `task` ("Path-X"): recorded with its runs, else the task registry's."""
        return self.order.task_title(task)

    @property
    def presets(self) -> list[str]:
        return sorted(self.cells["preset"].unique(), key=str) if not self.cells.empty else []

    def tasks(self, preset: str | None = None) -> list[str]:
        cells = self.cells if preset is None else self.cells[self.cells["preset"] == preset]
        return self.order.sort_tasks(cells["task"].unique())

    def labels(self, preset: str) -> list[str]:
        cells = self.cells[self.cells["preset"] == preset]
        pairs = cells[["attention", "attention_label"]].drop_duplicates()
        ranked = sorted(pairs.itertuples(index=False), key=lambda p: (self.order.attention_key(p[0]), p[1]))
        return [label for _, label in ranked]


@dataclass(frozen=True)
class AverageStat:
    """The Avg of one row: its value and 95% interval (in %), and how it stands against the column's
    best Avg (`stats.Tie`; None when the row is not eligible for bold)."""

    value: float
    low: float
    high: float
    tie: stats.Tie | None


@dataclass
class TableStats:
    """The uncertainty of one preset table (results/stats.py).

    Attributes:
        samples: (attention label, task) -> the cell's `stats.Sample` (cells with an accuracy).
        replicates: the same keys -> bootstrap replicates of the cell's accuracy (fractions), from
            one `stats.replicates` call, so that cells on the same test set are paired.
        averages: ("avg" | "avg_with_pathx") -> attention label -> `AverageStat`.
    """

    samples: dict[tuple[str, str], stats.Sample]
    replicates: dict[tuple[str, str], np.ndarray]
    averages: dict[str, dict[str, AverageStat]] = field(default_factory=dict)
    order: order_.Order = field(default_factory=order_.Order)  # task titles in messages
    # differences already computed (the frontier compares many pairs, the bold some of them again)
    _known: dict[tuple[Any, ...], stats.Difference] = field(default_factory=dict, repr=False)

    def cell_difference(self, task: str, a: str, b: str) -> stats.Difference:
        """Accuracy of attention label `a` minus that of `b` on `task` (KeyError without both)."""
        if ("cell", task, a, b) not in self._known:
            ka, kb = (a, task), (b, task)
            self._known[("cell", task, a, b)] = stats.difference(
                self.samples[ka], self.samples[kb], self.replicates[ka], self.replicates[kb], names=(a, b)
            )
        return self._known[("cell", task, a, b)]

    def average_replicates(self, label: str, tasks: list[str]) -> np.ndarray | None:
        """Replicates of `label`'s mean over `tasks` (fractions), None unless it has every task."""
        keys = [(label, task) for task in tasks]
        if not tasks or any(key not in self.replicates for key in keys):
            return None
        return np.mean([self.replicates[key] for key in keys], axis=0)

    def average_difference(self, tasks: list[str], a: str, b: str) -> stats.Difference:
        """Avg over `tasks` of `a` minus that of `b`: from the Avg replicates; paired when every task
        is (a one-task Avg is that task's cell, compared as cells are)."""
        if len(tasks) == 1:
            return self.cell_difference(tasks[0], a, b)
        key = ("avg", tuple(tasks), a, b)
        if key not in self._known:
            self._known[key] = self._average_difference(tasks, a, b)
        return self._known[key]

    def _average_difference(self, tasks: list[str], a: str, b: str) -> stats.Difference:
        ra, rb = self.average_replicates(a, tasks), self.average_replicates(b, tasks)
        if ra is None or rb is None:
            raise KeyError(f"{a} or {b} has no accuracy on every task of the average")
        reasons = [stats.pairing(self.samples[(a, t)], self.samples[(b, t)], (a, b)) for t in tasks]
        paired = all(p for p, _ in reasons)
        reason = next(
            (
                f"{self.order.task_title(t)}: {why}"
                for t, (p, why) in zip(tasks, reasons, strict=True)
                if not p
            ),
            None,
        )
        estimate = float(
            np.mean([self.samples[(a, t)].accuracy - self.samples[(b, t)].accuracy for t in tasks])
        )
        return stats.bootstrap_difference(estimate, ra - rb, paired, reason)


# The uncertainty of a cell (results/stats.py), NaN / None where the cell has no accuracy:
# ci_low, ci_high -- its 95% interval in %; interval -- "Clopper–Pearson" (one seed) or "bootstrap";
# paired -- every counted seed kept verified per-example predictions of one test set; unpaired --
# otherwise why not; at_chance -- the interval reaches chance (ci_low <= 100 * chance); best -- the
# column's best; tied_best -- the best or not told apart from it (bold); p_vs_best -- the
# Holm-corrected p-value of its difference from the best; test_vs_best -- that test.
UNCERTAINTY_COLUMNS = [
    "ci_low",
    "ci_high",
    "interval",
    "paired",
    "unpaired",
    "at_chance",
    "best",
    "tied_best",
    "p_vs_best",
    "test_vs_best",
]

CELL_COLUMNS = [
    "preset",
    "attention",
    "attention_label",
    "task",
    "status",
    "mean",
    "std",
    "seeds",
    "runs",
    "diverged",
    "failed",
    "chance",
    "n_test",
    "threshold",
    "data_source",
    "excluded",
    "diverged_runs",
    "config",
    "newest",
    "differs",
    "plugin",
    "plugin_origin",
    *UNCERTAINTY_COLUMNS,
]


def build(runs: pd.DataFrame) -> Leaderboard:
    """Aggregate run records (results.store.load(...).runs) into leaderboard cells."""
    runs = with_reported_accuracy(runs)
    cells = []
    samples: dict[tuple[Any, str, str], stats.Sample] = {}
    problems: list[str] = []
    for (preset, label, task), group in runs.groupby(
        ["preset", "attention_label", "task"], sort=False, dropna=False
    ):
        cell, sample, unusable = _cell(preset, label, task, group)
        cells.append(cell)
        problems += unusable
        if sample is not None:
            samples[(preset, label, task)] = sample
    unfinished = runs[~runs["status"].isin(["ok", "diverged"])].reindex(
        columns=["run_id", "preset", "status", "error", "path"]
    )
    frame = pd.DataFrame(cells, columns=CELL_COLUMNS).astype(dict.fromkeys(UNCERTAINTY_COLUMNS, object))
    flag_minority_configurations(frame)
    lb = Leaderboard(
        cells=frame,
        unfinished=unfinished.sort_values("run_id").reset_index(drop=True),
        problems=problems,
        order=order_.from_records(runs),
    )
    for preset in lb.presets:
        mine = {(label, task): s for (p, label, task), s in samples.items() if p == preset}
        lb.stats[preset] = TableStats(samples=mine, replicates=stats.replicates(mine), order=lb.order)
        _add_uncertainty(lb, preset)
    for column in ("ci_low", "ci_high", "p_vs_best"):
        lb.cells[column] = pd.to_numeric(lb.cells[column], errors="coerce")
    return lb


def _add_uncertainty(lb: Leaderboard, preset: str) -> None:
    """Fill the cells' `UNCERTAINTY_COLUMNS` and the Avg statistics of one preset table."""
    table = lb.stats[preset]
    cells = lb.cells
    of_preset = cells[cells["preset"] == preset]
    for index, cell in of_preset.iterrows():
        sample = table.samples.get((cell["attention_label"], cell["task"]))
        if sample is None or cell["status"] == "missing":
            continue
        low, high, method = stats.interval(sample, table.replicates[(cell["attention_label"], cell["task"])])
        cells.at[index, "ci_low"], cells.at[index, "ci_high"] = 100 * low, 100 * high
        cells.at[index, "interval"] = method
        cells.at[index, "paired"] = sample.outcomes is not None
        cells.at[index, "unpaired"] = sample.unpaired
        cells.at[index, "at_chance"] = (
            not math.isnan(cell["chance"]) and 100 * low <= 100 * cell["chance"] + 1e-9
        )
    for task in lb.tasks(preset):
        column = of_preset[(of_preset["task"] == task) & _eligible(of_preset)]
        order = [label for label in lb.labels(preset) if label in set(column["attention_label"])]
        values = {
            label: table.samples[(label, task)].accuracy for label in order if (label, task) in table.samples
        }
        ties = stats.ties_with_best(values, functools.partial(table.cell_difference, task))
        for label, tie in ties.items():
            index = column.index[column["attention_label"] == label][0]
            cells.at[index, "best"] = tie.best
            cells.at[index, "tied_best"] = tie.tied
            cells.at[index, "p_vs_best"] = tie.p_holm
            cells.at[index, "test_vs_best"] = tie.difference.test if tie.difference is not None else None
    for name, with_pathx in (("avg", False), ("avg_with_pathx", True)):
        table.averages[name] = _average_stats(lb, preset, with_pathx=with_pathx)


def _eligible(cells: pd.DataFrame) -> pd.Series:
    """Cells that take part in a column's bold: an accuracy above FAIL, the column's configuration."""
    return (cells["status"] == "ok") & (cells["differs"].map(len) == 0)


def average_tasks(lb: Leaderboard, preset: str, *, with_pathx: bool = False) -> list[str]:
    """The columns the Avg of a preset table is over (all but Path-X unless `with_pathx`)."""
    return [t for t in lb.tasks(preset) if with_pathx or t not in AVG_EXCLUDES]


def _average_stats(lb: Leaderboard, preset: str, *, with_pathx: bool) -> dict[str, AverageStat]:
    """Each row's Avg with its interval, and the rows that cannot be told apart from the best Avg
    (rows with a `§` cell take no part)."""
    table = lb.stats[preset]
    tasks = average_tasks(lb, preset, with_pathx=with_pathx)
    values = averages(lb, preset, with_pathx=with_pathx)
    cells = lb.cells[lb.cells["preset"] == preset]
    out: dict[str, AverageStat] = {}
    for label, value in values.items():
        if math.isnan(value):
            out[label] = AverageStat(value, math.nan, math.nan, None)
            continue
        if len(tasks) == 1:
            row = cells[(cells["attention_label"] == label) & (cells["task"] == tasks[0])].iloc[0]
            low, high = row["ci_low"], row["ci_high"]
        else:
            replicates = table.average_replicates(label, tasks)
            low, high = (
                (100 * v for v in stats.percentile_interval(replicates))
                if replicates is not None
                else (math.nan,) * 2
            )
        out[label] = AverageStat(value, float(low), float(high), None)
    other_setup = {
        label for label in values if cells[cells["attention_label"] == label]["differs"].map(len).sum()
    }
    eligible = {
        label: value
        for label, value in values.items()
        if not math.isnan(value)
        and label not in other_setup
        and all((label, task) in table.samples for task in tasks)
    }
    ties = stats.ties_with_best(eligible, lambda a, b: table.average_difference(tasks, a, b))
    for label, tie in ties.items():
        stat = out[label]
        out[label] = AverageStat(stat.value, stat.low, stat.high, tie)
    return out


def _cell(
    preset: Any, label: str, task: str, group: pd.DataFrame
) -> tuple[dict[str, Any], stats.Sample | None, list[str]]:
    """The cell's row, its `stats.Sample` (None without an accuracy) and one line per predictions
    file of its runs that failed its check."""
    group, excluded = one_configuration(group)  # † and the seed count: within that configuration
    ok = group[(group["status"] == "ok") & group["reported_acc"].notna()]
    sample, problems = cell_sample(ok) if len(ok) else (None, [])
    diverged_runs = group[group["status"] == "diverged"]
    diverged = len(diverged_runs)
    seeds = len(ok)
    mean = float(ok["reported_acc"].mean()) * 100 if seeds else math.nan
    std = float(ok["reported_acc"].std(ddof=1)) * 100 if seeds > 1 else math.nan
    basis = ok if seeds else group
    chance = _first_number(basis["chance_acc"])
    if math.isnan(chance):
        classes = _first_number(basis["num_classes"])
        chance = 1.0 / classes if classes and not math.isnan(classes) else math.nan
    n_test = float(basis["n_test"].min()) if basis["n_test"].notna().any() else math.nan
    threshold = (
        chance_threshold(chance, n_test) if not (math.isnan(chance) or math.isnan(n_test)) else math.nan
    )
    if seeds:
        fail = not math.isnan(threshold) and mean / 100 <= threshold
    else:
        fail = diverged > 0
    if not seeds and not fail:
        out_of_memory = len(group) > 0 and all(
            status == "failed" and is_out_of_memory(error)
            for status, error in zip(group["status"], group.get("error", [None] * len(group)), strict=True)
        )
        status = OOM if out_of_memory else "missing"
    else:
        status = FAIL if fail else "ok"
    sources = sorted({str(s) for s in basis["data_source"].dropna()})
    cell = {
        "preset": preset,
        "attention": str(group["attention"].iloc[0]),
        "attention_label": label,
        "task": task,
        "status": status,
        "mean": mean,
        "std": std,
        "seeds": seeds,
        "runs": len(group),
        "diverged": diverged,
        "failed": len(group) - seeds - diverged,
        "chance": chance,
        "n_test": n_test,
        "threshold": threshold,
        "data_source": "; ".join(sources),
        "excluded": excluded,
        "diverged_runs": [
            f"{r.run_id}" + (f" -- {r.error}" if isinstance(r.error, str) else "")
            for r in diverged_runs.reindex(columns=["run_id", "error"]).itertuples()
        ],
        "config": next((c for c in group.get("config", []) if isinstance(c, dict)), None),
        "newest": last_changed(group).max() if len(group) else "",
        "differs": [],  # filled by `flag_minority_configurations`
        **_plugin_of(group),
        **dict.fromkeys(UNCERTAINTY_COLUMNS),  # filled by `_add_uncertainty`
    }
    return cell, sample, problems


def _plugin_of(group: pd.DataFrame) -> dict[str, Any]:
    """The attention plugin of a cell's runs (None for a built-in) and where it came from, e.g.
    'mypkg 1.2.0, sha256 3f2a9c1e0b7d'."""
    rows = group.reindex(columns=list(PLUGIN_FIELDS)).to_dict("records")
    row = next((r for r in reversed(rows) if isinstance(r["plugin"], str) and r["plugin"]), None)
    if row is None:
        return {"plugin": None, "plugin_origin": ""}
    origin = []
    if isinstance(row["plugin_distribution"], str):
        version = row["plugin_version"] if isinstance(row["plugin_version"], str) else ""
        origin.append(f"{row['plugin_distribution']} {version}".strip())
    if isinstance(row["plugin_sha256"], str):
        origin.append(f"sha256 {row['plugin_sha256'][:12]}")
    return {"plugin": row["plugin"], "plugin_origin": ", ".join(origin)}


def _first_number(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.iloc[0]) if len(values) else math.nan


# LRA's published average leaves Path-X out (every model of the paper failed it): "Avg" does too.
AVG_EXCLUDES = ("pathx",)


def averages(lb: Leaderboard, preset: str, *, with_pathx: bool = False) -> dict[str, float]:
    """Avg per attention label of one preset table, over its columns except Path-X (as LRA
    publishes; `with_pathx` includes it): NaN unless every such column has a measured mean."""
    cells = lb.cells[lb.cells["preset"] == preset]
    tasks = [t for t in lb.tasks(preset) if with_pathx or t not in AVG_EXCLUDES]
    out = {}
    for label in lb.labels(preset):
        means = cells[cells["attention_label"] == label].set_index("task")["mean"]
        values = [means.get(t, math.nan) for t in tasks]
        complete = values and not any(math.isnan(v) for v in values)
        out[label] = float(sum(values) / len(values)) if complete else math.nan
    return out


def has_pathx_average(lb: Leaderboard, preset: str) -> bool:
    """Whether the table shows "Avg with Path-X" beside Avg (it has a Path-X column)."""
    return any(t in AVG_EXCLUDES for t in lb.tasks(preset))


def flag(value: Any) -> bool:
    """Whether a flag column of the cells (`paired`, `at_chance`, `best`, `tied_best`) holds True;
    None / NaN where the cell has no accuracy read as False."""
    return isinstance(value, (bool, np.bool_)) and bool(value)
