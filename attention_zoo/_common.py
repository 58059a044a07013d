"""Shared pieces of the zoo: input validation, landmark pooling, attention over selected keys.

Landmark pooling (agent attention's agents, MiTA's landmark queries): with L valid tokens in a row
and m = min(num_landmarks, L) landmarks, landmark j is the mean of the valid tokens whose rank among
the valid tokens lies in [floor(j L / m), ceil((j + 1) L / m)) -- PyTorch's adaptive-pool windows,
which overlap by one token when m does not divide L. Padding is removed, not zeroed, so a padded
row pools exactly like its valid subsequence alone.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

from ._dropout import drop

# Query chunks are sized so that one chunk's gathered keys stay around this many elements.
_CHUNK_ELEMENTS = 1 << 24

# How `attend_selected` evaluates: "auto" picks the cheaper exact form; tests force each one.
SELECTED_PATH = "auto"


def check_inputs(
    name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> None:
    """Validate shapes and the padding mask at the functional boundary; ValueError with the fix."""
    for label, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name}: {label} must have shape [B, H, N, d]; got {tuple(t.shape)}")
    if q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"{name}: q, k, v must have the same shape [B, H, N, d]; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[2] == 0:
        raise ValueError(f"{name}: sequence length must be at least 1")
    if key_padding_mask is None:
        return
    batch, _, length, _ = q.shape
    if key_padding_mask.dtype != torch.bool:
        raise ValueError(
            f"{name}: key_padding_mask must be a bool tensor (True = real token); got {key_padding_mask.dtype}"
        )
    if tuple(key_padding_mask.shape) != (batch, length):
        raise ValueError(
            f"{name}: key_padding_mask must have shape [B, N] = {(batch, length)}; got {tuple(key_padding_mask.shape)}"
        )
    if torch.compiler.is_compiling() or (
        key_padding_mask.is_cuda and torch.cuda.is_current_stream_capturing()
    ):
        return  # the check below reads a device value on the host: impossible inside a graph
    empty = ~key_padding_mask.any(dim=1)
    if bool(empty.any()):
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(
            f"{name}: key_padding_mask rows {rows[:8]} have no valid token; every sequence needs at least "
            "one real token (True)"
        )


def valid_lengths(
    key_padding_mask: torch.Tensor | None, batch: int, length: int, device: torch.device
) -> torch.Tensor:
    """Number of valid tokens per row, int64 [B]."""
    if key_padding_mask is None:
        return torch.full((batch,), length, dtype=torch.long, device=device)
    return key_padding_mask.sum(dim=1)


def landmark_pool(
    x: torch.Tensor, num_landmarks: int, key_padding_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive average pooling of the valid tokens of x [B, H, N, d] into landmarks.

    Returns (landmarks [B, H, M, d], landmark_valid [B, M] bool) with M = min(num_landmarks, N).
    Row b has min(num_landmarks, L_b) valid landmarks; the others are zero and marked invalid.
    """
    batch, _, length, _ = x.shape
    slots = min(num_landmarks, length)
    device = x.device
    lengths = valid_lengths(key_padding_mask, batch, length, device)  # [B]
    counts = torch.clamp(lengths, max=num_landmarks)  # landmarks per row, m_b = min(m, L_b) >= 1
    j = torch.arange(slots, device=device)
    landmark_valid = j[None, :] < counts[:, None]  # [B, M]
    safe_counts = counts[:, None]
    start = torch.div(j[None, :] * lengths[:, None], safe_counts, rounding_mode="floor")
    end = torch.div((j[None, :] + 1) * lengths[:, None] + safe_counts - 1, safe_counts, rounding_mode="floor")
    if key_padding_mask is None:
        rank = torch.arange(length, device=device).expand(batch, length)
        valid = torch.ones(batch, length, dtype=torch.bool, device=device)
    else:
        rank = torch.cumsum(key_padding_mask.long(), dim=1) - 1
        valid = key_padding_mask
    inside = (
        (rank[:, None, :] >= start[:, :, None]) & (rank[:, None, :] < end[:, :, None]) & valid[:, None, :]
    )
    inside &= landmark_valid[:, :, None]
    weights = inside.to(x.dtype) / (end - start).clamp(min=1).to(x.dtype)[:, :, None]  # [B, M, N]
    return torch.matmul(weights[:, None], x), landmark_valid


