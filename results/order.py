"""Task titles, task order and attention order of every table and figure.

A run record may carry what the registries said when it ran: ``task_title`` (e.g. "Path-X"),
``task_order`` (the task's place in `lra.tasks.names()`) and ``attention_order`` (the attention's
place in `attention_zoo.names()`). Records written before those fields, and records of other kinds
(bench records), are answered by the registries themselves: ``lra.tasks.get(task).title``, the
index in ``lra.tasks.names()``, the index among the zoo's built-in mechanisms. The registries are
imported only when some record lacks a field (they import torch; records alone do not need it).

Sort keys: a known name sorts by its rank, then by name; a name neither the records nor the
registries know (a plugin's task or attention) sorts after every known one, alphabetically. A title
defaults to the name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


def registry_task_titles() -> dict[str, str]:
    """Title of every registered task, in the registry's order (imports `lra.tasks`)."""
    from lra import tasks

    return {name: tasks.get(name).title for name in tasks.names()}


def registry_attention_names() -> list[str]:
    """The zoo's built-in mechanisms in registration order (plugins, whose order is their loading
    order, are left to the alphabetical rule)."""
    import attention_zoo

    return [name for name in attention_zoo.names() if attention_zoo.get(name).plugin is None]


@dataclass(frozen=True)
class Order:
    """Titles and ranks of the tasks and attentions of a set of records (module docstring)."""

    titles: Mapping[str, str] = field(default_factory=dict)
    task_ranks: Mapping[str, int] = field(default_factory=dict)
    attention_ranks: Mapping[str, int] = field(default_factory=dict)

    def task_title(self, task: str) -> str:
        return self.titles.get(task, task)

    def task_key(self, task: str) -> tuple[int, int, str]:
        rank = self.task_ranks.get(task)
        return (0, rank, task) if rank is not None else (1, 0, task)

    def attention_key(self, attention: str) -> tuple[int, int, str]:
        rank = self.attention_ranks.get(attention)
        return (0, rank, attention) if rank is not None else (1, 0, attention)

    def sort_tasks(self, tasks: Iterable[str]) -> list[str]:
        return sorted(set(tasks), key=self.task_key)

    def sort_attentions(self, attentions: Iterable[str]) -> list[str]:
        return sorted(set(attentions), key=self.attention_key)


def _recorded(runs: pd.DataFrame, key: str, column: str) -> dict[str, Any]:
    """Per name in `key`, the value of `column` most of its records carry (ties: the first seen)."""
    if key not in runs or column not in runs:
        return {}
    counts: dict[str, Counter[Any]] = {}
    for name, value in runs[[key, column]].dropna().itertuples(index=False):
        counts.setdefault(str(name), Counter())[value] += 1
    return {name: counted.most_common(1)[0][0] for name, counted in counts.items()}


def _names(runs: pd.DataFrame, column: str) -> set[str]:
    return {str(v) for v in runs[column].dropna()} if column in runs else set()


def from_records(runs: pd.DataFrame) -> Order:
    """The order of the tasks and attentions of `runs` (records: columns `task`, `attention` and, where
    recorded, `task_title`, `task_order`, `attention_order`), the registries answering for the rest."""
    titles = {k: str(v) for k, v in _recorded(runs, "task", "task_title").items()}
    task_ranks = {k: int(v) for k, v in _recorded(runs, "task", "task_order").items()}
    attention_ranks = {k: int(v) for k, v in _recorded(runs, "attention", "attention_order").items()}
    tasks, attentions = _names(runs, "task"), _names(runs, "attention")
    if tasks - (titles.keys() & task_ranks.keys()):
        registry = registry_task_titles()
        for rank, (task, title) in enumerate(registry.items()):
            if task in tasks:
                titles.setdefault(task, title)
                task_ranks.setdefault(task, rank)
    if attentions - attention_ranks.keys():
        built_ins = registry_attention_names()
        for rank, attention in enumerate(built_ins):
            if attention in attentions:
                attention_ranks.setdefault(attention, rank)
    return Order(titles, task_ranks, attention_ranks)


def registry_order() -> Order:
    """The registries' order alone, for tables without run records (the published block)."""
    titles = registry_task_titles()
    return Order(
        titles,
        {task: rank for rank, task in enumerate(titles)},
        {name: rank for rank, name in enumerate(registry_attention_names())},
    )
