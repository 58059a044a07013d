"""FlexAttention, the one wrapper the zoo's mask paths go through: exact masks on a tiled kernel.

`torch.nn.attention.flex_attention` evaluates softmax(s q k^T + mask) V tile by tile, skipping the
(128-query, 128-key) tiles its `BlockMask` leaves out and calling `mask_mod(b, h, q, kv)` inside
the others. Two kinds of mask reach it:

* a fixed sparsity pattern (local, Longformer, BigBird, Sparse Transformer): `flex_attention` builds
  the block mask from the pattern's `mask_mod` (`create_block_mask`);
* a per-query selection, read from the selection tables:

  * `attend_blocks` (MoBA): query q keeps key kv iff kv's block is one of q's block ids, a loop over
    the few ids; the block mask lists only the tiles some query of the tile selected, so the kernel
    costs O(number of selected tiles) rather than O(N^2).
  * `attend_indices` (top-k): query q keeps key kv iff bit kv of q's row in a packed bitmap of the
    selected keys is set (N^2 / 8 bytes); top-k selections are scattered, so nearly every tile stays.

On CUDA the call is compiled (`torch.compile`, once per shape); on CPU it runs FlexAttention's eager
form (it materialises the scores), which is only meant for checking the masks. `resolve_backend`
decides which path a mechanism with torch / flex / reference backends runs.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch

from ._selected_keys import chunks

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

TILE = 128  # FlexAttention's default block size, in queries and keys


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def _run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask) -> torch.Tensor:
    """flex_attention with scale d^{-1/2}: compiled on CUDA, eager elsewhere."""
    scale = q.shape[-1] ** -0.5
    if q.is_cuda:
        return _compiled_flex()(q, k, v, block_mask=block_mask, scale=scale)
    from torch.nn.attention.flex_attention import flex_attention as eager_flex

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return eager_flex(q, k, v, block_mask=block_mask, scale=scale)


def _selection_flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask) -> torch.Tensor:
    if not q.is_cuda:
        # No CPU backward (callers refuse gradients there), so the eager check must not see requires_grad.
        q, k, v = q.detach(), k.detach(), v.detach()
    return _run(q, k, v, block_mask)


def flex_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask_mod: MaskMod, block_size: int = TILE
) -> torch.Tensor:
    """softmax(s q K^T) V over the pairs `mask_mod` allows, through FlexAttention with a block mask.

    Compiled on CUDA; eager (materialising the scores, for tests) elsewhere.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    batch, heads, length, _ = q.shape
    block_mask = create_block_mask(
        mask_mod, batch, heads, length, length, device=q.device, BLOCK_SIZE=block_size, _compile=q.is_cuda
    )
    return _run(q, k, v, block_mask)