def query_chunk_size(length: int, per_query_elements: int) -> int:
    """How many queries to process at once so a chunk's temporaries stay bounded."""
    return max(1, min(length, _CHUNK_ELEMENTS // max(1, per_query_elements)))


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of x [B, H, N, d] at index [B, H, ...] (values in [0, N)) -> [B, H, ..., d].

    A flat `index_select` rather than `gather` on an expanded view: its backward is an `index_add`
    into [B*H*N, d] instead of a dense [B, H, ..., N, d] zero tensor.
    """
    batch, heads, length, dim = x.shape
    offsets = (torch.arange(batch * heads, device=x.device) * length).view(
        batch, heads, *([1] * (index.dim() - 2))
    )
    flat = (index + offsets).reshape(-1)
    return x.reshape(batch * heads * length, dim).index_select(0, flat).view(*index.shape, dim)


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


def selection_dtype(dtype: torch.dtype) -> torch.dtype:
    """Scores that only choose indices (top-k, argmax) are computed in at least fp32: ties multiply in bf16."""
    return torch.promote_types(dtype, torch.float32)


def at_least_fp32(x: torch.Tensor) -> torch.dtype:
    """The working dtype of a mechanism's logits, softmax statistics and feature sums: half-precision
    inputs are computed in fp32 (as fused attention kernels accumulate), fp32 and fp64 as they are."""
    return torch.promote_types(x.dtype, torch.float32)


def no_autocast(x: torch.Tensor) -> AbstractContextManager[None]:
    """Autocast off on x's device, so an fp32 step stays fp32 under bf16/fp16 autocast."""
    if x.device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=x.device.type, enabled=False)
    return nullcontext()


def attend_selected(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_index: torch.Tensor,
    key_ok: torch.Tensor,
    scale: float,
    prefix: tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
    repeats: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Each query's softmax over its selected keys (and an optional shared prefix), [B, H, N, d].

    Query n attends to keys `key_index[..., n, :]` [B, H, N, T] where `key_ok` holds, with logits
    `scale * q_n . k_t`; a key listed twice counts twice. `prefix = (logits_fn, values)` adds
    `logits_fn(q_chunk)` [B, H, C, P] over `values` [B, H, P, d] to the same softmax (MiTA's
    shared expert). `repeats` says a key may be listed twice for one query (otherwise the
    dense form skips the multiplicity weighting). Two exact forms, chosen by memory:

    * gathered: the T selected keys and values of every query, O(N T d) memory;
    * dense-masked: all N scores of a query, with log(multiplicity) added (-inf where a key is not
      selected), O(N^2) memory -- no larger than the gathered form when N <= T d, and much faster
      there (one matmul instead of a gather and its scatter-add backward).

    Half-precision inputs are attended in fp32 (logits, softmax and the weighted sums, autocast
    off); the output has q's dtype. The prefix's `logits_fn` receives the fp32 queries.
    `dropout_p` drops the probabilities of the whole row (prefix and selected keys alike; see
    `_dropout`); autograd keeps the masks.
    """
    out_dtype = q.dtype
    with no_autocast(q):
        work = at_least_fp32(q)
        q, k, v = q.to(work), k.to(work), v.to(work)
        if prefix is not None:
            prefix = (prefix[0], prefix[1].to(work))
        return _attend_selected(q, k, v, key_index, key_ok, scale, prefix, repeats, dropout_p).to(out_dtype)


def _attend_selected(q, k, v, key_index, key_ok, scale, prefix, repeats, dropout_p) -> torch.Tensor:
    batch, heads, length, dim = q.shape
    per_query = key_index.shape[-1]
    dense = SELECTED_PATH == "dense" or (SELECTED_PATH == "auto" and length <= per_query * dim)
    shared = prefix[1].shape[2] if prefix is not None else 0
    width = length if dense else 2 * per_query * dim
    chunk = query_chunk_size(length, batch * heads * (shared + width))
    outputs = []
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        queries, index, ok = q[:, :, start:stop], key_index[:, :, start:stop], key_ok[:, :, start:stop]
        if dense:
            multiplicity = torch.zeros(*index.shape[:-1], length, dtype=q.dtype, device=q.device)
            multiplicity.scatter_add_(-1, index, ok.to(q.dtype))
            logits = torch.matmul(queries, k.transpose(-1, -2)) * scale
            if repeats:  # log(0) is slow on CPU: mask first, then weight repeated keys by log(count)
                logits = logits + multiplicity.clamp(min=1).log()
            logits = logits.masked_fill(multiplicity == 0, float("-inf"))
        else:
            logits = torch.einsum("bhcd,bhctd->bhct", queries, gather_rows(k, index)) * scale
            logits = logits.masked_fill(~ok, float("-inf"))
        if prefix is not None:
            logits = torch.cat([prefix[0](queries), logits], dim=-1)
        probs = drop(torch.softmax(logits, dim=-1), dropout_p)
        out = torch.matmul(probs[..., :shared], prefix[1]) if prefix is not None else 0
        selected = probs[..., shared:]
        if dense:
            out = out + torch.matmul(selected, v)
        else:
            out = out + torch.einsum("bhct,bhctd->bhcd", selected, gather_rows(v, index))
        outputs.append(out)
    return torch.cat(outputs, dim=2)
