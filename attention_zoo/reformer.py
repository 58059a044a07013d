r"""Reformer LSH attention (Kitaev et al., 2020), non-causal, with shared queries and keys.

Keys are unit-normalised, \hat k_j = k_j / \lVert k_j \rVert (the layer ties k to q, so they are the
unit-normalised queries, as in Reformer). In each of the `num_hashes` rounds r, token j falls in the
bucket h_r(j) = argmax([\hat k_j R_r ; -\hat k_j R_r]) of a random rotation R_r (d x n_b / 2); the
valid tokens are sorted by (bucket, position) and cut into chunks of b = `bucket_size`; the tokens of
chunk c attend to the keys of chunk c and of the previous chunk (chunk 0: the last one; each key once).
With S_r(i) that set, minus i itself unless nothing else is in it,

.. math::

    o_i^{(r)} = \sum_{j \in S_r(i)} \operatorname{softmax}_j\!\left(s\, q_i^\top \hat k_j\right) v_j, \quad
    \ell_i^{(r)} = \log \sum_{j \in S_r(i)} e^{s q_i^\top \hat k_j}, \quad
    o_i = \sum_r \operatorname{softmax}_r\!\big(\ell_i^{(r)}\big)\, o_i^{(r)},

s = d^{-1/2}. With L valid tokens the number of buckets is n_b = 2 ceil(L / 2b) (Reformer's choice of
about one bucket per chunk), 1 when L <= b -- one chunk, which is full shared-QK attention. The
rotations are drawn from `seed` and n_b, so they are fixed across calls, and padding (which only
changes N, not L) leaves every valid output unchanged. Hashing is not differentiated through.

Half-precision inputs are hashed and attended in fp32 (a key's bucket must not depend on
the rounding of its rotation scores); the output has the input's dtype.
Attention dropout (`dropout_p`): on each round's probabilities over its chunk keys. (Reformer's
own code has a dropout there, `lsh_attention_probs_dropout_prob`, off by default in Hugging Face's
config, which the PyTorch LRA lineage ran; LRA's JAX LSH attention applies none.)
Cost O(num_hashes N b d) time and memory, plus the O(N log N) sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._common import at_least_fp32, check_inputs, gather_rows, no_autocast, valid_lengths
from ._dropout import check_p, drop
from .registry import AttentionParams, register


@dataclass(frozen=True)
class ReformerParams(AttentionParams):
    # Chunk length 64: Reformer's (Trax/Hugging Face lsh_attn_chunk_length) default; 2 hash rounds:
    # the Nystromformer/Skyformer LRA configs (num_hash = 2).
    bucket_size: int = 64
    num_hashes: int = 2
    seed: int = 0

    def check(self) -> None:
        if self.bucket_size < 1:
            raise ValueError(f"bucket_size must be >= 1; got {self.bucket_size}")
        if self.num_hashes < 1:
            raise ValueError(f"num_hashes must be >= 1; got {self.num_hashes}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0; got {self.seed}")


def num_buckets(valid_length: int, bucket_size: int) -> int:
    """Buckets for a sequence of `valid_length` tokens: 1 if it fits one chunk, else 2 ceil(L / 2b)."""
    if valid_length <= bucket_size:
        return 1
    return 2 * -(-valid_length // (2 * bucket_size))


def rotations(seed: int, buckets: int, num_hashes: int, dim: int) -> torch.Tensor:
    """Random rotations [num_hashes, d, buckets / 2] (float64, CPU), a function of (seed, buckets)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + buckets)
    return torch.randn(num_hashes, dim, buckets // 2, generator=gen, dtype=torch.float64)


def _buckets(
    keys: torch.Tensor, lengths: torch.Tensor, bucket_size: int, num_hashes: int, seed: int
) -> torch.Tensor:
    """Bucket of every token in every round, [B, H, R, N] (int64)."""
    batch, heads, length, dim = keys.shape
    out = torch.zeros(batch, heads, num_hashes, length, dtype=torch.long, device=keys.device)
    per_row = [num_buckets(int(n), bucket_size) for n in lengths.tolist()]
    for count in sorted(set(per_row)):
        if count == 1:
            continue
        rows = torch.tensor([b for b, c in enumerate(per_row) if c == count], device=keys.device)
        rot = rotations(seed, count, num_hashes, dim).to(device=keys.device, dtype=keys.dtype)
        projected = torch.einsum("bhnd,rdk->bhrnk", keys[rows], rot)
        out[rows] = torch.cat([projected, -projected], dim=-1).argmax(dim=-1)
    return out


@register(
    "reformer",
    ReformerParams,
    summary="LSH attention with shared QK: hash rounds, sorted chunks attending to themselves + the previous",
    keys_per_query=lambda p, n: min(2 * p.bucket_size * p.num_hashes, n),
    shared_qk=True,
    attention_dropout=True,
)
def reformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    bucket_size: int,
    num_hashes: int,
    seed: int,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Reformer LSH attention. q, k, v: [B, H, N, d] (k = q in the layer); mask [B, N], True = real;
    `dropout_p`: dropout on the attention probabilities."""
    check_inputs("reformer_attention", q, k, v, key_padding_mask)
    check_p("reformer_attention", dropout_p)
    work = at_least_fp32(q)
    with no_autocast(q):
        out = _lsh_attention(
            q.to(work), k.to(work), v.to(work), key_padding_mask, bucket_size, num_hashes, seed, dropout_p
        )
    return out.to(q.dtype)


def _lsh_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    bucket_size: int,
    num_hashes: int,
    seed: int,
    dropout_p: float,
) -> torch.Tensor:
    batch, heads, length, dim = q.shape
    device = q.device
    keys = F.normalize(k, dim=-1, eps=1e-12)
    lengths = valid_lengths(key_padding_mask, batch, length, device)
    valid = (
        torch.ones(batch, length, dtype=torch.bool, device=device)
        if key_padding_mask is None
        else key_padding_mask
    )
    chunk = bucket_size
    num_chunks = -(-length // chunk)
    padded = num_chunks * chunk
    with torch.no_grad():
        buckets = _buckets(keys.detach(), lengths, bucket_size, num_hashes, seed)  # [B, H, R, N]
        position = torch.arange(length, device=device)
        # Padded tokens sort after every valid one; ties in a bucket keep the position order.
        sort_key = torch.where(valid[:, None, None, :], buckets, length) * length + position
        order = sort_key.argsort(dim=-1)  # [B, H, R, N]: token at each sorted rank
        order = F.pad(order, (0, padded - length), value=0)
        rank_valid = torch.arange(padded, device=device) < lengths.view(batch, 1, 1, 1)  # [B, 1, 1, N']
        valid_chunks = -(-lengths // chunk)  # chunks holding valid tokens
        chunk_id = torch.arange(num_chunks, device=device)
        previous = torch.where(chunk_id > 0, chunk_id - 1, valid_chunks.view(batch, 1) - 1)  # [B, nc]
        same = previous == chunk_id  # a single valid chunk: its neighbour is itself
    flat = order.reshape(batch, heads, -1)  # [B, H, R * N']
    sorted_q = gather_rows(q, flat).view(batch, heads, num_hashes, num_chunks, chunk, dim)
    sorted_k = gather_rows(keys, flat).view(batch, heads, num_hashes, num_chunks, chunk, dim)
    sorted_v = gather_rows(v, flat).view(batch, heads, num_hashes, num_chunks, chunk, dim)
    prev_index = previous.view(batch, 1, 1, num_chunks, 1, 1).expand(
        batch, heads, num_hashes, num_chunks, chunk, dim
    )
    both_k = torch.cat([sorted_k, sorted_k.gather(3, prev_index)], dim=4)  # [B, H, R, nc, 2b, d]
    both_v = torch.cat([sorted_v, sorted_v.gather(3, prev_index)], dim=4)
    with torch.no_grad():
        tokens = order.view(batch, heads, num_hashes, num_chunks, chunk)
        ok = rank_valid.view(batch, 1, 1, num_chunks, chunk)
        prev_tokens = tokens.gather(3, previous.view(batch, 1, 1, num_chunks, 1).expand_as(tokens))
        prev_ok = ok.expand_as(tokens).gather(3, previous.view(batch, 1, 1, num_chunks, 1).expand_as(tokens))
        prev_ok = prev_ok & ~same.view(batch, 1, 1, num_chunks, 1)
        key_tokens = torch.cat([tokens, prev_tokens], dim=-1)  # [B, H, R, nc, 2b]
        key_ok = torch.cat([ok.expand_as(tokens), prev_ok], dim=-1)
        allowed = key_ok[..., None, :].expand(*tokens.shape, 2 * chunk)  # [B, H, R, nc, b, 2b]
        itself = key_tokens[..., None, :] == tokens[..., None]
        others = (allowed & ~itself).any(dim=-1, keepdim=True)
        allowed = allowed & ~(itself & others)
        # Padded queries (and ranks past the end) may have nothing: attend to their slots, unspecified.
        allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
    scores = torch.matmul(sorted_q, both_k.transpose(-1, -2)) * dim**-0.5
    scores = scores.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    out = torch.matmul(drop(torch.exp(scores - lse), dropout_p), both_v)  # [B, H, R, nc, b, d]
    # Back to positions: the valid ranks hold every token once per round.
    out = out.reshape(batch, heads, num_hashes, padded, dim)[:, :, :, :length]
    lse = lse.reshape(batch, heads, num_hashes, padded)[:, :, :, :length]
    inverse = order[..., :length].argsort(dim=-1)
    out = out.gather(3, inverse[..., None].expand(-1, -1, -1, -1, dim))
    lse = lse.gather(3, inverse)
    weights = torch.softmax(lse, dim=2)[..., None]  # rounds combined by their log-sum-exp
    return (weights * out).sum(dim=2)
