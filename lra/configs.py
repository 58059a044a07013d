"""Presets: typed dataclasses for the model, the training schedule and the data, per task.

Four presets per task:

* ``lra``     -- the released LRA JAX code (google-research/long-range-arena: `*/configs/*.py`, the
  train scripts and the Flax models): per-task sizes, lengths, batch, Adam + LRA's rsqrt / cosine
  schedules, steps, dropout and attention dropout, Flax's initialisers, LayerNorm epsilon and GELU,
  CLS pooling (Retrieval: its dual encoder's first-token pooling and concatenating head), float32,
  the last checkpoint tested.
* ``pytorch`` -- the PyTorch lineage (mlpen/Nystromformer `LRA/code`, forked by Skyformer and
  xformers): one 2-layer, 64-d, 2-head model for every task, AdamW 1e-4 under torch's OneCycleLR,
  mean pooling over the zero-padded frame, learned positions, fp16 AMP with attention in fp32,
  attention dropout 0.1, the best-validation checkpoint tested.

Each field of those two names its source file and commit or says why it differs
(`source_preset`, lra/sources.py; `lra list presets --provenance` prints the table).
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

from .sources import (
    FLAX_NORMALIZATION,
    LRA_CIFAR_CONFIG,
    LRA_CIFAR_TRANSFORMER,
    LRA_IMAGE_PIPELINE,
    LRA_IMAGE_TRAIN,
    LRA_LAYERS,
    LRA_LISTOPS_CONFIG,
    LRA_LISTOPS_PIPELINE,
    LRA_LISTOPS_TRAIN,
    LRA_MATCHING_CONFIG,
    LRA_MATCHING_PIPELINE,
    LRA_MATCHING_TRAIN,
    LRA_PATHFINDER_BUILDER,
    LRA_PATHFINDER_CONFIG,
    LRA_PATHFINDER_TRANSFORMER,
    LRA_PATHX_CONFIG,
    LRA_TEXT_CONFIG,
    LRA_TEXT_PIPELINE,
    LRA_TEXT_TRAIN,
    LRA_TRAIN_UTILS,
    LRA_TRANSFORMER,
    NYSTROM_ATTENTION,
    NYSTROM_CIFAR_DATA,
    NYSTROM_CONFIG,
    NYSTROM_LISTOPS_DATA,
    NYSTROM_MODEL,
    NYSTROM_PATHFINDER_DATA,
    NYSTROM_RETRIEVAL_DATA,
    NYSTROM_RUN,
    NYSTROM_RUN_ALL,
    NYSTROM_WRAPPER,
    SKYFORMER_TEXT_DATA,
    Cite,
    Ours,
    Provenance,
)
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


# ----------------------------------------------------------------------------------------------
# Presets that reproduce a source: every field with its provenance (lra/sources.py). The values are
# written once, beside the place in the source they come from; `lra.preset_provenance` renders them.
# ----------------------------------------------------------------------------------------------
Field = tuple[Any, Provenance]  # (value, where it comes from)

# Fields that do not change what a run computes, and why, for every preset that names a source.
_BOOKKEEPING: dict[str, Provenance] = {
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
_NO_EFFECT = Ours("no effect on this task")
_AUTO_SOURCE = Ours(
    "the official files when they are under the data directory, else LRA's distribution generated offline "
    "(ListOps, Pathfinder, Path-X) or a Hugging Face copy of the same data (Text, Retrieval, Image); the "
    "record names the data a run read"
)
_GENERATOR = Ours("used only without the official files: LRA's distribution, generated offline")
_GEN_SEED = Ours("seed of the offline generator; the official files need none")
_HF_REPO = Ours("the default Hugging Face copies of the datasets the sources read through TFDS or TSV files")

# ---- The PyTorch lineage: mlpen/Nystromformer LRA/code (pkuzengqi/Skyformer src/ is its fork). ----
# lra_config.py's per-task training values (its keys: listops, text, retrieval, image, pathfinder32):
# batch, warmup, steps, eval_frequency, num_eval_steps; the data scripts' lengths and padding
# (LRA/datasets/*.py).
_NYSTROM_TRAINING = {  # batch_size, warmup, num_train_steps, eval_frequency, num_eval_steps
    "listops": (32, 1000, 5000, 50, 62),
    "text": (32, 8000, 20000, 500, 781),
    "retrieval": (32, 800, 30000, 300, 565),
    "image": (256, 175, 35000, 175, 20),
    "pathfinder": (256, 312, 62400, 312, 312),
}
_NYSTROM_VAL_SIZES = {"listops": 2000, "text": 25000, "retrieval": 18090, "image": 5000, "pathfinder": 20000}


def _nystrom(field_name: str) -> Cite:
    """A value of lra_config.py's `config[task][...]` (the same for every task where the text is)."""
    return Cite(NYSTROM_CONFIG, f"config[task]{field_name}")


