r"""BigBird attention (Zaheer et al., 2020), non-causal block-sparse "ITC" pattern.

Positions are cut into blocks of b = `block_size`. Query block i attends to the key blocks

.. math::

    \mathcal B_i = \{i-1, i, i+1\} \cup \{0, \dots, g-1\} \cup \mathcal R_i, \qquad
    o_n = \sum_{t \in \bigcup_{c \in \mathcal B_i} I_c} \operatorname{softmax}_t\!\left(s\, q_n^\top k_t\right) v_t,

with g = `num_global_blocks` and s = d^{-1/2}; the global query blocks (the first g) attend to every
key; each key counts once. R_i holds `num_random_blocks` blocks drawn, per head and query block, from
the blocks that hold valid keys and are neither in the window nor global (all of them when fewer
remain). The draw is a fixed function of (`seed`, head, query block, key block) -- a counter-based
hash, not a stateful generator -- so it is the same in every call and does not depend on trailing
padding; with no random blocks the pattern is deterministic. Every layer with the same seed draws
the same pattern (BigBird draws one per layer; pass different seeds to get that).

BigBird makes the first and the last block global; here the globals are the first g blocks, which
keeps trailing padding invisible (the last valid block moves with the length). The default g = 2
keeps BigBird's count of global blocks.

Cost O(N (3 + g + r) b d) time and O(N d) memory (`_block_patterns.block_attention`, plus g b dense rows);
on CUDA, a FlexAttention block mask.

Attention dropout (`dropout_p`): on the probabilities of every query (block form; see
`_block_patterns`). LRA's JAX BigBird applies its attention dropout only on its causal fallback (full
attention), not on the block-sparse path its encoders run, and the Skyformer lineage's BigBird
applies none; with the model's rate > 0 this mechanism drops probabilities where those did not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _block_patterns, _flex_attention
from ._common import check_inputs
from ._dropout import check_p
from .local import band_blocks
from .registry import AttentionParams, register


@dataclass(frozen=True)
class BigbirdParams(AttentionParams):
    # block_size 64 and 3 random blocks: BigBird's ITC setting, also LRA's bigbird_attention defaults
    # and the Skyformer baseline config; 2 global blocks: BigBird's first + last block (see above).
    block_size: int = 64
    num_global_blocks: int = 2
    num_random_blocks: int = 3
    seed: int = 0

    def check(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1; got {self.block_size}")
        if self.num_global_blocks < 0:
            raise ValueError(f"num_global_blocks must be >= 0; got {self.num_global_blocks}")
        if self.num_random_blocks < 0:
            raise ValueError(f"num_random_blocks must be >= 0; got {self.num_random_blocks}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0; got {self.seed}")


_MASK64 = (1 << 64) - 1


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


# splitmix64 constants, as signed int64 (torch multiplies int64 modulo 2^64).
_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _uniform_hash(x: torch.Tensor) -> torch.Tensor:
    """splitmix64 of int64 counters -> float64 in [0, 1), the same on every device."""
    x = x * _GOLDEN
    x = (x ^ ((x >> 30) & ((1 << 34) - 1))) * _MIX1
    x = (x ^ ((x >> 27) & ((1 << 37) - 1))) * _MIX2
    x = x ^ ((x >> 31) & ((1 << 33) - 1))
    return ((x >> 11) & ((1 << 53) - 1)).double() / float(1 << 53)


def random_blocks(
    valid_blocks: torch.Tensor, heads: int, num_blocks: int, num_global: int, num_random: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random key blocks [B, H, nb, r] and their ok flags, drawn among the valid, non-window,
    non-global blocks; `valid_blocks` [B] is the number of blocks holding valid keys (trailing padding)."""
    device = valid_blocks.device
    h = torch.arange(heads, device=device).view(heads, 1, 1)
    i = torch.arange(num_blocks, device=device).view(1, num_blocks, 1)
    j = torch.arange(num_blocks, device=device).view(1, 1, num_blocks)
    # A counter per (seed, head, query block, key block), independent of the sequence length.
    counter = ((seed * 1_000_003 + h) * 1_048_576 + i) * 1_048_576 + j
    score = _uniform_hash(counter)  # [H, nb, nb]
    candidate = ((j - i).abs() > 1) & (j >= num_global)
    candidate = candidate[None] & (j[None] < valid_blocks.view(-1, 1, 1, 1))  # [B, H|1, nb, nb]
    score = torch.where(candidate, score[None], torch.full_like(score[None], -1.0))
    chosen = min(num_random, num_blocks)
    values, ids = score.topk(chosen, dim=-1)
    return ids, values >= 0


