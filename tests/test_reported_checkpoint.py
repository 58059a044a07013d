"""The tables report the checkpoint the run's preset names: the last one for `lra` (LRA tests the
final weights), the best-validation one otherwise (the PyTorch lineage), the last one for Text."""

from __future__ import annotations

from results import leaderboard, records, store

from .builders import run_record, write_runs


def _record(task: str, checkpoint: str | None, best: float, last: float, seed: int = 0) -> dict:
    config = (
        {"preset": {"train": {"report_checkpoint": checkpoint}}} if checkpoint else {"preset": {"train": {}}}
    )
    return run_record(
        task,
        "full",
        seed=seed,
        test_acc=best,
        test_acc_last=last,
        preset="lra" if checkpoint == "last" else "pytorch",
        config=config,
    )


def test_the_reported_field_follows_the_presets_checkpoint():
    assert records.reported_accuracy_field("listops") == "test_acc"
    assert records.reported_accuracy_field("listops", "last") == "test_acc_last"
    assert records.reported_accuracy_field("text", "best") == "test_acc_last"  # validation is test
    assert records.report_checkpoint(_record("listops", "last", 0.3, 0.2)) == "last"
    assert records.report_checkpoint(_record("listops", None, 0.3, 0.2)) == "best"  # records before the field
    assert records.report_checkpoint({"config": None}) == "best"
    assert records.reported_accuracy_text(_record("listops", "last", 0.3, 0.2)).startswith(
        "test 20.00% (last checkpoint"
    )
    assert records.reported_accuracy_text(_record("listops", "best", 0.3, 0.2)) == "test 30.00%"


def test_store_and_leaderboard_report_the_last_checkpoint_of_lra_runs(tmp_path):
    write_runs(
        tmp_path,
        [
            _record("listops", "last", best=0.40, last=0.30),
            _record("image", "best", best=0.45, last=0.35),
        ],
    )
    runs = store.load(tmp_path).runs.set_index("task")
    assert runs.loc["listops", "reported_acc"] == 0.30 and runs.loc["image", "reported_acc"] == 0.45
    cells = leaderboard.build(store.load(tmp_path).runs).cells.set_index(["preset", "task"])["mean"]
    assert cells.loc[("lra", "listops")] == 30.0 and cells.loc[("pytorch", "image")] == 45.0
