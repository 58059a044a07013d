"""What a task is: `TaskSpec` (static facts + a loader), `DataConfig` (where and how to load),
`LRADataset` (token tensors ready for batching), and the task registry.

Conventions shared by every task:

* token id 0 is padding everywhere; the model's key padding mask is ``tokens != 0``;
* sequences are truncated / right-padded to the configured length;
* pixels are shifted by +1 (ids 1..256) so that black pixels are real tokens; the sources' own
  ids -- pixel 0 is id 0 and therefore padding -- are `DataConfig.pixel_zero_is_padding=True`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

DEFAULT_DATA_DIR = "lra_data"


def default_data_dir() -> str:
    """`$LRA_DATA_DIR` if set, else ./lra_data."""
    return os.environ.get("LRA_DATA_DIR", DEFAULT_DATA_DIR)


@dataclass(frozen=True)
class DataConfig:
    """Where a task's data comes from and how it is shaped. Every field can be overridden from the
    CLI (`--set data.seq_len=512`, `--source generated`, `--data-dir D`).

    Attributes:
        source: one of the task's sources (`TaskSpec.sources`), or "auto" for the task's default.
        data_dir: root holding `lra_release/` (or its contents), HF / TFDS caches and generated data.
        seq_len: tokens per input after truncation / padding; 0 = the task's canonical length.
        pixel_zero_is_padding: the sources' pixel ids (pixel v -> id v, so black pixels are
            padding, as in LRA's key mask and the PyTorch lineage's pickles); with "mean_all"
            pooling the model then also averages as the lineage does (black outputs count as 0).
        generator: named generator settings for the `generated` source ("lra" = the LRA
            distribution; tasks may offer smaller variants such as "short" for CPU runs).
        n_train / n_val / n_test: examples to generate (0 = the generator's default); for real
            sources, a positive value keeps n examples of that split (a fixed random subset, in
            source order: `lra.data.cache.subset_indices`).
        gen_seed: seed of the offline generators.
        hf_repo: Hugging Face dataset repo for sources that need one (e.g. AAN TSVs), as
            `owner/name[/folder][@revision]`, or a local folder (a `save_to_disk` copy or TSVs).
        cache_dir: where tokenised tensors are cached; "" = `$LRA_CACHE_DIR` or `<data_dir>/cache`.
        difficulty: Pathfinder / Path-X folder of the official data: "hard"
            (`curv_contour_length_14`, the LRA benchmark), "intermediate", "easy", or a folder name.
        split_order: the order in which Pathfinder / Path-X folders of the `lra_release` layout are
            cut 80/10/10: "batch" (batch folders in turn) or "tfds" (the order of LRA's TFDS build,
            which gives LRA's own train / val / test membership; `lra.data.lra_release.tfds_order`).
    """

    source: str = "auto"
    data_dir: str = field(default_factory=default_data_dir)
    seq_len: int = 0
    pixel_zero_is_padding: bool = False
    generator: str = "lra"
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    gen_seed: int = 0
    hf_repo: str = ""
    cache_dir: str = ""
    difficulty: str = "hard"
    split_order: Literal["batch", "tfds"] = "batch"

    def limit(self, split: str) -> int:
        """The example cap for a split (0 = none)."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}.get(split, 0)


class LRADataset(Dataset):
    """Token tensors of one split, padded with 0 to a common length.

    Attributes:
        inputs: [n, L] integer tensor (any integer dtype; ids < vocab_size, 0 = padding).
        inputs2: [n, L] second document for dual-input tasks, else None.
        labels: [n] int64 class ids.
        info: provenance, e.g. {"source": "generated", "path": ..., "tokenizer": "listops-v1"}.

    Items are `(tokens, label)` or `(tokens, tokens2, label)` with int64 tensors; training code
    may also index `inputs[idx]` directly for whole batches.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        inputs2: torch.Tensor | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        if inputs.dim() != 2 or labels.dim() != 1 or inputs.shape[0] != labels.shape[0]:
            raise ValueError(
                f"inputs must be [n, L] and labels [n]; got {tuple(inputs.shape)}, {tuple(labels.shape)}"
            )
        if inputs2 is not None and inputs2.shape[0] != inputs.shape[0]:
            raise ValueError("inputs2 must have as many rows as inputs")
        self.inputs = inputs
        self.inputs2 = inputs2
        self.labels = labels.long()
        self.info = dict(info or {})

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        if self.inputs2 is None:
            return self.inputs[index].long(), self.labels[index]
        return self.inputs[index].long(), self.inputs2[index].long(), self.labels[index]

    @property
    def seq_len(self) -> int:
        return self.inputs.shape[1]


Loader = Callable[[str, DataConfig], LRADataset]


@dataclass(frozen=True)
class TaskSpec:
    """Static facts about an LRA task plus the function that loads one split.

    Attributes:
        name: registry name (`listops`, `text`, `retrieval`, `image`, `pathfinder`, `pathx`).
        title: display name for tables ("ListOps", "Text", ...).
        seq_len: canonical tokens per input (per document for retrieval).
        vocab_size: embedding rows needed, including padding id 0.
        num_classes: output classes.
        dual_input: two documents per example (retrieval's dual encoder).
        splits: canonical split sizes of the real data, e.g. {"train": 96000, "val": 2000, "test": 2000}.
        sources: available sources; the first is the default for `source="auto"` unless
            `auto_source` chooses.
        loader: `loader(split, data_config) -> LRADataset`; raises FileNotFoundError with the
            expected path and how to get the data, ValueError for malformed files.
        description: one paragraph for `lra data info` and the README.
        auto_source: `auto_source(data_config) -> source` for `source="auto"` (e.g. the official
            files when they are present under `data_dir`, else the offline generator).
    """

    name: str
    title: str
    seq_len: int
    vocab_size: int
    num_classes: int
    dual_input: bool
    splits: Mapping[str, int]
    sources: tuple[str, ...]
    loader: Loader
    description: str = ""
    auto_source: Callable[[DataConfig], str] | None = None

    def resolve_source(self, source: str, data: DataConfig | None = None) -> str:
        """The concrete source for `source` ("auto" is resolved with `data` when given)."""
        if source == "auto":
            if self.auto_source is not None and data is not None:
                return self.auto_source(data)
            return self.sources[0]
        if source not in self.sources:
            raise ValueError(
                f"task {self.name!r} has no source {source!r}; valid sources: {', '.join(self.sources)}"
            )
        return source

    def load(self, split: str, data: DataConfig | None = None) -> LRADataset:
        """Load one split ("train", "val" or "test")."""
        data = data or DataConfig()
        if split not in self.splits:
            raise ValueError(
                f"task {self.name!r} has no split {split!r}; valid splits: {', '.join(self.splits)}"
            )
        return self.loader(split, data)


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    if spec.name in _TASKS:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def get(name: str) -> TaskSpec:
    """The task `name`; ValueError listing the valid names otherwise."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(_TASKS)}") from None


def names() -> list[str]:
    return list(_TASKS)
