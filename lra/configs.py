"""Presets: typed dataclasses for the model, the training schedule and the data, per task.

Four presets per task:

* ``lra``     -- the released LRA JAX configs (google-research/long-range-arena, `*/configs/*.py`):
  per-task sizes, lengths, batch, Adam + rsqrt/cosine schedules, steps. Attention dropout of the
  JAX configs is not applied (no mechanism in the zoo has one, as in the official MiTA code).
* ``pytorch`` -- the Nystromformer / Skyformer / xformers lineage: one 2-layer, 64-d, 2-head model
  for every task, AdamW 1e-4, linear warmup then linear decay, mean pooling, learned positions,
  attention in fp32 under AMP, best-dev checkpoint evaluated on test.
* ``quick``   -- CPU minutes on generated data (the suite's `--preset quick`): ListOps `short` and
  Pathfinder `quick` are learned above chance (see `_CPU_TRAIN` and `_PIXEL_MODEL`).
* ``tiny``    -- the smallest sensible run, for smoke tests and `lra run` without arguments.

Override any field with dotted keys: ``apply_overrides(preset, {"model.layers": "3"})``; unknown
keys and ill-typed values raise ValueError naming the valid keys.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from attention_zoo.registry import coerce_value

from .tasks.base import DataConfig


@dataclass(frozen=True)
class ModelConfig:
    """The shared encoder (see lra/models.py).

    Attributes:
        dim: embedding / residual width.
        layers: number of pre-LN blocks.
        heads: attention heads.
        qkv_dim: total attention width (0 = dim); the LRA Image and Pathfinder configs use less than dim.
        mlp_dim: hidden width of the block MLP (GELU) and of the classifier head.
        dropout: dropout on embeddings, attention output and MLP.
        attention_dropout: dropout on the attention probabilities, in the mechanisms that form them
            (`attention_zoo.get(name).attention_dropout`; a no-op for the kernelized ones).
        pos_emb: "learned" (N(0, 0.02) table) or "sinusoidal" (fixed).
        pooling: "mean" over valid tokens or "cls" (a learned CLS vector prepended).
        fp32_attention: run attention in fp32 under autocast.
        qkv_bias: bias on the q/k/v projection.
    """

    dim: int = 64
    layers: int = 2
    heads: int = 2
    qkv_dim: int = 0
    mlp_dim: int = 128
    dropout: float = 0.1
    attention_dropout: float = 0.0
    pos_emb: Literal["learned", "sinusoidal"] = "learned"
    pooling: Literal["mean", "cls"] = "mean"
    fp32_attention: bool = True
    qkv_bias: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and evaluation.

    Attributes:
        batch_size: global batch per optimizer step (summed over DDP processes).
        micro_batch_size: examples per forward/backward per process; gradient accumulation reaches
            batch_size (0 = no accumulation).
        lr: peak learning rate ("rsqrt": the base factor, peak = lr / sqrt(warmup_steps)).
        schedule: "linear" (warmup then linear decay to 0), "cosine" (warmup then cosine to 0),
            "rsqrt" (LRA: lr * min(1, step / warmup) / sqrt(max(step, warmup))), "constant" (after warmup).
        warmup_steps: linear warmup steps.
        steps: optimizer steps.
        weight_decay, beta1, beta2, eps: AdamW.
        grad_clip: clip the global gradient norm to this value (0 = off).
        eval_every: evaluate on the validation split every this many steps (and at the end).
        eval_examples: cap on validation examples per evaluation (a fixed random subset; 0 = the whole split).
        checkpoint_every: write the resumable checkpoint every this many steps (0 = at every evaluation).
        amp: autocast dtype on CUDA ("none", "bf16", "fp16"); ignored on CPU.
        max_bad_steps: non-finite losses / gradients skipped before the run stops as `diverged`.
    """

    batch_size: int = 32
    micro_batch_size: int = 0
    lr: float = 1e-4
    schedule: Literal["linear", "cosine", "rsqrt", "constant"] = "linear"
    warmup_steps: int = 1000
    steps: int = 5000
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-6
    grad_clip: float = 0.0
    eval_every: int = 50
    eval_examples: int = 0
    checkpoint_every: int = 0
    amp: Literal["none", "bf16", "fp16"] = "bf16"
    max_bad_steps: int = 5


@dataclass(frozen=True)
class Preset:
    """Everything a run needs besides the attention and the seed.

    `attention` holds per-mechanism parameter defaults of this preset (e.g. a keys-per-query budget
    matched across mechanisms); a run's own attention parameters override them.
    """

    name: str
    task: str
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    description: str = ""
    attention: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# The LRA JAX configs (lra_benchmarks/*/configs/base_*_config.py + transformer_base.py).
