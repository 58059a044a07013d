"""Retrieval: does one ACL Anthology paper cite the other? Two byte-level documents of 4,000
tokens each, encoded separately (dual encoder).

Sources: `lra_release` (`tsv_data/new_aan_pairs.{train,eval,test}.tsv`) and `hf` (the same TSVs
in a hub dataset repo, default `OpenNLPLab/lra/data/aan`, or a local folder via `hf_repo`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lra.data import hf, lra_release
from lra.data.cache import cached_split, file_signature, to_dataset
from lra.data.identity import archive_files
from lra.data.tokenizers import BYTE_TOKENIZER, BYTE_VOCAB_SIZE, id_dtype, pad_rows, render_bytes

from .base import DataConfig, LRADataset, TaskSpec, register_task

HF_REPO = "OpenNLPLab/lra/data/aan"


def load(split: str, data: DataConfig) -> LRADataset:
    source = SPEC.resolve_source(data.source, data)
    seq_len = data.seq_len or SPEC.seq_len
    filename = lra_release.AAN_FILES[split]
    if source == "hf":
        name = data.hf_repo or HF_REPO
        path = hf.fetch_file(name, filename)
        origin = f"hf:{name}"
    else:
        path = lra_release.find_in_release(data.data_dir, f"{lra_release.AAN_DIR}/{filename}")
        origin = f"lra_release:{path.parents[1]}"

    def build() -> dict[str, np.ndarray]:
        rows1, rows2, labels = lra_release.read_aan_tsv(path, seq_len)
        dtype = id_dtype(BYTE_VOCAB_SIZE)
        return {
            "inputs": pad_rows(rows1, seq_len, dtype),
            "inputs2": pad_rows(rows2, seq_len, dtype),
            "labels": labels,
        }

    key = {"files": file_signature(path), "tokenizer": BYTE_TOKENIZER}
    arrays, meta = cached_split(data, "retrieval", source, split, seq_len, key, build)
    info = {
        "task": "retrieval",
        "split": split,
        "source": source,
        "data_source": origin,
        "path": str(path),
        "tokenizer": BYTE_TOKENIZER,
        "cache": meta["cache"],
    }
    return to_dataset(arrays, data.limit(split), info)


def release_files(data: DataConfig) -> tuple[Path, list[Path]] | None:
    """The three AAN TSV files of the archive (their content is the data identity of `lra_release`)."""
    return archive_files(
        data.data_dir, [f"{lra_release.AAN_DIR}/{name}" for name in lra_release.AAN_FILES.values()]
    )


SPEC = register_task(
    TaskSpec(
        name="retrieval",
        title="Retrieval",
        seq_len=4000,
        vocab_size=BYTE_VOCAB_SIZE,
        num_classes=2,
        dual_input=True,
        splits={"train": 147_086, "val": 18_090, "test": 17_437},
        sources=("lra_release", "hf"),
        loader=load,
        description="Pairs of ACL Anthology papers as UTF-8 bytes, one encoder per document; predict a citation link.",
        order=2,
        release_files=release_files,
        hf_repo=HF_REPO,
        hf_local_copy=False,  # the hf source reads files of the hub repo itself
        render=render_bytes,
    )
)
