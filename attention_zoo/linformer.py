r"""Linformer (Wang et al., 2020): keys and values projected along the sequence to `proj_dim` rows.

.. math::

    K' = E_{[:, :L]}\, K_{\text{valid}}, \qquad V' = F_{[:, :L]}\, V_{\text{valid}}, \qquad
    O = \operatorname{softmax}\!\left(s\, Q K'^\top\right) V', \qquad s = d^{-1/2},

with E = `proj_k`, F = `proj_v` of shape [proj_dim, N_max] (or [H, proj_dim, N_max], one per head),
K_valid the L valid keys of the row in order: column t of E multiplies the valid key of rank t, so
padding never enters K' or V'. An input longer than N_max is an error. In the attention layer E and
F are learned, one pair per head, sized by the model's maximum length (init N(0, 0.02^2) as in the
PyTorch LRA lineage, which shares one E between keys, values and layers); without them the functional uses
fixed seeded Gaussian projections with N(0, 1/proj_dim) entries whose column t depends on t alone
(`PROJECTION_BLOCK`). Half-precision inputs are computed in fp32 (the projections are sums over
the sequence); the output has the input's dtype.
Attention dropout (`dropout_p`): on the probabilities over the projected keys, as LRA's JAX
Linformer applies its attention dropout there (the PyTorch LRA lineage's Linformer applies none).
Cost O(N proj_dim d) time, O(N d + N proj_dim) memory; no N x N tensor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._common import at_least_fp32, check_inputs, no_autocast, valid_lengths
from ._dropout import check_p
from ._kernelized import valid_first
from .registry import AttentionParams, register

# Seeds of the fixed projections E and F the functional uses when given none.
DEFAULT_PROJECTION_SEEDS = (0, 1)


@dataclass(frozen=True)
class LinformerParams(AttentionParams):
    # 256 projected keys: the Nyströmformer PyTorch LRA configs ("linformer-256"); LRA JAX and Skyformer
    # use 128 (pass proj_dim=128 to match those).
    proj_dim: int = 256

    def check(self) -> None:
        if self.proj_dim < 1:
            raise ValueError(f"proj_dim must be >= 1; got {self.proj_dim}")


# The fixed projections are drawn in blocks of this many positions, block b from seed
# (seed * 1_000_003 + b), so column t does not depend on the input length.
PROJECTION_BLOCK = 64


@functools.lru_cache(maxsize=8)
def _default_projection(proj_dim: int, length: int, seed: int) -> torch.Tensor:
    blocks = [
        torch.randn(PROJECTION_BLOCK, proj_dim, generator=torch.Generator().manual_seed(seed * 1_000_003 + b))
        for b in range(-(-length // PROJECTION_BLOCK))
    ]
    return (torch.cat(blocks)[:length] * proj_dim**-0.5).T.contiguous()


def default_projection(proj_dim: int, length: int, seed: int) -> torch.Tensor:
    """The fixed seeded projection [proj_dim, length] used when none is given (column t depends on t only)."""
    return _default_projection(proj_dim, length, seed).clone()


def _layer_projections(params: LinformerParams, num_heads: int, head_dim: int, max_length: int) -> dict:
    if max_length < 1:
        raise ValueError(
            "linformer learns projections sized by the longest input: build the layer with max_length=N"
        )
    shape = (num_heads, params.proj_dim, max_length)
    return {"proj_k": torch.randn(shape) * 0.02, "proj_v": torch.randn(shape) * 0.02}


def _check_projection(label: str, proj: torch.Tensor, proj_dim: int, heads: int, length: int) -> None:
    if proj.dim() not in (2, 3) or proj.shape[-2] != proj_dim or (proj.dim() == 3 and proj.shape[0] != heads):
        raise ValueError(
            f"linformer_attention: {label} must have shape [proj_dim, N_max] or [H, proj_dim, N_max] with "
            f"proj_dim={proj_dim}, H={heads}; got {tuple(proj.shape)}"
        )
    if proj.shape[-1] < length:
        raise ValueError(
            f"linformer_attention: input length {length} exceeds the maximum length {proj.shape[-1]} of "
            f"{label}; build the layer with max_length >= {length}"
        )


@register(
    "linformer",
    LinformerParams,
    summary="keys and values projected along the sequence to proj_dim rows (low rank)",
    keys_per_query=lambda p, n: p.proj_dim,
    runtime_inputs=("proj_k", "proj_v"),
    module_parameters=_layer_projections,
    attention_dropout=True,
)
def linformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    proj_dim: int = 256,
    proj_k: torch.Tensor | None = None,
    proj_v: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Linformer attention. q, k, v: [B, H, N, d]; mask [B, N], True = real; proj_k, proj_v:
    [proj_dim, N_max] or [H, proj_dim, N_max] (fixed seeded Gaussian projections when None)."""
    check_inputs("linformer_attention", q, k, v, key_padding_mask)
    check_p("linformer_attention", dropout_p)
    LinformerParams(proj_dim).check()
    batch, heads, length, dim = q.shape
    if (proj_k is None) != (proj_v is None):
        raise ValueError("linformer_attention: give both proj_k and proj_v, or neither")
    if proj_k is None or proj_v is None:
        proj_k, proj_v = (default_projection(proj_dim, length, seed) for seed in DEFAULT_PROJECTION_SEEDS)
    for label, proj in (("proj_k", proj_k), ("proj_v", proj_v)):
        _check_projection(label, proj, proj_dim, heads, length)
    work = at_least_fp32(q)  # projected keys rounded to half precision would round every logit
    out_dtype = q.dtype
    q, k, v = q.to(work), k.to(work), v.to(work)
    if key_padding_mask is not None:
        # valid tokens first, in order, the rest zeroed: column t of E then meets the key of rank t
        order = valid_first(key_padding_mask)[:, None, :, None].expand(batch, heads, length, dim)
        in_range = (
            torch.arange(length, device=q.device)
            < valid_lengths(key_padding_mask, batch, length, q.device)[:, None]
        )
        keep = in_range[:, None, :, None]
        zero = torch.zeros((), dtype=k.dtype, device=k.device)
        k = torch.where(keep, k.gather(2, order), zero)
        v = torch.where(keep, v.gather(2, order), zero)
    with no_autocast(q):
        e = proj_k[..., :length].to(device=q.device, dtype=work)
        f = proj_v[..., :length].to(device=q.device, dtype=work)
        out = F.scaled_dot_product_attention(q, e @ k, f @ v, dropout_p=dropout_p)
    return out.to(out_dtype)
