"""The leaderboard: rows = attention (with its parameters), columns = tasks, one table per preset.

A cell is the mean test accuracy (in %, of the checkpoint the run's preset reports: the
best-validation one, the last for `lra` (`train.report_checkpoint`); Text: the last, see
`results.records.VAL_IS_TEST_TASKS`) over the seeds that finished with status ok, with its 95%
interval (results/stats.py: Clopper–Pearson for one seed, a bootstrap over seeds and test
examples for several) and its number of test examples. Rules, also printed as footnotes under
every table:

* FAIL -- the cell's mean test accuracy is at most ``chance + 2 * sqrt(chance * (1 - chance) / n_test)``:
  within two binomial standard errors of a classifier that always predicts the most frequent test
  label (`chance_acc` in the record; 1 / classes when absent); shown as "FAIL 12.4 [9.8, 15.4]",
  the measured accuracy and its interval. A cell whose every seed diverged is FAIL as well (alone:
  it has no accuracy).
* `°` -- the cell's interval reaches chance (its lower end is at or below it): the cell is not
  FAIL, but the test set cannot tell it from chance at 95%.
* OOM -- every run of the cell's configuration failed by running out of memory (the LRA paper
  reported such cells as FAIL); no accuracy, so the row has no Avg.
* `–` -- no finished run for this attention and task.
* `‡` -- the cell's runs have several configurations (beyond the seed): only the newest run's
  configuration counts, whatever that run's status; the others are listed under the table.
* `†` -- some seeds of that configuration diverged or failed; the value is over the remaining
  seeds. Diverged and failed runs are listed under the table.
* `§` -- the cell's configuration, beyond the attention, differs from that of most cells of its
  column (ties: the newest run's); the differing settings are listed under the table. Such cells
  are never bold, and their row's Avg carries the mark and is never bold.
* Avg -- the mean of the row's cells over the table's columns except Path-X (LRA's published
  average leaves it out), computed only for rows with a measured accuracy in each of them (FAIL
  cells count at their measured accuracy); otherwise `–`. Its interval: the bootstrap of that mean,
  each task resampled independently. A table with Path-X also shows "Avg with Path-X" over every
  column.
* Bold (markdown) -- every cell that cannot be told apart from its column's best: the best (highest
  mean among non-FAIL cells without `§`) and each cell whose difference from it is not significant
  at 0.05 after Holm's correction over the column (`results.stats.ties_with_best`: McNemar's exact
  test or a paired bootstrap when both were evaluated on the same test examples with per-example
  predictions, otherwise an unpaired test). The Avg column follows the same rule on the Avg's
  bootstrap. A table never bolds a single winner the tests cannot separate.

Published numbers (results/published.csv) of the attentions on the table come in a separate block
and never enter an average.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lra.io import atomic_write, atomic_write_text

from . import stats
from .predictions import cell_sample
from .published import published_for
from .records import PLUGIN_FIELDS, is_out_of_memory, plugin_label
from .store import with_reported_accuracy

# Canonical LRA column order and titles (results/ does not import the task registry: no torch).
TASK_TITLES = {
    "listops": "ListOps",
    "text": "Text",
    "retrieval": "Retrieval",
    "image": "Image",
    "pathfinder": "Pathfinder",
    "pathx": "Path-X",
}
# Row order: the zoo's registration order (baseline, compression, routing, MiTA); others after.
# Row order of the tables: the registry's order (results/ does not import the zoo); others, such as
# plugins, follow alphabetically.
ATTENTION_ORDER = (
    "full", "agent", "topk", "moba", "mita", "mita_route",
    "linear", "performer", "cosformer", "linformer", "nystrom", "skyformer",
    "local", "longformer", "bigbird", "sparse", "reformer", "sinkhorn", "synthesizer",
)  # fmt: skip
FAIL = "FAIL"
OOM = "OOM"
MISSING = "–"
PARTIAL = "†"
MIXED = "‡"
OTHER_SETUP = "§"
AT_CHANCE = "°"
AVG_WITH_PATHX = "Avg with Path-X"

FOOTNOTES = (
    "Cells: test accuracy (%) of the best-validation checkpoint (preset lra: of the last, as LRA tests), mean over seeds with status ok, and its 95% "
    "interval [low, high]: for one seed the Clopper–Pearson exact binomial interval on the n test examples; "
    "for several, the percentile interval of a bootstrap that resamples the seeds and, shared by every cell "
    "on the same test set, the test examples (results/stats.py). Text: of the last checkpoint (its "
    "validation set is the test set, as in LRA).",
    "Bold: the column's best and every cell that cannot be told apart from it: difference not significant at "
    "0.05 after Holm's correction over the column; paired tests (McNemar's exact test for one seed, a paired "
    "bootstrap for several) when both cells kept per-example predictions of the same test examples, "
    "otherwise unpaired ones (score test, independent bootstrap), which resolve fewer differences. FAIL and "
    f"{OTHER_SETUP} cells are never bold.",
    "FAIL: mean test accuracy ≤ chance + 2·sqrt(chance·(1 − chance)/n_test), where chance is the frequency "
    "of the most common test label (within two binomial standard errors of chance), shown with the measured "
    "accuracy and its interval; also cells whose every seed diverged (no accuracy). "
    f"{AT_CHANCE}: the cell's interval reaches chance (its lower end is at or below it).",
    f"{OOM}: every run of the cell's configuration ran out of memory (LRA reported such cells as FAIL). "
    f"{MISSING}: no finished run. {PARTIAL}: some seeds of the cell's configuration diverged or failed; the "
    "value is over the others (diverged and failed runs are listed under the table).",
    "Avg: mean over this table's columns except Path-X (LRA's published average leaves Path-X out), only "
    f"for rows with a measured accuracy in each of them (FAIL cells count at their measured accuracy); other "
    f"rows show {MISSING}. Its interval and bold: the same bootstrap, the mean over tasks of replicates drawn "
    f"for each task independently. {AVG_WITH_PATHX}: the same over every column, shown when the table has "
    "Path-X.",
    f"{MIXED}: the cell's runs were trained with different configurations (beyond the seed); only those of "
    "the newest run's configuration (over every run, whatever its status) are counted, the others are listed "
    "under the table.",
    f"{OTHER_SETUP}: the cell's configuration, beyond the attention, differs from that of most cells of its "
    "column (ties: the newest run's); the differing settings are listed under the table.",
)


def task_title(task: str) -> str:
    return TASK_TITLES.get(task, task)


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
    """

    cells: pd.DataFrame
    unfinished: pd.DataFrame
    stats: dict[str, TableStats] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def presets(self) -> list[str]:
        return sorted(self.cells["preset"].unique(), key=str) if not self.cells.empty else []

    def tasks(self, preset: str | None = None) -> list[str]:
        cells = self.cells if preset is None else self.cells[self.cells["preset"] == preset]
        return sort_tasks(cells["task"].unique())

    def labels(self, preset: str) -> list[str]:
        cells = self.cells[self.cells["preset"] == preset]
        pairs = cells[["attention", "attention_label"]].drop_duplicates()
        return [label for _, label in sorted(pairs.itertuples(index=False), key=_attention_sort_key)]


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
            (f"{task_title(t)}: {why}" for t, (p, why) in zip(tasks, reasons, strict=True) if not p), None
        )
        estimate = float(
            np.mean([self.samples[(a, t)].accuracy - self.samples[(b, t)].accuracy for t in tasks])
        )
        return stats.bootstrap_difference(estimate, ra - rb, paired, reason)


