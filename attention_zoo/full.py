r"""Full softmax attention, the reference every other mechanism is measured against.

.. math::

    o_n = \sum_t \operatorname{softmax}_t\!\left(s\, q_n^\top k_t\right) v_t, \qquad s = d^{-1/2},

where t runs over the valid (unpadded) keys. Cost O(N^2 d) time; memory O(N) through PyTorch's
fused `scaled_dot_product_attention` (flash / memory-efficient / cuDNN backends where available),
which accumulates half-precision inputs in fp32.

Attention dropout (`dropout_p`): on the softmax probabilities, SDPA's own dropout (the same
semantics as `nn.Dropout` on the attention matrix, as the PyTorch LRA lineage and LRA's JAX
`dot_product_attention` apply it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._common import check_inputs
from ._dropout import check_p
from .registry import AttentionParams, register


@dataclass(frozen=True)
class FullParams(AttentionParams):
    """Full attention has no parameters."""


@register(
    "full",
    FullParams,
    summary="softmax(s q K^T) V over all keys (fused SDPA)",
    keys_per_query=lambda p, n: n,
    attention_dropout=True,
)
def full_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """softmax(d^-1/2 q K^T) V over the valid keys. q, k, v: [B, H, N, d]; mask [B, N], True = real;
    `dropout_p`: dropout on the attention probabilities."""
    check_inputs("full_attention", q, k, v, key_padding_mask)
    check_p("full_attention", dropout_p)
    attn_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
