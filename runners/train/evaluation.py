"""Batches and scoring: a split's examples as model inputs (`batch_inputs`) and a model scored on a
split with what it predicted for every example (`predict`), the examples shared across DDP ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn

from lra.data.cache import subset_indices
from lra.tasks.base import LRADataset

from .distributed import Dist
from .step import Autocast


def trim_padding_columns(tokens: torch.Tensor) -> torch.Tensor:
    """Drop trailing columns that are padding in every row: exact for every mechanism (trailing
    padding never changes valid outputs) and much faster for short sequences in a long frame."""
    used = (tokens != 0).any(dim=0).nonzero()
    return tokens[:, : int(used.max()) + 1] if used.numel() else tokens[:, :1]


def batch_inputs(ds: LRADataset, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The model inputs of examples `index` (trailing all-padding columns dropped), on `device`."""
    out = [trim_padding_columns(ds.inputs[index].long())]
    if ds.inputs2 is not None:
        out.append(trim_padding_columns(ds.inputs2[index].long()))
    return tuple(t.to(device, non_blocking=True) for t in out)


def evaluated_indices(n: int, limit: int = 0) -> torch.Tensor:
    """The examples of a split of `n` that `evaluate` scores with `limit` (all ranks together)."""
    return torch.as_tensor(np.arange(n)[subset_indices(n, limit)])


@dataclass(frozen=True)
class Evaluation:
    """A model scored on a split: accuracy and mean loss, and what it predicted for each example.

    Attributes:
        accuracy, loss: over the evaluated examples (all ranks together).
        index: [n] the evaluated examples' positions in the split (`evaluated_indices`).
        predicted: [n] the predicted class of each (argmax of the logits), in `index` order.
    """

    accuracy: float
    loss: float
    index: np.ndarray
    predicted: np.ndarray


@torch.no_grad()
def predict(
    model: nn.Module,
    ds: LRADataset,
    batch_size: int,
    device: torch.device,
    dist: Dist,
    autocast: Autocast,
    limit: int = 0,
) -> Evaluation:
    """Score the split (or `limit` of its examples: the fixed random subset of
    `lra.data.cache.subset_indices`, as capped splits are) with the examples shared across ranks;
    every rank returns the whole split's accuracy, loss and predictions."""
    was_training = model.training
    model.eval()
    everything = evaluated_indices(len(ds), limit)
    index = everything[dist.rank :: dist.world]
    correct = loss_sum = 0.0
    predicted: list[torch.Tensor] = []
    for start in range(0, len(index), batch_size):
        idx = index[start : start + batch_size]
        labels = ds.labels[idx].to(device)
        with autocast():
            logits = model(*batch_inputs(ds, idx, device)).float()
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        classes = logits.argmax(-1)
        correct += float((classes == labels).sum())
        predicted.append(classes.cpu())
    correct, loss_sum, count = dist.sum([correct, loss_sum, float(len(index))])
    mine = torch.cat(predicted).numpy() if predicted else np.zeros(0, dtype=np.int64)
    if dist.world > 1:  # every rank scored every world-th example: put them back in order
        parts: list[Any] = [None] * dist.world
        torch_dist.all_gather_object(parts, mine)
        ordered = np.zeros(len(everything), dtype=np.int64)
        for rank, part in enumerate(parts):
            ordered[rank :: dist.world] = part
        mine = ordered
    model.train(was_training)
    return Evaluation(
        accuracy=correct / max(count, 1.0),
        loss=loss_sum / max(count, 1.0),
        index=everything.numpy(),
        predicted=mine.astype(np.int64),
    )


def evaluate(
    model: nn.Module,
    ds: LRADataset,
    batch_size: int,
    device: torch.device,
    dist: Dist,
    autocast: Autocast,
    limit: int = 0,
) -> tuple[float, float]:
    """(accuracy, mean loss) of `predict`."""
    scored = predict(model, ds, batch_size, device, dist, autocast, limit)
    return scored.accuracy, scored.loss