def sort_tasks(tasks: Any) -> list[str]:
    known = [t for t in TASK_TITLES if t in set(tasks)]
    return known + sorted(set(tasks) - set(known))


def _attention_sort_key(pair: tuple[str, str]) -> tuple[int, str, str]:
    name, label = pair
    rank = ATTENTION_ORDER.index(name) if name in ATTENTION_ORDER else len(ATTENTION_ORDER)
    return rank, name, label


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
    _flag_minority_configurations(frame)
    lb = Leaderboard(
        cells=frame,
        unfinished=unfinished.sort_values("run_id").reset_index(drop=True),
        problems=problems,
    )
    for preset in lb.presets:
        mine = {(label, task): s for (p, label, task), s in samples.items() if p == preset}
        lb.stats[preset] = TableStats(samples=mine, replicates=stats.replicates(mine))
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
        ties = stats.ties_with_best(values, lambda a, b, task=task: table.cell_difference(task, a, b))
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


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """A nested configuration as {"preset.train.lr": 0.05, ...}."""
    if not isinstance(config, dict):
        return {prefix.rstrip("."): config}
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def _setup(config: Any) -> str | None:
    """What a run's configuration fixes besides its seed (None when the record has none)."""
    if not isinstance(config, dict):
        return None
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)


def _differing(reference: Any, other: Any, ignore: frozenset[str] = frozenset({"seed"})) -> list[str]:
    """The flattened settings in which two configurations differ, `ignore`d keys (and below) aside."""
    a, b = _flat(reference), _flat(other)
    return sorted(k for k in a.keys() | b.keys() if k.split(".")[0] not in ignore and a.get(k) != b.get(k))


