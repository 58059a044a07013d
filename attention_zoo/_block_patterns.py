r"""The fixed sparsity patterns' block form (local, Longformer, BigBird, Sparse Transformer), and the
choice between it and their mask form.

A pattern is a set of allowed (query, key) pairs. Each mechanism states it twice, in two exact forms:

* **block form** (CPU): positions are cut into blocks of `block_size`; query block b gathers a fixed
  number of key slots (e.g. whole key blocks, `block_slots`) and a mask keeps the exact pattern among
  them. Queries are processed a few blocks at a time (fused SDPA on the gathered keys); the backward
  recomputes each chunk and accumulates into preallocated gradients, so memory is the inputs, the
  output, their gradients and one chunk's temporaries: O(N d), no N x N tensor. Query rows listed as `dense_rows`
  (global queries) attend to every valid key through fused SDPA.
* **mask form**: `mask_mod(b, h, q_idx, kv_idx)` for `_flex_attention.flex_attention` with a block
  mask; compiled on CUDA (a fused block-sparse kernel), eager elsewhere (the eager form materialises
  the scores, so it serves the tests that check both forms agree).

`PATH` chooses: "auto" (flex on CUDA, blocks otherwise), "blocks" or "flex".

Padded keys are never attended. A query with no allowed key (only possible at padded positions)
attends uniformly to its gathered slots instead of producing NaN; its output is unspecified but finite.

Attention dropout (`dropout_p`): the block form drops each chunk's probabilities (and the dense
rows') with masks drawn from a generator seeded per (call, chunk) (`_dropout.MaskStream`), so the
backward's recomputation draws the same masks; with dropout a chunk is attended by an explicit
softmax in at least fp32 instead of fused SDPA. FlexAttention has no dropout: with `dropout_p > 0`
the block form runs on CUDA too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._common import at_least_fp32
from ._dropout import MaskStream

# "auto" | "blocks" | "flex"; tests force each form.
PATH = "auto"

# A chunk's scores and its gathered keys stay within this many elements each.
_CHUNK_ELEMENTS = 1 << 19

AllowedFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def key_validity(key_padding_mask: torch.Tensor | None, batch: int, length: int, device) -> torch.Tensor:
    """[B, N] bool, True = real key."""
    if key_padding_mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    return key_padding_mask


def use_flex(q: torch.Tensor, dropout_p: float = 0.0) -> bool:
    """Whether to run the mask form: `PATH`, else on CUDA; never with dropout (FlexAttention has none)."""
    if dropout_p > 0:
        return False
    if PATH == "flex":
        return True
    if PATH == "blocks":
        return False
    return q.is_cuda


KeySlots = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


def _flat_index(index: torch.Tensor, batch: int, heads: int, length: int) -> torch.Tensor:
    """Token ids [B, H, ...] in [0, length) -> row ids of the [B * H * length, d] view."""
    offsets = (torch.arange(batch * heads, device=index.device) * length).view(
        batch, heads, *([1] * (index.dim() - 2))
    )
    return (index + offsets).reshape(-1)


def _chunk_attention(
    q_rows: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    dropout: MaskStream | None = None,
    chunk: tuple[int, ...] = (),
) -> torch.Tensor:
    """Query rows [B, H, C * bs, d] against their block's gathered keys [B, H, C, K, d] under mask
    [B, H, C, bs, K]: fused SDPA, one (head, query block) per attention batch entry; with `dropout`,
    an explicit softmax whose probabilities take the mask of `chunk`."""
    batch, heads, blocks, block, slots = mask.shape
    dim = q_rows.shape[-1]
    # Rows with no allowed key (padded queries only) fall back to all their slots: finite, unspecified.
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    q_rows = q_rows.reshape(batch, heads * blocks, block, dim)
    keys = keys.reshape(batch, heads * blocks, slots, dim)
    values = values.reshape(batch, heads * blocks, slots, dim)
    mask = mask.reshape(batch, heads * blocks, block, slots)
    if dropout is None:
        out = F.scaled_dot_product_attention(q_rows, keys, values, attn_mask=mask)
    else:
        out = _dropped_attention(q_rows, keys, values, mask, dropout, chunk)
    return out.view(batch, heads, blocks * block, dim)


def _dropped_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, dropout: MaskStream, chunk
) -> torch.Tensor:
    """softmax(s q k^T, where mask) with dropout on the probabilities, then times v; in at least fp32."""
    work = at_least_fp32(q)
    logits = torch.matmul(q.to(work) * q.shape[-1] ** -0.5, k.to(work).transpose(-1, -2))
    probs = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    probs = probs * dropout.multiplier(chunk, probs.shape, work)
    return torch.matmul(probs, v.to(work)).to(q.dtype)


class _Plan:
    """The chunks of query blocks and, per chunk, the gathered key ids and the mask."""

    def __init__(
        self,
        key_slots: KeySlots,
        key_valid: torch.Tensor,
        block_size: int,
        length: int,
        dim: int,
        per_row: int,
        dense_rows: int,
        dropout: MaskStream | None = None,
    ) -> None:
        self.dropout = dropout
        self.key_slots, self.key_valid, self.block_size, self.length = (
            key_slots,
            key_valid,
            block_size,
            length,
        )
        self.dense_rows = min(dense_rows, length)
        self.num_blocks = -(-length // block_size)
        # per_row = B H K: a block's scores are block_size * per_row elements, its gathered keys dim * per_row
        per_block = max(block_size, dim) * per_row
        self.chunk = max(1, min(self.num_blocks, _CHUNK_ELEMENTS // max(1, per_block)))

    def chunks(self):
        for start in range(0, self.num_blocks, self.chunk):
            yield start, min(start + self.chunk, self.num_blocks)

    def inputs(self, start: int, stop: int, batch: int, heads: int, key_length: int):
        index, ok = self.key_slots(start, stop)  # [B|1, H|1, C, K], [B|1, H|1, C, bs|1, K]
        inside = index < key_length
        index = index.clamp(max=key_length - 1).expand(batch, heads, -1, -1)
        valid = self.key_valid.gather(1, index.reshape(batch, -1)).view(index.shape) & inside
        mask = (ok & valid[:, :, :, None, :]).expand(batch, heads, stop - start, self.block_size, -1)
        return index, mask

    def rows(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Query rows of blocks [start, stop), zero-padded to whole blocks."""
        first, last = start * self.block_size, min(stop * self.block_size, self.length)
        return F.pad(x[:, :, first:last], (0, 0, 0, (stop - start) * self.block_size - (last - first)))


