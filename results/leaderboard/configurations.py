"""Which runs share a configuration: the seeds a cell averages and the cells that differ from their column.

A run's configuration beyond its seed (`setup`) decides which seeds of a cell average together:
only the newest run's (`one_configuration`, mark ‡). A cell's configuration beyond its attention
(`beyond_attention`) is compared with the majority of its table column (ties: the newest run's;
`flag_minority_configurations`, mark §).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd


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


def last_changed(runs: pd.DataFrame) -> pd.Series:
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
    newest = last_changed(runs[setups.notna()]).idxmax()
    keep = (setups == setups[newest]) | setups.isna()
    excluded = []
    for index in runs.index[~keep]:
        differ = _differing(runs.at[newest, "config"], runs.at[index, "config"])
        excluded.append(f"{runs.at[index, 'run_id']}: differs in {', '.join(differ) or 'its configuration'}")
    return runs[keep], excluded


# What a cell's configuration fixes beyond its attention and seed: compared across a table's cells.
BEYOND_ATTENTION_IGNORED = frozenset({"seed", "attention", "attention_params", "plugins", "task"})


def _beyond_attention(config: dict[str, Any]) -> str:
    preset = {k: v for k, v in config.get("preset", {}).items() if k != "attention"}  # attention budgets
    kept = {k: v for k, v in config.items() if k not in BEYOND_ATTENTION_IGNORED}
    return json.dumps({**kept, "preset": preset}, sort_keys=True, default=str)


def flag_minority_configurations(cells: pd.DataFrame) -> None:
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