def tile_block_mask(touched: torch.Tensor, mask_mod, length: int):
    """A `BlockMask` listing, per (row, head, query tile), the key tiles where `touched` [B, H, nq, nk]
    holds, every one of them partial (mask_mod decides inside)."""
    from torch.nn.attention.flex_attention import BlockMask

    kv_num_blocks = touched.sum(-1, dtype=torch.int32)
    # touched tiles first, in increasing order (a stable sort of "not touched")
    kv_indices = torch.argsort((~touched).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return BlockMask.from_kv_blocks(
        kv_num_blocks, kv_indices, BLOCK_SIZE=TILE, mask_mod=mask_mod, seq_lengths=(length, length)
    )


def _touched_tiles(key_rows, batch: int, heads: int, length: int, width: int, device) -> torch.Tensor:
    """[B, H, nq, nk] bool: which key tiles the keys `key_rows(g, n)` [G, C, T] of each query tile reach."""
    tiles = -(-length // TILE)
    touched = torch.zeros(batch * heads, tiles * tiles, dtype=torch.bool, device=device)
    for g, n in chunks(batch * heads, length, width, device):
        rows = key_rows(g, n)  # [G, C, T] key positions
        query_tile = (torch.arange(n.start, n.stop, device=device) // TILE)[None, :, None]
        flat = (query_tile * tiles + torch.div(rows, TILE, rounding_mode="floor")).reshape(rows.shape[0], -1)
        touched[g].scatter_(1, flat, True)
    return touched.view(batch, heads, tiles, tiles)


def attend_blocks(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    blocks: torch.Tensor,
    block_size: int,
    valid_padded: torch.Tensor,
) -> torch.Tensor:
    """Softmax of each query over the valid keys of its blocks `blocks` [B, H, N, S] (block ids of
    `block_size` positions); valid_padded [B, nb * block_size] marks real keys."""
    return _selection_flex(q, k, v, blocks_mask(blocks, block_size, valid_padded))


def blocks_mask(blocks: torch.Tensor, block_size: int, valid_padded: torch.Tensor):
    """The `BlockMask` of `attend_blocks`."""
    batch, heads, length, _ = blocks.shape
    blocks = blocks.to(torch.int32)
    valid = valid_padded[:, :length].contiguous()
    chosen = blocks.shape[-1]

    def mask_mod(b, h, q_idx, kv_idx):
        block = kv_idx // block_size
        keep = blocks[b, h, q_idx, 0] == block
        for j in range(1, chosen):
            keep = keep | (blocks[b, h, q_idx, j] == block)
        return keep & valid[b, kv_idx]

    # A block of up to block_size positions reaches the key tiles of its first, last and every
    # TILE-th position in between.
    offsets = torch.tensor(sorted({*range(0, block_size, TILE), block_size - 1}), device=blocks.device)

    def key_rows(g, n):
        starts = blocks.view(batch * heads, length, chosen)[g, n].long() * block_size
        return (starts[..., None] + offsets).flatten(-2).clamp(max=length - 1)

    touched = _touched_tiles(key_rows, batch, heads, length, chosen * len(offsets), blocks.device)
    return tile_block_mask(touched, mask_mod, length)


def attend_indices(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    index: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Softmax of each query over its keys `index` [B, H, N, T] (distinct per query) that are valid."""
    return _selection_flex(q, k, v, indices_mask(index, key_padding_mask))


def indices_mask(index: torch.Tensor, key_padding_mask: torch.Tensor | None):
    """The `BlockMask` of `attend_indices`."""
    batch, heads, length, _ = index.shape
    device = index.device
    words = -(-length // 8)
    bits = torch.zeros(batch * heads, length, words, dtype=torch.uint8, device=device)
    flat_index = index.view(batch * heads, length, -1)
    for g, n in chunks(batch * heads, length, flat_index.shape[-1], device):
        rows = flat_index[g, n].long()
        bit = torch.ones((), dtype=torch.uint8, device=device) << (rows % 8).to(torch.uint8)
        bits[g, n].scatter_add_(-1, torch.div(rows, 8, rounding_mode="floor"), bit)  # distinct: no carry
    bits = bits.view(batch, heads, length, words)
    valid = key_padding_mask

    def mask_mod(b, h, q_idx, kv_idx):
        keep = ((bits[b, h, q_idx, kv_idx // 8].to(torch.int32) >> (kv_idx % 8)) & 1) == 1
        return keep if valid is None else keep & valid[b, kv_idx]

    touched = _touched_tiles(
        lambda g, n: flat_index[g, n].long(), batch, heads, length, flat_index.shape[-1], device
    )
    return tile_block_mask(touched, mask_mod, length)


def flex_available() -> bool:
    """Whether this torch has `torch.nn.attention.flex_attention`."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(
    name: str, backend: str, tensors: tuple[torch.Tensor, ...], *, auto_on_cuda: str = "torch"
) -> str:
    """The path a mechanism with torch / flex / reference backends runs: "auto" is `auto_on_cuda`
    on CUDA (when FlexAttention exists), else torch; "flex" needs FlexAttention and, on CPU, no
    gradients (FlexAttention has no CPU backward)."""
    q = tensors[0]
    if backend == "auto":
        return auto_on_cuda if q.is_cuda and flex_available() else "torch"
    if backend == "flex":
        if not flex_available():
            raise ValueError(
                f"{name}: backend='flex' needs torch.nn.attention.flex_attention; use backend='torch'"
            )
        if not q.is_cuda and torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            raise ValueError(
                f"{name}: backend='flex' has no backward on CPU (FlexAttention's limit); use backend='torch' "
                "or run under torch.no_grad()"
            )
    return backend
