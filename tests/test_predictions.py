"""Per-example predictions (results/predictions.py) and the paired comparisons they allow: written
with a record, checked against it at every read, used by the leaderboard and `lra compare`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from statsmodels.stats.contingency_tables import mcnemar

from lra.io import IntegrityError
from results import leaderboard, predictions, store
from results.records import OPTIONAL_RUN_FIELDS, RUN_FIELDS, check_record, write_record
from runners import cli

from .builders import run_record

IDENTITY = {"source": "generated", "content": "listops-a"}


def write_run(root: Path, attention: str, correct: np.ndarray, *, seed=0, identity=IDENTITY, labels=None):
    """A run record of `attention` whose best and last checkpoints got `correct` right, with its
    predictions file (labels 0..9, a wrong prediction is label + 1)."""
    n = len(correct)
    labels = np.arange(n) % 10 if labels is None else labels
    predicted = np.where(correct, labels, (labels + 1) % 10)
    record = run_record(
        "listops",
        attention,
        seed=seed,
        test_acc=float(correct.mean()),
        test_acc_last=float(correct.mean()),
        n_test=n,
        config={"task": "listops", "seed": seed, "data_identity": identity},
        config_hash=f"hash-{attention}-{seed}",
    )
    run_dir = root / "runs" / record["run_id"]
    record.update(
        predictions.write_predictions(
            run_dir,
            index=np.arange(n),
            label=labels,
            last=predicted,
            best=predicted,
            run_id=record["run_id"],
            config_hash=record["config_hash"],
            data_identity=identity,
        )
    )
    write_record(run_dir / "result.json", record)
    return run_dir


def discordant(n, both, only_a, only_b, seed=0):
    kind = np.array([0] * both + [1] * only_a + [2] * only_b + [3] * (n - both - only_a - only_b))
    kind = kind[np.random.default_rng(seed).permutation(n)]
    return (kind == 0) | (kind == 1), (kind == 0) | (kind == 2)


def test_predictions_round_trip_and_name_themselves_in_the_record(tmp_path):
    correct = np.array([True, False, True, True])
    run_dir = write_run(tmp_path, "full", correct)
    record = json.loads((run_dir / "result.json").read_text())
    assert record["predictions_file"] == "predictions.npz"
    assert len(record["predictions_sha256"]) == 64 and len(record["test_set_sha256"]) == 64
    got = predictions.read_predictions(record, run_dir / "result.json")
    np.testing.assert_array_equal(got.correct("best"), correct)
    np.testing.assert_array_equal(got.index, np.arange(4))
    with np.load(run_dir / "predictions.npz", allow_pickle=False) as data:  # no pickles, small integers
        assert data["pred_last"].dtype == np.int8 and data["index"].dtype == np.int32


def test_records_written_before_predictions_still_validate():
    record = run_record()
    for field in ("predictions_file", "predictions_sha256", "test_set_sha256"):
        assert field in OPTIONAL_RUN_FIELDS and field not in RUN_FIELDS
        record.pop(field, None)
    check_record(record)  # no error: an older record lacks them


@pytest.mark.parametrize("damage", ["flip", "record", "missing"])
def test_a_predictions_file_that_does_not_match_its_record_is_reported_never_used(tmp_path, damage):
    a, b = discordant(200, 60, 30, 10)
    full = write_run(tmp_path, "full", a)
    write_run(tmp_path, "mita", b)
    path = full / "predictions.npz"
    if damage == "flip":  # a corrupt file: another sha256
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        message = "is corrupt: its sha256"
    elif damage == "record":  # a file that fits its digest but not its record's accuracy
        record = json.loads((full / "result.json").read_text())
        record["test_acc"] = 0.99
        write_record(full / "result.json", record)
        message = "does not match its record (accuracy 0.450000 vs test_acc 0.990000)"
    else:
        path.unlink()
        message = "predictions.npz is missing"
    record = json.loads((full / "result.json").read_text())
    with pytest.raises(IntegrityError, match="compared unpaired") as err:
        predictions.read_predictions(record, full / "result.json")
    assert message in str(err.value) and "\n" not in str(err.value)
    lb = leaderboard.build(store.load(tmp_path).runs)
    assert len(lb.problems) == 1 and message in lb.problems[0]
    cells = lb.cells.set_index("attention_label")
    assert not cells.loc["full", "paired"] and cells.loc["mita", "paired"]
    assert cells.loc["mita", "test_vs_best"] == "score test, not paired"
    text = leaderboard.render(lb)
    assert "Predictions files that failed their check (never used" in text and message in text
    result = CliRunner().invoke(
        cli.main, ["compare", "--task", "listops", "--runs", str(tmp_path), "--no-published"]
    )
    assert result.exit_code == 0, result.output
    assert "- not paired: full has a predictions file that failed its check" in result.output
    assert "- never used: " in result.output and message in result.output


def test_the_leaderboard_pairs_cells_on_the_same_test_examples_with_mcnemar(tmp_path):
    # 300 examples: full right on 150 + 40, mita on 150 + 18 (accuracies 63.3% and 56.0%)
    full, mita = discordant(300, 150, 40, 18)
    write_run(tmp_path, "full", full)
    write_run(tmp_path, "mita", mita)
    lb = leaderboard.build(store.load(tmp_path).runs)
    cells = lb.cells.set_index("attention_label")
    assert cells.loc["full", "paired"] and cells.loc["mita", "paired"]
    expected = mcnemar([[150, 18], [40, 300 - 208]], exact=True).pvalue  # one comparison: Holm = raw
    assert cells.loc["mita", "p_vs_best"] == pytest.approx(expected)
    assert cells.loc["mita", "test_vs_best"] == "McNemar exact"
    assert expected < 0.05 and not cells.loc["mita", "tied_best"]
    # unpaired, the same accuracies would be a tie: pairing is what resolves them here
    unpaired = leaderboard.build(store.load(tmp_path).runs.assign(predictions_file=None))
    assert unpaired.cells.set_index("attention_label").loc["mita", "tied_best"]
    assert "Cells with per-example predictions (compared paired): 2 of 2" in leaderboard.render(lb)


def test_runs_on_a_different_number_of_test_examples_are_not_paired(tmp_path):
    write_run(tmp_path, "full", np.arange(300) % 2 == 0)
    write_run(tmp_path, "mita", np.arange(200) % 3 == 0, identity={"source": "generated", "content": "short"})
    lb = leaderboard.build(store.load(tmp_path).runs)
    difference = lb.stats["quick"].cell_difference("listops", "mita", "full")
    assert not difference.paired and difference.test == "score test, not paired"
    assert difference.unpaired.startswith("evaluated on other data")
    same_data = tmp_path / "same"
    write_run(same_data, "full", np.arange(300) % 2 == 0)
    write_run(same_data, "mita", np.arange(200) % 3 == 0)
    lb = leaderboard.build(store.load(same_data).runs)
    difference = lb.stats["quick"].cell_difference("listops", "mita", "full")
    assert difference.unpaired == "evaluated on 200 vs 300 test examples (another data.n_test or --limit)"
    assert (
        "ListOps: cells evaluated on 2 different test sets (200 examples of generated:listops [listops-a]; "
        "300 examples of generated:listops [listops-a]) are compared unpaired." in leaderboard.render(lb)
    )


def test_lra_compare_prints_paired_tests_with_holm(tmp_path):
    full, mita = discordant(300, 150, 40, 18)
    _, topk = discordant(300, 150, 40, 35, seed=1)
    for name, correct in (("full", full), ("mita", mita), ("topk", topk)):
        write_run(tmp_path, name, correct)
    out = tmp_path / "cmp.csv"
    result = CliRunner().invoke(
        cli.main,
        ["compare", "--task", "listops", "--runs", str(tmp_path), "--no-published", "--csv", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "Tests against full" in result.output and "McNemar exact (paired)" in result.output
    assert "corrected with Holm's method for the 2 attentions compared" in result.output
    table = pd.read_csv(out).set_index("attention_label")
    assert table.loc["mita", "p_value"] == pytest.approx(mcnemar([[150, 18], [40, 92]], exact=True).pvalue)
    assert bool(table.loc["mita", "paired"]) and table.loc["mita", "test"] == "McNemar exact"
    assert table.loc["mita", "diff_vs_reference"] == pytest.approx((18 - 40) / 300)
    assert table.loc["mita", "p_holm"] >= table.loc["mita", "p_value"]