def _pytorch_data(task: str) -> dict[str, Field]:
    """seq_len, padded_length, pixel ids and split sizes of the lineage's data scripts."""
    pixels = task in ("image", "pathfinder")
    fields: dict[str, Field] = {
        "data.pixel_zero_is_padding": (
            pixels,
            Cite(
                NYSTROM_CIFAR_DATA if task == "image" else NYSTROM_PATHFINDER_DATA,
                "raw intensities as token ids (no shift)",
                note="dataset.py masks ids == 0, so black pixels are padding",
            )
            if pixels
            else _NO_EFFECT,
        ),
    }
    if not pixels:  # the pixel tasks' splits are those their data scripts cut
        for key, split in (("n_train", "train"), ("n_val", "dev"), ("n_test", "test")):
            fields[f"data.{key}"] = (0, _nystrom(f"['dataset']['{split}'] (the whole split)"))
    elif task == "pathfinder":
        for key, share in (("n_train", "first 80%"), ("n_val", "next 10%"), ("n_test", "last 10%")):
            fields[f"data.{key}"] = (0, Cite(NYSTROM_PATHFINDER_DATA, f"the {share} of the shuffled folder"))
    elif task == "image":
        for key, split in (("n_train", "train[:90%]"), ("n_val", "train[90%:]"), ("n_test", "test")):
            fields[f"data.{key}"] = (
                0,
                Cite(LRA_IMAGE_PIPELINE, f"cifar10 {split} (via LRA/datasets/cifar10.py)"),
            )
    lengths = {
        "listops": (
            2000,
            2048,
            Cite(NYSTROM_LISTOPS_DATA, "get_datasets(max_length=2000)"),
            Cite(NYSTROM_LISTOPS_DATA, "2,000 ids + np.zeros(48)"),
        ),
        "text": (
            4000,
            4096,
            Cite(
                NYSTROM_CONFIG,
                "config['text']['model']['max_seq_len'] = 4000 (run_tasks.py: 4,096 positions)",
                note="the released LRA/datasets/text.py cuts at 1,000 (+24 padding); the authors state that "
                "the paper's Table 3 used 4K (mlpen/Nystromformer#13)",
            ),
            Cite(SKYFORMER_TEXT_DATA, "max_length = 4000, + np.zeros(96)", note="the fork's text script"),
        ),
        "retrieval": (
            4000,
            4096,
            Cite(NYSTROM_RETRIEVAL_DATA, "max_length = 4000 per document"),
            Cite(NYSTROM_RETRIEVAL_DATA, "4,000 ids + np.zeros(96) per document"),
        ),
        "image": (
            1024,
            1024,
            Cite(NYSTROM_CIFAR_DATA, "32 x 32 pixels, flattened"),
            Cite(NYSTROM_CIFAR_DATA, "1,024 pixels, nothing appended"),
        ),
        "pathfinder": (
            1024,
            1024,
            Cite(NYSTROM_PATHFINDER_DATA, "32 x 32 pixels, flattened"),
            Cite(NYSTROM_PATHFINDER_DATA, "1,024 pixels, nothing appended"),
        ),
    }
    seq_len, padded, seq_cite, padded_cite = lengths[task]
    fields["data.seq_len"] = (seq_len, seq_cite)
    fields["model.padded_length"] = (padded, padded_cite)
    return fields


