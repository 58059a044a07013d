"""The `lra` preset: the released LRA JAX code (google-research/long-range-arena: `*/configs/*.py`,
the train scripts and the Flax models), every field with its provenance: per-task sizes, lengths,
batch, Adam + LRA's rsqrt / cosine schedules, steps, dropout and attention dropout, Flax's
initialisers, LayerNorm epsilon and GELU, CLS pooling (Retrieval: its dual encoder's first-token
pooling and concatenating head), float32, the last checkpoint tested.
"""

from __future__ import annotations

from ..sources import (
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
    Cite,
    Ours,
    Provenance,
)
from .fields import AUTO_SOURCE, NO_EFFECT, Field, assemble, gen_seed_note, generator_note, hf_repo_note
from .schema import Preset

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
_LRA_EVAL: dict[str, Provenance] = {
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


def lra_fields(task: str) -> dict[str, Field]:
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
        "model.padded_length": (0, NO_EFFECT),
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
            else NO_EFFECT,
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
        "data.source": ("auto", AUTO_SOURCE),
        "data.seq_len": (_LRA_SEQ_LEN[task][0], Cite(_LRA_SEQ_LEN[task][1], _LRA_SEQ_LEN[task][2])),
        "data.generator": ("lra", generator_note(task)),
        "data.gen_seed": (0, gen_seed_note(task)),
        "data.hf_repo": ("", hf_repo_note(task)),
        "data.difficulty": (
            "hard",
            Cite(
                LRA_PATHFINDER_BUILDER,
                "split 'hard' = curv_contour_length_14",
                note="the benchmark's split (google-research/long-range-arena#11)",
            )
            if task in ("pathfinder", "pathx")
            else NO_EFFECT,
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
            else NO_EFFECT,
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
    fields["data.pixel_zero_is_padding"] = (task == "image", pixel_rows.get(task, NO_EFFECT))
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


def lra_preset(task: str) -> tuple[Preset, dict[str, Provenance]]:
    """The `lra` preset of `task` and the provenance of each of its fields; KeyError when the
    released configs have none for the task."""
    return assemble("lra", task, lra_fields(task), "released LRA JAX config")


# The tasks this preset has settings for.
LRA_TASKS = tuple(_LRA_SIZES)
