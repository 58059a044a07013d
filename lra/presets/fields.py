"""What the presets that name a source (`pytorch`, `lra`) are made of: each field's value with its
provenance (lra/sources.py), the provenance notes they share, and `assemble`, which builds the
preset and its provenance table from them (`lra.preset_provenance` renders it).
"""

from __future__ import annotations

from typing import Any

from .. import tasks
from ..sources import Ours, Provenance
from ..tasks.base import DataConfig
from .schema import ModelConfig, Preset, TrainConfig

Field = tuple[Any, Provenance]  # (value, where it comes from)

# Fields that do not change what a run computes, and why, for every preset that names a source.
BOOKKEEPING: dict[str, Provenance] = {
    "data.data_dir": Ours("where the data lie does not change results"),
    "data.cache_dir": Ours("where tokenised splits are cached does not change results"),
    "train.checkpoint_every": Ours("how often resumable checkpoints are written does not change results"),
    "train.max_bad_steps": Ours(
        "the guard that stops a run after repeated non-finite losses; a run that finishes never reached it"
    ),
    "train.micro_batch_size": Ours(
        "gradient accumulation only splits a batch to fit memory (the sources do the same on their own "
        "memory tables); the update is the batch's, up to float rounding"
    ),
}
NO_EFFECT = Ours("no effect on this task")
AUTO_SOURCE = Ours(
    "the official files when they are under the data directory, else LRA's distribution generated offline "
    "(ListOps, Pathfinder, Path-X) or a Hugging Face copy of the same data (Text, Retrieval, Image); the "
    "record names the data a run read"
)
GENERATOR_NOTE = Ours("used only without the official files: LRA's distribution, generated offline")
GEN_SEED_NOTE = Ours("seed of the offline generator; the official files need none")
HF_REPO_NOTE = Ours(
    "the default Hugging Face copies of the datasets the sources read through TFDS or TSV files"
)


def generator_note(task: str) -> Provenance:
    """The provenance of `data.generator` and `data.gen_seed`'s meaning for `task`."""
    return GENERATOR_NOTE if tasks.get(task).generator is not None else NO_EFFECT


def gen_seed_note(task: str) -> Provenance:
    return GEN_SEED_NOTE if tasks.get(task).generator is not None else NO_EFFECT


def hf_repo_note(task: str) -> Provenance:
    return HF_REPO_NOTE if "hf" in tasks.get(task).sources else NO_EFFECT


def assemble(
    name: str, task: str, fields: dict[str, Field], description: str
) -> tuple[Preset, dict[str, Provenance]]:
    """The preset made of `fields` (bookkeeping fields at their defaults) and its provenance."""
    values: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "data": {}}
    provenance: dict[str, Provenance] = dict(BOOKKEEPING)
    for key, (value, source) in fields.items():
        section, _, attr = key.partition(".")
        values[section][attr] = value
        provenance[key] = source
    preset = Preset(
        name,
        task,
        ModelConfig(**values["model"]),
        TrainConfig(**values["train"]),
        DataConfig(**values["data"]),
        description,
    )
    return preset, provenance