def _pattern(
    valid: torch.Tensor, heads: int, length: int, params: dict
) -> tuple[torch.Tensor, torch.Tensor, int]:
    block_size = params["block_size"]
    num_global = min(params["num_global_blocks"], -(-length // block_size))
    band, band_ok = band_blocks(length, block_size, 1, valid.device)
    batch, num_blocks = valid.shape[0], band.shape[2]
    # Blocks up to the last valid key may be drawn (trailing padding adds none).
    last_valid = valid.long().cumsum(dim=1).argmax(dim=1)
    valid_blocks = torch.div(last_valid, block_size, rounding_mode="floor") + 1
    rand, rand_ok = random_blocks(
        valid_blocks, heads, num_blocks, num_global, params["num_random_blocks"], params["seed"]
    )
    glob = torch.arange(num_global, device=valid.device).expand(1, 1, num_blocks, num_global)
    glob_ok = ~((glob[..., :, None] == band[..., None, :]) & band_ok[..., None, :]).any(dim=-1)
    key_blocks = torch.cat([band.expand(batch, heads, -1, -1), glob.expand(batch, heads, -1, -1), rand], -1)
    block_ok = torch.cat(
        [band_ok.expand(batch, heads, -1, -1), glob_ok.expand(batch, heads, -1, -1), rand_ok], -1
    )
    return key_blocks, block_ok, num_global


@register(
    "bigbird",
    BigbirdParams,
    summary="block-sparse: window of 3 blocks + global blocks + random blocks (BigBird ITC)",
    keys_per_query=lambda p, n: min((3 + p.num_global_blocks + p.num_random_blocks) * p.block_size, n),
    padding_invariant=False,
    attention_dropout=True,
)
def bigbird_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    block_size: int,
    num_global_blocks: int,
    num_random_blocks: int,
    seed: int,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """BigBird attention. q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("bigbird_attention", q, k, v, key_padding_mask)
    check_p("bigbird_attention", dropout_p)
    batch, heads, length, _ = q.shape
    valid = _block_patterns.key_validity(key_padding_mask, batch, length, q.device)
    params = {
        "block_size": block_size,
        "num_global_blocks": num_global_blocks,
        "num_random_blocks": num_random_blocks,
        "seed": seed,
    }
    with torch.no_grad():
        key_blocks, block_ok, num_global = _pattern(valid, heads, length, params)
    global_rows = num_global * block_size
    if _block_patterns.use_flex(q, dropout_p):
        num_blocks = key_blocks.shape[2]
        every_block = torch.arange(num_blocks, device=q.device)
        table = ((key_blocks[..., None] == every_block) & block_ok[..., None]).any(dim=-2)  # [B, H, nb, nb]

        def mask_mod(b, h, q_idx, kv_idx):
            pattern = table[b, h, q_idx // block_size, kv_idx // block_size] | (q_idx < global_rows)
            return pattern & valid[b, kv_idx]

        return _flex_attention.flex_attention(q, k, v, mask_mod)
    key_slots, slots = _block_patterns.block_slots(block_size, key_blocks, block_ok)
    return _block_patterns.block_attention(
        q,
        k,
        v,
        valid,
        block_size=block_size,
        key_slots=key_slots,
        slots=slots,
        dense_rows=global_rows,
        dropout_p=dropout_p,
    )
