"""Shared pieces of the kernelized and low-rank mechanisms (linear, Performer, cosFormer, Linformer,
Nyströmformer, Skyformer): ranks among the valid tokens, moving valid tokens to the front, and the
Newton--Schulz pseudo-inverse.

Padding is removed, not zeroed: a mechanism that needs positions uses the rank of a token among the
valid tokens of its row, and every sum over keys runs over the valid keys only, so a padded row
computes exactly what its valid subsequence computes alone.
"""

from __future__ import annotations

import torch


def valid_ranks(
    key_padding_mask: torch.Tensor | None, batch: int, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rank [B, N] int64, valid [B, N] bool): rank of each token among the valid tokens of its row
    (0-based; padded tokens get the rank of the next valid token, never used), and the mask."""
    if key_padding_mask is None:
        rank = torch.arange(length, device=device).expand(batch, length)
        return rank, torch.ones(batch, length, dtype=torch.bool, device=device)
    return torch.cumsum(key_padding_mask.long(), dim=1) - 1, key_padding_mask


def valid_first(key_padding_mask: torch.Tensor) -> torch.Tensor:
    """Positions [B, N] listing each row's valid tokens first, in order, then its padded ones."""
    return torch.argsort((~key_padding_mask).to(torch.uint8), dim=1, stable=True)


def zero_padded(x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """x [B, H, N, ...] with the rows of padded tokens set to zero (a `where`, so even inf/NaN in
    padded rows cannot leak into sums over tokens)."""
    if key_padding_mask is None:
        return x
    keep = key_padding_mask.view(
        key_padding_mask.shape[0], 1, key_padding_mask.shape[1], *([1] * (x.dim() - 3))
    )
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


def newton_schulz_pinv(a: torch.Tensor, iters: int, initial_scale: torch.Tensor) -> torch.Tensor:
    """Iterative pseudo-inverse of the square matrices a [..., m, m] (Razavi et al., 2014).

    Z0 = a^T * initial_scale (one scale per matrix, [..., 1, 1]), then `iters` times
    Z <- 1/4 Z (13 I - a Z (15 I - a Z (7 I - a Z))). Converges when the eigenvalues of a Z0 lie in (0, 2)
    (e.g. initial_scale = 1 / (||a||_1 ||a||_inf)).
    """
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    z = a.transpose(-1, -2) * initial_scale
    for _ in range(iters):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z
