r"""Shared machinery of the fixed sparsity patterns (local, Longformer, BigBird, Sparse Transformer).

A pattern is a set of allowed (query, key) pairs. Each mechanism states it twice, in two exact forms:

* **block form** (CPU, and CUDA without FlexAttention): positions are cut into blocks of `block_size`;
  query block b gathers a fixed list of T key blocks `key_blocks[..., b, :]` (slots with
  `block_ok = False` are unused, e.g. duplicates) and an element test `allowed(query_pos, key_pos)`
  keeps the exact pattern inside them. Queries are processed a few blocks at a time under activation
  checkpointing (fused SDPA on the gathered keys), so the temporaries are O(chunk * T * block_size)
  and nothing but the inputs and the output is kept for the backward: memory O(N d), no N x N tensor. Query rows listed as `dense_rows`
  (global queries) attend to every valid key through fused SDPA.
* **mask form**: `mask_mod(b, h, q_idx, kv_idx)` for `torch.nn.attention.flex_attention` with a block
  mask; compiled on CUDA (a fused block-sparse kernel), eager elsewhere (the eager form materialises
  the scores, so it serves the tests that check both forms agree).

`PATH` chooses: "auto" (flex on CUDA, blocks otherwise), "blocks" or "flex".

Padded keys are never attended. A query with no allowed key (only possible at padded positions)
attends uniformly to its gathered slots instead of producing NaN; its output is unspecified but finite.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# "auto" | "blocks" | "flex"; tests force each form.
PATH = "auto"

# A chunk's logits stay around this many elements.
_CHUNK_ELEMENTS = 1 << 20

AllowedFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def key_validity(key_padding_mask: torch.Tensor | None, batch: int, length: int, device) -> torch.Tensor:
    """[B, N] bool, True = real key."""
    if key_padding_mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    return key_padding_mask


def use_flex(q: torch.Tensor) -> bool:
    if PATH == "flex":
        return True
    if PATH == "blocks":
        return False
    return q.is_cuda


def _gather_blocks(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Blocks of x [B, H, nb, bs, d] at index [B, H, C, T] -> [B, H, C, T * bs, d]."""
    batch, heads, num_blocks, block, dim = x.shape
    offsets = (torch.arange(batch * heads, device=x.device) * num_blocks).view(batch, heads, 1, 1)
    flat = (index + offsets).reshape(-1)
    gathered = x.reshape(batch * heads * num_blocks, block * dim).index_select(0, flat)
    return gathered.view(*index.shape[:3], index.shape[3] * block, dim)


