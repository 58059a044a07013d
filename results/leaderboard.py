"""The leaderboard: rows = attention (with its parameters), columns = tasks, one table per preset.

A cell is the mean test accuracy (in %, best-validation checkpoint; Text: last checkpoint, see
`results.records.VAL_IS_TEST_TASKS`) over the seeds that finished
with status ok, with the sample standard deviation when there is more than one seed. Rules, also
printed as footnotes under every table:

* FAIL -- the cell's mean test accuracy is at most ``chance + 2 * sqrt(chance * (1 - chance) / n_test)``:
  within two binomial standard errors of a classifier that always predicts the most frequent test
  label (`chance_acc` in the record; 1 / classes when absent). A cell whose every seed diverged is
  FAIL as well.
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
  cells count at their measured accuracy); otherwise `–`. A table with Path-X also shows
  "Avg with Path-X" over every column.
* Bold (markdown) -- the best value of each column among non-FAIL cells, ties included.

Published numbers (results/published.csv) of the attentions on the table come in a separate block
and never enter an average.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lra.io import atomic_write, atomic_write_text

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
AVG_WITH_PATHX = "Avg with Path-X"

FOOTNOTES = (
    "Cells: test accuracy (%) of the best-validation checkpoint, mean ± sample std over seeds with status ok; "
    "Text: of the last checkpoint (its validation set is the test set, as in LRA).",
    "FAIL: mean test accuracy ≤ chance + 2·sqrt(chance·(1 − chance)/n_test), where chance is the frequency "
    "of the most common test label (within two binomial standard errors of chance); also cells whose every "
    "seed diverged.",
    f"{OOM}: every run of the cell's configuration ran out of memory (LRA reported such cells as FAIL). "
    f"{MISSING}: no finished run. {PARTIAL}: some seeds of the cell's configuration diverged or failed; the "
    "value is over the others (diverged and failed runs are listed under the table).",
    "Avg: mean over this table's columns except Path-X (LRA's published average leaves Path-X out), only "
    f"for rows with a measured accuracy in each of them (FAIL cells count at their measured accuracy); other "
    f"rows show {MISSING}. {AVG_WITH_PATHX}: the same over every column, shown when the table has Path-X.",
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
            majority; empty when it does not).
        unfinished: the run records with status failed or running (run_id, preset, status, error, path).
    """

    cells: pd.DataFrame
    unfinished: pd.DataFrame

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


def sort_tasks(tasks: Any) -> list[str]:
    known = [t for t in TASK_TITLES if t in set(tasks)]
    return known + sorted(set(tasks) - set(known))


def _attention_sort_key(pair: tuple[str, str]) -> tuple[int, str, str]:
    name, label = pair
    rank = ATTENTION_ORDER.index(name) if name in ATTENTION_ORDER else len(ATTENTION_ORDER)
    return rank, name, label


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
]


def build(runs: pd.DataFrame) -> Leaderboard:
    """Aggregate run records (results.store.load(...).runs) into leaderboard cells."""
    runs = with_reported_accuracy(runs)
    cells = []
    for (preset, label, task), group in runs.groupby(
        ["preset", "attention_label", "task"], sort=False, dropna=False
    ):
        cells.append(_cell(preset, label, task, group))
    unfinished = runs[~runs["status"].isin(["ok", "diverged"])].reindex(
        columns=["run_id", "preset", "status", "error", "path"]
    )
    frame = pd.DataFrame(cells, columns=CELL_COLUMNS)
    _flag_minority_configurations(frame)
    return Leaderboard(
        cells=frame,
        unfinished=unfinished.sort_values("run_id").reset_index(drop=True),
    )


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


