r"""MiTA (Mixture of Top-k Activations): landmark-compressed shared expert plus top-k routed experts.

.. math::

    R = \operatorname{pool}_m(Q),\quad S_j = \operatorname{TopK}_k(r_j^\top K),\quad
    \tilde V = \operatorname{softmax}(s R K^\top) V,\quad e(n) = \arg\max_j r_j^\top q_n,

.. math::

    o_n = \operatorname{softmax}\big([\, q_n^\top R^\top / d \;|\; s\, q_n^\top K_{S_{e(n)}}^\top \,]\big)
          \cdot [\tilde V ; V_{S_{e(n)}}], \qquad s = d^{-1/2}.

`mita` is the full mechanism; `mita_route` the route-only ablation (no shared expert). The
readable reference is `reference.py`; `backend="triton"` runs the fused Triton kernels (CUDA, or
the CPU interpreter under TRITON_INTERPRET=1) and `backend="auto"` picks Triton on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch

from .._common import check_inputs
from ..registry import AttentionParams, register
from .reference import mita_reference

Backend = Literal["auto", "torch", "triton"]


@dataclass(frozen=True)
class MitaParams(AttentionParams):
    num_landmarks: int = 32
    topk: int = 32
    backend: Backend = "auto"

    def check(self) -> None:
        if self.num_landmarks < 1:
            raise ValueError(f"num_landmarks must be >= 1; got {self.num_landmarks}")
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1; got {self.topk}")


@dataclass(frozen=True)
class MitaRouteParams(AttentionParams):
    num_landmarks: int = 32
    topk: int = 64
    backend: Backend = "auto"

    def check(self) -> None:
        MitaParams.check(self)  # same ranges


def triton_usable(device: torch.device) -> bool:
    """Whether the Triton kernels can run on tensors of this device."""
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_backend(name: str, backend: str, q: torch.Tensor) -> str:
    if backend == "auto":
        return "triton" if q.is_cuda and triton_usable(q.device) else "torch"
    if backend == "triton" and not triton_usable(q.device):
        raise ValueError(
            f"{name}: backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 on CPU) and the triton "
            "package; use backend='torch' or 'auto'"
        )
    return backend


def _run(name: str, q, k, v, key_padding_mask, num_landmarks: int, topk: int, backend: str, shared: bool):
    check_inputs(name, q, k, v, key_padding_mask)
    if _resolve_backend(name, backend, q) == "triton":
        from .triton_ops import mita_triton

        return mita_triton(q, k, v, key_padding_mask, num_landmarks, topk, shared=shared)
    return mita_reference(q, k, v, key_padding_mask, num_landmarks, topk, shared=shared)


@register(
    "mita",
    MitaParams,
    summary="MiTA: shared expert of m pooled landmarks + the top-k keys of each query's routed landmark",
    keys_per_query=lambda p, n: min(p.num_landmarks, n) + min(p.topk, n),
)
def mita_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    num_landmarks: int,
    topk: int,
    backend: Backend = "auto",
) -> torch.Tensor:
    """MiTA attention. q, k, v: [B, H, N, d]; key_padding_mask [B, N], True = real token."""
    return _run("mita_attention", q, k, v, key_padding_mask, num_landmarks, topk, backend, shared=True)


@register(
    "mita_route",
    MitaRouteParams,
    summary="MiTA route-only ablation: each query attends to its routed expert's top-k keys only",
    keys_per_query=lambda p, n: min(p.topk, n),
)
def mita_route_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    num_landmarks: int,
    topk: int,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Route-only MiTA (no shared expert). q, k, v: [B, H, N, d]; key_padding_mask [B, N], True = real."""
    return _run("mita_route_attention", q, k, v, key_padding_mask, num_landmarks, topk, backend, shared=False)
