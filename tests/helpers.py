"""Helpers shared by several test modules (imported, never collected: no tests here)."""

from __future__ import annotations

import torch


def make_inputs(batch, heads, n, d, *, masked, seed, dtype=torch.float32, duplicate_keys=False):
    """Random q, k, v [batch, heads, n, d] and, with `masked`, a random non-contiguous key padding mask."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, d, generator=gen) for _ in range(3))
    if duplicate_keys and n > 1:  # exact score ties for the top-k
        k[:, :, 1::2] = k[:, :, 0 : n - 1 : 2]
    mask = None
    if masked:
        mask = torch.rand(batch, n, generator=gen) > 0.35  # random, non-contiguous padding
        mask[:, torch.randint(n, (1,), generator=gen)] = True
    return q.to(dtype), k.to(dtype), v.to(dtype), mask
