r"""MiTA (Mixture of Top-k Activations): landmark-compressed shared expert plus top-k routed experts.

.. math::

    R = \operatorname{pool}_m(Q),\quad S_j = \operatorname{TopK}_k(r_j^\top K),\quad
    \tilde V = \operatorname{softmax}(s R K^\top) V,\quad e(n) = \arg\max_j r_j^\top q_n,

.. math::

    o_n = \operatorname{softmax}\big([\, q_n^\top R^\top / d \;|\; s\, q_n^\top K_{S_{e(n)}}^\top \,]\big)
          \cdot [\tilde V ; V_{S_{e(n)}}], \qquad s = d^{-1/2}.

`mita` is the full mechanism; `mita_route` the route-only ablation (no shared expert). The
readable reference is `reference.py` (`backend="reference"`); `backend="torch"` runs the same
selection with a chunked attention that recomputes instead of saving gathered keys
(`torch_fast.py`); `backend="triton"` runs the fused Triton kernels (CUDA, or the CPU interpreter
under TRITON_INTERPRET=1) and `backend="auto"` picks Triton on CUDA where it applies, else torch.

Attention dropout (`dropout_p`, training only) drops the probabilities of both softmaxes: the
landmark attention softmax(s R K^T) that forms the shared values, and each query's output softmax
over [shared ++ routed] keys (as Agent attention does for its two stages; the official MiTA code has
none). The reference and torch paths apply it; the Triton kernels have none, so `triton` (and
`auto` on CUDA) runs the torch path when `dropout_p > 0`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch

from .._common import at_least_fp32, check_inputs
from .._dropout import check_p
from ..registry import AttentionParams, register
from . import diagnostics
from .reference import LANDMARK_MODES, make_landmarks, mita_reference
from .torch_fast import mita_torch

Backend = Literal["auto", "torch", "triton", "reference"]
Landmarks = Literal["avgpool", "learned", "avgpool+learned", "random", "kmeans"]


@dataclass(frozen=True)
class MitaParams(AttentionParams):
    """MiTA parameters. Defaults are the paper's choices (avgpool landmarks, one routed expert).

    Attributes:
        num_landmarks: m, landmark queries (experts); clamped to the valid length when pooled.
        topk: k, keys per expert; clamped to the valid length.
        num_routed: experts each query is routed to; their key sets are concatenated.
        landmarks: how landmark queries are made (see `reference.make_landmarks`).
        kmeans_iters: Lloyd iterations for landmarks="kmeans".
        backend: "torch" (chunked, recomputing), "triton" (fused kernels), "reference" (the readable
            form), "auto" (Triton on CUDA where it applies, else torch).
    """

    num_landmarks: int = 32
    topk: int = 32
    num_routed: int = 1
    landmarks: Landmarks = "avgpool"
    kmeans_iters: int = 3
    backend: Backend = "auto"

    def check(self) -> None:
        for name in ("num_landmarks", "topk", "num_routed"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.kmeans_iters < 0:
            raise ValueError(f"kmeans_iters must be >= 0; got {self.kmeans_iters}")


@dataclass(frozen=True)
class MitaRouteParams(MitaParams):
    topk: int = 64


def triton_usable(device: torch.device) -> bool:
    """Whether the Triton kernels can run on tensors of this device."""
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _triton_applies(num_routed: int, landmarks: str) -> bool:
    return num_routed == 1 and landmarks == "avgpool"


def _resolve_backend(
    name: str, backend: str, q: torch.Tensor, num_routed: int, landmarks: str, dropout_p: float = 0.0
) -> str:
    if dropout_p > 0 and backend in ("auto", "triton"):
        return "torch"  # the kernels have no dropout; the torch path has
    if backend == "auto":
        usable = q.is_cuda and triton_usable(q.device) and _triton_applies(num_routed, landmarks)
        return "triton" if usable and not diagnostics.active() else "torch"
    if backend == "triton":
        if not triton_usable(q.device):
            raise ValueError(
                f"{name}: backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 on CPU) and the triton "
                "package; use backend='torch' or 'auto'"
            )
        if not _triton_applies(num_routed, landmarks):
            raise ValueError(
                f"{name}: backend='triton' supports landmarks='avgpool' with num_routed=1; use backend='torch' "
                "or 'auto' for this variant"
            )
    return backend


def _run(name, q, k, v, key_padding_mask, params: dict, landmark_queries, training, shared: bool, dropout_p):
    check_inputs(name, q, k, v, key_padding_mask)
    check_p(name, dropout_p)
    backend = _resolve_backend(
        name, params["backend"], q, params["num_routed"], params["landmarks"], dropout_p
    )
    if backend == "triton":
        from .triton_ops import mita_triton

        return mita_triton(q, k, v, key_padding_mask, params["num_landmarks"], params["topk"], shared=shared)
    # Landmarks in at least fp32: pooled half-precision queries would round the routing scores.
    landmarks, landmark_valid = make_landmarks(
        q.to(at_least_fp32(q)),
        key_padding_mask,
        params["num_landmarks"],
        params["landmarks"],
        landmark_queries=landmark_queries,
        training=training,
        kmeans_iters=params["kmeans_iters"],
    )
    attend = mita_reference if backend == "reference" else mita_torch
    return attend(
        q,
        k,
        v,
        key_padding_mask,
        landmarks,
        landmark_valid,
        params["topk"],
        num_routed=params["num_routed"],
        shared=shared,
        dropout_p=dropout_p,
    )


def _learned_landmarks(
    params: MitaParams, num_heads: int, head_dim: int, max_length: int
) -> dict[str, torch.Tensor]:
    if params.landmarks not in ("learned", "avgpool+learned"):
        return {}
    # Added to pooled queries, start at zero; on their own, at the scale of a query.
    scale = 0.0 if params.landmarks == "avgpool+learned" else 1.0
    return {"landmark_queries": torch.randn(num_heads, params.num_landmarks, head_dim) * scale}


def _keys_per_query(params: MitaParams, n: int, shared: bool) -> int:
    routed = min(params.num_routed, params.num_landmarks) * min(params.topk, n)
    return (min(params.num_landmarks, n) if shared else 0) + routed


_VARIANTS = (
    {"num_routed": 2},
    {"landmarks": "learned"},
    {"landmarks": "avgpool+learned"},
    {"landmarks": "random"},
    {"landmarks": "kmeans"},
)


@register(
    "mita",
    MitaParams,
    summary="MiTA: shared expert of m pooled landmarks + the top-k keys of each query's routed landmark",
    keys_per_query=lambda p, n: _keys_per_query(p, n, shared=True),
    runtime_inputs=("landmark_queries", "training"),
    module_parameters=_learned_landmarks,
    variants=_VARIANTS,
    attention_dropout=True,
)
def mita_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    num_landmarks: int,
    topk: int,
    num_routed: int = 1,
    landmarks: Landmarks = "avgpool",
    kmeans_iters: int = 3,
    backend: Backend = "auto",
    landmark_queries: torch.Tensor | None = None,
    training: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """MiTA attention. q, k, v: [B, H, N, d]; key_padding_mask [B, N], True = real token.

    `landmark_queries` [H, m, d] are the learned landmarks (landmarks="learned" / "avgpool+learned");
    `training` redraws random landmarks at every call (landmarks="random"); `dropout_p` drops attention
    probabilities (see the module docstring).
    """
    params = {
        "num_landmarks": num_landmarks,
        "topk": topk,
        "num_routed": num_routed,
        "landmarks": landmarks,
        "kmeans_iters": kmeans_iters,
        "backend": backend,
    }
    return _run(
        "mita_attention", q, k, v, key_padding_mask, params, landmark_queries, training, True, dropout_p
    )


@register(
    "mita_route",
    MitaRouteParams,
    summary="MiTA route-only ablation: each query attends to its routed expert's top-k keys only",
    keys_per_query=lambda p, n: _keys_per_query(p, n, shared=False),
    runtime_inputs=("landmark_queries", "training"),
    module_parameters=_learned_landmarks,
    attention_dropout=True,
)
def mita_route_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    num_landmarks: int,
    topk: int,
    num_routed: int = 1,
    landmarks: Landmarks = "avgpool",
    kmeans_iters: int = 3,
    backend: Backend = "auto",
    landmark_queries: torch.Tensor | None = None,
    training: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Route-only MiTA (no shared expert). q, k, v: [B, H, N, d]; key_padding_mask [B, N], True = real;
    `dropout_p` drops the probabilities over the routed keys."""
    params = {
        "num_landmarks": num_landmarks,
        "topk": topk,
        "num_routed": num_routed,
        "landmarks": landmarks,
        "kmeans_iters": kmeans_iters,
        "backend": backend,
    }
    return _run(
        "mita_route_attention",
        q,
        k,
        v,
        key_padding_mask,
        params,
        landmark_queries,
        training,
        False,
        dropout_p,
    )


__all__ = [
    "LANDMARK_MODES",
    "MitaParams",
    "MitaRouteParams",
    "diagnostics",
    "make_landmarks",
    "mita_attention",
    "mita_reference",
    "mita_route_attention",
    "triton_usable",
]