def _pytorch_fields(task: str) -> dict[str, Field]:
    """Every field of the `pytorch` preset of `task` with its provenance (Path-X: `_pytorch_pathx`)."""
    batch, warmup, steps, eval_every, eval_batches = _NYSTROM_TRAINING[task]
    val = _NYSTROM_VAL_SIZES[task]
    scored = eval_batches * batch
    fields: dict[str, Field] = {
        "model.dim": (64, _nystrom("['model']['transformer_dim'] = 64")),
        "model.layers": (2, _nystrom("['model']['num_layers'] = 2")),
        "model.heads": (2, _nystrom("['model']['num_head'] = 2")),
        "model.qkv_dim": (0, _nystrom("['model']: num_head x head_dim = 2 x 32 = transformer_dim")),
        "model.mlp_dim": (
            128,
            _nystrom("['model']['transformer_hidden_dim'] = 128 (block MLP and head)"),
        ),
        "model.dropout": (0.1, _nystrom("['model']['dropout_prob'] = 0.1")),
        "model.attention_dropout": (
            0.1,
            Cite(
                NYSTROM_CONFIG,
                "config[task]['model']['attention_dropout'] = 0.1",
                note="attention.py applies it in SoftmaxAttention only; its Nystrom, Linformer, Performer and "
                "linear attentions have none",
            ),
        ),
        "model.pos_emb": (
            "learned",
            Cite(NYSTROM_MODEL, "position_embeddings = nn.Embedding(max_seq_len, dim), N(0, 0.02)"),
        ),
        "model.pooling": (
            "mean_all",
            Cite(
                NYSTROM_WRAPPER,
                "pooling_mode 'MEAN': inp.mean(dim=1) of model.py's norm(X) * mask",
                note="padded outputs count as zeros; the sum is divided by the padded length",
            ),
        ),
        "model.fp32_attention": (
            True,
            Cite(
                NYSTROM_ATTENTION,
                "self.attn(Q.float(), K.float(), V.float(), ...) under autocast(enabled=False)",
            ),
        ),
        "model.qkv_bias": (
            True,
            Cite(NYSTROM_ATTENTION, "W_q, W_k, W_v = nn.Linear(dim, num_head * head_dim)"),
        ),
        "model.init": (
            "nystromformer",
            Cite(NYSTROM_MODEL, "word_embeddings N(0, 0.02); every other layer keeps torch's initialisation"),
        ),
        "model.dual_head": (
            "nli",
            Cite(NYSTROM_WRAPPER, "SCHeadDual: [X_0, X_1, X_0 * X_1, X_0 - X_1] -> Linear -> ReLU -> Linear")
            if task == "retrieval"
            else _NO_EFFECT,
        ),
        "model.layer_norm_eps": (
            1e-5,
            Cite(NYSTROM_MODEL, "nn.LayerNorm(transformer_dim): torch's eps 1e-5"),
        ),
        "model.gelu": ("erf", Cite(NYSTROM_MODEL, "nn.GELU(): the exact form")),
        "train.batch_size": (batch, _nystrom(f"['training']['batch_size'] = {batch}")),
        "train.lr": (1e-4, _nystrom("['training']['learning_rate'] = 0.0001")),
        "train.schedule": (
            "onecycle",
            Cite(
                NYSTROM_RUN,
                "OneCycleLR(max_lr=learning_rate, pct_start=warmup / num_train_steps, "
                "anneal_strategy=lr_decay ('linear'), total_steps=num_train_steps), stepped every update",
                note="torch's own scheduler, which also cycles beta1 0.95 -> 0.85 -> 0.95",
            ),
        ),
        "train.warmup_steps": (warmup, _nystrom(f"['training']['warmup'] = {warmup}")),
        "train.steps": (steps, _nystrom(f"['training']['num_train_steps'] = {steps}")),
        "train.weight_decay": (0.0, _nystrom("['training']['weight_decay'] = 0")),
        "train.beta1": (
            0.9,
            Cite(NYSTROM_RUN, "AdamW(betas=(0.9, 0.999), eps=1e-6)", note="OneCycleLR cycles it"),
        ),
        "train.beta2": (0.999, Cite(NYSTROM_RUN, "AdamW(betas=(0.9, 0.999), eps=1e-6)")),
        "train.eps": (1e-6, Cite(NYSTROM_RUN, "AdamW(betas=(0.9, 0.999), eps=1e-6)")),
        "train.grad_clip": (
            0.0,
            Cite(NYSTROM_RUN, "no gradient clipping", note="the Skyformer fork clips gradient values at 1"),
        ),
        "train.eval_every": (eval_every, _nystrom(f"['training']['eval_frequency'] = {eval_every}")),
        "train.eval_examples": (
            0,
            Ours(
                f"every validation example at every evaluation; the lineage scores num_eval_steps x batch_size = "
                f"{eval_batches} x {batch} = {scored:,} examples of its {val:,}, drawn from an endlessly "
                "reshuffled dev set (dataset.py)"
            ),
        ),
        "train.report_checkpoint": (
            "best",
            Cite(NYSTROM_RUN, "the model of the best dev accuracy is saved, reloaded and tested"),
        ),
        "train.amp": (
            "fp16",
            Cite(NYSTROM_RUN, "mixed_precision = True: torch.cuda.amp.autocast (float16) and GradScaler"),
        ),
        "data.source": ("auto", _AUTO_SOURCE),
        "data.generator": ("lra", _GENERATOR if task in ("listops", "pathfinder") else _NO_EFFECT),
        "data.gen_seed": (0, _GEN_SEED if task in ("listops", "pathfinder") else _NO_EFFECT),
        "data.hf_repo": ("", _HF_REPO if task in ("text", "retrieval", "image") else _NO_EFFECT),
        "data.difficulty": (
            "hard",
            Cite(NYSTROM_RUN_ALL, "--task pathfinder32-curv_contour_length_14")
            if task == "pathfinder"
            else _NO_EFFECT,
        ),
        "data.split_order": (
            "tfds" if task == "pathfinder" else "batch",
            Ours(
                "the lineage cuts an unseeded random.shuffle of the folder (LRA/datasets/pathfinder.py), which no "
                "order reproduces; LRA's own split stands in for it"
            )
            if task == "pathfinder"
            else _NO_EFFECT,
        ),
    }
    fields.update(_pytorch_data(task))
    if task == "text":  # IMDB's validation split is its test split
        fields["train.report_checkpoint"] = (
            "last",
            Ours(
                "IMDB has no validation split: LRA's pipeline (used by the lineage) validates on the test split, so "
                "the best-validation checkpoint the lineage tests is chosen on the test set"
            ),
        )
    return fields


