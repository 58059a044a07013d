"""The optimizer, the learning-rate schedule and the order of the training examples: pure functions
of the preset, the step and the seed, so that a checkpoint's step restores them exactly."""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.presets import TrainConfig

from .distributed import Dist


def make_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the preset's betas, eps and (decoupled) weight decay on every parameter."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=train.lr,
        betas=(train.beta1, train.beta2),
        eps=train.eps,
        weight_decay=train.weight_decay,
    )


def lr_multiplier(train: TrainConfig, step: int) -> float:
    """Learning-rate factor for optimizer step `step` (1-based) under the preset's schedule
    ("onecycle" is torch's scheduler object, `make_scheduler`)."""
    warmup, total = train.warmup_steps, train.steps
    if train.schedule == "onecycle":
        raise ValueError("the onecycle schedule is torch's OneCycleLR (make_scheduler), not a multiplier")
    if train.schedule in ("rsqrt", "cosine"):
        # LRA's create_learning_rate_scheduler, evaluated at the updates done before this one.
        done = step - 1
        factor = min(1.0, done / warmup) if warmup else 1.0
        if train.schedule == "rsqrt":
            return factor / math.sqrt(max(done, warmup, 1))
        progress = max(0.0, (done - warmup) / total)  # LRA's steps_per_cycle = its step count
        return factor * 0.5 * (1.0 + math.cos(math.pi * (progress % 1.0)))
    if warmup and step < warmup:
        return step / warmup
    if train.schedule == "constant":
        return 1.0
    # Decay towards 0 at step total + 1, so that the last of the `total` steps still learns.
    progress = (step - warmup) / (total - warmup + 1)
    progress = min(max(progress, 0.0), 1.0)
    return 1.0 - progress  # linear decay to 0


def make_scheduler(
    optimizer: torch.optim.Optimizer, train: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """torch's `OneCycleLR` for the "onecycle" schedule, None for the others (`lr_multiplier`).

    The arguments are the PyTorch lineage's (mlpen/Nystromformer LRA/code/run_tasks.py, also
    pkuzengqi/Skyformer src/main.py): max_lr = lr, total_steps = steps, pct_start = warmup / steps,
    linear annealing, torch's defaults otherwise (initial lr = lr / 25, final lr = lr / 25e4, beta1
    cycled from 0.95 down to 0.85 at the peak and back). It is stepped once per optimizer step. The
    warmup is capped at steps - 1 so that a shortened run (`--max-steps` below the warmup) works.
    """
    if train.schedule != "onecycle":
        return None
    warmup = min(train.warmup_steps, train.steps - 1)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=train.lr,
        total_steps=train.steps,
        pct_start=warmup / train.steps,
        anneal_strategy="linear",
    )


class BatchOrder:
    """Deterministic example order: epoch e is a permutation drawn from (seed, e), split across DDP
    ranks; the position is (epoch, step within epoch), which is all a checkpoint needs."""

    def __init__(self, num_examples: int, local_batch: int, seed: int, dist: Dist) -> None:
        self.num_examples, self.local_batch, self.seed, self.dist = num_examples, local_batch, seed, dist
        self.steps_per_epoch = (num_examples // dist.world) // local_batch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"train.batch_size ({local_batch * dist.world}) exceeds the {num_examples} training examples; "
                "lower train.batch_size or use more data"
            )
        self._epoch = -1
        self._indices = torch.zeros(0, dtype=torch.long)

    def batch(self, epoch: int, offset: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.num_examples, generator=gen)
            self._indices = perm[self.dist.rank :: self.dist.world]
            self._epoch = epoch
        return self._indices[offset * self.local_batch : (offset + 1) * self.local_batch]