def _when(runs: pd.DataFrame) -> pd.Series:
    """When each run last changed: its end, else its start (a run still going or killed)."""
    finished = runs["finished_at"] if "finished_at" in runs else pd.Series(None, index=runs.index)
    started = runs["started_at"] if "started_at" in runs else pd.Series(None, index=runs.index)
    return finished.where(finished.notna(), started).fillna("").astype(str)


def one_configuration(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The runs of the newest run's configuration, and "run_id: differs in a, b" for the others.
    The newest run is taken over every status (a newer configuration that diverged or failed
    replaces an older one that finished). Runs without a configuration count as the chosen one.
    Seeds of different configurations (another learning rate, step budget, data) never average."""
    if "config" not in runs:
        return runs, []
    setups = runs["config"].map(_setup)
    if setups.nunique(dropna=True) <= 1:
        return runs, []
    newest = _when(runs[setups.notna()]).idxmax()
    keep = (setups == setups[newest]) | setups.isna()
    excluded = []
    for index in runs.index[~keep]:
        differ = _differing(runs.at[newest, "config"], runs.at[index, "config"])
        excluded.append(f"{runs.at[index, 'run_id']}: differs in {', '.join(differ) or 'its configuration'}")
    return runs[keep], excluded


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
        "newest": _when(group).max() if len(group) else "",
        "differs": [],  # filled by `_flag_minority_configurations`
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


# What a cell's configuration fixes beyond its attention and seed: compared across a table's cells.
BEYOND_ATTENTION_IGNORED = frozenset({"seed", "attention", "attention_params", "plugins", "task"})


def _beyond_attention(config: dict[str, Any]) -> str:
    preset = {k: v for k, v in config.get("preset", {}).items() if k != "attention"}  # attention budgets
    kept = {k: v for k, v in config.items() if k not in BEYOND_ATTENTION_IGNORED}
    return json.dumps({**kept, "preset": preset}, sort_keys=True, default=str)


def _flag_minority_configurations(cells: pd.DataFrame) -> None:
    """Fill `differs` for every cell whose configuration, beyond the attention, is not the one most
    cells of its table column (preset and task) share -- ties go to the configuration of the
    newest run -- with "setting (this vs majority)" for each differing setting."""
    for _, column in cells[cells["config"].notna()].groupby(["preset", "task"], sort=False):
        setups = column["config"].map(_beyond_attention)
        counts = setups.value_counts()
        if len(counts) <= 1:
            continue
        top = counts[counts == counts.max()].index
        majority = max(top, key=lambda setup: column.loc[setups == setup, "newest"].max())
        reference = column.loc[setups[setups == majority].index[0], "config"]
        for index in column.index[setups != majority]:
            mine = column.at[index, "config"]
            keys = _differing(reference, mine, ignore=BEYOND_ATTENTION_IGNORED)
            a, b = _flat(mine), _flat(reference)
            cells.at[index, "differs"] = [
                f"{k} ({a.get(k, 'unset')} vs {b.get(k, 'unset')})"
                for k in keys
                if k != "preset.attention" and not k.startswith("preset.attention.")
            ]


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


def wide(lb: Leaderboard) -> pd.DataFrame:
    """The machine-readable leaderboard (`leaderboard.csv`, and the frame other reports read): one
    row per (preset, attention label); per task:

    * `<task>` -- mean test accuracy (%) over the counted seeds; `<task>_std` (sample std over
      seeds, NaN for one), `<task>_seeds`, `<task>_status` (ok / FAIL / OOM / missing);
    * `<task>_ci_low`, `<task>_ci_high` -- its 95% interval (%; results/stats.py), `<task>_n` -- test
      examples per seed, `<task>_interval` -- "Clopper–Pearson" (one seed) or "bootstrap";
    * marks: `<task>_best` -- the column's best or not told apart from it (bold in markdown),
      `<task>_p_vs_best` -- Holm-corrected p-value of the difference from the column's best (empty
      for the best itself), `<task>_test_vs_best` -- that test, `<task>_at_chance` -- the interval
      reaches chance (°), `<task>_paired` -- its runs kept per-example predictions (paired tests),
      `<task>_differs` -- settings in which the cell's configuration differs from its column's
      majority (§, `; `-separated, empty when none);

    then `avg` (without Path-X, as LRA publishes) and `avg_with_pathx`, each with `_ci_low`,
    `_ci_high`, `_best` and `_p_vs_best`."""
    rows = []
    tasks = lb.tasks()
    for preset in lb.presets:
        cells = lb.cells[lb.cells["preset"] == preset]
        table_stats = lb.stats.get(preset)
        for label in lb.labels(preset):
            mine = cells[cells["attention_label"] == label].set_index("task")
            row: dict[str, Any] = {
                "preset": preset,
                "attention": mine["attention"].iloc[0],
                "attention_label": label,
                "plugin": next((p for p in mine["plugin"] if isinstance(p, str)), None),
            }
            for task in tasks:
                cell = mine.loc[task] if task in mine.index else None
                row[task] = cell["mean"] if cell is not None else math.nan
                row[f"{task}_std"] = cell["std"] if cell is not None else math.nan
                row[f"{task}_seeds"] = int(cell["seeds"]) if cell is not None else 0
                row[f"{task}_status"] = cell["status"] if cell is not None else "missing"
                row[f"{task}_ci_low"] = _number(cell, "ci_low")
                row[f"{task}_ci_high"] = _number(cell, "ci_high")
                row[f"{task}_n"] = _number(cell, "n_test")
                row[f"{task}_interval"] = cell["interval"] if cell is not None else None
                row[f"{task}_best"] = bool(cell is not None and flag(cell["tied_best"]))
                row[f"{task}_p_vs_best"] = _number(cell, "p_vs_best")
                row[f"{task}_test_vs_best"] = cell["test_vs_best"] if cell is not None else None
                row[f"{task}_at_chance"] = bool(cell is not None and flag(cell["at_chance"]))
                row[f"{task}_paired"] = bool(cell is not None and flag(cell["paired"]))
                row[f"{task}_differs"] = "; ".join(cell["differs"]) if cell is not None else ""
            for name in ("avg", "avg_with_pathx"):
                stat = table_stats.averages[name].get(label) if table_stats is not None else None
                row[name] = stat.value if stat is not None else math.nan
                row[f"{name}_ci_low"] = stat.low if stat is not None else math.nan
                row[f"{name}_ci_high"] = stat.high if stat is not None else math.nan
                row[f"{name}_best"] = bool(stat is not None and stat.tie is not None and stat.tie.tied)
                row[f"{name}_p_vs_best"] = (
                    stat.tie.p_holm if stat is not None and stat.tie is not None else math.nan
                )
            rows.append(row)
    return pd.DataFrame(rows)


def flag(value: Any) -> bool:
    """Whether a flag column of the cells (`paired`, `at_chance`, `best`, `tied_best`) holds True;
    None / NaN where the cell has no accuracy read as False."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def _number(cell: pd.Series | None, column: str) -> float:
    if cell is None:
        return math.nan
    value = pd.to_numeric(pd.Series([cell[column]]), errors="coerce").iloc[0]
    return float(value)


