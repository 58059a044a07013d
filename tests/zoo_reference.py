"""Independent dense definitions of every zoo mechanism, written from the mechanisms' published equations
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
# Positional mechanisms see all N positions with `valid` [N] marking the real keys.
POSITIONAL = {"moba": moba}
# Mechanisms whose definition depends on the head index (e.g. a per-head random pattern).
NEEDS_HEAD: set[str] = set()


# Kernelized and low-rank baselines: each takes the L valid tokens of one (row, head) in order.


def elu_plus_one(x):
    return torch.where(x > 0, x + 1, torch.exp(x))


def linear(q, k, v):
    weights = elu_plus_one(q) @ elu_plus_one(k).T
    return weights @ v / (weights.sum(-1, keepdim=True) + 1e-6)


def seeded_orthogonal_features(num_features, d):
    """The documented fixed features: blocks of QR(gaussian) rows (Haar signs), then row norms of gaussians."""
    gen = torch.Generator().manual_seed(0)
    blocks = []
    for _ in range(math.ceil(num_features / d)):
        g = torch.randn(d, d, generator=gen)
        qmat, r = torch.linalg.qr(g)
        blocks.append((qmat @ torch.diag(torch.sign(torch.diagonal(r)))).T)
    norms = torch.randn(num_features, d, generator=gen).norm(dim=1)
    return torch.diag(norms) @ torch.cat(blocks)[:num_features]


def performer(q, k, v, num_features, redraw_interval=0, features=None):
    d = q.shape[-1]
    omega = (features if features is not None else seeded_orthogonal_features(num_features, d)).to(q.dtype)

    def phi(x):
        x = x / d**0.25
        return torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(num_features)

    weights = phi(q) @ phi(k).T
    return weights @ v / weights.sum(-1, keepdim=True)


def cosformer(q, k, v):
    length = q.shape[0]
    theta = torch.tensor([math.pi / 2 * i / length for i in range(1, length + 1)], dtype=q.dtype)[:, None]

    def features(x):
        return torch.cat([torch.relu(x) * torch.sin(theta), torch.relu(x) * torch.cos(theta)], dim=-1)

    weights = features(q) @ features(k).T
    return weights @ v / weights.sum(-1, keepdim=True).clamp(min=1e-6)


def seeded_projection(proj_dim, length, seed):
    """The documented fixed projection: N(0, 1/proj_dim) entries, column t from its block of positions."""
    columns = []
    for t in range(length):
        block, row = divmod(t, 64)  # blocks of 64 positions, block b from seed * 1_000_003 + b
        gen = torch.Generator().manual_seed(seed * 1_000_003 + block)
        columns.append(torch.randn(64, proj_dim, generator=gen)[row])
    return torch.stack(columns).T * proj_dim**-0.5


def linformer(q, k, v, proj_dim, proj_k=None, proj_v=None):
    length = q.shape[0]
    e = proj_k[:, :length] if proj_k is not None else seeded_projection(proj_dim, length, 0)
    f = proj_v[:, :length] if proj_v is not None else seeded_projection(proj_dim, length, 1)
    return full(q, e.to(q.dtype) @ k, f.to(q.dtype) @ v)


def newton_schulz(a, z, iters):
    eye = torch.eye(a.shape[0], dtype=a.dtype)
    for _ in range(iters):
        z = z @ (13 * eye - a @ z @ (15 * eye - a @ z @ (7 * eye - a @ z))) / 4
    return z


def depthwise_conv(v, weight):
    """out_t = sum_u w_u v_{t + u - (taps - 1) // 2}, zero outside the L valid tokens."""
    taps, length = weight.shape[0], v.shape[0]
    out = torch.zeros_like(v)
    for t in range(length):
        for u in range(taps):
            source = t + u - (taps - 1) // 2
            if 0 <= source < length:
                out[t] += weight[u] * v[source]
    return out


def nystrom(q, k, v, num_landmarks, pinv_iters, conv_kernel, conv_weight=None):
    s = q.shape[-1] ** -0.5
    q_land, k_land = pool(q, num_landmarks), pool(k, num_landmarks)
    a1 = torch.softmax(s * q @ k_land.T, -1)
    a2 = torch.softmax(s * q_land @ k_land.T, -1)
    a3 = torch.softmax(s * q_land @ k.T, -1)
    z0 = a2.T / (a2.abs().sum(0).max() * a2.abs().sum(1).max())
    out = a1 @ newton_schulz(a2, z0, pinv_iters) @ a3 @ v
    if conv_kernel:
        out = out + depthwise_conv(v, conv_weight)
    return out


def skyformer(q, k, v, num_samples, pinv_iters, uniforms=None):
    """Samples: token of rank floor(u_t L); the first num_samples // 2 from the queries."""
    length, d = q.shape
    if uniforms is None:
        uniforms = torch.rand(num_samples, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ranks = [math.floor(float(u) * length) for u in uniforms]
    q, k = q / d**0.25, k / d**0.25
    half = num_samples // 2
    samples = torch.stack([q[r] for r in ranks[:half]] + [k[r] for r in ranks[half:]])

    def kernel(a, b):
        return torch.exp(-(torch.cdist(a, b) ** 2) / 2)

    gram = kernel(samples, samples) + 0.1 * torch.eye(num_samples, dtype=q.dtype)
    scaling = torch.diag(gram.sum(1) ** -0.5)
    normalised = scaling @ gram @ scaling
    z = newton_schulz(normalised, normalised.T / normalised.abs().sum(0).max(), pinv_iters)
    return kernel(q, samples) @ scaling @ z @ scaling @ kernel(samples, k) @ v


DENSE.update(
    linear=linear,
    performer=performer,
    cosformer=cosformer,
    linformer=linformer,
    nystrom=nystrom,
    skyformer=skyformer,
)


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
            if name in NEEDS_HEAD:
                extra = {"head": h, **extra}
            if name in POSITIONAL:
                out[b, h] = POSITIONAL[name](q[b, h], k[b, h], v[b, h], keep, **params, **extra)
            else:
                out[b, h, keep] = DENSE[name](q[b, h, keep], k[b, h, keep], v[b, h, keep], **params, **extra)
    return out


# --- Classic LRA baselines with fixed and learned sparsity patterns ------------------------------


def attend_allowed(q, k, v, valid, allowed):
    """Row i: softmax of s q_i . k_j over the valid j with allowed[i, j] (a set: each key once).
    A query with nothing to attend (only padded ones) is left at zero (unspecified)."""
    d = q.shape[-1]
    keep = allowed & valid[None, :]
    logits = (d**-0.5 * q @ k.T).masked_fill(~keep, float("-inf"))
    out = torch.softmax(logits, dim=-1) @ v
    return torch.where(keep.any(dim=1, keepdim=True), out, torch.zeros_like(out))


def positions(n):
    i = torch.arange(n)
    return i[:, None], i[None, :]


def local(q, k, v, valid, window):
    i, j = positions(q.shape[0])
    return attend_allowed(q, k, v, valid, (i - j).abs() <= window)


def longformer(q, k, v, valid, window, num_global):
    i, j = positions(q.shape[0])
    return attend_allowed(q, k, v, valid, ((i - j).abs() <= window) | (j < num_global) | (i < num_global))


def splitmix64_unit(x):
    """splitmix64 of a non-negative integer counter, as a float in [0, 1)."""
    mask = (1 << 64) - 1
    x = (x * 0x9E3779B97F4A7C15) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    x ^= x >> 31
    return (x >> 11) / float(1 << 53)


def bigbird_blocks(n, valid, head, block_size, num_global_blocks, num_random_blocks, seed):
    """Key blocks of every query block: window, globals, and the random draw among the valid
    non-window non-global blocks (the `num_random_blocks` largest hash scores)."""
    blocks = math.ceil(n / block_size)
    glob = min(num_global_blocks, blocks)
    last_valid = max(j for j in range(n) if valid[j])
    drawable = last_valid // block_size + 1
    out = []
    for i in range(blocks):
        chosen = {c for c in (i - 1, i, i + 1) if 0 <= c < blocks} | set(range(glob))
        candidates = [c for c in range(drawable) if abs(c - i) > 1 and c >= glob]
        score = {
            c: splitmix64_unit(((seed * 1_000_003 + head) * 1_048_576 + i) * 1_048_576 + c)
            for c in candidates
        }
        chosen |= set(sorted(candidates, key=lambda c: -score[c])[:num_random_blocks])
        out.append(chosen)
    return out, glob


def bigbird(q, k, v, valid, block_size, num_global_blocks, num_random_blocks, seed, head=0):
    n = q.shape[0]
    blocks, glob = bigbird_blocks(n, valid, head, block_size, num_global_blocks, num_random_blocks, seed)
    allowed = torch.tensor(
        [
            [i < glob * block_size or j // block_size in blocks[i // block_size] for j in range(n)]
            for i in range(n)
        ]
    )
    return attend_allowed(q, k, v, valid, allowed)


def sparse(q, k, v, valid, block_size, num_summary):
    i, j = positions(q.shape[0])
    own_block = i // block_size == j // block_size
    return attend_allowed(q, k, v, valid, own_block | (j % block_size >= block_size - num_summary))


POSITIONAL.update({"local": local, "longformer": longformer, "bigbird": bigbird, "sparse": sparse})
NEEDS_HEAD.add("bigbird")


def reformer(q, k, v, bucket_size, num_hashes, seed):
    """On the valid tokens: rounds of (hash, sort by bucket then position, chunks attending to
    themselves and the previous chunk, cyclically), each key once, itself only when alone; rounds
    weighted by the softmax of their log-sum-exps."""
    n, d = q.shape
    keys = k / k.norm(dim=-1, keepdim=True)
    buckets = 1 if n <= bucket_size else 2 * math.ceil(n / (2 * bucket_size))
    if buckets > 1:  # the seed's rotations: torch.randn(R, d, n_b / 2) from seed * 1_000_003 + n_b
        gen = torch.Generator().manual_seed(seed * 1_000_003 + buckets)
        rot = torch.randn(num_hashes, d, buckets // 2, generator=gen, dtype=torch.float64).to(q.dtype)
    outs, lses = [], []
    for r in range(num_hashes):
        if buckets == 1:
            bucket = [0] * n
        else:
            projected = keys @ rot[r]
            bucket = torch.cat([projected, -projected], dim=-1).argmax(dim=-1).tolist()
        order = sorted(range(n), key=lambda j: (bucket[j], j))
        chunks = [order[c : c + bucket_size] for c in range(0, n, bucket_size)]
        out, lse = torch.zeros(n, d, dtype=q.dtype), torch.zeros(n, dtype=q.dtype)
        for c, members in enumerate(chunks):
            candidates = set(members) | set(chunks[c - 1])  # chunk 0 wraps to the last chunk
            for i in members:
                attended = sorted(candidates - {i}) or [i]
                logits = d**-0.5 * keys[attended] @ q[i]
                out[i] = softmax_attend(logits, v[attended])
                lse[i] = torch.logsumexp(logits, dim=0)
        outs.append(out)
        lses.append(lse)
    weights = torch.softmax(torch.stack(lses), dim=0)
    return sum(weights[r][:, None] * outs[r] for r in range(num_hashes))


def synthesizer_inputs(params, heads=8, max_length=300):
    """Fixed learned logits for the tests: [H, N_max, N_max], or the two factors."""
    gen = torch.Generator().manual_seed(11)
    if params.get("factorized"):
        rank = params["rank"]
        return {
            "logits_left": torch.randn(heads, max_length, rank, generator=gen, dtype=torch.float64),
            "logits_right": torch.randn(heads, rank, max_length, generator=gen, dtype=torch.float64) / rank,
        }
    return {"logits": torch.randn(heads, max_length, max_length, generator=gen, dtype=torch.float64)}


def synthesizer(q, k, v, valid, factorized, rank, head=0):
    n, d = q.shape
    inputs = synthesizer_inputs({"factorized": factorized, "rank": rank})
    if factorized:
        left, right = inputs["logits_left"][head], inputs["logits_right"][head]
        bias = left[:n] @ right[:, :n]
    else:
        bias = inputs["logits"][head, :n, :n]
    return attend_allowed_logits(d**-0.5 * q @ k.T + bias.to(q.dtype), v, valid)


def attend_allowed_logits(logits, v, valid):
    return torch.softmax(logits.masked_fill(~valid[None, :], float("-inf")), dim=-1) @ v


DENSE["reformer"] = reformer
POSITIONAL["synthesizer"] = synthesizer
NEEDS_HEAD.add("synthesizer")


def sinkhorn_inputs(params, dim, max_length=300):
    """A fixed sorting network for the tests: weight [d, n_max], bias [n_max]."""
    gen = torch.Generator().manual_seed(13)
    blocks = math.ceil(max_length / params["block_size"])
    return {
        "sort_weight": torch.randn(dim, blocks, generator=gen, dtype=torch.float64),
        "sort_bias": torch.randn(blocks, generator=gen, dtype=torch.float64),
    }


def sinkhorn(q, k, v, valid, block_size, sinkhorn_iters):
    n, d = q.shape
    net = sinkhorn_inputs({"block_size": block_size}, d)
    blocks = [list(range(b, min(b + block_size, n))) for b in range(0, n, block_size)]
    real = [i for i, blk in enumerate(blocks) if any(valid[t] for t in blk)]
    zero = torch.zeros(d, dtype=q.dtype)

    def slot(x, i, t):  # x at slot t of block i; padded or missing positions are zero
        pos = i * block_size + t
        return x[pos] if pos < n and valid[pos] else zero

    summary = torch.stack([sum((slot(k, i, t) for t in range(block_size)), zero) for i in real])
    scores = summary @ net["sort_weight"][:, real].to(q.dtype) + net["sort_bias"][real].to(q.dtype)
    log_p = scores - scores.logsumexp(dim=1, keepdim=True)
    for step in range(sinkhorn_iters):
        if step:
            log_p = log_p - log_p.logsumexp(dim=1, keepdim=True)
        log_p = log_p - log_p.logsumexp(dim=0, keepdim=True)
    p = log_p.exp()  # rows and columns: the valid blocks
    slot_ok = [
        any(i * block_size + t < n and valid[i * block_size + t] for i in real) for t in range(block_size)
    ]
    out = torch.zeros(n, d, dtype=q.dtype)
    for row, i in enumerate(real):
        partner_k = [
            sum((p[row, c] * slot(k, j, t) for c, j in enumerate(real)), zero) for t in range(block_size)
        ]
        partner_v = [
            sum((p[row, c] * slot(v, j, t) for c, j in enumerate(real)), zero) for t in range(block_size)
        ]
        own = [t for t in blocks[i] if valid[t]]
        keys = torch.stack([k[t] for t in own] + [partner_k[t] for t in range(block_size) if slot_ok[t]])
        values = torch.stack([v[t] for t in own] + [partner_v[t] for t in range(block_size) if slot_ok[t]])
        for t in blocks[i]:
            out[t] = softmax_attend(d**-0.5 * keys @ q[t], values)
    return out


POSITIONAL["sinkhorn"] = sinkhorn