def _pytorch_pathx() -> dict[str, Field]:
    """No source of the lineage defines Path-X: its Pathfinder-32 settings at 128 x 128, said so."""
    why = "no PyTorch-lineage source defines Path-X: the lineage's Pathfinder-32 value"
    fields = {key: (value, Ours(why)) for key, (value, _) in _pytorch_fields("pathfinder").items()}
    fields["data.seq_len"] = (16384, Ours("no PyTorch-lineage source defines Path-X: 128 x 128 pixels"))
    fields["model.padded_length"] = (16384, Ours("no PyTorch-lineage source defines Path-X: 16,384 pixels"))
    return fields


# ---- The released LRA JAX configs (google-research/long-range-arena). ----
_LRA_CONFIG = {
    "listops": LRA_LISTOPS_CONFIG,
    "text": LRA_TEXT_CONFIG,
    "retrieval": LRA_MATCHING_CONFIG,
    "image": LRA_CIFAR_CONFIG,
    "pathfinder": LRA_PATHFINDER_CONFIG,
    "pathx": LRA_PATHX_CONFIG,
}
_LRA_TRAIN = {
    "listops": LRA_LISTOPS_TRAIN,
    "text": LRA_TEXT_TRAIN,
    "retrieval": LRA_MATCHING_TRAIN,
    "image": LRA_IMAGE_TRAIN,
    "pathfinder": LRA_IMAGE_TRAIN,
    "pathx": LRA_IMAGE_TRAIN,
}
# The sizes of the model per task: (dim, layers, heads, qkv_dim, mlp_dim) and the file that sets them.
_LRA_SIZES = {
    "listops": (
        (512, 4, 8, 0, 1024),
        LRA_LISTOPS_CONFIG,
        "emb_dim 512, num_layers 4, num_heads 8, qkv_dim 512, mlp_dim 1024",
    ),
    "text": (
        (256, 4, 4, 0, 1024),
        LRA_TEXT_CONFIG,
        "emb_dim 256, num_layers 4, num_heads 4, qkv_dim 256, mlp_dim 1024",
    ),
    "retrieval": (
        (128, 4, 4, 0, 512),
        LRA_MATCHING_CONFIG,
        "emb_dim 128, num_layers 4, num_heads 4, qkv_dim 128, mlp_dim 512",
    ),
    "image": (
        (128, 1, 8, 64, 128),
        LRA_CIFAR_TRANSFORMER,
        "emb_dim 128, num_layers 1, num_heads 8, qkv_dim 64, mlp_dim 128",
    ),
    "pathfinder": (
        (32, 4, 4, 16, 32),
        LRA_PATHFINDER_TRANSFORMER,
        "emb_dim 32, num_layers 4, num_heads 4, qkv_dim 16, mlp_dim 32",
    ),
    "pathx": (
        (32, 1, 2, 16, 32),
        LRA_PATHX_CONFIG,
        "emb_dim 32, num_layers 1, num_heads 2, qkv_dim 16, mlp_dim 32",
    ),
}
# (dropout, attention_dropout) with the file that sets them (transformer.py's defaults otherwise).
_LRA_DROPOUT = {
    "image": (0.3, 0.2, LRA_CIFAR_CONFIG, "config.model.dropout_rate = 0.3, attention_dropout_rate = 0.2"),
    "pathfinder": (
        0.2,
        0.1,
        LRA_PATHFINDER_TRANSFORMER,
        "config.model.dropout_rate = 0.2 (attention_dropout_rate 0.1 from the base config)",
    ),
    "pathx": (0.1, 0.1, LRA_PATHX_CONFIG, "config.model.dropout_rate = 0.1, attention_dropout_rate = 0.1"),
}
# (batch, lr, warmup, steps, eval_every, weight_decay, grad_clip) of the configs.
_LRA_TRAINING = {
    "listops": (32, 0.05, 1000, 5000, 50, 0.1, 0.0),
    "text": (32, 0.05, 8000, 20000, 100, 0.1, 0.0),
    "retrieval": (32, 0.05, 8000, 5000, 100, 0.1, 0.0),
    "image": (256, 5e-4, 175, 35000, 175, 0.0, 0.0),
    "pathfinder": (512, 1e-3, 312, 62400, 312, 0.0, 0.0),
    "pathx": (64, 1e-3, 2500, 500000, 2500, 0.0, 1.0),
}
_LRA_EPOCHS = {  # TRAIN_EXAMPLES of the image configs, whose steps and warmup are epochs of it
    "image": 45000,
    "pathfinder": 160000,
    "pathx": 160000,
}
_LRA_SEQ_LEN = {
    "listops": (2000, LRA_LISTOPS_CONFIG, "config.max_length = 2000"),
    "text": (1000, LRA_TEXT_CONFIG, "config.max_length = 1000"),
    "retrieval": (4000, LRA_MATCHING_CONFIG, "config.max_length = 4000 per document"),
    "image": (1024, LRA_IMAGE_PIPELINE, "cifar10: 32 x 32 x 1, flattened by train.py"),
    "pathfinder": (1024, LRA_IMAGE_PIPELINE, "Pathfinder32: 32 x 32 x 1, flattened by train.py"),
    "pathx": (16384, LRA_IMAGE_PIPELINE, "Pathfinder128: 128 x 128 x 1, flattened by train.py"),
}
# What the released scripts score at each evaluation (their batches drop the last partial one).
_LRA_EVAL = {
    "listops": Cite(LRA_LISTOPS_CONFIG, "num_eval_steps = 99999: all 2,000 validation examples"),
    "text": Cite(LRA_TEXT_CONFIG, "num_eval_steps = -1: the whole validation (= test) split"),
    "retrieval": Ours(
        "every validation example; LRA's batches drop the last partial one (matching/input_pipeline.py "
        "drop_remainder=True: 18,080 of 18,090)"
    ),
    "image": Ours(
        "every validation example; LRA scores num_eval_steps = VALID_EXAMPLES // batch_size = 10000 // 256 = 39 "
        "batches of a 5,000-example split that drops its last partial batch: 19 x 256 = 4,864"
    ),
    "pathfinder": Ours(
        "every validation example; LRA scores 20000 // 512 = 39 full batches: 19,968 of 20,000"
    ),
    "pathx": Ours("every validation example; LRA scores 20000 // 64 = 312 full batches: 19,968 of 20,000"),
}


