"""The task registry and loaders: official-layout fixtures, generated round trips, the tensor
cache, concurrent first use, and the errors a user sees."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lra import tasks
from lra.data import lra_release, prepare, summarize
from lra.data.tokenizers import listops_ids

LISTOPS_ROWS = [
    ("( ( ( [MAX 2 ) 9 ) ] )", 9),
    ("( ( ( ( [MIN 4 ) ( ( ( [SM 5 ) 7 ) ] ) ) 3 ) ] )", 2),
    ("( ( ( [MED 1 ) 6 ) ] )", 3),
]
AAN_ROWS = [
    ("1", "P01", "P02", "Attention is all you need.", "Long range arena: a benchmark."),
    ("0.0", "P03", "P04", "Caf\u00e9 na\u00efve text", "Another document\twith"),  # tab breaks the 2nd line
]


def write_listops_release(root: Path) -> None:
    folder = root / "listops-1000"
    folder.mkdir(parents=True)
    for split in ("train", "val", "test"):
        body = "".join(f"{src}\t{label}\n" for src, label in LISTOPS_ROWS)
        (folder / f"basic_{split}.tsv").write_text("Source\tTarget\n" + body)


def config(tmp_path: Path, **kw) -> tasks.DataConfig:
    return tasks.DataConfig(data_dir=str(tmp_path), **kw)


def test_registry_lists_six_tasks_with_lra_facts():
    assert tasks.names() == ["listops", "text", "retrieval", "image", "pathfinder", "pathx"]
    facts = {
        n: (s.seq_len, s.num_classes, s.dual_input) for n, s in ((n, tasks.get(n)) for n in tasks.names())
    }
    assert facts == {
        "listops": (2000, 10, False),
        "text": (4000, 2, False),
        "retrieval": (4000, 2, True),
        "image": (1024, 10, False),
        "pathfinder": (1024, 2, False),
        "pathx": (16384, 2, False),
    }
    assert tasks.get("listops").vocab_size == 16 and tasks.get("text").vocab_size == 257
    with pytest.raises(ValueError, match="unknown task 'lisops'; valid tasks: listops"):
        tasks.get("lisops")
    with pytest.raises(ValueError, match="no source 'hf'"):
        tasks.get("listops").load("train", tasks.DataConfig(source="hf"))


@pytest.mark.parametrize("layout", ["", "lra_release", "lra_release/lra_release"])
def test_listops_release_in_every_archive_layout(tmp_path: Path, layout: str):
    write_listops_release(tmp_path / layout)
    ds = tasks.get("listops").load("val", config(tmp_path, seq_len=24))
    assert ds.inputs.shape == (3, 24) and ds.labels.tolist() == [9, 2, 3]
    expected = listops_ids(LISTOPS_ROWS[1][0])
    assert torch.equal(ds.inputs[1, : len(expected)], torch.from_numpy(expected))
    assert (ds.inputs[1, len(expected) :] == 0).all()
    assert ds.info["source"] == "lra_release" and ds.info["data_source"].startswith("lra_release:")
    assert tasks.get("listops").resolve_source("auto", config(tmp_path)) == "lra_release"
    limited = tasks.get("listops").load("train", config(tmp_path, seq_len=24, n_train=2))
    assert len(limited) == 2


def test_missing_release_error_says_how_to_get_the_data(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as err:
        tasks.get("listops").load("train", config(tmp_path, source="lra_release"))
    message = str(err.value)
    assert "listops-1000/basic_train.tsv not found" in message
    assert lra_release.ARCHIVE_URL in message and "lra data generate --task listops" in message
    assert "\n" not in message
    with pytest.raises(FileNotFoundError, match="pathfinder128/curv_contour_length_14 not found"):
        tasks.get("pathx").load("test", config(tmp_path, source="lra_release"))
    with pytest.raises(FileNotFoundError, match="tsv_data/new_aan_pairs.eval.tsv not found"):
        tasks.get("retrieval").load("val", config(tmp_path))


def test_retrieval_release_tsv(tmp_path: Path):
    folder = tmp_path / "lra_release" / "tsv_data"
    folder.mkdir(parents=True)
    good = "".join(
        "\t".join(r) + "\n" for r in AAN_ROWS[:1] + [("0.0", "P03", "P04", "Caf\u00e9 na\u00efve", "x")]
    )
    for name in lra_release.AAN_FILES.values():
        (folder / name).write_text(good, encoding="utf-8")
    ds = tasks.get("retrieval").load("test", config(tmp_path, seq_len=16))
    assert ds.inputs.shape == ds.inputs2.shape == (2, 16) and ds.labels.tolist() == [1, 0]
    assert bytes((ds.inputs[0][ds.inputs[0] > 0] - 1).tolist()) == b"Attention is all"
    assert bytes((ds.inputs[1][ds.inputs[1] > 0] - 1).tolist()).decode() == "Caf\u00e9 na\u00efve"
    tokens, tokens2, label = ds[0]
    assert tokens.dtype == torch.int64 and tokens2.shape == (16,) and label.item() == 1

    (folder / lra_release.AAN_FILES["train"]).write_text(good + "\t".join(AAN_ROWS[1]) + "\n")
    with pytest.raises(ValueError, match=r"new_aan_pairs\.train\.tsv:3: expected 5 tab-separated fields"):
        tasks.get("retrieval").load("train", config(tmp_path, seq_len=16))
    (folder / lra_release.AAN_FILES["val"]).write_text("2\tA\tB\tx\ty\n")
    with pytest.raises(ValueError, match=r"eval\.tsv:1: bad label b?'2'"):
        tasks.get("retrieval").load("val", config(tmp_path, seq_len=16))


def test_listops_generated_round_trip_to_batches(tmp_path: Path):
    data = config(
        tmp_path, source="generated", generator="short", n_train=64, n_val=16, n_test=16, gen_seed=2
    )
    info = prepare("listops", data)
    assert info["data_source"] == "generated:listops/short/seed2" and info["seq_len"] == 100
    assert {s: v["n"] for s, v in info["splits"].items()} == {"train": 64, "val": 16, "test": 16}
    ds = tasks.get("listops").load("train", data)
    # The generated TSV is the official format: the lra_release reader sees the same data.
    tsv = Path(ds.info["path"])
    rows, labels = lra_release.read_listops_tsv(tsv)
    assert torch.equal(ds.labels, torch.from_numpy(labels))
    official = tasks.get("listops").load("train", config(tsv.parents[1], source="lra_release", seq_len=100))
    assert torch.equal(official.inputs, ds.inputs)
    tokens, labels = next(iter(DataLoader(ds, batch_size=32, shuffle=True)))
    assert tokens.shape == (32, 100) and tokens.dtype == torch.int64 and labels.shape == (32,)
    assert int(tokens.max()) < tasks.get("listops").vocab_size


def test_pathfinder_generated_round_trip_and_pixel_modes(tmp_path: Path):
    data = config(tmp_path, source="generated", generator="easy", n_train=24, n_val=4, n_test=4)
    ds = tasks.get("pathfinder").load("train", data)
    assert ds.seq_len == 256 and len(ds) == 24 and ds.labels.sum().item() == 12
    assert ds.info["data_source"] == "generated:pathfinder/easy/seed0"
    assert int(ds.inputs.min()) >= 1 and int(ds.inputs.max()) <= 256  # shifted: black is a real token
    folder = Path(ds.info["path"])
    first = next(folder.glob("metadata/0.npy")).read_text().split()
    with Image.open(folder / first[0] / first[1]) as image:
        pixels = torch.from_numpy(np.asarray(image).reshape(-1).astype(np.int64))
    assert torch.equal(ds.inputs[0].long(), pixels + 1) and ds.labels[0].item() == int(first[3])
    legacy = tasks.get("pathfinder").load("train", dataclasses.replace(data, pixel_zero_is_padding=True))
    assert torch.equal(legacy.inputs[0].long(), pixels)
    assert legacy.info["cache"] != ds.info["cache"]
    test = tasks.get("pathfinder").load("test", data)
    assert len(test) == 4 and not torch.equal(test.inputs[0], ds.inputs[0])


def test_second_load_is_served_from_the_cache(tmp_path: Path):
    data = config(tmp_path, source="generated", generator="short", n_train=2000, n_val=10, n_test=10)
    first = tasks.get("listops").load("train", data)
    cache = Path(first.info["cache"])
    assert (cache / "inputs.npy").is_file() and (cache / "meta.json").is_file()
    tsv = Path(first.info["path"])
    tsv.write_text("garbage")  # a cached split never reads its source again: the same tensors come back
    second = tasks.get("listops").load("train", data)
    assert torch.equal(first.inputs, second.inputs) and torch.equal(first.labels, second.labels)


def test_auto_source_falls_back_to_the_generator(tmp_path: Path):
    assert tasks.get("listops").resolve_source("auto", config(tmp_path)) == "generated"
    assert tasks.get("pathfinder").resolve_source("auto", config(tmp_path)) == "generated"
    assert tasks.get("text").resolve_source("auto", config(tmp_path)) == "hf"


CONCURRENT = """
import sys
from lra import tasks
from lra.data import prepare
data = tasks.DataConfig(data_dir=sys.argv[1], source="generated", generator="easy", n_train=60, n_val=10, n_test=10)
info = prepare("pathfinder", data)
print(info["splits"]["train"]["cache"])
"""


def test_concurrent_first_use_generates_once(tmp_path: Path):
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outputs)) == 1
    folder = tmp_path / "generated" / "pathfinder"
    assert len([g for g in folder.iterdir() if not g.name.startswith(".")]) == 1
    assert not list(folder.glob(".*.tmp-*")), "no half-built folder is left behind"
    data = tasks.DataConfig(
        data_dir=str(tmp_path), source="generated", generator="easy", n_train=60, n_val=10, n_test=10
    )
    ds = tasks.get("pathfinder").load("val", data)
    assert len(ds) == 10


def test_summarize_reports_sizes_lengths_labels_and_an_example(tmp_path: Path):
    write_listops_release(tmp_path)
    summary = summarize("listops", config(tmp_path, seq_len=24))
    train = summary["splits"]["train"]
    assert train["n"] == 3 and train["length_min"] == 4 and train["length_max"] == 8
    assert train["label_counts"][9] == 1 and train["majority_fraction"] == pytest.approx(1 / 3)
    assert summary["example"] == "[MAX 2 9 ]" and summary["example_label"] == 9
