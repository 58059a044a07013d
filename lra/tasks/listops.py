"""ListOps: the value (0..9) of a nested MIN / MAX / MED / SM expression, up to 2,000 tokens.

Sources: `lra_release` (`listops-1000/basic_{train,val,test}.tsv`) and `generated` (the offline
generator; variants "lra", "medium", "short"). `source="auto"` uses the official files when they
are under `data_dir`, else the generator.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from lra.data import generated, lra_release
from lra.data.cache import cached_split, file_signature, to_dataset
from lra.data.generate_listops import LISTOPS_VARIANTS, ListOpsParams, listops_params, write_listops
from lra.data.identity import archive_files
from lra.data.tokenizers import LISTOPS_TOKENIZER, LISTOPS_VOCAB_SIZE, id_dtype, pad_rows, render_listops

from .base import DataConfig, LRADataset, TaskGenerator, TaskSpec, register_task

TRAIN_FILE = f"{lra_release.LISTOPS_DIR}/{lra_release.LISTOPS_FILES['train']}"


def _auto_source(data: DataConfig) -> str:
    return "lra_release" if lra_release.release_has(data.data_dir, TRAIN_FILE) else "generated"


def load(split: str, data: DataConfig) -> LRADataset:
    source = SPEC.resolve_source(data.source, data)
    relative = f"{lra_release.LISTOPS_DIR}/{lra_release.LISTOPS_FILES[split]}"
    if source == "generated":
        root, params = generated.ensure_generated("listops", data)
        path = root / relative
        seq_len = data.seq_len or params.max_length
        origin = generated.data_source("listops", data)
        key: dict[str, Any] = {"generated": root.name}
        limit = 0  # the generator made exactly the requested sizes
    else:
        hint = f"lra data generate --task listops --out {data.data_dir}"
        path = lra_release.find_in_release(data.data_dir, relative, hint)
        seq_len = data.seq_len or SPEC.seq_len
        marker = lra_release.generated_marker(path.parent)  # written by `lra data generate --out`
        origin = f"lra_release:{path.parents[1]}" if marker is None else f"generated-files:{path.parent}"
        key = {"files": file_signature(path)}
        limit = data.limit(split)

    def build() -> dict[str, np.ndarray]:
        rows, labels = lra_release.read_listops_tsv(path)
        return {"inputs": pad_rows(rows, seq_len, id_dtype(LISTOPS_VOCAB_SIZE)), "labels": labels}

    arrays, meta = cached_split(
        data, "listops", source, split, seq_len, {**key, "tokenizer": LISTOPS_TOKENIZER}, build
    )
    info = {
        "task": "listops",
        "split": split,
        "source": source,
        "data_source": origin,
        "path": str(path),
        "tokenizer": LISTOPS_TOKENIZER,
        "cache": meta["cache"],
    }
    return to_dataset(arrays, limit, info)


def release_files(data: DataConfig) -> tuple[Path, list[Path]] | None:
    """The three TSV files of the archive (their content is the data identity of `lra_release`)."""
    wanted = [f"{lra_release.LISTOPS_DIR}/{name}" for name in lra_release.LISTOPS_FILES.values()]
    return archive_files(data.data_dir, wanted)


def _report(folder: Path, params: ListOpsParams) -> list[str]:
    lines = []
    for split, name in lra_release.LISTOPS_FILES.items():
        rows, labels = lra_release.read_listops_tsv(folder / name)
        lengths = [len(r) for r in rows] or [0]
        counts = " ".join(str(int(c)) for c in np.bincount(labels, minlength=10))
        lines.append(
            f"{split:<5} {len(rows):>7} expressions  tokens {min(lengths)}..{max(lengths)} "
            f"(median {sorted(lengths)[len(lengths) // 2]})  labels {counts}"
        )
    return lines


GENERATOR = TaskGenerator(
    params_type=ListOpsParams,
    variants=LISTOPS_VARIANTS,
    make_params=listops_params,
    write=write_listops,
    describe=dataclasses.asdict,
    report=_report,
)

SPEC = register_task(
    TaskSpec(
        name="listops",
        title="ListOps",
        seq_len=2000,
        vocab_size=LISTOPS_VOCAB_SIZE,
        num_classes=10,
        dual_input=False,
        splits={"train": 96_000, "val": 2_000, "test": 2_000},
        sources=("lra_release", "generated"),
        loader=load,
        description=(
            "Nested prefix expressions over digits with MIN, MAX, MED (median) and SM (sum mod 10); "
            "predict the value 0..9. Tokens: the 15 symbols, parentheses dropped."
        ),
        auto_source=_auto_source,
        order=0,
        generator=GENERATOR,
        release_files=release_files,
        render=render_listops,
    )
)
