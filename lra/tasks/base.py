"""What a task is: `TaskSpec` (every fact about it: static facts, loader, generator, data identity,
rendering), `DataConfig` (where and how to load), `LRADataset` (token tensors ready for batching),
and the task registry.

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
from pathlib import Path
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
# (dataset, example index, pixel_zero_is_padding) -> a human-readable rendering of the example.
Renderer = Callable[[LRADataset, int, bool], str]
# data_config -> (archive root, the files the task reads under it), or None when they are not there.
ReleaseFiles = Callable[[DataConfig], tuple[Path, list[Path]] | None]

# The display position of a task that does not declare one: after LRA's six.
UNORDERED = 1_000


def render_token_ids(ds: LRADataset, index: int, pixel_zero_is_padding: bool = False) -> str:
    """The non-padding token ids of example `index` (the rendering of a task that declares none)."""
    rows = [ds.inputs] if ds.inputs2 is None else [ds.inputs, ds.inputs2]
    return "\n--- document 2 ---\n".join(
        " ".join(str(int(t)) for t in row[index].tolist() if t != 0)[:400] for row in rows
    )


@dataclass(frozen=True)
class TaskGenerator:
    """A task's offline generator (the `generated` source and `lra data generate`).

    Attributes:
        params_type: the dataclass of every generator setting, the split sizes n_train, n_val and
            n_test among them; each other field's `metadata["help"]` documents its
            `lra data generate --<field>` option.
        variants: the named settings ("lra" = the LRA distribution; smaller ones for CPU runs).
        make_params: `make_params(variant, **overrides) -> params` (overrides that are None are
            ignored); ValueError for an unknown variant or bad settings.
        write: `write(out_root, params, seed, workers) -> folder` writes the data in the official
            layout under `out_root` and returns the folder holding them.
        describe: `describe(params) -> dict`: what the generated data are a function of besides the
            variant and seed (it enters the data identity and the folder name: keep it stable).
        report: `report(folder, params) -> lines` that `lra data generate` prints about what it wrote.
        read_back: `read_back(folder, out_root) -> str`, the options that read written data back, or
            "" when `--source lra_release --data-dir OUT` alone does.
    """

    params_type: type
    variants: Mapping[str, Any]
    make_params: Callable[..., Any]
    write: Callable[[Path, Any, int, int], Path]
    describe: Callable[[Any], dict[str, Any]]
    report: Callable[[Path, Any], list[str]]
    read_back: Callable[[Path, str], str] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """Everything about one task, in one place: static facts, how it is loaded, generated,
    identified and shown. The rest of the code asks the spec and never branches on a task's name.

    Attributes:
        name: registry name (`listops`, `text`, `retrieval`, `image`, `pathfinder`, `pathx`).
        title: display name for tables (their column header) and records ("ListOps", ..., "Path-X").
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
        order: display position (table columns, `names()`); LRA's six are 0..5.
        generator: the offline generator behind the `generated` source, or None.
        release_files: for the `lra_release` source, the files the loader reads (their content
            enters the data identity: `lra.data.identity`); None when the task has no such source.
        hf_repo: the default Hugging Face repo of the `hf` source ("" = none).
        hf_local_copy: whether the `hf` source reads a local copy (`<data_dir>/hf/<owner>__<name>`)
            when there is one (False: it reads files of the hub repo itself).
        render: `render(dataset, index, pixel_zero_is_padding) -> str`, a human-readable example
            for `lra data info` (default: its token ids).
        val_is_test: the validation split is the test split (IMDB has none, and LRA evaluates Text on
            test): tables then report the last checkpoint, never one chosen on validation.
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
    order: int = UNORDERED
    generator: TaskGenerator | None = None
    release_files: ReleaseFiles | None = None
    hf_repo: str = ""
    hf_local_copy: bool = True
    render: Renderer = render_token_ids
    val_is_test: bool = False

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

    def require_generator(self) -> TaskGenerator:
        """The task's generator; ValueError naming the tasks that have one otherwise."""
        if self.generator is None:
            made = ", ".join(generated_task_names()) or "none"
            raise ValueError(f"task {self.name!r} has no offline generator; generated tasks: {made}")
        return self.generator


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add `spec` to the registry (importing a module of `lra.tasks` registers its task)."""
    if spec.name in _TASKS:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def unregister_task(name: str) -> None:
    """Remove task `name` from the registry (a task registered for a while, e.g. by a test)."""
    get(name)
    del _TASKS[name]


def get(name: str) -> TaskSpec:
    """The task `name`; ValueError listing the valid names otherwise."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(names())}") from None


def names() -> list[str]:
    """Registered task names in display order (`TaskSpec.order`, then registration order)."""
    registered = list(_TASKS)
    return sorted(registered, key=lambda name: (_TASKS[name].order, registered.index(name)))


def generated_task_names() -> list[str]:
    """The tasks with an offline generator, in display order."""
    return [name for name in names() if _TASKS[name].generator is not None]
