"""Independent dense definitions of every zoo mechanism, written from the equations in the issue
(not from the implementation): one (batch row, head) at a time, on the valid subsequence, with
plain Python index arithmetic. Used by the tests as ground truth in fp64."""

from __future__ import annotations

import math

import torch


def pool(x: torch.Tensor, m: int) -> torch.Tensor:
    """Landmark j = mean of rows [floor(j L / m), ceil((j+1) L / m)) of x [L, d], m clamped to L."""
    length = x.shape[0]
    m = min(m, length)
    rows = [x[math.floor(j * length / m) : math.ceil((j + 1) * length / m)].mean(0) for j in range(m)]
    return torch.stack(rows)


def softmax_attend(logits: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1) @ values


def full(q, k, v):
    s = q.shape[-1] ** -0.5
    return softmax_attend(s * q @ k.T, v)


def agent(q, k, v, num_agents):
    s = q.shape[-1] ** -0.5
    a = pool(q, num_agents)
    agent_values = softmax_attend(s * a @ k.T, v)
    return softmax_attend(s * q @ a.T, agent_values)


def topk(q, k, v, topk):
    s = q.shape[-1] ** -0.5
    t = min(topk, k.shape[0])
    out = []
    for qn in q:
        scores = s * k @ qn
        keep = torch.argsort(scores, descending=True)[:t]
        out.append(softmax_attend(scores[keep], v[keep]))
    return torch.stack(out)


def kmeans(x, init, iters):
    """Lloyd's algorithm on the rows of x [L, d] from centroids init [m, d]; an empty cluster keeps
    its centroid."""
    c = init.clone()
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(dim=1)
        c = torch.stack([x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(c.shape[0])])
    return c


def mita_landmarks(q, num_landmarks, landmarks="avgpool", learned=None, kmeans_iters=3):
    if landmarks == "learned":
        return learned
    r = pool(q, num_landmarks)
    if landmarks == "avgpool+learned":
        return r + learned[: r.shape[0]]
    if landmarks == "kmeans":
        return kmeans(q, r, kmeans_iters)
    return r


def mita(
    q,
    k,
    v,
    num_landmarks,
    topk,
    shared=True,
    num_routed=1,
    landmarks="avgpool",
    learned=None,
    kmeans_iters=3,
    given=None,
):
    d = q.shape[-1]
    s = d**-0.5
    r = given if given is not None else mita_landmarks(q, num_landmarks, landmarks, learned, kmeans_iters)
    t = min(topk, k.shape[0])
    experts = [torch.argsort(rj @ k.T, descending=True)[:t] for rj in r]
    landmark_values = softmax_attend(s * r @ k.T, v)
    out = []
    for qn in q:
        chosen = torch.argsort(r @ qn, descending=True)[: min(num_routed, r.shape[0])]
        idx = torch.cat([experts[int(e)] for e in chosen])  # a key in two experts counts twice
        routed = s * k[idx] @ qn
        if shared:
            logits = torch.cat([r @ qn / d, routed])
            out.append(softmax_attend(logits, torch.cat([landmark_values, v[idx]])))
        else:
            out.append(softmax_attend(routed, v[idx]))
    return torch.stack(out)


def mita_route(q, k, v, num_landmarks, topk, **kwargs):
    return mita(q, k, v, num_landmarks, topk, shared=False, **kwargs)


def moba(q, k, v, valid, block_size, topk_blocks):
    """Positional blocks over all N positions; `valid` [N] bool marks real keys."""
    n, d = q.shape
    s = d**-0.5
    blocks = [list(range(b, min(b + block_size, n))) for b in range(0, n, block_size)]
    means, usable = [], []
    for blk in blocks:
        real = [t for t in blk if valid[t]]
        usable.append(bool(real))
        means.append(k[real].mean(0) if real else torch.zeros(d, dtype=k.dtype))
    means = torch.stack(means)
    out = []
    for qn in q:
        gate = means @ qn
        gate = torch.where(torch.tensor(usable), gate, torch.tensor(float("-inf"), dtype=gate.dtype))
        chosen = torch.argsort(gate, descending=True)[: min(topk_blocks, len(blocks))]
        keys = [t for b in sorted(chosen.tolist()) for t in blocks[b] if valid[t]]
        out.append(softmax_attend(s * k[keys] @ qn, v[keys]))
    return torch.stack(out)


DENSE = {"full": full, "agent": agent, "topk": topk, "mita": mita, "mita_route": mita_route}


def apply_removing_padding(name, q, k, v, mask, per_head=None, **params):
    """Reference output [B, H, N, d] where padding is removed: each (row, head) is computed on its
    valid subsequence; padded positions are left at zero (unspecified in the contract).
    `per_head(b, h)` may supply extra keyword arguments (e.g. learned landmarks of head h)."""
    out = torch.zeros_like(q)
    batch, heads, n, _ = q.shape
    for b in range(batch):
        keep = torch.ones(n, dtype=torch.bool) if mask is None else mask[b]
        for h in range(heads):
            extra = per_head(b, h) if per_head else {}
            if name == "moba":
                out[b, h] = moba(q[b, h], k[b, h], v[b, h], keep, **params)
            else:
                out[b, h, keep] = DENSE[name](q[b, h, keep], k[b, h, keep], v[b, h, keep], **params, **extra)
    return out
