"""The leaderboard as people read it: the markdown / terminal tables with their footnotes, the
published block, the wide CSV (`leaderboard.csv`) and the files written atomically. The marks and
rules are those of the package docstring (results/leaderboard/__init__.py)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lra.io import atomic_write, atomic_write_text

from .. import order as order_
from ..published import published_for, task_columns
from ..records import plugin_label
from .cells import (
    AT_CHANCE,
    AVG_WITH_PATHX,
    FAIL,
    MISSING,
    MIXED,
    OOM,
    OTHER_SETUP,
    PARTIAL,
    Leaderboard,
    flag,
    has_pathx_average,
)

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
            row[lb.task_title(task)] = _format_cell(cell, bold=bold)
        for name, avg in avg_columns.items():
            stat = avg[label]
            text = accuracy_text(stat.value, stat.low, stat.high)
            if text != MISSING and other_setup[label]:
                text += OTHER_SETUP
            bold = markdown and stat.tie is not None and stat.tie.tied
            row[name] = f"**{text}**" if bold else text
        rows.append(row)
    return pd.DataFrame(rows, columns=["Attention", *[lb.task_title(t) for t in tasks], *avg_columns])


def published_table(
    published: pd.DataFrame, tasks: list[str], *, protocol: bool = True, order: order_.Order | None = None
) -> pd.DataFrame:
    """The published block restricted to `tasks` (to every task column of the file when none of `tasks`
    is one); columns titled as `order` titles them, else as the task registry does."""
    columns = task_columns(published)
    tasks = [t for t in tasks if t in columns] or columns
    registry = order_.registry_order()
    titles = {
        t: order.titles[t] if order is not None and t in order.titles else registry.task_title(t)
        for t in tasks
    }
    rows = []
    for _, pub in published.iterrows():
        row = {"Model": pub["model"]}
        for task in tasks:
            row[titles[task]] = pub[task] or MISSING
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
            f"- {c.attention_label} / {lb.task_title(c.task)}: {', '.join(c.differs)}"
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
        block = published_table(published, lb.tasks(), protocol=markdown, order=lb.order)
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
            sizes.append(f"{lb.task_title(task)} {', '.join(f'{v:,}' for v in n)}")
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
                f" {lb.task_title(task)}: cells evaluated on {len(test_sets)} different test sets "
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
            out.append(f"{lb.task_title(task)} = {', '.join(sources)}")
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
