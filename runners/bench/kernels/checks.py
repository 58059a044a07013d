"""The checks of the MiTA kernels against their definition: the relative error the field uses
(`rel_err`), MiTA computed from its equations with a given selection (`fixed_selection_mita`), and
the checks `lra bench kernels` runs on the GPU before timing (`verify`). The kernel tests
(tests/test_mita_triton.py, tests/test_bench_kernels.py) import the two helpers from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .protocol import BATCH, HEAD_DIM, HEADS, NUM_LANDMARKS, TOPK

# Differences at or under this are rounding noise, not error (`rel_err`).
NOISE_FLOOR = 1e-6


def rel_err(actual: torch.Tensor, expected: torch.Tensor, *, floor: float = NOISE_FLOOR) -> float:
    """fla's relative error ||a - b|| / ||b||, in fp64.

    inf when `actual` holds a non-finite value (a kernel that left an element unwritten: the tests
    poison output buffers with NaN), so that every check fails on it; 0 when no element differs by
    more than `floor` (an all-zero expected tensor, the gradient of keys no query selects, against
    rounding noise would otherwise divide by zero).
    """
    actual, expected = actual.detach(), expected.detach()
    if not bool(torch.isfinite(actual).all()):
        return math.inf
    diff = actual.double() - expected.double()
    if diff.numel() == 0 or float(diff.abs().max()) <= floor:
        return 0.0
    return float(diff.norm() / expected.double().norm().clamp_min(1e-30))


def _landmarks(x: torch.Tensor, num_landmarks: int) -> torch.Tensor:
    """Landmark j of x [H, L, d] = the mean of rows [floor(jL/m), ceil((j+1)L/m)), m = min(num_landmarks, L)."""
    length = x.shape[1]
    m = min(num_landmarks, length)
    windows = [(j * length // m, -(-(j + 1) * length // m)) for j in range(m)]
    return torch.stack([x[:, start:end].mean(1) for start, end in windows], dim=1)


def fixed_selection_mita(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    num_landmarks: int,
    expert_keys: torch.Tensor,
    routing: torch.Tensor,
    shared: bool = True,
    chunk: int = 4096,
) -> torch.Tensor:
    """MiTA from its equations with the selection given: the top-k experts [B, H, M, kept] and the
    routing [B, H, N] (the kernels' own, `mita_triton_selection`, so that 16-bit results are checked
    where near-ties would flip a recomputed selection). In the precision of q, k, v; autograd gives
    the gradients. Written without the package's helpers, so that it checks them too.

    Per batch row with L valid tokens: the landmarks r_j pool the valid queries
    (`_landmarks`, m = min(num_landmarks, L)); query n attends the `kept` keys of the expert it is
    routed to, expert_keys[b, h, routing[b, h, n]], with logits q.k / sqrt(d), padded keys
    excluded, and, with `shared`, the m landmarks with logits q.r_j / d, whose values are r_j's
    attention over the valid keys, softmax(r_j K^T / sqrt(d)) V; one softmax over all of them.
    Queries are taken `chunk` at a time.
    """
    batch, heads, n, d = q.shape
    kept = expert_keys.shape[-1]
    head = torch.arange(heads, device=q.device)[:, None, None]
    out = []
    for b in range(batch):
        valid = (
            torch.ones(n, dtype=torch.bool, device=q.device)
            if key_padding_mask is None
            else key_padding_mask[b]
        )
        qb, kb, vb = q[b], k[b], v[b]  # [H, N, d]
        index = expert_keys[b].gather(1, routing[b][..., None].expand(-1, -1, kept))  # [H, N, kept]
        landmarks = _landmarks(qb[:, valid], num_landmarks)  # [H, m, d]
        if shared:
            scores = landmarks @ kb[:, valid].transpose(-1, -2) / math.sqrt(d)
            landmark_values = torch.softmax(scores, -1) @ vb[:, valid]  # [H, m, d]
        rows = []
        for start in range(0, n, chunk):
            queries = qb[:, start : start + chunk]  # [H, c, d]
            idx = index[:, start : start + chunk]  # [H, c, kept]
            routed = torch.einsum("hcd,hckd->hck", queries, kb[head, idx]) / math.sqrt(d)
            routed = routed.masked_fill(~valid[idx], float("-inf"))
            values = vb[head, idx]  # [H, c, kept, d]
            if shared:
                logits = torch.cat([queries @ landmarks.transpose(-1, -2) / d, routed], -1)
                probs = torch.softmax(logits, -1)
                m = landmarks.shape[1]
                rows.append(
                    probs[..., :m] @ landmark_values + torch.einsum("hck,hckd->hcd", probs[..., m:], values)
                )
            else:
                rows.append(torch.einsum("hck,hckd->hcd", torch.softmax(routed, -1), values))
        out.append(torch.cat(rows, dim=1))
    return torch.stack(out)


@dataclass
class Check:
    """One correctness check run before timing: its value passes at or under its limit."""

    name: str
    value: float
    limit: float

    @property
    def ok(self) -> bool:
        return self.value <= self.limit


def random_inputs(
    batch: int, heads: int, n: int, d: int, dtype: torch.dtype, device: torch.device, seed: int
) -> list[torch.Tensor]:
    """q, k, v [batch, heads, n, d], N(0, 1) in `dtype`, seeded."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return [torch.randn(batch, heads, n, d, generator=gen, device=device).to(dtype) for _ in range(3)]


