"""The Hugging Face source on small `save_to_disk` fixtures (skipped without `datasets`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lra import tasks
from lra.data import hf

datasets = pytest.importorskip("datasets")

REVIEWS = {
    "train": (["A great film.", "Dull, <br />too long.", "Ch\u00e9ri, j'adore"], [1, 0, 1]),
    "test": (["Bad.", "Good!"], [0, 1]),
}
# Constant images: gray = floor((0.2989 R + 0.5870 G + 0.1140 B) / 255 * 255.5) as tf.image does.
COLOURS = [((0, 0, 0), 0), ((255, 255, 255), 255), ((255, 0, 0), 76), ((0, 255, 0), 149), ((0, 0, 255), 29)]


def save_imdb(root: Path) -> None:
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    splits = {
        s: datasets.Dataset.from_dict({"text": t, "label": y}, features=features)
        for s, (t, y) in REVIEWS.items()
    }
    datasets.DatasetDict(splits).save_to_disk(str(root))


def save_cifar(root: Path) -> None:
    from PIL import Image

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})

    def split(n: int, offset: int) -> datasets.Dataset:
        images = [Image.new("RGB", (32, 32), COLOURS[(i + offset) % len(COLOURS)][0]) for i in range(n)]
        return datasets.Dataset.from_dict(
            {"img": images, "label": [(i + offset) % 10 for i in range(n)]}, features=features
        )

    datasets.DatasetDict({"train": split(10, 0), "test": split(3, 1)}).save_to_disk(str(root))


def test_text_from_a_local_copy_under_the_data_dir(tmp_path: Path):
    save_imdb(tmp_path / "hf" / "stanfordnlp__imdb")
    data = tasks.DataConfig(data_dir=str(tmp_path), source="hf", seq_len=12)
    train = tasks.get("text").load("train", data)
    assert train.inputs.shape == (3, 12) and train.labels.tolist() == [1, 0, 1]
    expected = "Ch\u00e9ri, j'adore".encode()[:12]
    assert train.inputs[2].tolist() == [b + 1 for b in expected]
    assert train.info["data_source"] == "hf:stanfordnlp/imdb"
    val, test = tasks.get("text").load("val", data), tasks.get("text").load("test", data)
    assert torch.equal(val.inputs, test.inputs) and val.labels.tolist() == [0, 1]  # IMDB: val = test
    assert (test.inputs[0, 4:] == 0).all() and test.inputs[0, :4].tolist() == [ord(c) + 1 for c in "Bad."]


def test_text_from_an_explicit_path_and_a_missing_split(tmp_path: Path):
    save_imdb(tmp_path / "my_imdb")
    data = tasks.DataConfig(
        data_dir=str(tmp_path / "empty"), source="hf", hf_repo=str(tmp_path / "my_imdb"), seq_len=8
    )
    assert len(tasks.get("text").load("test", data)) == 2
    with pytest.raises(ValueError, match="has no split 'validation'"):
        hf.load_split(str(tmp_path / "my_imdb"), "validation", tmp_path)


def test_image_grayscale_splits_and_pixel_modes(tmp_path: Path):
    save_cifar(tmp_path / "hf" / "uoft-cs__cifar10")
    data = tasks.DataConfig(data_dir=str(tmp_path), source="hf")
    train, val, test = (tasks.get("image").load(s, data) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (9, 1, 3)  # first 90% / last 10% of train, test
    assert train.inputs.shape == (9, 1024) and val.labels.tolist() == [9]
    for i in range(5):
        gray = COLOURS[i][1]
        assert (train.inputs[i] == gray + 1).all(), (COLOURS[i], train.inputs[i, 0])
    legacy = tasks.get("image").load(
        "train", tasks.DataConfig(data_dir=str(tmp_path), source="hf", pixel_zero_is_padding=True)
    )
    assert (legacy.inputs[0] == 0).all() and (legacy.inputs[1] == 255).all()
    assert test.labels.tolist() == [1, 2, 3]


def test_offline_hub_miss_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub.constants

    # The libraries read the offline switches at import time.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    with pytest.raises(
        FileNotFoundError, match="could not load Hugging Face dataset 'nobody/nothing'.*save_to_disk"
    ):
        hf.load_split("nobody/nothing", "train", tmp_path)


def test_hub_refs_and_local_aan_folder(tmp_path: Path):
    ref = hf.HubRef.parse("OpenNLPLab/lra/data/aan@main")
    assert (ref.repo_id, ref.folder, ref.revision) == ("OpenNLPLab/lra", "data/aan", "main")
    with pytest.raises(ValueError, match="owner/name"):
        hf.HubRef.parse("lra")
    (tmp_path / "new_aan_pairs.eval.tsv").write_text("1\ta\tb\tfirst doc\tsecond doc\n")
    ds = tasks.get("retrieval").load(
        "val", tasks.DataConfig(data_dir=str(tmp_path), source="hf", hf_repo=str(tmp_path), seq_len=6)
    )
    assert ds.labels.tolist() == [1] and ds.inputs2[0].tolist() == [b + 1 for b in b"second"]
    assert ds.info["data_source"] == f"hf:{tmp_path}"


def test_missing_extra_message(monkeypatch: pytest.MonkeyPatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(ValueError, match=r"pip install -e '\.\[hf\]'"):
        hf.require_datasets()


def test_a_single_saved_split_is_refused_not_used_for_every_split(tmp_path: Path):
    path = tmp_path / "imdb_train_only"
    datasets.Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]}).save_to_disk(str(path))
    with pytest.raises(ValueError, match="holds a single split without its name"):
        hf.load_split(str(path), "test", tmp_path)
