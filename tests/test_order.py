"""Task titles, task order and attention order (results/order.py): from the records where they carry
them, else from the task and attention registries; unknown names after the known ones, by name."""

from __future__ import annotations

import pandas as pd

import attention_zoo
from lra import tasks
from results import compare, leaderboard, order
from results.leaderboard import published_table
from results.published import load_published, task_columns

from .builders import run_record


def test_old_records_take_titles_and_order_from_the_registries():
    runs = pd.DataFrame(
        [run_record(task=t, attention=a) for t in reversed(tasks.names()) for a in ("mita", "full")]
    )
    lb = leaderboard.build(runs)
    assert lb.tasks() == tasks.names()
    assert [lb.task_title(t) for t in lb.tasks()] == [tasks.get(t).title for t in tasks.names()]
    assert lb.labels("quick") == ["full", "mita"]
    shown = leaderboard.table(lb, "quick")
    assert list(shown.columns[1:-2]) == [tasks.get(t).title for t in tasks.names()]


def test_a_task_the_registry_does_not_know_is_titled_and_ordered_by_its_record():
    runs = pd.DataFrame(
        [
            run_record(task="text", attention="full"),
            run_record(task="listops", attention="full"),
            # a plugin task: its record says where it goes and how it is titled
            run_record(task="mytask", attention="full", task_title="My Task", task_order=99),
            # another, from before the fields: after every known task
            run_record(task="another", attention="full"),
        ]
    )
    lb = leaderboard.build(runs)
    assert lb.tasks() == ["listops", "text", "mytask", "another"]
    shown = leaderboard.table(lb, "quick")
    assert list(shown.columns) == ["Attention", "ListOps", "Text", "My Task", "another", "Avg"]


def test_recorded_order_and_title_win_over_the_registry():
    runs = pd.DataFrame(
        [
            run_record(task="listops", attention="full", task_order=5, task_title="List operations"),
            run_record(task="text", attention="full", task_order=0),
        ]
    )
    lb = leaderboard.build(runs)
    assert lb.tasks() == ["text", "listops"]
    assert list(leaderboard.table(lb, "quick").columns[1:3]) == ["Text", "List operations"]


def test_attentions_follow_the_recorded_order_then_the_registry_then_their_names():
    runs = pd.DataFrame(
        [
            run_record(attention="aaa"),  # a plugin without a recorded order: last
            run_record(attention="mita"),
            run_record(attention="zzz", attention_order=2),  # a plugin placed by its record
            run_record(attention="full"),
        ]
    )
    assert leaderboard.build(runs).labels("quick") == ["full", "zzz", "mita", "aaa"]
    assert compare.default_attentions(runs, "listops") == ["full", "zzz", "mita", "aaa"]


def test_the_registry_order_lists_the_built_in_attentions_and_every_task():
    registry = order.registry_order()
    assert registry.sort_attentions(reversed(attention_zoo.names())) == attention_zoo.names()
    assert registry.sort_tasks(["plugin_task", *reversed(tasks.names())]) == [*tasks.names(), "plugin_task"]
    assert registry.task_title("plugin_task") == "plugin_task"


def test_the_published_columns_come_from_the_file_in_registry_order():
    published = load_published()
    columns = task_columns(published)
    assert set(columns) == set(published.columns) - {
        "model",
        "attention",
        "avg",
        "avg_over",
        "source",
        "protocol",
    }
    assert columns == [t for t in tasks.names() if t in columns]
    block = published_table(published, [])
    assert list(block.columns[1 : 1 + len(columns)]) == [tasks.get(t).title for t in columns]
    assert list(published_table(published, ["pathx", "listops"]).columns[1:3]) == ["Path-X", "ListOps"]