# Adam(0.9, 0.98, 1e-9) with decoupled weight decay; pre-LN; CLS unless noted.
# ----------------------------------------------------------------------------------------------
_JAX_ADAM = {"beta1": 0.9, "beta2": 0.98, "eps": 1e-9}

_LRA = {
    "listops": (
        ModelConfig(
            dim=512, layers=4, heads=8, mlp_dim=1024, dropout=0.1, pos_emb="sinusoidal", pooling="cls"
        ),
        TrainConfig(
            batch_size=32,
            lr=0.05,
            schedule="rsqrt",
            warmup_steps=1000,
            steps=5000,
            weight_decay=0.1,
            eval_every=50,
            **_JAX_ADAM,
        ),
        DataConfig(seq_len=2000),
    ),
    "text": (
        ModelConfig(
            dim=256, layers=4, heads=4, mlp_dim=1024, dropout=0.1, pos_emb="sinusoidal", pooling="cls"
        ),
        TrainConfig(
            batch_size=32,
            lr=0.05,
            schedule="rsqrt",
            warmup_steps=8000,
            steps=20000,
            weight_decay=0.1,
            eval_every=100,
            **_JAX_ADAM,
        ),
        DataConfig(seq_len=1000),
    ),
    "retrieval": (
        ModelConfig(
            dim=128, layers=4, heads=4, mlp_dim=512, dropout=0.1, pos_emb="sinusoidal", pooling="cls"
        ),
        TrainConfig(
            batch_size=32,
            lr=0.05,
            schedule="rsqrt",
            warmup_steps=8000,
            steps=5000,
            weight_decay=0.1,
            eval_every=100,
            **_JAX_ADAM,
        ),
        DataConfig(seq_len=4000),
    ),
    "image": (
        ModelConfig(
            dim=128, layers=1, heads=8, qkv_dim=64, mlp_dim=128, dropout=0.3, pos_emb="learned", pooling="cls"
        ),
        TrainConfig(
            batch_size=256,
            lr=5e-4,
            schedule="cosine",
            warmup_steps=175,
            steps=35000,
            weight_decay=0.0,
            eval_every=175,
            **_JAX_ADAM,
        ),
        DataConfig(seq_len=1024),
    ),
    "pathfinder": (
        ModelConfig(
            dim=32,
            layers=4,
            heads=4,
            qkv_dim=16,
            mlp_dim=32,
            dropout=0.2,
            pos_emb="sinusoidal",
            pooling="mean",
        ),
        TrainConfig(
            batch_size=512,
            lr=1e-3,
            schedule="cosine",
            warmup_steps=312,
            steps=62400,
            weight_decay=0.0,
            eval_every=312,
            **_JAX_ADAM,
        ),
        DataConfig(seq_len=1024),
    ),
    "pathx": (
        ModelConfig(
            dim=32, layers=1, heads=2, qkv_dim=16, mlp_dim=32, dropout=0.1, pos_emb="learned", pooling="mean"
        ),
        TrainConfig(
            batch_size=64,
            lr=1e-3,
            schedule="cosine",
            warmup_steps=2500,
            steps=500000,
            weight_decay=0.0,
            grad_clip=1.0,
            eval_every=2500,
            **_JAX_ADAM,
        ),
        DataConfig(seq_len=16384),
    ),
}

# ----------------------------------------------------------------------------------------------
# The PyTorch lineage (Nystromformer lra_config.py; Skyformer; xformers config.json): one small model.
# ----------------------------------------------------------------------------------------------
_PYTORCH_MODEL = ModelConfig(
    dim=64,
    layers=2,
    heads=2,
    mlp_dim=128,
    dropout=0.1,
    pos_emb="learned",
    pooling="mean",
    fp32_attention=True,
)
_PYTORCH = {
    "listops": (
        TrainConfig(batch_size=32, lr=1e-4, warmup_steps=1000, steps=5000, eval_every=50),
        DataConfig(seq_len=2000),
    ),
    "text": (
        TrainConfig(batch_size=32, lr=1e-4, warmup_steps=8000, steps=20000, eval_every=500),
        DataConfig(seq_len=4000),
    ),
    "retrieval": (
        TrainConfig(batch_size=32, lr=1e-4, warmup_steps=800, steps=30000, eval_every=500),
        DataConfig(seq_len=4000),
    ),
    "image": (
        TrainConfig(batch_size=256, lr=1e-4, warmup_steps=175, steps=35000, eval_every=175),
        DataConfig(seq_len=1024),
    ),
    "pathfinder": (
        TrainConfig(batch_size=256, lr=1e-4, warmup_steps=312, steps=62400, eval_every=312),
        DataConfig(seq_len=1024),
    ),
    "pathx": (
        TrainConfig(batch_size=256, lr=1e-4, warmup_steps=312, steps=62400, eval_every=312, grad_clip=1.0),
        DataConfig(seq_len=16384),
    ),
}