def _chunk_attention(
    q_chunk: torch.Tensor,
    k_blocks: torch.Tensor,
    v_blocks: torch.Tensor,
    index: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """One chunk of query blocks: q_chunk [B, H, C, bs, d], mask [B, H, C, bs, T * bs] -> [B, H, C, bs, d].

    Fused SDPA over the gathered keys, one (head, query block) per attention batch entry.
    """
    batch, heads, blocks, block, dim = q_chunk.shape
    keys = _gather_blocks(k_blocks, index)
    values = _gather_blocks(v_blocks, index)
    # Rows with no allowed key (padded queries only) fall back to all their slots: finite, unspecified.
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    out = F.scaled_dot_product_attention(
        q_chunk.reshape(batch, heads * blocks, block, dim),
        keys.reshape(batch, heads * blocks, -1, dim),
        values.reshape(batch, heads * blocks, -1, dim),
        attn_mask=mask.reshape(batch, heads * blocks, block, -1),
    )
    return out.view(batch, heads, blocks, block, dim)


def block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    *,
    block_size: int,
    key_blocks: torch.Tensor,
    block_ok: torch.Tensor,
    allowed: AllowedFn | None = None,
    dense_rows: int = 0,
) -> torch.Tensor:
    """Exact softmax attention over a block-structured pattern, without any N x N tensor.

    Args:
        q: [B, H, N, d]; k, v: [B, H, M, d] (M = N, or a longer key sequence with extra keys appended).
        key_valid: [B, M] bool, True = real key.
        block_size: positions per block (queries and keys).
        key_blocks: [B|1, H|1, nb, T] ids of the key blocks (of k) gathered by each query block.
        block_ok: same shape, False for unused slots (a block listed twice must be listed ok once).
        allowed: `allowed(query_pos [C, bs, 1], key_pos [B|1, H|1, C, 1, T * bs]) -> bool` keeps the
            exact pattern inside the gathered blocks; None keeps every gathered key.
        dense_rows: the first `dense_rows` queries attend to every valid key of k (global queries).
    """
    batch, heads, length, dim = q.shape
    num_blocks = -(-length // block_size)
    padded = num_blocks * block_size
    q_blocks = F.pad(q, (0, 0, 0, padded - length)).view(batch, heads, num_blocks, block_size, dim)
    num_key_blocks = -(-k.shape[2] // block_size)
    key_pad = (0, 0, 0, num_key_blocks * block_size - k.shape[2])
    k_blocks = F.pad(k, key_pad).view(batch, heads, num_key_blocks, block_size, dim)
    v_blocks = F.pad(v, key_pad).view(batch, heads, num_key_blocks, block_size, dim)
    valid_padded = F.pad(key_valid, key_pad[2:], value=False)
    slots = key_blocks.shape[-1]
    key_blocks = key_blocks.expand(batch, heads, num_blocks, slots)
    block_ok = block_ok.expand(batch, heads, num_blocks, slots)
    offsets = torch.arange(block_size, device=q.device)
    chunk = max(
        1, min(num_blocks, _CHUNK_ELEMENTS // max(1, batch * heads * block_size * slots * block_size))
    )
    grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    outputs = []
    for start in range(0, num_blocks, chunk):
        stop = min(start + chunk, num_blocks)
        index = key_blocks[:, :, start:stop]
        key_pos = (index[..., None] * block_size + offsets).flatten(-2)  # [B, H, C, T * bs]
        ok = block_ok[:, :, start:stop, :, None].expand(*index.shape, block_size).flatten(-2)
        ok = ok & valid_padded.gather(1, key_pos.reshape(batch, -1)).view(key_pos.shape)
        mask = ok[:, :, :, None, :]  # [B, H, C, 1, T * bs]
        if allowed is not None:
            query_pos = (torch.arange(start, stop, device=q.device)[:, None] * block_size + offsets)[
                ..., None
            ]
            mask = mask & allowed(query_pos, key_pos[:, :, :, None, :])
        mask = mask.expand(batch, heads, stop - start, block_size, slots * block_size)
        q_chunk = q_blocks[:, :, start:stop]
        if grad:  # recompute in the backward: only the inputs are kept
            out = checkpoint(_chunk_attention, q_chunk, k_blocks, v_blocks, index, mask, use_reentrant=False)
        else:
            out = _chunk_attention(q_chunk, k_blocks, v_blocks, index, mask)
        outputs.append(out)
    out = torch.cat(outputs, dim=2).view(batch, heads, padded, dim)[:, :, :length]
    if dense_rows > 0:
        rows = min(dense_rows, length)
        dense = F.scaled_dot_product_attention(q[:, :, :rows], k, v, attn_mask=key_valid[:, None, None, :])
        out = torch.cat([dense, out[:, :, rows:]], dim=2)
    return out


_COMPILED_FLEX = None


def flex_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask_mod: MaskMod, block_size: int = 128
) -> torch.Tensor:
    """softmax(s q K^T) V over the pairs `mask_mod` allows, through FlexAttention with a block mask.

    Compiled on CUDA; eager (materialising the scores, for tests) elsewhere.
    """
    from torch.nn.attention.flex_attention import create_block_mask
    from torch.nn.attention.flex_attention import flex_attention as flex

    global _COMPILED_FLEX
    batch, heads, length, dim = q.shape
    compiled = q.is_cuda
    block_mask = create_block_mask(
        mask_mod, batch, heads, length, length, device=q.device, BLOCK_SIZE=block_size, _compile=compiled
    )
    if compiled:
        if _COMPILED_FLEX is None:
            _COMPILED_FLEX = torch.compile(flex, dynamic=False)
        fn = _COMPILED_FLEX
    else:
        import warnings

        fn = flex
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            return fn(q, k, v, block_mask=block_mask, scale=dim**-0.5)
    return fn(q, k, v, block_mask=block_mask, scale=dim**-0.5)