def accuracy_text(mean: float, low: float, high: float) -> str:
    """An accuracy with its interval, as every table shows it: '26.8 [23.0, 30.9]' (%)."""
    if math.isnan(mean):
        return MISSING
    if math.isnan(low) or math.isnan(high):
        return f"{mean:.1f}"
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def _format_cell(cell: pd.Series | None, *, bold: bool) -> str:
    if cell is None or cell["status"] == "missing":
        return MISSING
    mark = PARTIAL if cell["seeds"] and cell["runs"] > cell["seeds"] else ""
    mark += MIXED if cell["excluded"] else ""
    mark += OTHER_SETUP if cell["differs"] else ""
    measured = accuracy_text(float(cell["mean"]), _number(cell, "ci_low"), _number(cell, "ci_high"))
    if cell["status"] == OOM or (cell["status"] == FAIL and measured == MISSING):
        return cell["status"] + mark  # no accuracy (out of memory; every seed diverged)
    if cell["status"] == FAIL:
        return f"{FAIL} {measured}{mark}"  # the measured accuracy stays readable
    if flag(cell["at_chance"]):
        mark = AT_CHANCE + mark
    text = measured + mark
    return f"**{text}**" if bold else text


def table(lb: Leaderboard, preset: str, *, markdown: bool = True) -> pd.DataFrame:
    """The display table of one preset: Attention, one column per task title, Avg (strings). In
    markdown, bold marks every cell that cannot be told apart from its column's best."""
    cells = lb.cells[lb.cells["preset"] == preset]
    tasks = lb.tasks(preset)
    labels = lb.labels(preset)
    other_setup = {
        label: bool(cells[cells["attention_label"] == label]["differs"].map(len).sum()) for label in labels
    }
    table_stats = lb.stats[preset]
    avg_columns = {"Avg": table_stats.averages["avg"]}
    if has_pathx_average(lb, preset):
        avg_columns[AVG_WITH_PATHX] = table_stats.averages["avg_with_pathx"]
    rows = []
    for label in labels:
        mine = cells[cells["attention_label"] == label].set_index("task")
        plugin = next((p for p in mine["plugin"] if isinstance(p, str)), None)
        row = {"Attention": plugin_label(label, plugin)}
        for task in tasks:
            cell = mine.loc[task] if task in mine.index else None
            bold = markdown and cell is not None and flag(cell["tied_best"])
            row[task_title(task)] = _format_cell(cell, bold=bold)
        for name, avg in avg_columns.items():
            stat = avg[label]
            text = accuracy_text(stat.value, stat.low, stat.high)
            if text != MISSING and other_setup[label]:
                text += OTHER_SETUP
            bold = markdown and stat.tie is not None and stat.tie.tied
            row[name] = f"**{text}**" if bold else text
        rows.append(row)
    return pd.DataFrame(rows, columns=["Attention", *[task_title(t) for t in tasks], *avg_columns])


