"""Image: CIFAR-10 in grayscale, one pixel token per position (1,024 tokens, 10 classes).

Sources: `hf` (`uoft-cs/cifar10`) and `tfds` (`cifar10`). Splits as LRA: train = the first 90%
of the training set, val = the last 10%, test = the test set (each in its source's order).
Gray = `tf.image.rgb_to_grayscale` weights; pixel ids are intensity + 1, or LRA's legacy ids
(black = padding) with `DataConfig.pixel_zero_is_padding`.
"""

from __future__ import annotations

import numpy as np

from lra.data import hf, tfds
from lra.data.cache import cached_split, to_dataset
from lra.data.progress import progress
from lra.data.tokenizers import PIXEL_VOCAB_SIZE, pixel_ids, pixel_tokenizer, render_pixels, rgb_to_gray

from .base import DataConfig, LRADataset, TaskSpec, register_task

HF_REPO = "uoft-cs/cifar10"
TFDS_NAME = "cifar10"
TRAIN_FRACTION = 0.9
TFDS_SPLIT = {"train": "train[:90%]", "val": "train[90%:]", "test": "test"}


def encode_images(
    images: np.ndarray, labels: np.ndarray, zero_is_padding: bool, where: str
) -> dict[str, np.ndarray]:
    """[n, 32, 32, 3] (or gray [n, 32, 32]) uint8 -> pixel ids [n, 1024]; labels must be 0..9."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = rgb_to_gray(images)
    if images.shape[1:] != (32, 32):
        raise ValueError(f"{where}: expected 32x32 images, got {images.shape[1:]}")
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise ValueError(f"{where} record {bad[0]}: bad label {labels[bad[0]]} (expected 0..9)")
    inputs = (
        np.stack([pixel_ids(im, zero_is_padding) for im in images]) if len(images) else np.zeros((0, 1024))
    )
    return {"inputs": inputs, "labels": labels}


def _hf_records(name: str, split: str, data: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    ds = hf.load_split(name, "test" if split == "test" else "train", data.data_dir)
    if split != "test":
        cut = int(round(TRAIN_FRACTION * len(ds)))
        ds = ds.select(range(cut) if split == "train" else range(cut, len(ds)))
    column = "img" if "img" in ds.column_names else "image"
    if column not in ds.column_names or "label" not in ds.column_names:
        raise ValueError(
            f"Hugging Face dataset {name!r} needs columns img (or image) and label; has {ds.column_names}"
        )
    images = [
        np.asarray(im.convert("RGB")) for im in progress(ds[column], desc=f"decoding {name}", unit=" img")
    ]
    return np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8), np.asarray(ds["label"])


def _tfds_records(split: str, data: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    ds = tfds.load_split(TFDS_NAME, TFDS_SPLIT[split], data.data_dir)
    items = [ds[i] for i in progress(range(len(ds)), desc=f"reading {TFDS_NAME}", unit=" img")]
    return np.stack([r["image"] for r in items]), np.asarray([int(r["label"]) for r in items])


def load(split: str, data: DataConfig) -> LRADataset:
    source = SPEC.resolve_source(data.source, data)
    seq_len = data.seq_len or SPEC.seq_len
    if seq_len != SPEC.seq_len:
        raise ValueError(f"the image task has {SPEC.seq_len} pixels per image; got seq_len={seq_len}")
    name = (data.hf_repo or HF_REPO) if source == "hf" else TFDS_NAME
    origin = f"{source}:{name}"
    tokenizer = pixel_tokenizer(data.pixel_zero_is_padding)

    def build() -> dict[str, np.ndarray]:
        images, labels = _hf_records(name, split, data) if source == "hf" else _tfds_records(split, data)
        return encode_images(images, labels, data.pixel_zero_is_padding, f"{origin}:{split}")

    key = {"name": name, "tokenizer": tokenizer}
    arrays, meta = cached_split(data, "image", source, split, seq_len, key, build)
    info = {
        "task": "image",
        "split": split,
        "source": source,
        "data_source": origin,
        "tokenizer": tokenizer,
        "image_side": 32,
        "cache": meta["cache"],
    }
    return to_dataset(arrays, data.limit(split), info)


SPEC = register_task(
    TaskSpec(
        name="image",
        title="Image",
        seq_len=1024,
        vocab_size=PIXEL_VOCAB_SIZE,
        num_classes=10,
        dual_input=False,
        splits={"train": 45_000, "val": 5_000, "test": 10_000},
        sources=("hf", "tfds"),
        loader=load,
        description="CIFAR-10 converted to grayscale, flattened row-major to 1,024 pixel tokens; 10 classes.",
        order=3,
        hf_repo=HF_REPO,
        render=render_pixels,
    )
)
