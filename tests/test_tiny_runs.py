"""Every registered attention trains on every task's tiny preset on the CPU (a few steps each).

ListOps, Pathfinder and Path-X use their offline generators, Retrieval official-format TSVs written
here, Text and Image `save_to_disk` copies of the Hugging Face datasets (skipped without `datasets`).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import attention_zoo
from lra import tasks
from lra.data import lra_release
from runners.train import RunConfig, run

SIZES = {"data.n_train": "16", "data.n_val": "8", "data.n_test": "8"}
SMALL = {**SIZES, "train.batch_size": "4", "train.eval_every": "2"}


def write_aan(root: Path) -> None:
    rng = random.Random(0)
    folder = root / "tsv_data"
    folder.mkdir(parents=True)
    words = [
        "attention",
        "routing",
        "landmark",
        "sparse",
        "dense",
        "expert",
        "token",
        "block",
        "query",
        "key",
        "value",
    ]
    for name in lra_release.AAN_FILES.values():
        rows = []
        for i in range(16):
            docs = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) for _ in range(2)]
            rows.append(f"{i % 2}\tP{i}a\tP{i}b\t{docs[0]}\t{docs[1]}\n")
        (folder / name).write_text("".join(rows), encoding="utf-8")


def write_hf_copies(root: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = random.Random(1)
    text = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    reviews = {
        s: datasets.Dataset.from_dict(
            {
                "text": [f"review {i}: " + "good " * rng.randint(1, 40) for i in range(24)],
                "label": [i % 2 for i in range(24)],
            },
            features=text,
        )
        for s in ("train", "test")
    }
    datasets.DatasetDict(reviews).save_to_disk(str(root / "hf" / "stanfordnlp__imdb"))
    image = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    pictures = {
        s: datasets.Dataset.from_dict(
            {
                "img": [Image.new("RGB", (32, 32), (rng.randrange(256),) * 3) for _ in range(30)],
                "label": [i % 10 for i in range(30)],
            },
            features=image,
        )
        for s in ("train", "test")
    }
    datasets.DatasetDict(pictures).save_to_disk(str(root / "hf" / "uoft-cs__cifar10"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_data")
    write_aan(root)
    return root


@pytest.mark.parametrize("attention", attention_zoo.names())
@pytest.mark.parametrize("task", tasks.names())
def test_every_attention_trains_on_every_task_tiny_preset(task, attention, data_dir, tmp_path):
    if task in ("text", "image") and not (data_dir / "hf").exists():
        write_hf_copies(data_dir)
    record = run(
        RunConfig(
            task=task,
            attention=attention,
            preset="tiny",
            overrides=SMALL,
            max_steps=2,
            data_dir=str(data_dir),
            run_dir=str(tmp_path / "run"),
            quiet=True,
        )
    )
    assert record["status"] == "ok" and record["steps"] == 2
    assert record["n_train"] == 16 and record["n_test"] == 8
    assert 0.0 <= record["test_acc"] <= 1.0
    assert record["keys_per_query"] >= 1 and record["params"] > 0
