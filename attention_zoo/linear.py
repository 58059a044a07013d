r"""Linear attention (Katharopoulos et al., ICML 2020): softmax replaced by the kernel phi(q)^T phi(k).

.. math::

    \phi(x) = \operatorname{elu}(x) + 1, \qquad
    o_i = \frac{\phi(q_i)^\top \sum_j \phi(k_j)\, v_j^\top}{\phi(q_i)^\top \sum_j \phi(k_j) + 10^{-6}},

with j over the valid keys only (phi(0) = 1, so a padded key must be removed after the feature map,
not zeroed before it). The feature sums are accumulated in at least fp32 (in half precision they
overflow at N |k| |v| > 65504); the output has the input's dtype. Cost O(N d^2) time, O(N d + d^2)
memory; no N x N tensor.

The denominator follows the paper (the PyTorch LRA lineage's "linear" attention has none).

No attention dropout: the N x N weights are never formed, so there are no probabilities to drop
(LRA's JAX linear attention discards its dropout rate, and the PyTorch LRA lineage's applies none);
the layer's `attention_dropout` is a documented no-op here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._common import at_least_fp32, check_inputs, no_autocast
from ._kernelized import zero_padded
from .registry import AttentionParams, register

EPS = 1e-6


@dataclass(frozen=True)
class LinearParams(AttentionParams):
    """Linear attention has no parameters."""


def kernel_attention(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, eps: float, clamp: bool = False
) -> torch.Tensor:
    """phi_q^T sum_j phi_k_j v_j^T / (phi_q^T sum_j phi_k_j (+ eps, or max with eps when `clamp`)).

    phi_q [B, H, N, r], phi_k [B, H, N, r] (padded keys already zero), v [B, H, N, d] -> [B, H, N, d].
    """
    context = phi_k.transpose(-1, -2) @ v  # [B, H, r, d]
    normaliser = phi_q @ phi_k.sum(dim=2).unsqueeze(-1)  # [B, H, N, 1]
    normaliser = normaliser.clamp(min=eps) if clamp else normaliser + eps
    return (phi_q @ context) / normaliser


@register(
    "linear",
    LinearParams,
    summary="phi(q)^T sum phi(k) v^T / phi(q)^T sum phi(k), phi = elu + 1 (kernelized)",
    keys_per_query=lambda p, n: n,
)
def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Linear attention with phi = elu + 1. q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("linear_attention", q, k, v, key_padding_mask)
    work = at_least_fp32(q)
    with no_autocast(q):
        q_, k_, v_ = q.to(work), k.to(work), v.to(work)
        phi_k = zero_padded(F.elu(k_) + 1, key_padding_mask)
        out = kernel_attention(F.elu(q_) + 1, phi_k, v_, EPS)
    return out.to(q.dtype)