def _padding(batch: int, n: int, device: torch.device, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed)
    mask = torch.rand(batch, n, generator=gen, device=device) > 0.3
    mask[:, 0] = True
    return mask


def _grads(out: torch.Tensor, leaves: list[torch.Tensor], seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator(device=out.device).manual_seed(seed)
    upstream = torch.randn(out.shape, generator=gen, device=out.device).to(out.dtype)
    return torch.autograd.grad(out, leaves, upstream)


def verify(device: torch.device, *, n32: int = 4096, n16: int = 16384, heads: int = HEADS) -> list[Check]:
    """The correctness checks run before timing (sizes are parameters so CPU tests can shrink them)."""
    from attention_zoo import functional as zoo
    from attention_zoo.mita.triton_ops import mita_triton, mita_triton_selection

    checks: list[Check] = []
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for shared in (True, False):
            name = "mita" if shared else "mita_route"
            fn = zoo.mita_attention if shared else zoo.mita_route_attention
            for padded in (False, True):
                batch = 2 if padded else 1
                n = n32 // 4 + 3 if padded else n32  # odd padded length
                base = random_inputs(batch, heads, n, HEAD_DIM, torch.float32, device, seed=n)
                mask = _padding(batch, n, device, seed=n) if padded else None
                ref_leaves = [t.clone().requires_grad_() for t in base]
                tri_leaves = [t.clone().requires_grad_() for t in base]
                expected = fn(
                    *ref_leaves,
                    key_padding_mask=mask,
                    num_landmarks=NUM_LANDMARKS,
                    topk=TOPK,
                    backend="torch",
                )
                q_tri, k_tri, v_tri = tri_leaves
                out = mita_triton(q_tri, k_tri, v_tri, mask, NUM_LANDMARKS, TOPK, shared)
                label = f"{name} fp32 N={n}{' padded' if padded else ''}"
                checks.append(Check(f"{label}: forward", rel_err(out, expected), 1e-4))
                for axis, g, g_ref in zip(
                    "qkv", _grads(out, tri_leaves, 1), _grads(expected, ref_leaves, 1), strict=True
                ):
                    checks.append(Check(f"{label}: d{axis}", rel_err(g, g_ref), 1e-3))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32

    # 16-bit: the kernels' own selection, held fixed, against fp32 arithmetic on the same inputs.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float16  # the interpreter's bf16 is broken
    q, k, v = random_inputs(BATCH, heads, n16, HEAD_DIM, dtype, device, seed=16)
    selection = mita_triton_selection(q, k, None, NUM_LANDMARKS, TOPK)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = mita_triton(leaves[0], leaves[1], leaves[2], None, NUM_LANDMARKS, TOPK, selection=selection)
    with torch.no_grad():
        same = mita_triton(q, k, v, None, NUM_LANDMARKS, TOPK)
    checks.append(Check(f"{dtype} N={n16}: own selection == held selection (max abs diff)",
                        (same.float() - out.float()).abs().max().item(), 0.0))  # fmt: skip
    exact = [t.float().requires_grad_() for t in (q, k, v)]
    expected = fixed_selection_mita(exact[0], exact[1], exact[2], None, NUM_LANDMARKS, *selection)
    label = f"mita {dtype} N={n16} selection held"
    checks.append(Check(f"{label}: forward", rel_err(out, expected), 1e-2))
    for axis, g, g_ref in zip("qkv", _grads(out, leaves, 2), _grads(expected, exact, 2), strict=True):
        checks.append(Check(f"{label}: d{axis}", rel_err(g, g_ref), 2e-2))

    # Deterministic backward: bitwise repeatable.
    runs = []
    for _ in range(2):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = mita_triton(leaves[0], leaves[1], leaves[2], None, NUM_LANDMARKS, TOPK, deterministic=True)
        runs.append(_grads(out, leaves, 3))
    worst = max((a.float() - b.float()).abs().max().item() for a, b in zip(*runs, strict=True))
    checks.append(Check(f"{dtype} N={n16}: deterministic backward, run-to-run max abs diff", worst, 0.0))
    return checks
