"""Parity: is the number of 2-tokens in a random sequence of 1s and 2s odd? A toy task declared the
way README "Add a task" describes, registered by `tests/test_add_a_task.py` for the time of a test.

Source: `generated` only (a tiny offline generator: one `parity/<split>.npz` per split).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lra.data import generated
from lra.data.cache import to_dataset
from lra.tasks import DataConfig, LRADataset, TaskGenerator, TaskSpec, register_task

FOLDER = "parity"


@dataclass(frozen=True)
class ParityParams:
    """Every setting of the parity generator."""

    length: int = field(default=12, metadata={"help": "tokens per sequence"})
    n_train: int = field(default=400, metadata={"help": "training sequences"})
    n_val: int = field(default=50, metadata={"help": "validation sequences"})
    n_test: int = field(default=50, metadata={"help": "test sequences"})


VARIANTS = {"lra": ParityParams(), "short": ParityParams(length=6)}


def parity_params(variant: str, **overrides: Any) -> ParityParams:
    if variant not in VARIANTS:
        raise ValueError(f"unknown parity generator {variant!r}; valid: {', '.join(VARIANTS)}")
    return dataclasses.replace(VARIANTS[variant], **{k: v for k, v in overrides.items() if v is not None})


def write_parity(out: Path, params: ParityParams, seed: int = 0, workers: int = 0) -> Path:
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", params.n_train), ("val", params.n_val), ("test", params.n_test)):
        inputs = rng.integers(1, 3, size=(n, params.length), dtype=np.int64)
        labels = ((inputs == 2).sum(axis=1) % 2).astype(np.int64)
        np.savez(folder / f"{split}.npz", inputs=inputs, labels=labels)
    return folder


def _report(folder: Path, params: ParityParams) -> list[str]:
    return [
        f"{split} {len(np.load(folder / f'{split}.npz')['labels'])}" for split in ("train", "val", "test")
    ]


def load(split: str, data: DataConfig) -> LRADataset:
    SPEC.resolve_source(data.source, data)
    root, params = generated.ensure_generated("parity", data)
    with np.load(root / FOLDER / f"{split}.npz") as arrays:
        loaded = {"inputs": arrays["inputs"], "labels": arrays["labels"]}
    info = {"task": "parity", "split": split, "source": "generated", "data_source": str(root)}
    return to_dataset(loaded, 0, info)


def render(ds: LRADataset, index: int, pixel_zero_is_padding: bool = False) -> str:
    return "".join("ab"[int(t) - 1] for t in ds.inputs[index].tolist() if t)


SPEC = register_task(
    TaskSpec(
        name="parity",
        title="Parity",
        seq_len=12,
        vocab_size=3,
        num_classes=2,
        dual_input=False,
        splits={"train": 400, "val": 50, "test": 50},
        sources=("generated",),
        loader=load,
        description="Random sequences of a and b; predict whether the number of b is odd.",
        order=6,
        generator=TaskGenerator(
            params_type=ParityParams,
            variants=VARIANTS,
            make_params=parity_params,
            write=write_parity,
            describe=dataclasses.asdict,
            report=_report,
        ),
        render=render,
    )
)
