r"""Sparse Transformer attention (Child et al., 2019), "fixed" pattern, non-causal.

With l = `block_size` and c = `num_summary`, query i attends to its own block and to every block's
last c positions (the "summary" keys):

.. math::

    S_i = \{\,j : \lfloor j / l \rfloor = \lfloor i / l \rfloor\,\} \cup \{\,j : j \bmod l \ge l - c\,\},
    \qquad o_i = \sum_{j \in S_i} \operatorname{softmax}_j\!\left(s\, q_i^\top k_j\right) v_j,

over valid keys only, s = d^{-1/2}; a summary key of the own block counts once. The two sets are the
paper's A(1) and A(2), merged into one head as LRA does. LRA's JAX masks differ in two ways: they are
lower-triangular (causal) although the LRA models are encoders, and A(2) also holds each block's
first position. Positions are token indices, so trailing padding leaves valid outputs unchanged.

Cost O(N (l + N c / l) d) time, O(N d) memory: each query block gathers its own block and the
summary keys (`_block_patterns.block_attention`); on CUDA, a FlexAttention block mask.

Attention dropout (`dropout_p`): on the probabilities over each query's pattern, as LRA's JAX
Sparse Transformer applies its attention dropout (block form; see `_block_patterns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _block_patterns, _flex_attention
from ._common import check_inputs
from ._dropout import check_p
from .registry import AttentionParams, register


@dataclass(frozen=True)
class SparseParams(AttentionParams):
    # LRA's Fixed1Pattern(block_size=128) + Fixed2Pattern(block_size=128, c=32)
    # (lra_benchmarks/models/sparse_transformer/sparse_transformer.py).
    block_size: int = 128
    num_summary: int = 32

    def check(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1; got {self.block_size}")
        if not 0 <= self.num_summary <= self.block_size:
            raise ValueError(
                f"num_summary must be in [0, block_size={self.block_size}]; got {self.num_summary}"
            )


def _keys_per_query(p: SparseParams, n: int) -> int:
    summary = (n // p.block_size) * p.num_summary + max(0, n % p.block_size - (p.block_size - p.num_summary))
    return min(n, p.block_size + summary - p.num_summary)


@register(
    "sparse",
    SparseParams,
    summary="Sparse Transformer fixed pattern: own block + the last num_summary positions of every block",
    keys_per_query=_keys_per_query,
    padding_invariant=False,
    attention_dropout=True,
)
def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    block_size: int,
    num_summary: int,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Sparse Transformer (fixed, non-causal). q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("sparse_attention", q, k, v, key_padding_mask)
    check_p("sparse_attention", dropout_p)
    batch, heads, length, _ = q.shape
    valid = _block_patterns.key_validity(key_padding_mask, batch, length, q.device)
    first_summary = block_size - num_summary
    if _block_patterns.use_flex(q, dropout_p):

        def mask_mod(b, h, q_idx, kv_idx):
            pattern = (q_idx // block_size == kv_idx // block_size) | (kv_idx % block_size >= first_summary)
            return pattern & valid[b, kv_idx]

        return _flex_attention.flex_attention(q, k, v, mask_mod)
    positions = torch.arange(length, device=q.device)
    summary = positions[positions % block_size >= first_summary]  # [S], the same for every query
    offsets = torch.arange(block_size, device=q.device)

    def key_slots(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        own = torch.arange(start, stop, device=q.device)[:, None] * block_size + offsets  # [C, bs]
        index = torch.cat([own, summary.expand(stop - start, -1)], dim=1)
        # An own-block summary key is read from the summary slots only (each key counts once).
        ok = torch.cat(
            [own % block_size < first_summary, torch.ones_like(index[:, block_size:], dtype=torch.bool)], 1
        )
        return index[None, None], ok[None, None, :, None, :]

    return _block_patterns.block_attention(
        q,
        k,
        v,
        valid,
        block_size=block_size,
        key_slots=key_slots,
        slots=block_size + summary.numel(),
        dropout_p=dropout_p,
    )
