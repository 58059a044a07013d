"""The CPU presets: `quick` (CPU minutes on generated data, the suite's `--preset quick`: ListOps
`short` and Pathfinder `quick` are learned above chance) and `tiny` (the smallest sensible run, for
smoke tests and `lra run` without arguments).

Each task has one entry in `CPU_TASKS`: its model, schedule and data settings for `quick`; `tiny`
shrinks the model and the schedule and takes the entry's `tiny_data` on top. A task without an
entry has no CPU presets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..tasks.base import DataConfig
from .schema import ModelConfig, Preset, TrainConfig

CPU_PRESETS = ("tiny", "quick")

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
CPU_TRAIN = TrainConfig(batch_size=32, lr=2e-3, warmup_steps=30, steps=250, eval_every=50, amp="none")
CPU_MODEL = ModelConfig(
    dim=64, layers=2, heads=2, mlp_dim=128, dropout=0.0, pos_emb="learned", pooling="mean"
)
# Pixel tasks: one layer with learned positions over the stroke pixels only (black pixels are
# padding, LRA's legacy convention); Pathfinder and Path-X train on 48 images a step. On Pathfinder
# `quick` (two-paddle snakes, three pixel values, no global pixel statistic giving the label away),
# seed 0 at 250 steps: full attention 56% test accuracy with 32 images a step and 76% with 64; with
# 48, agent, mita, mita_route, linear, performer, cosformer and skyformer 65-79%. At lr 6e-3 and 32
# images a step, six of the 19 attentions stay at chance. Sinusoidal positions stay at chance, and
# so did antialiased three-paddle snakes at every CPU budget tried (up to 1,200 steps, two layers).
PIXEL_MODEL = replace(CPU_MODEL, layers=1, pos_emb="learned")
PIXEL_TRAIN = replace(CPU_TRAIN, lr=3e-3)
PATHFINDER_TRAIN = replace(PIXEL_TRAIN, batch_size=48)


@dataclass(frozen=True)
class CpuTask:
    """A task's settings for the CPU presets.

    Attributes:
        model, train: the `quick` model and schedule (`tiny` shrinks both).
        data: `DataConfig` fields of both presets besides the split sizes.
        tiny_data: `DataConfig` fields that `tiny` sets differently.
        in_default_suite: `lra suite --preset tiny|quick` runs the task when no `--tasks` are given
            (the tasks whose data are generated offline at a CPU-sized length).
    """

    model: ModelConfig = CPU_MODEL
    train: TrainConfig = CPU_TRAIN
    data: Mapping[str, Any] = field(default_factory=dict)
    tiny_data: Mapping[str, Any] = field(default_factory=dict)
    in_default_suite: bool = False


# Pixel ids of the generated pixel tasks: black pixels are padding (LRA's legacy convention).
_GENERATED_PIXELS = {"source": "generated", "pixel_zero_is_padding": True}

CPU_TASKS: dict[str, CpuTask] = {
    "listops": CpuTask(data={"source": "generated", "generator": "short"}, in_default_suite=True),
    "text": CpuTask(data={"seq_len": 512}, tiny_data={"seq_len": 256}),  # real data, shortened
    "retrieval": CpuTask(data={"seq_len": 512}, tiny_data={"seq_len": 256}),
    "image": CpuTask(PIXEL_MODEL, PIXEL_TRAIN),
    "pathfinder": CpuTask(
        PIXEL_MODEL, PATHFINDER_TRAIN, {**_GENERATED_PIXELS, "generator": "quick"}, in_default_suite=True
    ),
    "pathx": CpuTask(PIXEL_MODEL, PATHFINDER_TRAIN, {**_GENERATED_PIXELS, "generator": "easy"}),
}


def cpu_preset(task: str, name: str) -> Preset:
    """`quick` or `tiny` of `task` (its `CPU_TASKS` entry); KeyError when the task has none."""
    entry = CPU_TASKS[task]
    quick = name == "quick"
    # Validation only picks the checkpoint; 500 test examples keep chance + 2 binomial standard errors
    # (the leaderboard's FAIL line) at 16.7% for ListOps and 54.5% for Pathfinder.
    sizes = (
        {"n_train": 4000, "n_val": 250, "n_test": 500}
        if quick
        else {"n_train": 2000, "n_val": 200, "n_test": 200}
    )
    model, train = entry.model, entry.train
    data = DataConfig(**{**entry.data, **({} if quick else entry.tiny_data), **sizes})
    if not quick:
        model = replace(model, dim=32, layers=1, mlp_dim=64)
        train = replace(train, steps=150, eval_every=50)
    description = "CPU minutes on generated data" if quick else "smallest sensible run (smoke tests)"
    return Preset(name, task, model, train, data, description, attention=CPU_BUDGET)
