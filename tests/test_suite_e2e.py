"""The suite end to end with the real runner: the tiny preset in the end-to-end set (-m e2e), the
README's quick preset (every attention learns ListOps and Pathfinder above chance) as a slow test."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import attention_zoo
from results import leaderboard, store
from runners import cli


def suite(tmp_path: Path, *args: str, data_dir: Path | str | None = None):
    out, data = tmp_path / "out", data_dir or tmp_path / "data"
    result = CliRunner().invoke(cli.main, ["suite", "--out", str(out), "--data-dir", str(data), *args])
    return result, out


# Four steps on small generated sets: the run's plumbing end to end, not learning (the slow test below).
TINY_SUITE = (
    "--preset", "tiny", "--attentions", "full,mita", "--max-steps", "4", "--set", "train.eval_every=2",
    "--set", "data.n_train=96", "--set", "data.n_val=32", "--set", "data.n_test=32", "--jobs", "2",
)  # fmt: skip


@pytest.mark.e2e
def test_tiny_suite_with_the_real_runner(tmp_path, shared_data_dir):
    result, out = suite(tmp_path, *TINY_SUITE, data_dir=shared_data_dir)
    assert result.exit_code == 0, result.output
    runs = store.load(out).runs
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    assert set(runs["task"]) == {"listops", "pathfinder"}
    assert (runs["steps"] == 4).all() and runs["test_acc"].between(0, 1).all()
    wide = pd.read_csv(out / "leaderboard.csv")
    assert set(wide["attention_label"]) == {"full", "mita(num_landmarks=8,topk=8)"}
    for name in ("leaderboard.md", "results_long.csv", "plots/accuracy_tiny.png"):
        assert (out / name).is_file()
    for name in ("frontier.md", "frontier.csv", "plots/frontier_tiny.png"):  # costs from the runs
        assert (out / name).is_file(), name
    assert "Accuracy–cost frontier, preset tiny" in result.output
    again, _ = suite(tmp_path, *TINY_SUITE, data_dir=shared_data_dir)
    assert again.exit_code == 0 and "4 skipped" in again.output


@pytest.mark.slow
def test_quick_suite_learns_listops_and_pathfinder(tmp_path):
    """The README's main command (minutes on a CPU): every attention learns ListOps `short` and
    Pathfinder `quick` (no global pixel cue) above chance."""
    result, out = suite(tmp_path, "--preset", "quick")
    assert result.exit_code == 0, result.output
    runs = store.load(out).runs
    assert len(runs) == 2 * len(attention_zoo.names()) and set(runs["status"]) == {"ok"}
    cells = leaderboard.build(runs).cells
    for task in ("listops", "pathfinder"):
        task_cells = cells[cells["task"] == task]
        assert len(task_cells) == len(attention_zoo.names())
        # "ok" here means above chance + 2 binomial standard errors (otherwise the cell is FAIL).
        assert (task_cells["status"] == "ok").all(), task_cells[["attention_label", "mean", "status"]]