def _forward_chunks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: _Plan) -> torch.Tensor:
    batch, heads, length, dim = q.shape
    out = q.new_empty(batch, heads, length, dim)
    key_length = k.shape[2]
    for start, stop in plan.chunks():
        index, mask = plan.inputs(start, stop, batch, heads, key_length)
        flat = _flat_index(index, batch, heads, key_length)
        keys = k.reshape(-1, dim).index_select(0, flat).view(*index.shape, dim)
        values = v.reshape(-1, dim).index_select(0, flat).view(*index.shape, dim)
        rows = _chunk_attention(plan.rows(q, start, stop), keys, values, mask, plan.dropout, (0, start))
        first, last = start * plan.block_size, min(stop * plan.block_size, length)
        out[:, :, first:last] = rows[:, :, : last - first]
    if plan.dense_rows:  # global queries: every valid key, fused SDPA
        out[:, :, : plan.dense_rows] = _dense_rows(q, k, v, plan)
    return out


def _dense_rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: _Plan) -> torch.Tensor:
    mask = plan.key_valid[:, None, None, :]
    if plan.dropout is not None:
        return _dropped_attention(q[:, :, : plan.dense_rows], k, v, mask, plan.dropout, (1,))
    return F.scaled_dot_product_attention(q[:, :, : plan.dense_rows], k, v, attn_mask=mask)