def _cell(preset: Any, label: str, task: str, group: pd.DataFrame) -> dict[str, Any]:
    group, excluded = one_configuration(group)  # † and the seed count: within that configuration
    ok = group[(group["status"] == "ok") & group["reported_acc"].notna()]
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
    return {
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
    }


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
    """The machine-readable leaderboard (`leaderboard.csv`): one row per (preset, attention label);
    per task `<task>` (mean %), `<task>_std`, `<task>_seeds`, `<task>_status` (ok / FAIL / OOM / missing),
    `<task>_differs` (settings in which the cell's configuration differs from its column's
    majority, `; `-separated, empty when none); then `avg` (without Path-X, as LRA publishes) and
    `avg_with_pathx`."""
    rows = []
    tasks = lb.tasks()
    for preset in lb.presets:
        cells = lb.cells[lb.cells["preset"] == preset]
        avg = averages(lb, preset)
        avg_pathx = averages(lb, preset, with_pathx=True)
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
                row[f"{task}_differs"] = "; ".join(cell["differs"]) if cell is not None else ""
            row["avg"] = avg[label]
            row["avg_with_pathx"] = avg_pathx[label]
            rows.append(row)
    return pd.DataFrame(rows)


def _format_cell(cell: pd.Series | None, *, bold: bool) -> str:
    if cell is None or cell["status"] == "missing":
        return MISSING
    mark = PARTIAL if cell["seeds"] and cell["runs"] > cell["seeds"] else ""
    mark += MIXED if cell["excluded"] else ""
    mark += OTHER_SETUP if cell["differs"] else ""
    if cell["status"] in (FAIL, OOM):
        return cell["status"] + mark
    text = f"{cell['mean']:.2f}" + (f" ± {cell['std']:.2f}" if cell["seeds"] > 1 else "") + mark
    return f"**{text}**" if bold else text


def _best(values: list[float]) -> float:
    finite = [round(v, 2) for v in values if not math.isnan(v)]
    return max(finite) if finite else math.nan


def table(lb: Leaderboard, preset: str, *, markdown: bool = True) -> pd.DataFrame:
    """The display table of one preset: Attention, one column per task title, Avg (strings)."""
    cells = lb.cells[lb.cells["preset"] == preset]
    tasks = lb.tasks(preset)
    labels = lb.labels(preset)
    comparable = cells[cells["differs"].map(len) == 0]  # bold compares like with like
    best = {}
    for task in tasks:
        col = comparable[(comparable["task"] == task) & (comparable["status"] == "ok")]
        best[task] = _best(list(col["mean"]))
    other_setup = {
        label: bool(cells[cells["attention_label"] == label]["differs"].map(len).sum()) for label in labels
    }
    avg_columns = {"Avg": averages(lb, preset)}
    if has_pathx_average(lb, preset):
        avg_columns[AVG_WITH_PATHX] = averages(lb, preset, with_pathx=True)
    best_avg = {
        name: _best([v for label, v in avg.items() if not other_setup[label]])
        for name, avg in avg_columns.items()
    }
    rows = []
    for label in labels:
        mine = cells[cells["attention_label"] == label].set_index("task")
        plugin = next((p for p in mine["plugin"] if isinstance(p, str)), None)
        row = {"Attention": plugin_label(label, plugin)}
        for task in tasks:
            cell = mine.loc[task] if task in mine.index else None
            is_best = (
                markdown
                and cell is not None
                and cell["status"] == "ok"
                and not cell["differs"]
                and round(float(cell["mean"]), 2) == best[task]
            )
            row[task_title(task)] = _format_cell(cell, bold=is_best)
        for name, avg in avg_columns.items():
            value = avg[label]
            text = (
                MISSING if math.isnan(value) else f"{value:.2f}" + (OTHER_SETUP if other_setup[label] else "")
            )
            is_best = markdown and not math.isnan(value) and not other_setup[label]
            row[name] = f"**{text}**" if is_best and round(value, 2) == best_avg[name] else text
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
    if not lb.cells.empty:
        notes = list(FOOTNOTES) + (["Bold: best value per column (FAIL excluded)."] if markdown else [])
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
