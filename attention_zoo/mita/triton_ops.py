"""MiTA on Triton: the entry point `mita_triton` and its `torch.autograd.Function`.

Forward (kernels in triton_pooling.py, triton_selection.py and triton_attention.py, 5 launches, no
host sync): pool the landmarks R; one split-N pass over K, V, Q for the landmark-value partials, the
top-k scores or group maxima and the routing argmax; one selection kernel merging Lv and taking the
exact top-k; counting sort of the queries by expert; one fused online-softmax kernel over [m
landmark keys ++ the kept keys of each query's expert]. Backward (triton_attention_backward.py, 5
launches): a query-major kernel (dQ, Delta, dR and dLv partials), an expert-space kernel (dK_e,
dV_e; sums dLv), the key sort of the selected entries, a key-major kernel (landmark-attention
backward plus the scatter of dK_e, dV_e) and the pooling backward. `MitaGraph` replays either from
a CUDA graph for fixed shapes.

Deterministic backward: `mita_triton(..., deterministic=True)`, or `MITA_DETERMINISTIC=1` in the
environment (read at import), or `triton_common.set_config(deterministic=True)`. It replaces the
fp32 atomics of the expert-space gradients by per-piece partial sums added in a fixed order; every
other reduction is ordered in both modes, so the gradients are then bitwise reproducible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable

from . import triton_common as common
from .triton_attention import attention_forward
from .triton_attention_backward import attention_backward
from .triton_selection import Selection, select

_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_MAX_HEAD_DIM = 256


class MitaTritonFunction(torch.autograd.Function):
    """Autograd wrapper: q, k, v [B, H, N, d] -> O [B, H, N, d]; gradients for q, k, v."""

    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask, num_landmarks, topk, shared, deterministic, fixed):
        batch, heads, length, dim = q.shape
        q3, k3, v3 = (t.reshape(batch * heads, length, dim).contiguous() for t in (q, k, v))
        need_grad = any(ctx.needs_input_grad[:3])
        with _on_device(q):
            sel = select(
                q3, k3, v3, key_padding_mask, num_landmarks, topk, heads, want_values=shared, fixed=fixed
            )
            out, lse = attention_forward(q3, k3, v3, sel, heads, shared=shared, store_lse=need_grad)
        if need_grad:
            ctx.save_for_backward(
                q3, k3, v3, out, lse, sel.landmarks, sel.landmark_values, sel.landmark_lse,
                sel.expert_keys, sel.perm, sel.offsets, sel.lengths, sel.order, sel.mask,
            )  # fmt: skip
            ctx.meta = (batch, heads, length, dim, num_landmarks, sel.kept, shared, deterministic)
        return out.view(batch, heads, length, dim)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        batch, heads, length, dim, num_landmarks, kept, shared, deterministic = ctx.meta
        q3, k3, v3, out, lse, landmarks, values, values_lse, keys, perm, offsets, lengths, order, mask = (
            ctx.saved_tensors
        )
        sel = Selection(
            landmarks=landmarks,
            landmark_values=values,
            landmark_lse=values_lse,
            expert_keys=keys,
            perm=perm,
            offsets=offsets,
            lengths=lengths,
            order=order,
            mask=mask,
            num_landmarks=num_landmarks,
            kept=kept,
        )
        do = grad_out.reshape(batch * heads, length, dim).to(q3.dtype).contiguous()
        with _on_device(q3):
            dq, dk, dv = attention_backward(
                q3, k3, v3, out, lse, do, sel, heads, shared=shared, deterministic=deterministic
            )
        shape = (batch, heads, length, dim)
        return dq.view(shape), dk.view(shape), dv.view(shape), None, None, None, None, None, None


def _on_device(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device: make it the tensor's."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"mita_triton: q, k, v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.dtype not in _DTYPES:
        raise ValueError(
            f"mita_triton: dtype {q.dtype} is not supported by the Triton kernels (float16, bfloat16, "
            "float32); use backend='torch'"
        )
    if q.shape[-1] > _MAX_HEAD_DIM:
        raise ValueError(f"mita_triton: head dim {q.shape[-1]} exceeds {_MAX_HEAD_DIM}; use backend='torch'")


def mita_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    num_landmarks: int,
    topk: int,
    shared: bool = True,
    *,
    deterministic: bool | None = None,
    selection: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """MiTA (shared=True) or route-only MiTA (shared=False) on the Triton kernels.

    q, k, v: [B, H, N, d] (fp16, bf16 or fp32, on CUDA or on CPU under TRITON_INTERPRET=1);
    key_padding_mask: [B, N] bool, True = real token. Same result as `mita_reference`.
    deterministic: bitwise reproducible backward (default: `triton_common.CONFIG.deterministic`).
    selection: (expert_keys [B, H, M, kept], routing [B, H, N]) to hold the top-k and argmax
    fixed, e.g. from `mita_triton_selection` (checks of 16-bit results where near-ties flip them).
    """
    _check(q, k, v)
    if selection is not None:
        batch, heads, length, _ = q.shape
        expected = ((batch, heads, min(num_landmarks, length), min(topk, length)), (batch, heads, length))
        got = tuple(tuple(t.shape) for t in selection)
        if got != expected:
            raise ValueError(
                f"mita_triton: selection must be (expert_keys {expected[0]}, routing {expected[1]}); got {got} "
                "(use mita_triton_selection to make one)"
            )
    if deterministic is None:
        deterministic = common.CONFIG.deterministic
    return MitaTritonFunction.apply(
        q, k, v, key_padding_mask, num_landmarks, topk, shared, bool(deterministic), selection
    )


@torch.no_grad()
def mita_triton_selection(
    q: torch.Tensor, k: torch.Tensor, key_padding_mask: torch.Tensor | None, num_landmarks: int, topk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernels' selection: (expert_keys [B, H, M, kept] int64, routing [B, H, N] int64).

    expert_keys[b, h, j] are the key positions of landmark j's expert (unordered), routing[b, h, n]
    the landmark query n is routed to.
    """
    _check(q, k, k)
    batch, heads, length, dim = q.shape
    q3, k3 = (t.reshape(batch * heads, length, dim).contiguous() for t in (q, k))
    with _on_device(q):
        sel = select(q3, k3, k3, key_padding_mask, num_landmarks, topk, heads, want_values=False)
    bh, m = sel.offsets.shape[0], sel.offsets.shape[1] - 1
    position = torch.arange(length, device=q.device).expand(bh, length).contiguous()
    sorted_expert = torch.searchsorted(sel.offsets[:, 1:].contiguous(), position.to(torch.int32), right=True)
    routing = torch.empty(bh, length, dtype=torch.int64, device=q.device)
    routing.scatter_(1, sel.perm.long(), sorted_expert)
    return (
        sel.expert_keys.long().view(batch, heads, m, sel.kept),
        routing.view(batch, heads, length),
    )


