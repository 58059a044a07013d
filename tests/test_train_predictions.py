"""A run writes the predicted class of every test example beside its record, named there with its
sha256 and a digest of the examples, for one process and for DDP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lra import tasks
from lra.io import sha256_file
from lra.presets import apply_overrides, get_preset
from results import predictions
from runners import train
from runners.train import RunConfig

SMALL = {
    "data.n_train": "64",
    "data.n_val": "32",
    "data.n_test": "48",
    "train.batch_size": "16",
    "train.eval_every": "2",
}


def tiny(tmp_path, run_dir, **kwargs):
    return RunConfig(
        task="listops",
        attention="full",
        preset="tiny",
        overrides=dict(SMALL),
        data_dir=str(tmp_path / "data"),
        run_dir=str(run_dir),
        max_steps=4,
        quiet=True,
        **kwargs,
    )


def check_predictions(record, run_dir, tmp_path):
    assert record["predictions_file"] == "predictions.npz"
    assert record["predictions_sha256"] == sha256_file(run_dir / "predictions.npz")
    got = predictions.read_predictions(record, run_dir / "result.json")  # checks it against the record
    test = tasks.get("listops").load("test", apply_overrides(get_preset("listops", "tiny"), {
        **SMALL, "data.data_dir": str(tmp_path / "data")
    }).data)  # fmt: skip
    np.testing.assert_array_equal(got.index, np.arange(48))
    np.testing.assert_array_equal(got.label, test.labels.numpy())
    assert got.correct("best").mean() == pytest.approx(record["test_acc"])
    assert got.correct("last").mean() == pytest.approx(record["test_acc_last"])
    identity = record["config"]["data_identity"]
    assert record["test_set_sha256"] == predictions.test_set_digest(
        identity, np.arange(48), test.labels.numpy()
    )
    return got


def test_a_run_writes_its_test_predictions_with_the_record(tmp_path):
    record = train.run(tiny(tmp_path, tmp_path / "run"))
    assert record["status"] == "ok"
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk["predictions_sha256"] == record["predictions_sha256"]
    check_predictions(on_disk, tmp_path / "run", tmp_path)
    # another seed on the same test set: the same examples, so the two are paired
    other = train.run(tiny(tmp_path, tmp_path / "seed1", seed=1))
    assert other["test_set_sha256"] == record["test_set_sha256"]


@pytest.mark.e2e
def test_ddp_gathers_every_example_in_order(tmp_path):
    record = train.launch(tiny(tmp_path, tmp_path / "ddp"), 2)
    assert record["status"] == "ok" and record["world_size"] == 2
    check_predictions(record, tmp_path / "ddp", tmp_path)
