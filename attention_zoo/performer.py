r"""Performer (Choromanski et al., ICLR 2021): FAVOR+ positive random features for the softmax kernel.

.. math::

    \hat x = d^{-1/4} x, \qquad
    \phi(x) = \frac{1}{\sqrt r} \exp\!\left(\omega \hat x - \tfrac12 \lVert \hat x \rVert^2\right) \in \mathbb R^r,
    \qquad
    o_i = \frac{\phi(q_i)^\top \sum_j \phi(k_j)\, v_j^\top}{\phi(q_i)^\top \sum_j \phi(k_j)},

with omega = `features` [r, d] (r = `num_features`) and j over the valid keys only. E[phi(q)^T phi(k)]
= exp(q . k / sqrt(d)) when the rows of omega are N(0, I_d), so the output approaches softmax
attention as r grows. No epsilon is added.

The ratio is evaluated in the log domain, which keeps exp in range at any input scale. With
a_{ir} = omega_r . q^_i (the query's norm term and 1/sqrt(r) cancel in the ratio) and
b_{jr} = omega_r . k^_j - |k^_j|^2 / 2,

.. math::

    o_i = \sum_r \operatorname{softmax}_r\!\big(a_{ir} + \ell_r\big)\, u_r, \qquad
    \ell_r = \log \sum_j e^{b_{jr}}, \qquad u_r = \sum_j \operatorname{softmax}_j(b_{jr})\, v_j,

the same ratio, term by term: a max-subtraction per feature over the whole key set (u_r, l_r) and
then per query over the features. The FAVOR+ code of the field (performer-pytorch, Google's) shifts
the query features by their row maximum and the key features by one maximum over all keys and
features; that keeps each factor below 1, but the product phi(q_i) . sum_j phi(k_j) underflows to
0/0 when a query's largest features are not the keys' (in fp32 from q, k of standard deviation ~30),
which the code there hides with an epsilon added to every feature. Computed in at least fp32, with
autocast off; the output has the input's dtype.

Without `features`, fixed seeded Gaussian orthogonal features are used (blocks of d orthogonal rows,
each row rescaled to the norm of a Gaussian vector). The attention layer keeps its features as a
buffer drawn from the global RNG at construction and redraws them every `redraw_interval` training
calls (0 = never, as in the PyTorch LRA lineage, which builds the features once).

Cost O(N r d) time, O(N r + r d) memory; no N x N tensor.

No attention dropout: FAVOR+ never forms the attention probabilities (LRA's JAX Performer ignores
its dropout rate; performer-pytorch's attention, which the PyTorch LRA lineage runs, has none); the
layer's `attention_dropout` is a documented no-op here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ._common import at_least_fp32, check_inputs, no_autocast
from .registry import AttentionParams, register

# Seed of the fixed features the functional uses when none are given.
DEFAULT_FEATURES_SEED = 0


@dataclass(frozen=True)
class PerformerParams(AttentionParams):
    # 256 random features: the Nyströmformer PyTorch LRA configs ("performer-256", rp_dim 256).
    num_features: int = 256
    # Training calls between redraws in the layer; 0 = never (mlpen/Nystromformer and Skyformer use the
    # features drawn at construction; performer-pytorch's own default is 1000).
    redraw_interval: int = 0

    def check(self) -> None:
        if self.num_features < 1:
            raise ValueError(f"num_features must be >= 1; got {self.num_features}")
        if self.redraw_interval < 0:
            raise ValueError(f"redraw_interval must be >= 0 (0 = never redraw); got {self.redraw_interval}")


def orthogonal_features(
    num_features: int, head_dim: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian orthogonal random features [num_features, head_dim] (fp32, CPU).

    Blocks of head_dim orthonormal rows (QR of a Gaussian matrix, signs fixed so the block is Haar
    distributed), each row scaled by the norm of an independent N(0, I) vector, so every row is
    marginally N(0, I) while rows within a block are orthogonal.
    """
    blocks = []
    for _ in range(math.ceil(num_features / head_dim)):
        gaussian = torch.randn(head_dim, head_dim, generator=generator)
        q, r = torch.linalg.qr(gaussian)
        blocks.append((q * torch.sign(torch.diagonal(r))).T)
    directions = torch.cat(blocks)[:num_features]
    norms = torch.randn(num_features, head_dim, generator=generator).norm(dim=1, keepdim=True)
    return directions * norms


@functools.lru_cache(maxsize=16)
def _default_features(num_features: int, head_dim: int) -> torch.Tensor:
    return orthogonal_features(num_features, head_dim, torch.Generator().manual_seed(DEFAULT_FEATURES_SEED))


def default_features(num_features: int, head_dim: int) -> torch.Tensor:
    """The fixed seeded features [num_features, head_dim] the functional uses when given none."""
    return _default_features(num_features, head_dim).clone()


def _layer_features(params: PerformerParams, num_heads: int, head_dim: int, max_length: int) -> dict:
    """The layer's features (one draw shared by its heads), from the global RNG: seeded runs repeat."""
    return {"features": orthogonal_features(params.num_features, head_dim)}


def favor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    features: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
) -> torch.Tensor:
    """The FAVOR+ ratio in the log domain (see the module docstring), in the inputs' dtype.

    q, k, v [B, H, N, d], features [r, d]; padded keys get exponent -inf (weight exactly zero).
    """
    quarter = q.shape[-1] ** -0.25
    q_, k_ = q * quarter, k * quarter
    query_exponents = q_ @ features.transpose(-1, -2)  # a [B, H, N, r]
    key_exponents = k_ @ features.transpose(-1, -2) - 0.5 * (k_ * k_).sum(dim=-1, keepdim=True)  # b
    if key_padding_mask is not None:
        key_exponents = key_exponents.masked_fill(~key_padding_mask[:, None, :, None], float("-inf"))
    key_lse = torch.logsumexp(key_exponents, dim=2, keepdim=True)  # l [B, H, 1, r]
    feature_values = torch.softmax(key_exponents, dim=2).transpose(-1, -2) @ v  # u [B, H, r, d]
    return torch.softmax(query_exponents + key_lse, dim=-1) @ feature_values


@register(
    "performer",
    PerformerParams,
    summary="FAVOR+ positive orthogonal random features for softmax (kernelized)",
    keys_per_query=lambda p, n: p.num_features,
    runtime_inputs=("features",),
    module_buffers=_layer_features,
    buffer_redraw_interval=lambda p: p.redraw_interval,
)
def performer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    num_features: int = 256,
    redraw_interval: int = 0,
    features: torch.Tensor | None = None,
) -> torch.Tensor:
    """Performer (FAVOR+) attention with `features` [num_features, d] (seeded orthogonal ones when
    None). `redraw_interval` is used by the layer only. q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("performer_attention", q, k, v, key_padding_mask)
    PerformerParams(num_features, redraw_interval).check()
    head_dim = q.shape[-1]
    if features is None:
        features = default_features(num_features, head_dim)
    elif tuple(features.shape) != (num_features, head_dim):
        raise ValueError(
            f"performer_attention: features must have shape [num_features, d] = {(num_features, head_dim)}; "
            f"got {tuple(features.shape)}"
        )
    work = at_least_fp32(q)
    with no_autocast(q):
        features = features.to(device=q.device, dtype=work)
        out = favor_attention(q.to(work), k.to(work), v.to(work), features, key_padding_mask)
    return out.to(q.dtype)