def _lra_fields(task: str) -> dict[str, Field]:
    """Every field of the `lra` preset of `task` with its provenance."""
    (dim, layers, heads, qkv_dim, mlp_dim), sizes_file, sizes_where = _LRA_SIZES[task]
    batch, lr, warmup, steps, eval_every, weight_decay, grad_clip = _LRA_TRAINING[task]
    config, train_file = _LRA_CONFIG[task], _LRA_TRAIN[task]
    image_task = task in _LRA_EPOCHS
    if task in _LRA_DROPOUT:
        dropout, attention_dropout, dropout_file, dropout_where = _LRA_DROPOUT[task]
        dropout_cite = attention_cite = Cite(dropout_file, dropout_where)
    else:  # the configs set none: TransformerEncoder's defaults
        dropout, attention_dropout = 0.1, 0.1
        dropout_cite = Cite(
            LRA_TRANSFORMER, "TransformerEncoder(dropout_rate=0.1) default; the config sets none"
        )
        attention_cite = Cite(
            LRA_TRANSFORMER, "TransformerEncoder(attention_dropout_rate=0.1) default; the config sets none"
        )
    pos_emb = {
        "image": ("learned", Cite(LRA_CIFAR_CONFIG, "config.model.learn_pos_emb = True: N(0, 0.02)")),
        "pathfinder": ("sinusoidal", Cite(LRA_PATHFINDER_CONFIG, "config.model.learn_pos_emb = False")),
        "pathx": ("learned", Cite(LRA_PATHX_CONFIG, "config.model.learn_pos_emb = True: N(0, 0.02)")),
    }.get(task, ("sinusoidal", Cite(LRA_TRANSFORMER, "learn_pos_emb=False default: sinusoidal_init table")))
    pooling = {
        "listops": (
            "cls",
            Cite(
                LRA_TRANSFORMER,
                "classifier_pool='CLS' default: a zero-initialised CLS vector prepended",
                note="listops/train.py passes no pooling (its config's pooling_mode is unused)",
            ),
        ),
        "text": ("cls", Cite(LRA_TEXT_TRAIN, "'classifier_pool': config.classifier_pool ('CLS')")),
        "retrieval": (
            "first",
            Cite(
                LRA_TRANSFORMER,
                "TransformerDualEncoder: its shared TransformerEncoder has classifier=False, so no CLS vector; "
                "classifier_head_dual(pooling_mode='CLS') takes encoded[:, 0]",
            ),
        ),
        "image": ("cls", Cite(LRA_CIFAR_TRANSFORMER, "config.model.classifier_pool = 'CLS'")),
        "pathfinder": (
            "mean",
            Cite(
                LRA_PATHFINDER_CONFIG,
                "config.model.classifier_pool = 'MEAN': jnp.mean over every position (common_layers.py)",
                note="every pixel is a token here (data.pixel_zero_is_padding), so the mean over valid tokens is "
                "the mean over all 1,024 positions",
            ),
        ),
        "pathx": (
            "mean",
            Cite(
                LRA_PATHX_CONFIG,
                "config.model.classifier_pool = 'MEAN': jnp.mean over every position (common_layers.py)",
                note="every pixel is a token here, so the mean over valid tokens is the mean over all positions",
            ),
        ),
    }[task]
    evaluation_note = (
        "LRA evaluates when its 0-based step % eval_frequency == 0 and step > 0, after updates "
        f"{eval_every + 1}, {2 * eval_every + 1}, ...; here after {eval_every}, {2 * eval_every}, ... and at the end"
    )
    if image_task:
        examples = _LRA_EPOCHS[task]
        schedule_cite = Cite(
            config,
            "factors = 'constant * linear_warmup * cosine_decay', steps_per_cycle = num_train_steps",
            note="image/train.py passes factors, warmup and steps_per_cycle to create_learning_rate_scheduler",
        )
        warmup_cite = Cite(
            config, f"warmup = TRAIN_EXAMPLES // batch_size = {examples} // {batch} (one epoch)"
        )
        steps_cite = Cite(config, f"num_train_steps = ({examples} // {batch}) x NUM_EPOCHS (200)")
        eval_cite = Cite(
            config, f"eval_frequency = TRAIN_EXAMPLES // batch_size = {eval_every}", note=evaluation_note
        )
        clip_cite = Cite(config, f"config.grad_clip_norm = {'1.' if grad_clip else 'None'}")
        report_cite = Cite(LRA_IMAGE_TRAIN, "test(...) runs on the optimizer the training loop ends with")
    else:
        if task == "listops":
            schedule_cite = Cite(
                LRA_LISTOPS_TRAIN,
                "create_learning_rate_scheduler(base_learning_rate=learning_rate): its default factors "
                "'constant * linear_warmup * rsqrt_decay'",
                note="config.factors and config.warmup are not passed; their values are the defaults anyway",
            )
            warmup_cite = Cite(LRA_TRAIN_UTILS, "create_learning_rate_scheduler(warmup_steps=1000) default")
        else:
            schedule_cite = Cite(config, "config.factors = 'constant * linear_warmup * rsqrt_decay'")
            warmup_cite = Cite(
                config,
                f"config.warmup = {warmup}",
                note="longer than the 5,000 steps: the learning rate rises to the end (peak about 3.5e-4)"
                if task == "retrieval"
                else "",
            )
        steps_cite = Cite(config, f"config.num_train_steps = {steps}")
        eval_cite = Cite(config, f"config.eval_frequency = {eval_every}", note=evaluation_note)
        clip_cite = Cite(train_file, "train_step applies the gradient unclipped")
        report_cite = Cite(
            train_file,
            "--test_only restores the last checkpoint (saved at step num_train_steps - 1) and evaluates it",
        )
    adam = f"optim.Adam(beta1=0.9, beta2=0.98, eps=1e-9, weight_decay={weight_decay:g})"
    adam_note = "Flax's Adam decays weights decoupled and scaled by the learning rate, as torch's AdamW"
    fields: dict[str, Field] = {
        "model.dim": (dim, Cite(sizes_file, sizes_where)),
        "model.layers": (layers, Cite(sizes_file, sizes_where)),
        "model.heads": (heads, Cite(sizes_file, sizes_where)),
        "model.qkv_dim": (qkv_dim, Cite(sizes_file, sizes_where + (" (0 = dim)" if not qkv_dim else ""))),
        "model.mlp_dim": (mlp_dim, Cite(sizes_file, sizes_where + " (block MLP and classifier)")),
        "model.dropout": (dropout, dropout_cite),
        "model.attention_dropout": (
            attention_dropout,
            Cite(
                attention_cite.file,
                attention_cite.where,
                note="nn.SelfAttention drops attention weights (broadcast_dropout=False)",
            ),
        ),
        "model.pos_emb": pos_emb,
        "model.pooling": pooling,
        "model.padded_length": (0, _NO_EFFECT),
        "model.fp32_attention": (
            True,
            Cite(
                LRA_TRANSFORMER, "use_bfloat16=False: float32 throughout", note="no effect without autocast"
            ),
        ),
        "model.qkv_bias": (False, Cite(LRA_TRANSFORMER, "nn.SelfAttention(..., bias=False)")),
        "model.init": (
            "lra",
            Cite(
                LRA_TRANSFORMER,
                "Embed normal(1.0); SelfAttention kernel_init=xavier_uniform(), bias=False",
                note="MlpBlock xavier_uniform kernels and normal(1e-6) biases, classifier Dense LeCun-normal "
                "(common_layers.py); the output projection's bias, which LRA lacks, starts at 0",
            ),
        ),
        "model.dual_head": (
            "concat",
            Cite(
                LRA_LAYERS,
                "classifier_head_dual(interaction=None): concatenate([e1, e2]) -> Dense(mlp_dim) -> relu -> "
                "Dense(mlp_dim // 2) -> relu -> Dense(classes)",
                note="matching/train.py builds model_type 'transformer', the single-input encoder, so the released "
                "script never runs TransformerDualEncoder (google-research/long-range-arena#39); this is that model",
            )
            if task == "retrieval"
            else _NO_EFFECT,
        ),
        "model.layer_norm_eps": (1e-6, Cite(FLAX_NORMALIZATION, "LayerNorm(epsilon=1e-6) default")),
        "model.gelu": (
            "tanh",
            Cite(LRA_LAYERS, "MlpBlock: nn.gelu", note="jax.nn.gelu computes the tanh approximation"),
        ),
        "train.batch_size": (batch, Cite(config, f"config.batch_size = {batch}")),
        "train.lr": (lr, Cite(config, f"config.learning_rate = {lr:g}")),
        "train.schedule": ("cosine" if image_task else "rsqrt", schedule_cite),
        "train.warmup_steps": (warmup, warmup_cite),
        "train.steps": (steps, steps_cite),
        "train.weight_decay": (weight_decay, Cite(config, f"config.weight_decay = {weight_decay:g}")),
        "train.beta1": (0.9, Cite(train_file, adam, note=adam_note)),
        "train.beta2": (0.98, Cite(train_file, adam)),
        "train.eps": (1e-9, Cite(train_file, adam)),
        "train.grad_clip": (grad_clip, clip_cite),
        "train.eval_every": (eval_every, eval_cite),
        "train.eval_examples": (0, _LRA_EVAL[task]),
        "train.report_checkpoint": ("last", report_cite),
        "train.amp": (
            "none",
            Cite(
                LRA_TRANSFORMER,
                "use_bfloat16=False: float32 throughout",
                note="on TPUs, JAX's default precision runs float32 matmuls in one bfloat16 pass",
            ),
        ),
        "data.source": ("auto", _AUTO_SOURCE),
        "data.seq_len": (_LRA_SEQ_LEN[task][0], Cite(_LRA_SEQ_LEN[task][1], _LRA_SEQ_LEN[task][2])),
        "data.generator": ("lra", _GENERATOR if task in ("listops", "pathfinder", "pathx") else _NO_EFFECT),
        "data.gen_seed": (0, _GEN_SEED if task in ("listops", "pathfinder", "pathx") else _NO_EFFECT),
        "data.hf_repo": ("", _HF_REPO if task in ("text", "retrieval", "image") else _NO_EFFECT),
        "data.difficulty": (
            "hard",
            Cite(
                LRA_PATHFINDER_BUILDER,
                "split 'hard' = curv_contour_length_14",
                note="the benchmark's split (google-research/long-range-arena#11)",
            )
            if task in ("pathfinder", "pathx")
            else _NO_EFFECT,
        ),
        "data.split_order": (
            "tfds" if task in ("pathfinder", "pathx") else "batch",
            Cite(
                LRA_IMAGE_PIPELINE,
                "builder.as_dataset(split=f'{split}[:80%]'), '[80%:90%]', '[90%:]' of a TFDS Beam build, which "
                "stores a split sorted by the md5 hash of each example's key (data/pathfinder.py's keys)",
                note="reimplemented from TFDS 4's writer; not checked against a TFDS build of the archive",
            )
            if task in ("pathfinder", "pathx")
            else _NO_EFFECT,
        ),
    }
    pixel_rows: dict[str, Provenance] = {
        "image": Cite(
            LRA_IMAGE_PIPELINE,
            "raw intensities as ids (normalize=False for transformers); TransformerEncoder masks inputs > 0",
            note="LRA's CLS takes the first pixel's mask; here the CLS vector is always attended",
        ),
        "pathfinder": Ours(
            "LRA masks black pixels as keys, and Flax makes a masked query attend uniformly to every position "
            "(flax/deprecated/nn/attention.py masks query rows too), outputs LRA's MEAN pooling then averages "
            "in; the zoo leaves masked queries' outputs unspecified, so every pixel is a token (intensity + 1) "
            "and the mean runs over all positions"
        ),
    }
    pixel_rows["pathx"] = pixel_rows["pathfinder"]
    fields["data.pixel_zero_is_padding"] = (task == "image", pixel_rows.get(task, _NO_EFFECT))
    for key, share, whole in (
        ("n_train", "[:80%]", "train"),
        ("n_val", "[80%:90%]", "val"),
        ("n_test", "[90%:]", "test"),
    ):
        if task in ("pathfinder", "pathx"):
            cite = Cite(LRA_IMAGE_PIPELINE, f"get_split(f'{{split}}{share}')")
        elif task == "image":
            cite = Cite(
                LRA_IMAGE_PIPELINE,
                f"cifar10 {'train[:90%]' if whole == 'train' else 'train[90%:]' if whole == 'val' else 'test'}",
            )
        else:
            cite = Cite(_LRA_PIPELINE[task], f"the whole {whole} split")
        fields[f"data.{key}"] = (0, cite)
    return fields


