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

Backends (`backend`), all exact and selecting the same blocks (the same fp32 gate and `torch.topk`
per query, so ties resolve alike):

* ``reference``: the readable form; autograd keeps each query's gathered keys, O(N k_b block_size d).
* ``torch``: the gate keeps only each query's int32 block ids; `_selected_keys.SelectedAttention` attends
  over the blocks in chunks and gathers them again in the backward, O(N k_b) memory beyond the
  inputs and outputs.
* ``flex``: `torch.nn.attention.flex_attention` whose mask reads the per-query block ids, with a
  block mask that skips the (128-query, 128-key) tiles no query of the tile selected; CUDA (on CPU
  only without gradients, in eager mode).
* ``auto``: flex on CUDA, else torch.

Attention dropout (`dropout_p`, training only): on the probabilities over each query's selected
keys. The reference and torch paths apply it; FlexAttention has no dropout, so `flex` (and `auto`
on CUDA) runs the torch path when `dropout_p > 0`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from . import _flex_attention
from ._common import check_inputs, selection_dtype
from ._dropout import check_p
from ._flex_attention import resolve_backend
from ._selected_keys import attend_selected, attend_slots, chunks
from .registry import AttentionParams, register

Backend = Literal["auto", "torch", "flex", "reference"]


@dataclass(frozen=True)
class MobaParams(AttentionParams):
    block_size: int = 16
    topk_blocks: int = 4
    backend: Backend = "auto"

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
    attention_dropout=True,
)
def moba_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    block_size: int,
    topk_blocks: int,
    backend: Backend = "auto",
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Non-causal MoBA. q, k, v: [B, H, N, d]; mask [B, N], True = real; `dropout_p`: dropout on the
    attention probabilities (flex then runs the torch path)."""
    check_inputs("moba_attention", q, k, v, key_padding_mask)
    check_p("moba_attention", dropout_p)
    # FlexAttention has no dropout
    path = resolve_backend(
        "moba_attention",
        "torch" if backend == "flex" and dropout_p > 0 else backend,
        (q, k, v),
        auto_on_cuda="torch" if dropout_p > 0 else "flex",
    )
    if path == "reference":
        return moba_reference(q, k, v, key_padding_mask, block_size, topk_blocks, dropout_p)
    blocks, valid_padded = moba_blocks(q, k, key_padding_mask, block_size, topk_blocks)
    if path == "flex":
        return _flex_attention.attend_blocks(q, k, v, blocks, block_size, valid_padded)
    return attend_slots(
        q,
        k,
        v,
        blocks,
        q.shape[-1] ** -0.5,
        slot_size=block_size,
        key_valid=valid_padded,
        dropout_p=dropout_p,
    )


def _block_means(
    k: torch.Tensor, valid_padded: torch.Tensor, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the valid keys of each block [B, H, nb, d] (fp32 at least) and the count [B, 1, nb, 1]."""
    batch, heads, length, dim = k.shape
    num_blocks = valid_padded.shape[1] // block_size
    padded = num_blocks * block_size
    work = selection_dtype(k.dtype)
    keys = F.pad(k.to(work), (0, 0, 0, padded - length)).view(batch, heads, num_blocks, block_size, dim)
    block_valid = valid_padded.view(batch, 1, num_blocks, block_size, 1).to(work)
    counts = block_valid.sum(dim=3)
    return (keys * block_valid).sum(dim=3) / counts.clamp(min=1), counts


def _valid_padded(key_padding_mask, batch, length, padded, device) -> torch.Tensor:
    if key_padding_mask is None:
        valid = torch.ones(batch, length, dtype=torch.bool, device=device)
    else:
        valid = key_padding_mask
    return F.pad(valid, (0, padded - length), value=False)  # [B, N']


def moba_blocks(
    q: torch.Tensor, k: torch.Tensor, key_padding_mask: torch.Tensor | None, block_size: int, topk_blocks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's selected block ids, int32 [B, H, N, chosen], and the key validity padded to whole
    blocks [B, nb * block_size]. The gate is the reference's (fp32 at least), in query chunks."""
    batch, heads, length, dim = q.shape
    num_blocks = math.ceil(length / block_size)
    chosen = min(topk_blocks, num_blocks)
    valid_padded = _valid_padded(key_padding_mask, batch, length, num_blocks * block_size, q.device)
    with torch.no_grad():
        means, counts = _block_means(k.detach(), valid_padded, block_size)
        empty = (counts.view(batch, 1, num_blocks) == 0).repeat_interleave(heads, dim=0)  # [BH, 1, nb]
        means = means.view(batch * heads, num_blocks, dim)
        q3 = q.detach().reshape(batch * heads, length, dim).to(means.dtype)
        blocks = torch.empty(batch * heads, length, chosen, dtype=torch.int32, device=q.device)
        for g, n in chunks(batch * heads, length, num_blocks, q.device):
            gate = torch.matmul(q3[g, n], means[g].transpose(-1, -2)).masked_fill(empty[g], float("-inf"))
            blocks[g, n] = gate.topk(chosen, dim=-1, sorted=False).indices.to(torch.int32)
    return blocks.view(batch, heads, length, chosen), valid_padded


def moba_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    block_size: int,
    topk_blocks: int,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """The readable form: one gate over all queries, then `attend_selected` on the blocks' keys."""
    batch, heads, length, dim = q.shape
    num_blocks = math.ceil(length / block_size)
    chosen = min(topk_blocks, num_blocks)
    valid_padded = _valid_padded(key_padding_mask, batch, length, num_blocks * block_size, q.device)

    with torch.no_grad():  # the gate only selects blocks
        means, counts = _block_means(k, valid_padded, block_size)  # [B, H, nb, d], [B, 1, nb, 1]
        gate = torch.matmul(q.to(means.dtype), means.transpose(-1, -2))  # [B, H, N, nb]
        gate = gate.masked_fill(counts.squeeze(-1)[:, :, None, :] == 0, float("-inf"))
        blocks = gate.topk(chosen, dim=-1, sorted=False).indices  # [B, H, N, chosen]
        key_index = (blocks[..., None] * block_size + torch.arange(block_size, device=q.device)).flatten(-2)
        key_ok = valid_padded.gather(1, key_index.reshape(batch, -1)).view(key_index.shape)  # [B, H, N, T]
        key_index = key_index.clamp(max=length - 1)

    return attend_selected(q, k, v, key_index, key_ok, dim**-0.5, dropout_p=dropout_p)