# ----------------------------------------------------------------------------------------------
# CPU presets on generated or small data.
# ----------------------------------------------------------------------------------------------
# Every mechanism sees about 16 keys per query (full attention: all of them), so that sequences of a
# few dozen real tokens are not simply covered whole by every budget and the comparison means something.
CPU_BUDGET = {
    "agent": {"num_agents": 16},
    "topk": {"topk": 16},
    "moba": {"block_size": 4, "topk_blocks": 4},
    "mita": {"num_landmarks": 8, "topk": 8},
    "mita_route": {"num_landmarks": 8, "topk": 16},
}
# Kernelized and low-rank baselines: 16 features, projected keys, landmarks or samples (linear
# attention and cosFormer have no budget to set).
CPU_BUDGET.update(
    {
        "performer": {"num_features": 16},
        "linformer": {"proj_dim": 16},
        "nystrom": {"num_landmarks": 16},
        "skyformer": {"num_samples": 16},
    }
)
# Classic LRA baselines with fixed and learned sparsity patterns (Synthesizer attends to every key).
# The Sparse Transformer's summary keys grow with N / block_size, so it cannot reach 16 keys: the
# cheapest pattern that keeps one summary key per block (16 + N / 16 - 1 keys) stands in.
CPU_BUDGET.update(
    {
        "local": {"window": 8},
        "longformer": {"window": 7, "num_global": 1},
        "bigbird": {"block_size": 2, "num_global_blocks": 2, "num_random_blocks": 3},
        "sparse": {"block_size": 16, "num_summary": 1},
        "reformer": {"bucket_size": 8, "num_hashes": 1},
        "sinkhorn": {"block_size": 8},
    }
)
# 250 steps (8,000 examples, two epochs of 4,000), evaluated every 50: about half the CPU time per
# run of the former 500 / 600 steps, so that the quick suite (every registered attention x ListOps
# + Pathfinder) stays within minutes. At 250 steps every mechanism of the zoo learns ListOps `short`
# above chance (seed 0: 23-28% test accuracy; chance 12.8%, FAIL line 15.8%; full attention 27%,
# 33% at 500 steps).
_CPU_TRAIN = TrainConfig(batch_size=32, lr=2e-3, warmup_steps=30, steps=250, eval_every=50, amp="none")
_CPU_MODEL = ModelConfig(
    dim=64, layers=2, heads=2, mlp_dim=128, dropout=0.0, pos_emb="learned", pooling="mean"
)
# Pixel tasks: one layer with learned positions over the stroke pixels only (black pixels are
# padding, LRA's legacy convention); Pathfinder and Path-X train on 48 images a step. On Pathfinder
# `quick` (two-paddle snakes, three pixel values, no global pixel statistic giving the label away),
# seed 0 at 250 steps: full attention 56% test accuracy with 32 images a step and 76% with 64; with
# 48, agent, mita, mita_route, linear, performer, cosformer and skyformer 65-79%. At lr 6e-3 and 32
# images a step, six of the 19 attentions stay at chance. Sinusoidal positions stay at chance, and
# so did antialiased three-paddle snakes at every CPU budget tried (up to 1,200 steps, two layers).
_PIXEL_MODEL = replace(_CPU_MODEL, layers=1, pos_emb="learned")
_PIXEL_TRAIN = replace(_CPU_TRAIN, lr=3e-3)
_PATHFINDER_TRAIN = replace(_PIXEL_TRAIN, batch_size=48)


def _sizes(n_train: int, n_val: int, n_test: int) -> dict[str, int]:
    return {"n_train": n_train, "n_val": n_val, "n_test": n_test}