def published_table(published: pd.DataFrame, tasks: list[str], *, protocol: bool = True) -> pd.DataFrame:
    """The published block restricted to `tasks` (all six when empty)."""
    tasks = [t for t in (tasks or list(TASK_TITLES)) if t in published.columns] or list(TASK_TITLES)
    rows = []
    for _, pub in published.iterrows():
        row = {"Model": pub["model"]}
        for task in tasks:
            row[task_title(task)] = pub[task] or MISSING
        row["Avg (as published)"] = f"{pub['avg']} ({pub['avg_over']})" if pub.get("avg") else MISSING
        row["Source"] = pub["source"]
        if protocol:
            row["Protocol"] = pub["protocol"]
        rows.append(row)
    return pd.DataFrame(rows)


def render(
    lb: Leaderboard,
    *,
    markdown: bool = True,
    published: pd.DataFrame | None = None,
    skipped: Sequence[str] = (),
) -> str:
    """The whole leaderboard as markdown (`leaderboard.md`) or as plain text for a terminal.
    `skipped`: the problem lines of record files left out as unreadable or invalid
    (`results.store.Store.invalid`), counted under the tables."""
    fmt = "github" if markdown else "simple"
    parts: list[str] = []
    heading = "## " if markdown else ""
    if lb.cells.empty:
        parts.append("No finished runs.")
    for preset in lb.presets:
        parts.append(f"{heading}Leaderboard, preset {preset}")
        parts.append(
            table(lb, preset, markdown=markdown).to_markdown(index=False, tablefmt=fmt, disable_numparse=True)
        )
        sources = _data_sources(lb, preset)
        if sources:
            parts.append("Data: " + "; ".join(sources))
        parts.append(_sizes_line(lb, preset))
        cells = lb.cells[lb.cells["preset"] == preset]
        other = [
            f"- {c.attention_label} / {task_title(c.task)}: {', '.join(c.differs)}"
            for c in cells.itertuples()
            if c.differs
        ]
        plugins = {
            c.attention_label: f"- {plugin_label(c.attention_label, c.plugin)}"
            + (f": {c.plugin_origin}" if c.plugin_origin else "")
            for c in cells.itertuples()
            if isinstance(c.plugin, str)
        }
        if plugins:
            parts.append(
                "Attentions from plugins (registered by a module outside this package, loaded with --plugin, "
                "LRA_PLUGINS or an entry point):\n" + "\n".join(plugins.values())
            )
        if other:
            parts.append(
                f"Cells of another configuration than most of their column ({OTHER_SETUP}; this cell vs the "
                "majority; not bold, their rows' Avg not bold):\n" + "\n".join(other)
            )
    if lb.problems:
        parts.append(
            "Predictions files that failed their check (never used; their runs are compared unpaired):\n"
            + "\n".join(f"- {line}" for line in lb.problems)
        )
    if not lb.cells.empty:
        notes = [note for note in FOOTNOTES if markdown or not note.startswith("Bold")]
        parts.append("\n".join(f"- {note}" for note in notes))
    if not lb.unfinished.empty:
        lines = [
            f"- {r.run_id} (preset {r.preset}): {r.status}"
            + (f" -- {r.error}" if isinstance(r.error, str) else "")
            for r in lb.unfinished.itertuples()
        ]
        parts.append("Runs without a result (not counted):\n" + "\n".join(lines))
    diverged = [f"- {line} (preset {c.preset})" for c in lb.cells.itertuples() for line in c.diverged_runs]
    if diverged:
        parts.append("Diverged runs (not counted):\n" + "\n".join(diverged))
    mixed = [f"- {line} (preset {c.preset})" for c in lb.cells.itertuples() for line in c.excluded]
    if mixed:
        parts.append(
            f"Runs of another configuration than their cell's newest run ({MIXED}, not counted):\n"
            + "\n".join(mixed)
        )
    if skipped:
        parts.append(skipped_line(len(skipped)))
    if published is not None and not lb.cells.empty:
        published = published_for(published, lb.cells["attention"].unique())
    if published is not None and not published.empty:
        parts.append(f"{heading}Published results (not measured here)")
        parts.append(
            "Reported in the papers below with their own code, the real LRA data and full training budgets; "
            "for orientation only, never averaged with the measured rows above."
        )
        block = published_table(published, lb.tasks(), protocol=markdown)
        parts.append(block.to_markdown(index=False, tablefmt=fmt, disable_numparse=True))
        if not markdown:
            parts.append("\n".join(f"- {r.model} ({r.source}): {r.protocol}" for r in published.itertuples()))
    return "\n\n".join(parts) + "\n"


