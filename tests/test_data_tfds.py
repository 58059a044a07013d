"""The TFDS source through `tfds.data_source` on ArrayRecord files, without TensorFlow.

A small builder is prepared in a temporary TFDS data dir and read back by the Text task's
loader (skipped without `tensorflow-datasets`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lra import tasks
from lra.data import tfds as lra_tfds

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("array_record")

ROWS = {"train": [(b"Loved it", 1), (b"Hated it", 0), (b"Fine", 1)], "test": [(b"Meh", 0)]}


class LraFixtureReviews(tfds.core.GeneratorBasedBuilder):
    """imdb_reviews-shaped fixture: text + 2-class label."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(num_classes=2)}
            )
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(rows) for split, rows in ROWS.items()}

    def _generate_examples(self, rows):
        for i, (text, label) in enumerate(rows):
            yield i, {"text": text, "label": label}


def test_text_task_reads_tfds_array_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setattr("lra.tasks.text.TFDS_NAME", "lra_fixture_reviews")
    data = tasks.DataConfig(data_dir=str(tmp_path), source="tfds", seq_len=10)
    train = tasks.get("text").load("train", data)
    assert (tmp_path / "tfds" / "lra_fixture_reviews").is_dir()
    assert (
        sorted(train.labels.tolist()) == [0, 1, 1] and train.info["data_source"] == "tfds:lra_fixture_reviews"
    )
    decoded = sorted(bytes((row[row > 0] - 1).tolist()) for row in train.inputs)
    assert decoded == sorted(t for t, _ in ROWS["train"])
    assert tasks.get("text").load("val", data).labels.tolist() == [0]


def test_split_expressions_and_unknown_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    records = lra_tfds.load_split("lra_fixture_reviews", "train[:2]", tmp_path)
    assert len(records) == 2 and isinstance(records[0]["text"], bytes)
    with pytest.raises(FileNotFoundError, match="could not load TFDS dataset 'no_such_dataset_xyz'"):
        lra_tfds.load_split("no_such_dataset_xyz", "train", tmp_path)