def _cpu_preset(task: str, name: str) -> Preset:
    """`quick` (CPU minutes; ListOps and Pathfinder learn above chance) and `tiny` (seconds, smoke tests)."""
    quick = name == "quick"
    # Validation only picks the checkpoint; 500 test examples keep chance + 2 binomial standard errors
    # (the leaderboard's FAIL line) at 16.7% for ListOps and 54.5% for Pathfinder.
    sizes = _sizes(4000, 250, 500) if quick else _sizes(2000, 200, 200)
    model, train = _CPU_MODEL, _CPU_TRAIN
    if task in ("pathfinder", "pathx"):
        model, train = _PIXEL_MODEL, _PATHFINDER_TRAIN
        generator = "quick" if task == "pathfinder" else "easy"
        data = DataConfig(source="generated", generator=generator, pixel_zero_is_padding=True, **sizes)
    elif task == "listops":
        data = DataConfig(source="generated", generator="short", **sizes)
    elif task == "image":
        model, train = _PIXEL_MODEL, _PIXEL_TRAIN
        data = DataConfig(**sizes)
    else:  # text, retrieval: real data, shortened
        data = DataConfig(seq_len=512 if quick else 256, **sizes)
    if not quick:
        model = replace(model, dim=32, layers=1, mlp_dim=64)
        train = replace(train, steps=150, eval_every=50)
    description = "CPU minutes on generated data" if quick else "smallest sensible run (smoke tests)"
    return Preset(name, task, model, train, data, description, attention=CPU_BUDGET)


PRESET_NAMES = ("tiny", "quick", "pytorch", "lra")


def _build(task: str, name: str) -> Preset:
    if name == "lra":
        model, train, data = _LRA[task]
        # the JAX TransformerBlock's SelfAttention has no bias on the q/k/v projections
        return Preset(name, task, replace(model, qkv_bias=False), train, data, "released LRA JAX config")
    if name == "pytorch":
        train, data = _PYTORCH[task]
        return Preset(name, task, _PYTORCH_MODEL, train, data, "Nystromformer/Skyformer PyTorch lineage")
    return _cpu_preset(task, name)


def get_preset(task: str, name: str) -> Preset:
    """The preset `name` of `task`; ValueError listing the valid choices otherwise."""
    if task not in _LRA:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(_LRA)}")
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}")
    return _build(task, name)


_SECTIONS = ("model", "train", "data")


def apply_overrides(preset: Preset, overrides: dict[str, Any]) -> Preset:
    """Return `preset` with dotted-key overrides applied (`{"model.layers": "3", "train.lr": 1e-3}`).

    Values may be strings (from the command line); they are converted to the field's declared type.
    """
    sections = {name: getattr(preset, name) for name in _SECTIONS}
    changes: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in sections or not name:
            valid = ", ".join(f"{s}.<field>" for s in _SECTIONS)
            raise ValueError(f"unknown setting {key!r}; settings look like {valid} (e.g. model.layers=3)")
        cls = type(sections[section])
        hints = typing.get_type_hints(cls)
        if name not in hints:
            valid = ", ".join(f"{section}.{f.name}" for f in dataclasses.fields(cls))
            raise ValueError(f"unknown setting {key!r}; valid {section} settings: {valid}")
        changes[section][name] = coerce_value(key, value, hints[name])
    updated = {name: replace(sections[name], **changes[name]) for name in _SECTIONS}
    result = replace(preset, **updated)
    validate(result)
    return result


def validate(preset: Preset) -> None:
    """Cross-field checks; ValueError naming the offending setting."""
    model, train = preset.model, preset.train
    width = model.qkv_dim or model.dim
    if model.heads < 1 or width % model.heads:
        raise ValueError(
            f"model.heads={model.heads} must divide the attention width {width} (model.qkv_dim or model.dim)"
        )
    positive = {
        "model.dim": model.dim,
        "model.layers": model.layers,
        "model.mlp_dim": model.mlp_dim,
        "train.batch_size": train.batch_size,
        "train.steps": train.steps,
        "train.eval_every": train.eval_every,
    }
    for key, value in positive.items():
        if value < 1:
            raise ValueError(f"{key} must be >= 1; got {value}")
    if not 0 <= model.dropout < 1:
        raise ValueError(f"model.dropout must be in [0, 1); got {model.dropout}")
    if not 0 <= model.attention_dropout < 1:
        raise ValueError(f"model.attention_dropout must be in [0, 1); got {model.attention_dropout}")
    if train.micro_batch_size < 0 or (train.micro_batch_size and train.batch_size % train.micro_batch_size):
        raise ValueError(
            f"train.micro_batch_size={train.micro_batch_size} must divide train.batch_size={train.batch_size}"
        )
    if train.lr <= 0:
        raise ValueError(f"train.lr must be > 0; got {train.lr}")
    if train.warmup_steps < 0:
        raise ValueError(f"train.warmup_steps must be >= 0; got {train.warmup_steps}")
