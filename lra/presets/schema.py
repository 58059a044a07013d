"""The configuration dataclasses of a run and the rules on them: `ModelConfig`, `TrainConfig`,
`Preset` (with the task's `DataConfig`), dotted-key overrides (`apply_overrides`), cross-field
checks (`validate`) and a preset's identity for the configuration hash (`preset_identity`, which
leaves out the `FIELDS_ADDED_LATER` that hold their earlier behaviour).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from attention_zoo.registry import coerce_value

from ..tasks.base import DataConfig

__all__ = [
    "FIELDS_ADDED_LATER",
    "DataConfig",
    "ModelConfig",
    "Preset",
    "TrainConfig",
    "apply_overrides",
    "preset_identity",
    "validate",
]


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
        pooling: "mean" over valid tokens (padding-invariant), "mean_all" over every position of
            the padded frame with padded outputs zeroed (sum / `padded_length`: the PyTorch
            lineage; not padding-invariant by design), "cls" (a learned CLS vector prepended) or
            "first" (the first token's output, nothing prepended: LRA's dual encoder).
        padded_length: the padded input length "mean_all" divides by (0 = the data's sequence
            length); the lineage pads ListOps' 2,000 tokens to 2,048, Text's and Retrieval's 4,000 to 4,096.
        fp32_attention: run attention in fp32 under autocast.
        qkv_bias: bias on the q/k/v projection.
        init: "torch" (torch's defaults), "nystromformer" (N(0, 0.02) token embedding, torch's
            defaults otherwise) or "lra" (the Flax initialisers of the LRA JAX models); see
            `lra.models.initialise`.
        dual_head: Retrieval's head: "nli" ([x1, x2, x1 * x2, x1 - x2], one hidden layer: the
            PyTorch lineage) or "concat" ([x1, x2], two hidden layers: LRA's dual encoder).
        layer_norm_eps: epsilon of every LayerNorm (torch 1e-5; Flax, hence LRA, 1e-6).
        gelu: the MLP's GELU: "erf" (exact, torch's default) or "tanh" (the approximation
            jax.nn.gelu computes by default, hence LRA's).
    """

    dim: int = 64
    layers: int = 2
    heads: int = 2
    qkv_dim: int = 0
    mlp_dim: int = 128
    dropout: float = 0.1
    attention_dropout: float = 0.0
    pos_emb: Literal["learned", "sinusoidal"] = "learned"
    pooling: Literal["mean", "mean_all", "cls", "first"] = "mean"
    padded_length: int = 0
    fp32_attention: bool = True
    qkv_bias: bool = True
    init: Literal["torch", "nystromformer", "lra"] = "torch"
    dual_head: Literal["nli", "concat"] = "nli"
    layer_norm_eps: float = 1e-5
    gelu: Literal["erf", "tanh"] = "erf"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and evaluation.

    Attributes:
        batch_size: global batch per optimizer step (summed over DDP processes).
        micro_batch_size: examples per forward/backward per process; gradient accumulation reaches
            batch_size (0 = no accumulation).
        lr: peak learning rate ("rsqrt": the base factor, peak = lr / sqrt(warmup_steps)).
        schedule: "linear" (warmup then linear decay to 0; the project's own), "constant" (after
            warmup), LRA's `create_learning_rate_scheduler` factors with its step count s = updates
            done before this one (so the first update has lr 0): "rsqrt" (lr * min(1, s / warmup) /
            sqrt(max(s, warmup))) and "cosine" (lr * min(1, s / warmup) * 0.5 * (1 + cos(pi * p)),
            p = max(0, s - warmup) / steps, LRA's `steps_per_cycle` = its number of steps), or
            "onecycle": torch's `OneCycleLR` as the PyTorch lineage steps it (max_lr = lr,
            pct_start = warmup / steps, linear annealing, beta1 cycled 0.95 -> 0.85 -> 0.95).
        warmup_steps: linear warmup steps ("onecycle": at most steps - 1, so shortened runs work).
        steps: optimizer steps.
        weight_decay, beta1, beta2, eps: AdamW.
        grad_clip: clip the global gradient norm to this value (0 = off).
        eval_every: evaluate on the validation split every this many steps (and at the end).
        eval_examples: cap on validation examples per evaluation (a fixed random subset; 0 = the whole split).
        report_checkpoint: the checkpoint whose test accuracy the tables report: "best" (best
            validation accuracy; the PyTorch lineage) or "last" (the end of training; LRA). Records
            hold both (`test_acc`, `test_acc_last`).
        checkpoint_every: write the resumable checkpoint every this many steps (0 = at every evaluation).
        amp: autocast dtype on CUDA ("none", "bf16", "fp16"); ignored on CPU.
        max_bad_steps: non-finite losses / gradients skipped before the run stops as `diverged`.
    """

    batch_size: int = 32
    micro_batch_size: int = 0
    lr: float = 1e-4
    schedule: Literal["linear", "cosine", "rsqrt", "constant", "onecycle"] = "linear"
    warmup_steps: int = 1000
    steps: int = 5000
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-6
    grad_clip: float = 0.0
    eval_every: int = 50
    eval_examples: int = 0
    report_checkpoint: Literal["best", "last"] = "best"
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


# Fields added after run records existed, with the value that computes what runs computed before
# them: a configuration's identity (its hash) omits such a field at that value, so the runs of
# earlier versions keep their hashes.
FIELDS_ADDED_LATER: dict[str, dict[str, Any]] = {
    "model": {
        "attention_dropout": 0.0,
        "padded_length": 0,
        "init": "torch",
        "dual_head": "nli",
        "layer_norm_eps": 1e-5,
        "gelu": "erf",
    },
    "train": {"report_checkpoint": "best"},
    "data": {"split_order": "batch"},
}


def preset_identity(preset: Preset) -> dict[str, Any]:
    """`preset.to_dict()` without the `FIELDS_ADDED_LATER` that hold their earlier behaviour."""
    out = preset.to_dict()
    for section, defaults in FIELDS_ADDED_LATER.items():
        for name, value in defaults.items():
            if out[section].get(name, value) == value:
                out[section].pop(name, None)
    return out


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
    for key, rate in (
        ("model.dropout", model.dropout),
        ("model.attention_dropout", model.attention_dropout),
    ):
        if not 0 <= rate < 1:
            raise ValueError(f"{key} must be in [0, 1); got {rate}")
    if model.padded_length < 0:
        raise ValueError(f"model.padded_length must be >= 0; got {model.padded_length}")
    if model.layer_norm_eps <= 0:
        raise ValueError(f"model.layer_norm_eps must be > 0; got {model.layer_norm_eps}")
    if train.micro_batch_size < 0 or (train.micro_batch_size and train.batch_size % train.micro_batch_size):
        raise ValueError(
            f"train.micro_batch_size={train.micro_batch_size} must divide train.batch_size={train.batch_size}"
        )
    if train.lr <= 0:
        raise ValueError(f"train.lr must be > 0; got {train.lr}")
    if train.warmup_steps < 0:
        raise ValueError(f"train.warmup_steps must be >= 0; got {train.warmup_steps}")
