r"""Longformer attention (Beltagy et al., 2020), non-causal: a sliding window plus global tokens.

With w = `window` and g = `num_global` (the first g positions are global),

.. math::

    S_i = \begin{cases} \{\,j\} & i < g \\ \{\,j : |i-j| \le w\,\} \cup \{\,j : j < g\,\} & i \ge g \end{cases},
    \qquad o_i = \sum_{j \in S_i} \operatorname{softmax}_j\!\left(s\, q_i^\top k_j\right) v_j,

over valid keys only, s = d^{-1/2}; a key in both the band and the global set counts once. Global
tokens attend to every key and every token attends to them (Longformer's symmetric global
attention). One set of projections serves both (Longformer trains separate global projections; LRA's
JAX port, like this one, does not). Positions are token indices, so trailing padding leaves valid
outputs unchanged.

Cost O(N (w + g) d) time, O(N d) memory: blocks of size min(w, 64) gathering the key blocks of their
band and the global blocks, plus g dense rows (`_block_patterns.block_attention`); on CUDA, a FlexAttention block mask.

Attention dropout (`dropout_p`): on the probabilities of every query, band and global rows
alike, as LRA's JAX Longformer applies its attention dropout (block form; see `_block_patterns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _block_patterns, _flex_attention
from ._common import check_inputs
from ._dropout import check_p
from .local import band_block_size, band_blocks
from .registry import AttentionParams, register


@dataclass(frozen=True)
class LongformerParams(AttentionParams):
    # 256: a band of 513 keys, LRA's sliding_window_size = 512 (lra_benchmarks/models/longformer).
    window: int = 256
    num_global: int = 1

    def check(self) -> None:
        if self.window < 0:
            raise ValueError(f"window must be >= 0; got {self.window}")
        if self.num_global < 0:
            raise ValueError(f"num_global must be >= 0; got {self.num_global}")


@register(
    "longformer",
    LongformerParams,
    summary="sliding window |i - j| <= window plus the first num_global tokens, which attend to all",
    keys_per_query=lambda p, n: min(2 * p.window + 1 + p.num_global, n),
    padding_invariant=False,
    attention_dropout=True,
)
def longformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    window: int,
    num_global: int,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Longformer attention. q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("longformer_attention", q, k, v, key_padding_mask)
    check_p("longformer_attention", dropout_p)
    batch, _, length, _ = q.shape
    valid = _block_patterns.key_validity(key_padding_mask, batch, length, q.device)
    window = min(window, length)
    num_global = min(num_global, length)
    if _block_patterns.use_flex(q, dropout_p):

        def mask_mod(b, h, q_idx, kv_idx):
            pattern = ((q_idx - kv_idx).abs() <= window) | (kv_idx < num_global) | (q_idx < num_global)
            return pattern & valid[b, kv_idx]

        return _flex_attention.flex_attention(q, k, v, mask_mod)
    block_size = band_block_size(window)
    band, band_ok = band_blocks(length, block_size, window, q.device)
    num_blocks = band.shape[2]
    global_blocks = -(-num_global // block_size)
    ids = torch.arange(global_blocks, device=q.device).expand(1, 1, num_blocks, global_blocks)
    # A global block already in the band is gathered once (its band slot stays).
    duplicate = (ids[..., :, None] == band[..., None, :]) & band_ok[..., None, :]
    key_blocks = torch.cat([band, ids], dim=-1)
    block_ok = torch.cat([band_ok, ~duplicate.any(dim=-1)], dim=-1)
    key_slots, slots = _block_patterns.block_slots(
        block_size,
        key_blocks,
        block_ok,
        allowed=lambda qp, kp: ((qp - kp).abs() <= window) | (kp < num_global),
    )
    return _block_patterns.block_attention(
        q,
        k,
        v,
        valid,
        block_size=block_size,
        key_slots=key_slots,
        slots=slots,
        dense_rows=num_global,
        dropout_p=dropout_p,
    )
