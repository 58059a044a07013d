"""The factors of the zoo's test grids (lengths, head dims, padding patterns, evaluation paths) and the
inputs they describe; imported by the zoo test modules, which select their cases pairwise
(tests/covering.py) from these factors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from attention_zoo import _block_patterns, _selected_keys

from .builders import random_inputs

# n = 1, odd lengths, and lengths one past a multiple of 64 and of 128 (chunks, tiles) and past 256.
LENGTHS = (1, 7, 63, 100, 257)
HEAD_DIMS = (8, 16, 64)
# none: no mask at all; trailing: each row's real tokens first (rows of different lengths);
# random: real tokens at random, non-contiguous positions; single: one real token per row.
PADDINGS = ("none", "trailing", "random", "single")

# Evaluation paths of the mechanisms that have several, all exact (the others have one path).
# "reference-gathered" / "reference-dense": the readable backend with either form of `attend_selected`.
SELECTED_BACKENDS = ("torch", "reference-gathered", "reference-dense")
BACKENDS: dict[str, tuple[str, ...]] = {
    "topk": SELECTED_BACKENDS + ("flex",),
    "moba": SELECTED_BACKENDS + ("flex",),
    "mita": SELECTED_BACKENDS,
    "mita_route": SELECTED_BACKENDS,
    # the fixed sparsity patterns: the CPU block form and the FlexAttention mask form (eager here)
    "local": ("blocks", "flex"),
    "longformer": ("blocks", "flex"),
    "bigbird": ("blocks", "flex"),
    "sparse": ("blocks", "flex"),
}


def padding_mask(pattern: str, batch: int, n: int, seed: int) -> torch.Tensor | None:
    """A key padding mask [batch, n] of one of PADDINGS ("random" comes with the inputs, see
    `grid_inputs`); every row keeps at least one real token."""
    if pattern == "none":
        return None
    mask = torch.zeros(batch, n, dtype=torch.bool)
    if pattern == "trailing":
        for row in range(batch):  # rows of different valid lengths: n - n // 3, then about half
            mask[row, : max(1, n - n // 3 if row % 2 == 0 else (n + 1) // 2)] = True
    elif pattern == "single":
        positions = torch.randint(n, (batch,), generator=torch.Generator().manual_seed(seed))
        mask[torch.arange(batch), positions] = True
    else:
        raise ValueError(f"unknown padding pattern {pattern!r}; expected one of {PADDINGS}")
    return mask


def grid_inputs(
    batch: int, heads: int, n: int, d: int, padding: str, *, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random q, k, v [batch, heads, n, d] and the key padding mask of `padding`."""
    q, k, v, mask = random_inputs(batch, heads, n, d, masked=padding == "random", seed=seed, dtype=dtype)
    if padding != "random":
        mask = padding_mask(padding, batch, n, seed)
    return q, k, v, mask


@contextlib.contextmanager
def evaluation_path(name: str, backend: str | None) -> Iterator[dict[str, str]]:
    """Run mechanism `name` on one of its BACKENDS inside the block: yields the keyword arguments to
    pass (topk / moba / MiTA take `backend`) and sets the module switches the others read."""
    if backend is None:
        yield {}
        return
    if backend not in BACKENDS.get(name, ()):
        raise ValueError(f"{name} has no evaluation path {backend!r}; it has {BACKENDS.get(name, ())}")
    saved = (_selected_keys.SELECTED_PATH, _block_patterns.PATH)
    try:
        if backend.startswith("reference-"):
            _selected_keys.SELECTED_PATH = backend.removeprefix("reference-")
            yield {"backend": "reference"}
        elif backend in ("blocks", "flex") and name in ("local", "longformer", "bigbird", "sparse"):
            _block_patterns.PATH = backend
            yield {}
        else:
            yield {"backend": backend}
    finally:
        _selected_keys.SELECTED_PATH, _block_patterns.PATH = saved
