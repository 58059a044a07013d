"""Where preset values come from: the source files the `lra` and `pytorch` presets reproduce.

Every field of those presets carries a `Provenance` (lra/sources.py): `Cite` -- the value equals
what a source file says (`where` quotes it, `note` adds what a reader should know) -- or `Ours` --
a value chosen here, and `why`. `lra.preset_provenance` turns them into the provenance table
(`lra list presets --provenance`, README).

Files are pinned to the commit they were read at (`git show <commit>:<path>` shows them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    """One file of a public repository at a commit."""

    repo: str  # "owner/name" on GitHub
    commit: str  # full hash
    path: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.commit[:7]}:{self.path}"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}/blob/{self.commit}/{self.path}"


@dataclass(frozen=True)
class Cite:
    """The value is the source's: `where` says where and what the file says."""

    file: SourceFile
    where: str
    note: str = ""


@dataclass(frozen=True)
class Ours:
    """The value is the project's choice, for the reason `why`."""

    why: str


Provenance = Cite | Ours

LRA_REPO, LRA_COMMIT = "google-research/long-range-arena", "cd31e5c6b8e5bceabd28de2d2afb23f7ae5d36d8"
NYSTROM_REPO, NYSTROM_COMMIT = "mlpen/Nystromformer", "56893131bf3fa99b5a2d3ab452a591dca722529a"
SKYFORMER_REPO, SKYFORMER_COMMIT = "pkuzengqi/Skyformer", "1a677cb104dac8ad83079196a5d78d5913d1d278"


def _lra(path: str) -> SourceFile:
    return SourceFile(LRA_REPO, LRA_COMMIT, f"lra_benchmarks/{path}")


def _nystrom(path: str) -> SourceFile:
    return SourceFile(NYSTROM_REPO, NYSTROM_COMMIT, f"LRA/{path}")


# google-research/long-range-arena (the released JAX/Flax code)
LRA_LISTOPS_CONFIG = _lra("listops/configs/base_listops_config.py")
LRA_LISTOPS_TRAIN = _lra("listops/train.py")
LRA_LISTOPS_PIPELINE = _lra("listops/input_pipeline.py")
LRA_TEXT_CONFIG = _lra("text_classification/configs/base_tc_config.py")
LRA_TEXT_TRAIN = _lra("text_classification/train.py")
LRA_TEXT_PIPELINE = _lra("text_classification/input_pipeline.py")
LRA_MATCHING_CONFIG = _lra("matching/configs/base_match_config.py")
LRA_MATCHING_TRAIN = _lra("matching/train.py")
LRA_MATCHING_PIPELINE = _lra("matching/input_pipeline.py")
LRA_CIFAR_CONFIG = _lra("image/configs/cifar10/base_cifar10_config.py")
LRA_CIFAR_TRANSFORMER = _lra("image/configs/cifar10/transformer_base.py")
LRA_PATHFINDER_CONFIG = _lra("image/configs/pathfinder32/base_pathfinder32_config.py")
LRA_PATHFINDER_TRANSFORMER = _lra("image/configs/pathfinder32/transformer_base.py")
LRA_PATHX_CONFIG = _lra("image/configs/pathfinder128/base_pathfinder128_config.py")
LRA_IMAGE_TRAIN = _lra("image/train.py")
LRA_IMAGE_PIPELINE = _lra("image/input_pipeline.py")
LRA_PATHFINDER_BUILDER = _lra("data/pathfinder.py")
LRA_TRANSFORMER = _lra("models/transformer/transformer.py")
LRA_LAYERS = _lra("models/layers/common_layers.py")
LRA_TRAIN_UTILS = _lra("utils/train_utils.py")
# google/flax: the deprecated `flax.nn` the LRA models are written in (defaults they rely on)
FLAX_NORMALIZATION = SourceFile(
    "google/flax", "b60f7f45b90f8fc42a88b1639c9cc88a40b298d3", "flax/deprecated/nn/normalization.py"
)
FLAX_ATTENTION = SourceFile(
    "google/flax", "961034917c2be5b2fe7c29f9d8c47670877b9cc7", "flax/deprecated/nn/attention.py"
)

# mlpen/Nystromformer LRA/ (the PyTorch lineage; Skyformer and xformers' LRA derive from it)
NYSTROM_CONFIG = _nystrom("code/lra_config.py")
NYSTROM_RUN = _nystrom("code/run_tasks.py")
NYSTROM_RUN_ALL = _nystrom("code/run_tasks.sh")
NYSTROM_MODEL = _nystrom("code/model.py")
NYSTROM_WRAPPER = _nystrom("code/model_wrapper.py")
NYSTROM_ATTENTION = _nystrom("code/attention.py")
NYSTROM_DATASET = _nystrom("code/dataset.py")
NYSTROM_LISTOPS_DATA = _nystrom("datasets/listops.py")
NYSTROM_RETRIEVAL_DATA = _nystrom("datasets/retrieval.py")
NYSTROM_CIFAR_DATA = _nystrom("datasets/cifar10.py")
NYSTROM_PATHFINDER_DATA = _nystrom("datasets/pathfinder.py")
SKYFORMER_TEXT_DATA = SourceFile(SKYFORMER_REPO, SKYFORMER_COMMIT, "src/preprocess/create_text.py")