def _sizes_line(lb: Leaderboard, preset: str) -> str:
    """Test examples and seeds per cell, and how many cells could be compared paired."""
    cells = lb.cells[(lb.cells["preset"] == preset) & (lb.cells["seeds"] > 0)]
    sizes = []
    for task in lb.tasks(preset):
        n = sorted({int(v) for v in cells[cells["task"] == task]["n_test"].dropna()})
        if n:
            sizes.append(f"{task_title(task)} {', '.join(f'{v:,}' for v in n)}")
    seeds = sorted({int(v) for v in cells["seeds"]})
    paired = int(cells["paired"].map(flag).sum())
    line = (
        f"Test examples per seed: {'; '.join(sizes) or MISSING}. Seeds per cell: "
        f"{', '.join(str(v) for v in seeds) or MISSING}. Cells with per-example predictions (compared paired): "
        f"{paired} of {len(cells)}."
    )
    samples = lb.stats[preset].samples if preset in lb.stats else {}
    for task in lb.tasks(preset):
        test_sets = {s.test_set: s for (_, t), s in samples.items() if t == task and s.test_set is not None}
        if len(test_sets) > 1:  # predictions of different examples: those cells are never paired
            described = sorted({f"{s.examples:,} examples of {s.data or '?'}" for s in test_sets.values()})
            line += (
                f" {task_title(task)}: cells evaluated on {len(test_sets)} different test sets "
                f"({'; '.join(described)}) are compared unpaired."
            )
    return line


def skipped_line(count: int) -> str:
    """What a table says under itself about record files it left out."""
    files = "record file was" if count == 1 else "record files were"
    return (
        f"{count} {files} skipped as unreadable or invalid (not counted; each is named, with the field "
        "at fault, in a warning when the table is built)."
    )


def _data_sources(lb: Leaderboard, preset: str) -> list[str]:
    cells = lb.cells[lb.cells["preset"] == preset]
    out = []
    for task in lb.tasks(preset):
        sources = sorted({s for s in cells[cells["task"] == task]["data_source"] if s})
        if sources:
            out.append(f"{task_title(task)} = {', '.join(sources)}")
    return out


def write_all(
    lb: Leaderboard,
    *,
    csv: str | os.PathLike[str] | None = None,
    markdown: str | os.PathLike[str] | None = None,
    published: pd.DataFrame | None = None,
    skipped: Sequence[str] = (),
) -> None:
    """Atomically write the wide CSV and / or the markdown leaderboard (`skipped` as in `render`)."""
    if csv is not None:
        table_ = wide(lb)
        atomic_write(csv, lambda fh: table_.to_csv(fh, index=False, float_format="%.4f"))
    if markdown is not None:
        atomic_write_text(
            markdown,
            "# LRA arena results\n\n" + render(lb, markdown=True, published=published, skipped=skipped),
        )
