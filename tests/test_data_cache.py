"""build_once and the tensor cache: all-or-nothing directories, keys, memory-mapped reads."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from lra.data.cache import build_once, cached_split, digest, to_dataset
from lra.io import atomic_write_text
from lra.tasks import DataConfig


def test_build_once_failure_leaves_nothing_and_success_is_reused(tmp_path: Path):
    target = tmp_path / "data" / "thing"

    def broken(tmp: Path) -> None:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        build_once(target, broken)
    assert not target.exists() and not list(target.parent.glob(".thing.tmp-*"))
    calls = []

    def good(tmp: Path) -> None:
        calls.append(1)
        (tmp / "ok.txt").write_text("ok")

    assert build_once(target, good) == target and (target / "ok.txt").read_text() == "ok"
    build_once(target, good)
    assert calls == [1]


def test_stale_temporary_folders_are_removed(tmp_path: Path):
    stale = tmp_path / ".thing.tmp-99999-deadbeef"
    stale.mkdir()
    build_once(tmp_path / "thing", lambda tmp: (tmp / "x").write_text("x"))
    assert not stale.exists()


def test_cached_split_keys_and_memory_map(tmp_path: Path):
    data = DataConfig(data_dir=str(tmp_path))
    calls = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"inputs": np.arange(12, dtype=np.int16).reshape(3, 4), "labels": np.array([0, 1, 0])}

    arrays, meta = cached_split(data, "t", "src", "train", 4, {"tokenizer": "v1"}, build)
    again, meta2 = cached_split(data, "t", "src", "train", 4, {"tokenizer": "v1"}, build)
    assert calls == [1] and meta["cache"] == meta2["cache"]
    assert isinstance(again["inputs"], np.memmap) and again["inputs"].dtype == np.int16
    assert np.array_equal(again["inputs"], arrays["inputs"])
    again["inputs"][0, 0] = 99  # copy-on-write: the cache file is never modified
    assert cached_split(data, "t", "src", "train", 4, {"tokenizer": "v1"}, build)[0]["inputs"][0, 0] == 0
    other, meta3 = cached_split(data, "t", "src", "train", 4, {"tokenizer": "v2"}, build)
    assert calls == [1, 1] and meta3["cache"] != meta["cache"]
    custom = DataConfig(data_dir=str(tmp_path), cache_dir=str(tmp_path / "elsewhere"))
    assert cached_split(custom, "t", "src", "train", 4, {}, build)[1]["cache"].startswith(
        str(tmp_path / "elsewhere")
    )
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})


def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path: Path):
    # mkstemp creates 0600; results on a shared filesystem must be readable like any other file
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "table.md", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "table.md").stat().st_mode) == 0o644


def test_capped_splits_are_a_fixed_random_subset_not_a_prefix():
    # a source sorted by label (as the Hugging Face IMDB splits are): a prefix would be one class
    labels = np.repeat(np.array([0, 1]), 500)
    arrays = {"inputs": np.arange(1000, dtype=np.int64)[:, None], "labels": labels}
    small = to_dataset(arrays, 40, {})
    assert 10 < int(small.labels.sum()) < 30  # both classes, roughly balanced
    assert torch.equal(small.labels, to_dataset(arrays, 40, {}).labels)  # deterministic
    kept = small.inputs[:, 0].tolist()
    assert kept == sorted(kept)  # source order
    larger = set(to_dataset(arrays, 400, {}).inputs[:, 0].tolist())
    assert set(kept) <= larger  # nested: a larger cap keeps the smaller one's examples
    assert len(to_dataset(arrays, 0, {})) == len(to_dataset(arrays, 5000, {})) == 1000


def test_a_damaged_cache_entry_is_a_one_line_error_naming_the_folder(tmp_path: Path):
    data = DataConfig(data_dir=str(tmp_path))

    def build() -> dict[str, np.ndarray]:
        return {"inputs": np.zeros((2, 3), dtype=np.int16), "labels": np.array([0, 1])}

    _, meta = cached_split(data, "t", "src", "train", 3, {}, build)
    (Path(meta["cache"]) / "inputs.npy").write_bytes(b"")  # e.g. a disk that filled up later
    with pytest.raises(
        ValueError, match=r"inputs.npy is corrupt: .*; delete the folder .* and it is rebuilt"
    ):
        cached_split(data, "t", "src", "train", 3, {}, build)
