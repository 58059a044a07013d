"""The results store: every result record under a directory, as pandas DataFrames.

`load(root)` walks `root` recursively (a suite's output directory, a single run directory, or
any tree of records), validates each record (results/records.py) and returns the run records
and the efficiency records as two DataFrames, plus one problem line per file that was torn,
corrupt or superseded. Bad files are reported by name and skipped; they never stop the
aggregation. No torch import: tables are built on machines without it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import atomic_write

from .costs import TIMING_FIELDS
from .records import (
    EFFICIENCY_FIELDS,
    OPTIONAL_RUN_FIELDS,
    PLUGIN_FIELDS,
    RUN_FIELDS,
    load_records,
    report_checkpoint,
    reported_accuracy_field,
)

# Columns holding lists / dicts; the long CSV stores them as JSON text.
NESTED_RUN_FIELDS = ("attention_params", "config", "history")
# Fields some efficiency records carry beyond the schema (runners/bench/records.py,
# runners/bench/model.py): kept as columns (NaN where absent) because they tell measurement
# settings, machines and bench calls apart and say how far a time can be trusted (results/costs.py).
EFFICIENCY_EXTRA_FIELDS = (
    "batch_requested",
    "cpu_model",
    "cpu_threads",
    "amp",
    *PLUGIN_FIELDS,
    *TIMING_FIELDS,
)


@dataclass
class Store:
    """Everything read from one results directory.

    Attributes:
        root: the directory that was read.
        runs: one row per run record (columns: `RUN_FIELDS`, the optional `PLUGIN_FIELDS` (None where
            absent) and `path`), newest record per run.
        efficiency: one row per efficiency record (columns: `EFFICIENCY_FIELDS`,
            `EFFICIENCY_EXTRA_FIELDS` and `path`).
        problems: one line per skipped file, naming the file and why.
        invalid: the lines of `problems` about files skipped as unreadable or failing the record
            schema (results/schema.py), which tables count under themselves.
    """

    root: Path
    runs: pd.DataFrame
    efficiency: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def load(root: str | os.PathLike[str]) -> Store:
    """Read every record under `root`; FileNotFoundError if it does not exist."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(
            f"results directory {root} does not exist; run `lra suite --out {root}` first or pass --runs DIR"
        )
    records, problems = load_records(root)
    for record in records:
        record["path"] = record.pop("_path")
    runs = with_reported_accuracy(
        _frame([r for r in records if r["kind"] == "run"], RUN_FIELDS, (*PLUGIN_FIELDS, *OPTIONAL_RUN_FIELDS))
    )
    runs, duplicates = _newest_per_run(runs)
    efficiency = _frame(
        [r for r in records if r["kind"] == "efficiency"], EFFICIENCY_FIELDS, EFFICIENCY_EXTRA_FIELDS
    )
    return Store(
        root=root, runs=runs, efficiency=efficiency, problems=problems + duplicates, invalid=list(problems)
    )


def with_reported_accuracy(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with the column `reported_acc`: the accuracy the tables show for each run
    (`records.reported_accuracy_field`: test_acc, or test_acc_last where validation is test or the
    run's preset reports the last checkpoint)."""
    if "reported_acc" in runs:
        return runs
    runs = runs.copy()
    values = [
        row.get(reported_accuracy_field(row.get("task"), report_checkpoint(row)), None)
        for row in runs.to_dict("records")
    ]
    runs["reported_acc"] = pd.to_numeric(pd.Series(values, index=runs.index, dtype=object))
    return runs


def _frame(
    records: list[dict[str, Any]], fields: dict[str, str], extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    columns = [*fields, *extra, "path"]
    frame = pd.DataFrame.from_records(records, columns=columns)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    # Numeric fields arrive as int / float / None; make None a NaN so means and sorts work.
    for column in columns:
        values = frame[column]
        if column not in NESTED_RUN_FIELDS and values.map(_is_number_or_none).all() and values.notna().any():
            frame[column] = pd.to_numeric(values)
    return frame


def _is_number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _newest_per_run(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep one record per (preset, run_id): the most recently finished one; report the others."""
    if runs.empty:
        return runs, []
    order = runs.assign(_finished=runs["finished_at"].fillna("").astype(str)).sort_values(
        ["_finished", "path"], ascending=False, kind="stable"
    )
    dropped = order.duplicated(subset=["preset", "run_id"], keep="first")
    problems = []
    for _, row in order[dropped].iterrows():
        kept = order[(order["preset"] == row["preset"]) & (order["run_id"] == row["run_id"]) & ~dropped]
        problems.append(
            f"{row['path']}: another record of run {row['run_id']} (preset {row['preset']}) is newer "
            f"({kept['path'].iloc[0]}), skipped"
        )
    kept = order[~dropped].drop(columns="_finished").sort_values("path", kind="stable")
    return kept.reset_index(drop=True), problems


def long_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run with every recorded field; nested fields as JSON text."""
    table = runs.copy()
    for column in NESTED_RUN_FIELDS:
        if column in table:
            table[column] = table[column].map(lambda v: json.dumps(v, sort_keys=True, default=str))
    return table


def write_long_csv(runs: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Atomically write the long table (`results_long.csv`)."""
    table = long_table(runs)
    atomic_write(path, lambda fh: table.to_csv(fh, index=False))
