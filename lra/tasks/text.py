"""Text: IMDB sentiment (positive / negative) from raw UTF-8 bytes, 4,000 tokens.

Sources: `hf` (`stanfordnlp/imdb`) and `tfds` (`imdb_reviews`). IMDB has no validation split:
as in LRA, `val` is the test split. The canonical length is the paper's 4K (the released JAX
config uses 1,000: set `seq_len`). Bytes are tokens: byte + 1, 0 = padding.
"""

from __future__ import annotations

import numpy as np

from lra.data import hf, tfds
from lra.data.cache import cached_split, to_dataset
from lra.data.progress import progress
from lra.data.tokenizers import BYTE_TOKENIZER, BYTE_VOCAB_SIZE, byte_ids, id_dtype, pad_rows, render_bytes

from .base import DataConfig, LRADataset, TaskSpec, register_task

HF_REPO = "stanfordnlp/imdb"
TFDS_NAME = "imdb_reviews"
SOURCE_SPLIT = {"train": "train", "val": "test", "test": "test"}


def encode_reviews(texts: list, labels: list, seq_len: int, where: str) -> dict[str, np.ndarray]:
    """Byte ids [n, seq_len] and labels of reviews given as str or bytes; labels must be 0 / 1."""
    rows = []
    for text in progress(texts, desc=f"encoding {where}", unit=" docs"):
        rows.append(byte_ids(text.encode("utf-8") if isinstance(text, str) else bytes(text), seq_len))
    out = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((out < 0) | (out > 1))
    if bad.size:
        raise ValueError(f"{where} record {bad[0]}: bad label {out[bad[0]]} (expected 0 or 1)")
    return {"inputs": pad_rows(rows, seq_len, id_dtype(BYTE_VOCAB_SIZE)), "labels": out}


def load(split: str, data: DataConfig) -> LRADataset:
    source = SPEC.resolve_source(data.source, data)
    seq_len = data.seq_len or SPEC.seq_len
    part = SOURCE_SPLIT[split]
    if source == "hf":
        name = data.hf_repo or HF_REPO
        origin = f"hf:{name}"

        def records() -> tuple[list, list]:
            ds = hf.load_split(name, part, data.data_dir)
            return list(ds["text"]), list(ds["label"])
    else:
        name = TFDS_NAME
        origin = f"tfds:{name}"

        def records() -> tuple[list, list]:
            ds = tfds.load_split(name, part, data.data_dir)
            items = [ds[i] for i in progress(range(len(ds)), desc=f"reading {name}", unit=" docs")]
            return [r["text"] for r in items], [int(r["label"]) for r in items]

    def build() -> dict[str, np.ndarray]:
        texts, labels = records()
        return encode_reviews(texts, labels, seq_len, f"{origin}:{part}")

    key = {"name": name, "tokenizer": BYTE_TOKENIZER}
    arrays, meta = cached_split(data, "text", source, part, seq_len, key, build)
    info = {
        "task": "text",
        "split": split,
        "source": source,
        "data_source": origin,
        "source_split": part,
        "tokenizer": BYTE_TOKENIZER,
        "cache": meta["cache"],
    }
    return to_dataset(arrays, data.limit(split), info)


SPEC = register_task(
    TaskSpec(
        name="text",
        title="Text",
        seq_len=4000,
        vocab_size=BYTE_VOCAB_SIZE,
        num_classes=2,
        dual_input=False,
        splits={"train": 25_000, "val": 25_000, "test": 25_000},
        sources=("hf", "tfds"),
        loader=load,
        description="IMDB movie reviews as UTF-8 bytes; predict positive / negative. Validation = test, as in LRA.",
        order=1,
        hf_repo=HF_REPO,
        render=render_bytes,
        val_is_test=True,
    )
)
