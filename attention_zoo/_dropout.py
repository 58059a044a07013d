"""Attention-probability dropout, for the mechanisms that form attention probabilities.

The semantics are `nn.Dropout`'s on the attention matrix, as the PyTorch LRA lineage applies it
(mlpen/Nystromformer and pkuzengqi/Skyformer, `drop_attn` after the softmax): every probability is
zeroed with probability p, independently per (batch row, head, query, key), and the others are
scaled by 1/(1 - p), so the expected output is the exact one. (LRA's JAX code draws one mask per
(query, key) shared by the batch rows and heads, Flax's broadcast dropout.) Mechanisms apply it
only when called with `dropout_p > 0`; the attention layer passes its rate in training mode only.

Masks come from torch's global RNG, so a seeded run draws the same ones and a run resumed with its
checkpointed RNG state continues the same stream:

* `drop`: `F.dropout` from the device's generator, for paths where autograd keeps the mask.
* `MaskStream`: for chunked paths whose backward recomputes each chunk (`_selected_keys.SelectedAttention`,
  `_block_patterns`): one seed drawn per call from the global CPU generator (no device
  synchronisation), and per chunk a generator seeded from (seed, chunk), so the backward draws the
  forward's masks again instead of storing them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SEED_LIMIT = 1 << 62


def check_p(name: str, dropout_p: float) -> None:
    """ValueError unless 0 <= dropout_p < 1."""
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{name}: dropout_p must be in [0, 1); got {dropout_p}")


def drop(probs: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """probs with each entry zeroed with probability dropout_p and the rest scaled by 1/(1 - dropout_p)."""
    return F.dropout(probs, dropout_p, training=True) if dropout_p > 0 else probs


class MaskStream:
    """Reproducible dropout multipliers for the chunks of one call (see the module docstring)."""

    def __init__(self, dropout_p: float, device: torch.device) -> None:
        self.dropout_p = dropout_p
        self.device = device
        self.seed = int(torch.randint(_SEED_LIMIT, (), dtype=torch.int64))  # the global CPU generator

    def multiplier(
        self, chunk: tuple[int, ...], shape: torch.Size | tuple[int, ...], dtype: torch.dtype
    ) -> torch.Tensor:
        """keep / (1 - p) for the probabilities of chunk `chunk` (the same tensor every time it is asked)."""
        seed = self.seed
        for part in chunk:
            seed = (seed * 1_000_003 + part + 1) % _SEED_LIMIT
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        keep = torch.rand(shape, generator=generator, device=self.device) >= self.dropout_p
        return keep.to(dtype) / (1.0 - self.dropout_p)