class _BlockSparseAttention(torch.autograd.Function):
    """Chunked attention whose backward recomputes each chunk and accumulates into preallocated
    gradients: memory is the inputs, the output, their gradients and one chunk's temporaries."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: _Plan) -> torch.Tensor:
        ctx.save_for_backward(q, k, v)
        ctx.plan = plan
        return _forward_chunks(q, k, v, plan)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v = ctx.saved_tensors
        plan: _Plan = ctx.plan
        batch, heads, length, dim = q.shape
        key_length = k.shape[2]
        grad_q, grad_k, grad_v = (torch.zeros(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v))
        for start, stop in plan.chunks():
            index, mask = plan.inputs(start, stop, batch, heads, key_length)
            flat = _flat_index(index, batch, heads, key_length)
            with torch.enable_grad():
                q_rows = plan.rows(q, start, stop).detach().requires_grad_()
                keys = k.reshape(-1, dim).index_select(0, flat).view(*index.shape, dim).requires_grad_()
                values = v.reshape(-1, dim).index_select(0, flat).view(*index.shape, dim).requires_grad_()
                rows = _chunk_attention(q_rows, keys, values, mask, plan.dropout, (0, start))
            upstream = plan.rows(grad_out, start, stop)
            first = start * plan.block_size
            if first < plan.dense_rows:  # rows the dense pass overwrote take no gradient here
                upstream = upstream.clone()
                upstream[:, :, : plan.dense_rows - first] = 0
            grads = torch.autograd.grad(rows, (q_rows, keys, values), upstream)
            first, last = start * plan.block_size, min(stop * plan.block_size, length)
            grad_q[:, :, first:last] += grads[0][:, :, : last - first]
            grad_k.view(-1, dim).index_add_(0, flat, grads[1].reshape(-1, dim))
            grad_v.view(-1, dim).index_add_(0, flat, grads[2].reshape(-1, dim))
        if plan.dense_rows:
            dense_rows = plan.dense_rows
            with torch.enable_grad():
                dense_in_q, dense_in_k, dense_in_v = (
                    t.detach().requires_grad_() for t in (q[:, :, :dense_rows], k, v)
                )
                dense = _dense_rows(dense_in_q, dense_in_k, dense_in_v, plan)
            dense_q, dense_k, dense_v = torch.autograd.grad(
                dense, (dense_in_q, dense_in_k, dense_in_v), grad_out[:, :, :dense_rows]
            )
            grad_q[:, :, :dense_rows] += dense_q
            grad_k += dense_k
            grad_v += dense_v
        return grad_q, grad_k, grad_v, None


def block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    *,
    block_size: int,
    key_slots: KeySlots,
    slots: int,
    dense_rows: int = 0,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Exact softmax attention over a block-structured pattern, without any N x N tensor.

    Args:
        q: [B, H, N, d]; k, v: [B, H, M, d] (usually M = N).
        key_valid: [B, M] bool, True = real key.
        block_size: query positions per block.
        key_slots: `key_slots(start, stop)` for query blocks [start, stop) returns the key ids each
            block gathers, [B|1, H|1, C, K] (ids >= M are empty slots), and the allowed pairs,
            bool [B|1, H|1, C, bs|1, K]; a key must not be allowed twice for one query.
        slots: K, the number of key slots per query block.
        dense_rows: the first `dense_rows` queries attend to every valid key (global queries).
        dropout_p: attention dropout on the probabilities (0 = none; see the module docstring).
    """
    batch, heads, length, dim = q.shape
    k, v = k.contiguous(), v.contiguous()  # gathered by rows of the flat [B H M, d] view
    dropout = MaskStream(dropout_p, q.device) if dropout_p > 0 else None
    plan = _Plan(key_slots, key_valid, block_size, length, dim, batch * heads * slots, dense_rows, dropout)
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        out = _BlockSparseAttention.apply(q, k, v, plan)
    else:
        out = _forward_chunks(q, k, v, plan)
    return out


def block_slots(
    block_size: int, key_blocks: torch.Tensor, block_ok: torch.Tensor, allowed: AllowedFn | None = None
) -> tuple[KeySlots, int]:
    """`key_slots` for a pattern given as key blocks: key_blocks / block_ok [B|1, H|1, nb, T] (block ids
    and the slots in use) and an element test `allowed(query_pos [C, bs, 1], key_pos [..., C, 1, T bs])`."""
    offsets = torch.arange(block_size, device=key_blocks.device)

    def key_slots(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = key_blocks[:, :, start:stop]
        index = (ids[..., None] * block_size + offsets).flatten(-2)  # [B|1, H|1, C, T bs]
        ok = block_ok[:, :, start:stop, :, None].expand(*ids.shape, block_size).flatten(-2)[:, :, :, None, :]
        if allowed is not None:
            query_pos = (torch.arange(start, stop, device=ids.device)[:, None] * block_size + offsets)[
                ..., None
            ]
            ok = ok & allowed(query_pos, index[:, :, :, None, :])
        return index, ok

    return key_slots, key_blocks.shape[-1] * block_size