class MitaGraph:
    """`mita_triton` replayed from a CUDA graph, for fixed shapes (benchmarks, inference).

    The kernels never synchronise with the host and take their grids from the shapes only, so one
    captured call serves every input of the same shapes: `graph(q, k, v)` copies the inputs into the
    captured buffers, replays the graph and returns the captured output (overwritten by the next
    replay; clone it to keep it). With `backward=True` the graph holds forward + backward and
    `graph(q, k, v, grad_out)` returns (output, (dq, dk, dv)). The padding mask, m, k and the
    mechanism are fixed at capture.
    """

    def __init__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        num_landmarks: int,
        topk: int,
        shared: bool = True,
        *,
        backward: bool = False,
        deterministic: bool | None = None,
        warmup: int = 2,
    ) -> None:
        _check(q, k, v)
        if not (q.is_cuda and k.is_cuda and v.is_cuda):
            raise ValueError("MitaGraph: CUDA graphs need CUDA tensors; call mita_triton directly elsewhere")
        self.backward = backward
        self.inputs = [t.detach().clone().requires_grad_(backward) for t in (q, k, v)]
        self.grad_out = torch.zeros_like(q) if backward else None
        mask = None if key_padding_mask is None else key_padding_mask.detach().clone()

        def step() -> tuple[torch.Tensor, Sequence[torch.Tensor]]:
            q_in, k_in, v_in = self.inputs
            out = mita_triton(
                q_in, k_in, v_in, mask, num_landmarks, topk, shared, deterministic=deterministic
            )
            grads = torch.autograd.grad(out, self.inputs, self.grad_out) if backward else ()
            return out, grads

        side = torch.cuda.Stream(device=q.device)  # warm-up (compilation) off the capturing stream
        side.wait_stream(torch.cuda.current_stream(q.device))
        with torch.cuda.stream(side), torch.set_grad_enabled(backward):
            for _ in range(warmup):
                step()
        torch.cuda.current_stream(q.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.set_grad_enabled(backward):
            self.out, self.grads = step()

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad_out: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, Sequence[torch.Tensor]]:
        given, static = [q, k, v], list(self.inputs)
        if self.backward:
            if grad_out is None or self.grad_out is None:
                raise ValueError(
                    "MitaGraph: captured with backward=True, so call it as graph(q, k, v, grad_out)"
                )
            given.append(grad_out)
            static.append(self.grad_out)
        for new, old in zip(given, static, strict=True):
            if new.shape != old.shape or new.dtype != old.dtype:
                raise ValueError(
                    f"MitaGraph: captured for shape {tuple(old.shape)} {old.dtype}, got {tuple(new.shape)} "
                    f"{new.dtype}; capture another graph for other shapes"
                )
        with torch.no_grad():
            for new, old in zip(given, static, strict=True):
                old.copy_(new)
        self.graph.replay()
        return (self.out, self.grads) if self.backward else self.out
