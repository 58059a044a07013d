"""Pathfinder as the sources have it: LRA's split order (a TFDS build's) and the original generator's
stroke intensity (images rescaled to their maximum instead of strokes clipped at white)."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from lra import tasks
from lra.data import generate_pathfinder as gp
from lra.data import generated, lra_release
from lra.data.generated import generator_description
from lra.tasks.base import DataConfig

# 32x32 images (the official Pathfinder-32 size), 20 of them in batches of 8.
SMALL = dataclasses.replace(gp.PATHX_VARIANTS["easy"], n_train=16, n_val=2, n_test=2, images_per_batch=8)


def tfds_rank(split_name: str, key: str) -> int:
    """TFDS's stable hash of an example key (tensorflow_datasets/core/hashing.py): md5 of the salt
    (the split name) followed by the key, read as a 128-bit integer; a split is stored sorted by it."""
    return int(hashlib.md5((split_name + key).encode("utf-8")).hexdigest(), 16)


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out as the official archive's `pathfinder32/curv_contour_length_14` (generated
    images, no `generated.json`, so it reads as the official files and is cut 80 / 10 / 10)."""
    root = tmp_path_factory.mktemp("release")
    written = gp.write_pathfinder(root / "tmp", SMALL, seed=1, workers=1)
    folder = root / "pathfinder32" / "curv_contour_length_14"
    shutil.copytree(written, folder)
    (folder / lra_release.GENERATED_MARKER).unlink()
    return folder


def test_the_tfds_order_sorts_by_tfds_hash_of_lras_builder_keys(official: Path):
    entries = lra_release.read_pathfinder_index(official)
    # The LRA builder's key: '<field 0>_<field 1>_<line number in its metadata file>'.
    assert entries[0].key == "imgs/0_sample_0.png_1" and entries[9].key == "imgs/1_sample_1.png_2"
    ordered = lra_release.tfds_order(entries, "hard")
    assert [e.key for e in ordered] == sorted((e.key for e in entries), key=lambda k: tfds_rank("hard", k))
    assert [e.key for e in lra_release.tfds_order(entries, "easy")] != [e.key for e in ordered]  # salted


def test_tfds_split_order_cuts_lras_slices_of_the_hash_order_and_drops_empty_images_after(official: Path):
    entries = lra_release.read_pathfinder_index(official)
    ordered = lra_release.tfds_order(entries, "hard")
    split = {
        s: lra_release.split_entries(entries, s, order="tfds", folder_name="curv_contour_length_14")
        for s in ("train", "val", "test")
    }
    assert [e.key for e in split["train"] + split["val"] + split["test"]] == [e.key for e in ordered]
    assert [len(split[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    batch_test = lra_release.split_entries(entries, "test")
    assert [e.key for e in batch_test] == [e.key for e in entries[-2:]] != [e.key for e in split["test"]]
    # An empty image (LRA's pipeline filters them after slicing) leaves the other slices as they were.
    hollow = [dataclasses.replace(e, empty=True) if e.key == ordered[0].key else e for e in entries]
    cut = {
        s: lra_release.split_entries(hollow, s, order="tfds", folder_name="curv_contour_length_14")
        for s in split
    }
    assert len(cut["train"]) == 15 and cut["val"] == split["val"] and cut["test"] == split["test"]
    with pytest.raises(ValueError, match="use data.split_order=batch"):
        lra_release.split_entries(entries, "test", order="tfds", folder_name="my_folder")


def test_the_task_loads_lras_test_images_in_tfds_order(official: Path, tmp_path: Path):
    data_dir = official.parents[1]
    spec = tasks.get("pathfinder")
    common = {"source": "lra_release", "data_dir": str(data_dir), "cache_dir": str(tmp_path / "cache")}
    by_hash = spec.load("test", DataConfig(split_order="tfds", **common))
    by_batch = spec.load("test", DataConfig(**common))
    entries = lra_release.read_pathfinder_index(official)
    expected = sorted(entries, key=lambda e: tfds_rank("hard", e.key))[-2:]
    pixels = lra_release.read_pathfinder_images(expected, 32, offset=1, dtype=np.int16)
    np.testing.assert_array_equal(by_hash.inputs.numpy(), pixels)
    assert by_hash.labels.tolist() == [e.label for e in expected]
    assert not np.array_equal(by_hash.inputs.numpy(), by_batch.inputs.numpy())


def test_rescaling_to_the_maximum_is_scipy_imsaves_byte_scaling():
    """scipy.misc.imsave(float image) -> bytescale: (x - min) * 255 / (max - min), + 0.5, truncated;
    the background is 0, and the Lanczos undershoot is clipped to it first."""
    image = np.array([[0.0, 0.5], [1.0, 1.5]])
    assert gp._rescale_to_max(image).tolist() == [[0, 85], [170, 255]]
    assert gp._rescale_to_max(np.array([-0.1, 0.0, 0.3, 0.6])).tolist() == [0, 0, 128, 255]


def test_lra_strokes_keep_their_contrast_and_images_reach_white(monkeypatch):
    """LRA's Pathfinder-32 paddles are drawn at 2 x 0.75 = 1.5 (not clipped at 1), and every image is
    scaled to its brightest pixel; the clipping variants (easy, quick) stay as they were."""
    p = gp.pathfinder_params("pathfinder", "lra")
    assert p.rescale_to_max
    layout = gp.make_layout(p, 1, np.random.default_rng(0))
    seen = []
    monkeypatch.setattr(gp, "_render", lambda p, strokes, discs: seen.append({i for _, i in strokes}))
    gp.render_layout(p, layout, np.random.default_rng(0))
    gp.render_layout(dataclasses.replace(p, rescale_to_max=False), layout, np.random.default_rng(0))
    assert seen == [{1.5}, {1.0}]
    monkeypatch.undo()
    for index in range(4):
        image, _ = gp.make_image(p, index % 2, np.random.default_rng([2, index]))
        assert image.max() == 255
    assert (
        not gp.PATHFINDER_VARIANTS["easy"].rescale_to_max
        and not gp.PATHFINDER_VARIANTS["quick"].rescale_to_max
    )


def test_generated_data_of_the_clipping_variants_keep_their_identity():
    """A variant that clips describes its settings as before the option existed (same folder, same
    data identity, same configuration hashes); the LRA variants, whose images change, do not."""
    for variant in ("quick", "easy"):
        description = generator_description("pathfinder", DataConfig(generator=variant))
        assert "rescale_to_max" not in description["params"]
    assert (
        generator_description("pathfinder", DataConfig(generator="lra"))["params"]["rescale_to_max"] is True
    )
    assert generator_description("pathx", DataConfig(generator="lra"))["params"]["rescale_to_max"] is True
    assert generated.GENERATOR_FORMAT == 4
