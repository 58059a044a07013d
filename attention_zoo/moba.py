r"""MoBA, mixture of block attention (Lu et al., 2025), non-causal: queries route to key blocks.

Keys are split into contiguous position blocks I_b of `block_size`; with \bar k_b the mean of the
valid keys of block b,

.. math::

    g_{nb} = q_n^\top \bar k_b \;(\text{unscaled}), \qquad
    \mathcal I_n = \bigcup_{b \in \operatorname{TopK}_{k_b}(g_n)} I_b, \qquad
    o_n = \sum_{t \in \mathcal I_n} \operatorname{softmax}_t\!\left(s\, q_n^\top k_t\right) v_t,
    \qquad s = d^{-1/2}.

Blocks are positional: blocks without a valid key get gate -inf and padded keys inside selected
blocks are masked, so trailing padding leaves valid outputs unchanged. `topk_blocks` is clamped to
the number of blocks (all blocks selected is full attention). Gate cost O(N^2 d / block_size),
attention O(N k_b block_size d); the gate is parameter-free and not differentiated through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._common import attend_selected, check_inputs, selection_dtype
from .registry import AttentionParams, register


@dataclass(frozen=True)
class MobaParams(AttentionParams):
    block_size: int = 16
    topk_blocks: int = 4

    def check(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1; got {self.block_size}")
        if self.topk_blocks < 1:
            raise ValueError(f"topk_blocks must be >= 1; got {self.topk_blocks}")


@register(
    "moba",
    MobaParams,
    summary="block routing: each query attends to its top-k key blocks by q . mean(K_block)",
    keys_per_query=lambda p, n: min(p.topk_blocks * p.block_size, n),
    padding_invariant=False,
)
def moba_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    block_size: int,
    topk_blocks: int,
) -> torch.Tensor:
    """Non-causal MoBA. q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("moba_attention", q, k, v, key_padding_mask)
    batch, heads, length, dim = q.shape
    num_blocks = math.ceil(length / block_size)
    chosen = min(topk_blocks, num_blocks)
    padded = num_blocks * block_size
    if key_padding_mask is None:
        valid = torch.ones(batch, length, dtype=torch.bool, device=q.device)
    else:
        valid = key_padding_mask
    valid_padded = F.pad(valid, (0, padded - length), value=False)  # [B, N']

    with torch.no_grad():  # the gate only selects blocks
        work = selection_dtype(k.dtype)
        keys = F.pad(k.to(work), (0, 0, 0, padded - length)).view(batch, heads, num_blocks, block_size, dim)
        block_valid = valid_padded.view(batch, 1, num_blocks, block_size, 1).to(work)
        counts = block_valid.sum(dim=3)  # [B, 1, nb, 1]
        means = (keys * block_valid).sum(dim=3) / counts.clamp(min=1)  # [B, H, nb, d]
        gate = torch.matmul(q.to(work), means.transpose(-1, -2))  # [B, H, N, nb]
        gate = gate.masked_fill(counts.squeeze(-1)[:, :, None, :] == 0, float("-inf"))
        blocks = gate.topk(chosen, dim=-1, sorted=False).indices  # [B, H, N, chosen]
        key_index = (blocks[..., None] * block_size + torch.arange(block_size, device=q.device)).flatten(-2)
        key_ok = valid_padded.gather(1, key_index.reshape(batch, -1)).view(key_index.shape)  # [B, H, N, T]
        key_index = key_index.clamp(max=length - 1)

    return attend_selected(q, k, v, key_index, key_ok, dim**-0.5)