_LRA_PIPELINE = {
    "listops": LRA_LISTOPS_PIPELINE,
    "text": LRA_TEXT_PIPELINE,
    "retrieval": LRA_MATCHING_PIPELINE,
}


def _assemble(
    name: str, task: str, fields: dict[str, Field], description: str
) -> tuple[Preset, dict[str, Provenance]]:
    """The preset made of `fields` (bookkeeping fields at their defaults) and its provenance."""
    values: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "data": {}}
    provenance: dict[str, Provenance] = dict(_BOOKKEEPING)
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


def source_preset(name: str, task: str) -> tuple[Preset, dict[str, Provenance]]:
    """The `lra` or `pytorch` preset of `task` and the provenance of each of its fields
    ("section.field" -> Cite or Ours)."""
    if name == "lra":
        return _assemble(name, task, _lra_fields(task), "released LRA JAX config")
    if name == "pytorch":
        if task == "pathx":
            return _assemble(
                name,
                task,
                _pytorch_pathx(),
                "no PyTorch-lineage source defines Path-X: its Pathfinder-32 settings at 128x128",
            )
        return _assemble(name, task, _pytorch_fields(task), "Nystromformer LRA code (Skyformer forks it)")
    raise ValueError(f"preset {name!r} names no source; presets with sources: {', '.join(SOURCE_PRESETS)}")


SOURCE_PRESETS = ("pytorch", "lra")

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


TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")


def get_preset(task: str, name: str) -> Preset:
    """The preset `name` of `task`; ValueError listing the valid choices otherwise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}")
    if name in SOURCE_PRESETS:
        return source_preset(name, task)[0]
    return _cpu_preset(task, name)


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
    for key, value in (
        ("model.dropout", model.dropout),
        ("model.attention_dropout", model.attention_dropout),
    ):
        if not 0 <= value < 1:
            raise ValueError(f"{key} must be in [0, 1); got {value}")
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
