"""The `pytorch` preset: the PyTorch lineage (mlpen/Nystromformer `LRA/code`, forked by Skyformer
and xformers), every field with its provenance. One 2-layer, 64-d, 2-head model for every task,
AdamW 1e-4 under torch's OneCycleLR, mean pooling over the zero-padded frame, learned positions,
fp16 AMP with attention in fp32, attention dropout 0.1, the best-validation checkpoint tested.
Path-X, which no source of the lineage defines, takes its Pathfinder-32 settings at 128 x 128.
"""

from __future__ import annotations

from ..sources import (
    LRA_IMAGE_PIPELINE,
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
from .fields import AUTO_SOURCE, NO_EFFECT, Field, assemble, gen_seed_note, generator_note, hf_repo_note
from .schema import Preset

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
            else NO_EFFECT,
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


def pytorch_fields(task: str) -> dict[str, Field]:
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
            else NO_EFFECT,
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
        "data.source": ("auto", AUTO_SOURCE),
        "data.generator": ("lra", generator_note(task)),
        "data.gen_seed": (0, gen_seed_note(task)),
        "data.hf_repo": ("", hf_repo_note(task)),
        "data.difficulty": (
            "hard",
            Cite(NYSTROM_RUN_ALL, "--task pathfinder32-curv_contour_length_14")
            if task == "pathfinder"
            else NO_EFFECT,
        ),
        "data.split_order": (
            "tfds" if task == "pathfinder" else "batch",
            Ours(
                "the lineage cuts an unseeded random.shuffle of the folder (LRA/datasets/pathfinder.py), which no "
                "order reproduces; LRA's own split stands in for it"
            )
            if task == "pathfinder"
            else NO_EFFECT,
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


def pytorch_pathx() -> dict[str, Field]:
    """No source of the lineage defines Path-X: its Pathfinder-32 settings at 128 x 128, said so."""
    why = "no PyTorch-lineage source defines Path-X: the lineage's Pathfinder-32 value"
    fields: dict[str, Field] = {
        key: (value, Ours(why)) for key, (value, _) in pytorch_fields("pathfinder").items()
    }
    fields["data.seq_len"] = (16384, Ours("no PyTorch-lineage source defines Path-X: 128 x 128 pixels"))
    fields["model.padded_length"] = (16384, Ours("no PyTorch-lineage source defines Path-X: 16,384 pixels"))
    return fields


def pytorch_preset(task: str) -> tuple[Preset, dict[str, Provenance]]:
    """The `pytorch` preset of `task` and the provenance of each of its fields; KeyError when the
    lineage has no settings for the task."""
    if task == "pathx":  # the one task the lineage does not define
        return assemble(
            "pytorch",
            task,
            pytorch_pathx(),
            "no PyTorch-lineage source defines Path-X: its Pathfinder-32 settings at 128x128",
        )
    return assemble("pytorch", task, pytorch_fields(task), "Nystromformer LRA code (Skyformer forks it)")


# The tasks this preset has settings for.
PYTORCH_TASKS = (*_NYSTROM_TRAINING, "pathx")
