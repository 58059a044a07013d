r"""Sparse Sinkhorn attention (Tay et al., 2020), non-causal, as in LRA: own block + a learned sorted block.

Positions are cut into blocks of b = `block_size`. Block i is summarised by the sum of its valid keys,
e_i = \sum_{t \in I_i} k_t, and a learned sorting network (W: d x n_max, c: n_max, shared by the heads
as in LRA) scores the valid blocks, Z_{ij} = e_i^\top W_{:j} + c_j. The sorting matrix P is the row
softmax of Z over the valid blocks when `sinkhorn_iters` = 0 (what LRA ran), otherwise
`sinkhorn_iters` rounds of row then column normalisation in the log domain (Sinkhorn's algorithm,
a relaxed permutation). Block i's sorted partner block mixes the blocks by P, slot by slot,

.. math::

    \tilde k_{i,t} = \sum_j P_{ij}\, k_{j,t}, \qquad \tilde v_{i,t} = \sum_j P_{ij}\, v_{j,t}
    \quad (\text{padded keys count as zero}),

and a query n of block i takes one softmax over its own block's valid keys and the partner's slots
(a slot is valid when some valid block has a valid key there):

.. math::

    o_n = \operatorname{softmax}\!\left(s\, q_n^\top [K_{I_i} ; \tilde K_i]^\top\right) [V_{I_i} ; \tilde V_i],
    \qquad s = d^{-1/2}.

Positions are token indices, so trailing padding leaves valid outputs unchanged. The layer owns
W (n_max = ceil(max_length / b) columns) and c. LRA's JAX code instead adds two separately normalised
attentions (own block, sorted block), reshapes blocks in a strided layout, and its einsum for the
sorted keys contracts the block index of the keys and of P separately, so every query block sees
the sum of all blocks.

Half-precision inputs are computed in fp32 (block key sums, sorting scores, logits and softmax);
the output has the input's dtype. Cost O(N b d + (N / b)^2 b d) time, O(N b) memory.

Attention dropout (`dropout_p`): on the probabilities of each query's softmax over its own and its
partner block, as LRA's JAX code applies its attention dropout to both of its block attentions
(never on the sorting matrix P).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._common import at_least_fp32, check_inputs, no_autocast
from ._dropout import check_p, drop
from .registry import AttentionParams, register


@dataclass(frozen=True)
class SinkhornParams(AttentionParams):
    # LRA's SinkhornAttention: block_size 50, plain softmax sorting
    # (lra_benchmarks/models/sinkhorn_transformer).
    block_size: int = 50
    sinkhorn_iters: int = 0

    def check(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1; got {self.block_size}")
        if self.sinkhorn_iters < 0:
            raise ValueError(f"sinkhorn_iters must be >= 0; got {self.sinkhorn_iters}")


def _sorting_network(
    params: SinkhornParams, num_heads: int, head_dim: int, max_length: int
) -> dict[str, torch.Tensor]:
    if max_length < 1:
        raise ValueError(
            "sinkhorn's sorting network scores up to max_length / block_size blocks: build the layer with "
            "max_length = the longest sequence (the task models do)"
        )
    max_blocks = -(-max_length // params.block_size)
    # LeCun normal weights and zero bias, LRA's Dense defaults.
    return {
        "sort_weight": torch.randn(head_dim, max_blocks) * head_dim**-0.5,
        "sort_bias": torch.zeros(max_blocks),
    }


def _masked_lse(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """log-sum-exp of x over the entries where `mask` holds (0 for an empty slice), with no inf anywhere
    so that the gradients of masked entries are exactly zero rather than NaN."""
    peak = x.masked_fill(~mask, float("-inf")).amax(dim=dim, keepdim=True).detach()
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = ((x - peak).masked_fill(~mask, 0.0).exp() * mask).sum(dim=dim, keepdim=True)
    return peak + torch.where(total > 0, total, torch.ones_like(total)).log()


def sorting_matrix(scores: torch.Tensor, block_valid: torch.Tensor, iters: int) -> torch.Tensor:
    """P [B, H, nb, nb] from scores Z over the valid blocks (block_valid [B, nb]); zero elsewhere."""
    pair = (block_valid[:, None, :, None] & block_valid[:, None, None, :]).expand_as(scores)
    log_alpha = scores.masked_fill(~pair, 0.0)
    log_alpha = log_alpha - _masked_lse(log_alpha, pair, -1)
    for step in range(iters):
        if step > 0:
            log_alpha = log_alpha - _masked_lse(log_alpha, pair, -1)
        log_alpha = log_alpha - _masked_lse(log_alpha, pair, -2)
    return log_alpha.masked_fill(~pair, 0.0).exp() * pair


@register(
    "sinkhorn",
    SinkhornParams,
    summary="Sinkhorn: own block + a learned soft-sorted partner block (sorting net on block key sums)",
    keys_per_query=lambda p, n: min(2 * p.block_size, n),
    runtime_inputs=("sort_weight", "sort_bias"),
    module_parameters=_sorting_network,
    padding_invariant=False,
    attention_dropout=True,
)
def sinkhorn_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    block_size: int,
    sinkhorn_iters: int,
    sort_weight: torch.Tensor | None = None,
    sort_bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Sparse Sinkhorn attention. q, k, v: [B, H, N, d]; mask [B, N], True = real; `dropout_p`: dropout
    on the attention probabilities.
    `sort_weight` [d, n_max] and `sort_bias` [n_max] are the sorting network, n_max >= ceil(N / block_size)."""
    check_inputs("sinkhorn_attention", q, k, v, key_padding_mask)
    check_p("sinkhorn_attention", dropout_p)
    batch, heads, length, dim = q.shape
    num_blocks = -(-length // block_size)
    if sort_weight is None or sort_bias is None:
        raise ValueError(
            "sinkhorn_attention needs `sort_weight` [d, n_max] and `sort_bias` [n_max] (the layer's)"
        )
    if sort_weight.dim() != 2 or sort_weight.shape[0] != dim or sort_bias.shape != sort_weight.shape[1:]:
        raise ValueError(
            f"sinkhorn_attention: sort_weight must be [d={dim}, n_max] and sort_bias [n_max]; got "
            f"{tuple(sort_weight.shape)}, {tuple(sort_bias.shape)}"
        )
    if sort_weight.shape[1] < num_blocks:
        raise ValueError(
            f"sinkhorn_attention: the sorting network scores {sort_weight.shape[1]} blocks, N = {length} needs "
            f"{num_blocks}; build the layer with max_length >= {length}"
        )
    work = at_least_fp32(q)
    with no_autocast(q):
        out = _sinkhorn(
            q.to(work),
            k.to(work),
            v.to(work),
            key_padding_mask,
            block_size,
            sinkhorn_iters,
            sort_weight,
            sort_bias,
            dropout_p,
        )
    return out.to(q.dtype)


def _sinkhorn(
    q, k, v, key_padding_mask, block_size, sinkhorn_iters, sort_weight, sort_bias, dropout_p
) -> torch.Tensor:
    batch, heads, length, dim = q.shape
    num_blocks = -(-length // block_size)
    padded = num_blocks * block_size
    valid = (
        torch.ones(batch, length, dtype=torch.bool, device=q.device)
        if key_padding_mask is None
        else key_padding_mask
    )
    valid_blocks = F.pad(valid, (0, padded - length), value=False).view(batch, num_blocks, block_size)
    shape = (batch, heads, num_blocks, block_size, dim)
    keep = valid_blocks[:, None, :, :, None].to(q.dtype)
    q_blocks = F.pad(q, (0, 0, 0, padded - length)).view(shape)
    k_blocks = F.pad(k, (0, 0, 0, padded - length)).view(shape) * keep  # padded keys are zero
    v_blocks = F.pad(v, (0, 0, 0, padded - length)).view(shape) * keep
    block_valid = valid_blocks.any(dim=-1)  # [B, nb]
    summary = k_blocks.sum(dim=3)  # [B, H, nb, d]
    scores = summary @ sort_weight[:, :num_blocks].to(q.dtype) + sort_bias[:num_blocks].to(q.dtype)
    sort = sorting_matrix(scores, block_valid, sinkhorn_iters)  # [B, H, nb, nb]
    partner_k = torch.einsum("bhij,bhjtd->bhitd", sort, k_blocks)
    partner_v = torch.einsum("bhij,bhjtd->bhitd", sort, v_blocks)
    slot_valid = (valid_blocks & block_valid[:, :, None]).any(dim=1)  # [B, b]
    keys = torch.cat([k_blocks, partner_k], dim=3)  # [B, H, nb, 2b, d]
    values = torch.cat([v_blocks, partner_v], dim=3)
    allowed = torch.cat([valid_blocks, slot_valid[:, None, :].expand(-1, num_blocks, -1)], dim=-1)
    allowed = allowed[:, None, :, None, :]  # [B, 1, nb, 1, 2b]
    logits = torch.matmul(q_blocks * dim**-0.5, keys.transpose(-1, -2))  # scaled first: no overflow
    probs = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
    out = torch.matmul(drop(probs, dropout_p), values)
    return out.reshape(batch, heads, padded, dim)[:, :, :length]
