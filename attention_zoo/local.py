r"""Local (sliding-window) attention: each query attends to the keys within `window` positions.

.. math::

    o_i = \sum_{j:\,|i-j| \le w} \operatorname{softmax}_j\!\left(s\, q_i^\top k_j\right) v_j,
    \qquad s = d^{-1/2},

over valid keys only: a band of 2w + 1 keys (fewer at the ends). A window >= N is full attention.
Positions are token indices, so trailing padding leaves valid outputs unchanged.

LRA's "Local Attention" row used a different pattern: non-overlapping blocks of 50 tokens, each
attending only to itself (and its JAX code reshapes tokens into a strided rather than a contiguous
layout); this mechanism is the overlapping band that the later literature calls local attention.

Cost O(N w d) time and O(N d) memory: blocks of size min(w, 64), each query block gathering the key
blocks its band touches (`_block_patterns.block_attention`); on CUDA, a FlexAttention block mask.

Attention dropout (`dropout_p`): on the probabilities over each query's band, as LRA's JAX local
attention applies its attention dropout (block form; see `_block_patterns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _block_patterns, _flex_attention
from ._common import check_inputs
from ._dropout import check_p
from .registry import AttentionParams, register


@dataclass(frozen=True)
class LocalParams(AttentionParams):
    # 25: a band of 51 keys, the per-query budget of LRA's Local row (blocks of 50,
    # lra_benchmarks/models/local/local.py).
    window: int = 25

    def check(self) -> None:
        if self.window < 0:
            raise ValueError(f"window must be >= 0; got {self.window}")


def band_block_size(window: int) -> int:
    """Blocks of at most 64 positions: a window of w then gathers about 2 w + 64 keys, not 3 w."""
    return max(1, min(window, 64))


def band_blocks(
    length: int, block_size: int, window: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The key blocks holding the band |i - j| <= window of every query block: ids [1, 1, nb, T] and
    ok (inside the sequence), T = 2 ceil(window / block_size) + 1."""
    num_blocks = -(-length // block_size)
    span = -(-window // block_size)
    ids = torch.arange(num_blocks, device=device)[:, None] + torch.arange(-span, span + 1, device=device)
    ok = (ids >= 0) & (ids < num_blocks)
    return ids.clamp(0, num_blocks - 1)[None, None], ok[None, None]


@register(
    "local",
    LocalParams,
    summary="sliding window: each query attends to the keys with |i - j| <= window",
    keys_per_query=lambda p, n: min(2 * p.window + 1, n),
    padding_invariant=False,
    attention_dropout=True,
)
def local_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    window: int,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Sliding-window attention. q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("local_attention", q, k, v, key_padding_mask)
    check_p("local_attention", dropout_p)
    batch, _, length, _ = q.shape
    valid = _block_patterns.key_validity(key_padding_mask, batch, length, q.device)
    window = min(window, length)
    if _block_patterns.use_flex(q, dropout_p):

        def mask_mod(b, h, q_idx, kv_idx):
            return ((q_idx - kv_idx).abs() <= window) & valid[b, kv_idx]

        return _flex_attention.flex_attention(q, k, v, mask_mod)
    block_size = band_block_size(window)
    key_blocks, block_ok = band_blocks(length, block_size, window, q.device)
    key_slots, slots = _block_patterns.block_slots(
        block_size, key_blocks, block_ok, allowed=lambda qp, kp: (qp - kp).abs() <= window
    )
    return _block_patterns.block_attention(
        q, k, v, valid, block_size=block_size, key_slots=key_slots, slots=slots, dropout_p=dropout_p
    )
