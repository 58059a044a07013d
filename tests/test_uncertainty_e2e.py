"""End to end: a tiny suite of three attentions and two seeds writes the leaderboard (CSV and markdown)
with intervals and marks, `lra compare` prints paired tests, and the frontier draws error bars.

One suite (module fixture, about half a minute on two cores) serves every test: the tiny preset on
ListOps, 2 steps per run (the statistics need predictions, not learning), 200 test examples."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.container import ErrorbarContainer
from statsmodels.stats.contingency_tables import mcnemar

from results import frontier, leaderboard, plots, predictions, store
from runners import cli

pytestmark = pytest.mark.e2e  # a real suite: six runs in their own processes

ATTENTIONS = ("full", "topk(topk=16)", "mita(num_landmarks=8,topk=8)")  # table order


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("uncertainty")
    args = [
        "suite", "--preset", "tiny", "--tasks", "listops", "--attentions", "full,mita,topk", "--seeds", "0,1",
        "--max-steps", "2", "--set", "train.eval_every=2", "--set", "data.n_train=64", "--set", "data.n_val=32",
        "--jobs", "2", "--out", str(root / "out"), "--data-dir", str(root / "data"),
    ]  # fmt: skip
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    return root / "out", result.output


def test_the_suite_says_its_resolution_before_training(suite):
    out, output = suite
    assert output.index("resolution: listops: 200 test examples") < output.index("6 runs (0 already finished")


def test_every_run_kept_its_predictions_of_one_test_set(suite):
    out, _ = suite
    runs = store.load(out).runs
    assert len(runs) == 6 and set(runs["status"]) == {"ok"}
    assert runs["test_set_sha256"].nunique() == 1
    for row in runs.itertuples():
        record = json.loads(Path(row.path).read_text())
        got = predictions.read_predictions(record, row.path)  # checked against its record
        assert len(got.label) == 200 and got.correct("best").mean() == pytest.approx(record["test_acc"])


def test_the_leaderboard_has_intervals_and_marks(suite):
    out, _ = suite
    wide = pd.read_csv(out / "leaderboard.csv").set_index("attention_label")
    assert list(wide.index) == list(ATTENTIONS)
    assert (wide["listops_n"] == 200).all() and (wide["listops_seeds"] == 2).all()
    assert (wide["listops_interval"] == "bootstrap").all() and wide["listops_paired"].all()
    assert (wide["listops_ci_low"] <= wide["listops"]).all() and (
        wide["listops"] <= wide["listops_ci_high"]
    ).all()
    # two steps rarely lift a cell above the FAIL line; bold and p-values are only for cells above it
    eligible = wide[wide["listops_status"] == "ok"]
    assert wide["listops_best"].dtype == bool and wide["listops_best"].any() == (len(eligible) > 0)
    if len(eligible):
        best = eligible["listops"].idxmax()
        assert wide.loc[best, "listops_best"] and np.isnan(wide.loc[best, "listops_p_vs_best"])
        others = eligible.drop(index=best)
        assert ((others["listops_p_vs_best"] > 0) & (others["listops_p_vs_best"] <= 1)).all()
        assert (others["listops_test_vs_best"] == "paired bootstrap").all()
    # one task: the Avg is the cell, with the cell's interval
    assert wide["avg_ci_low"].to_numpy() == pytest.approx(wide["listops_ci_low"].to_numpy())
    markdown = (out / "leaderboard.md").read_text()
    for label in ATTENTIONS:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {label} "))
        cell = row.split("|")[2].strip()
        low, high = wide.loc[label, ["listops_ci_low", "listops_ci_high"]]
        text = f"{wide.loc[label, 'listops']:.1f} [{low:.1f}, {high:.1f}]"
        if wide.loc[label, "listops_status"] == "FAIL":  # FAIL with the measured accuracy and interval
            assert cell == f"FAIL {text}" and wide.loc[label, "listops_at_chance"]
        else:
            assert cell.strip("*").rstrip("°") == text, (cell, text)
            assert cell.startswith("**") == bool(wide.loc[label, "listops_best"])
    assert "Cells with per-example predictions (compared paired): 3 of 3." in markdown


def test_compare_prints_paired_tests_against_full(suite):
    out, _ = suite
    path = out / "compare.csv"
    result = CliRunner().invoke(
        cli.main, ["compare", "--task", "listops", "--runs", str(out), "--no-published", "--csv", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "Tests against full" in result.output and result.output.count("paired bootstrap (paired)") == 2
    assert "not paired" not in result.output
    table = pd.read_csv(path).set_index("attention_label")
    for label in ATTENTIONS[1:]:
        row = table.loc[label]
        assert row["paired"] and row["test"] == "paired bootstrap" and row["p_holm"] >= row["p_value"]
        assert row["diff_ci_low"] <= row["diff_vs_reference"] <= row["diff_ci_high"]
        assert row["diff_vs_reference"] == pytest.approx(row["test_acc"] - table.loc["full", "test_acc"])


def test_one_seed_each_is_compared_with_mcnemar_on_the_predictions(suite):
    out, _ = suite
    runs = store.load(out).runs
    seed0 = runs[runs["seed"] == 0]
    lb = leaderboard.build(seed0)
    difference = lb.stats["tiny"].cell_difference("listops", ATTENTIONS[1], "full")
    correct = {}
    for row in seed0.itertuples():
        record = json.loads(Path(row.path).read_text())
        correct[row.attention_label] = predictions.read_predictions(record, row.path).correct("best")
    a, b = correct[ATTENTIONS[1]], correct["full"]
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    assert difference.test == "McNemar exact" and difference.discordant == (table[0][1], table[1][0])
    assert difference.p_value == pytest.approx(mcnemar(table, exact=True).pvalue)


def test_the_frontier_shows_error_bars(suite):
    out, _ = suite
    csv = pd.read_csv(out / "frontier.csv")
    assert csv["ci_low"].notna().all() and (csv["ci_low"] <= csv["accuracy"]).all()
    assert (out / "plots" / "frontier_tiny.png").is_file()
    st = store.load(out)
    lb = leaderboard.build(st.runs)
    ((_, fig),) = plots.frontier_figures(frontier.build(st, lb), lb)
    assert len([c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]) == 3
    md = (out / "frontier.md").read_text()
    assert re.search(r"\| full\s+\| (FAIL )?\d+\.\d \[\d+\.\d, \d+\.\d\]", md)
