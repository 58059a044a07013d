"""The fast paths of top-k, MoBA and MiTA against their readable references (backend="reference").

The torch paths (`_selected_keys.SelectedAttention`: chunked, recomputing) must give the reference's
outputs and gradients to fp64 rounding, with padding, odd lengths, chunk boundaries inside rows and
across heads, and tied scores (same selection). The FlexAttention paths run on CPU only in eager
mode and without gradients: their outputs are checked there, and their block masks are checked to
list every tile the selection reaches (eager mode ignores the block mask, the CUDA kernel does not).
"""

from __future__ import annotations

import os

import pytest
import torch

import attention_zoo
from attention_zoo import _flex_attention, _selected_keys
from attention_zoo import functional as F
from attention_zoo.moba import moba_blocks
from attention_zoo.topk import topk_indices
from runners.bench.timing import TensorMemoryTracker

from .covering import assert_all_pass, missing_pairs, pairwise_rows, product_rows
from .zoo_grid import LENGTHS, PADDINGS, evaluation_path, grid_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FUNCTIONS = {
    "topk": F.topk_attention,
    "moba": F.moba_attention,
    "mita": F.mita_attention,
    "mita_route": F.mita_route_attention,
}
# Parameter sets per mechanism; the last ones exceed every test length.
CASES = {
    "topk": [{"topk": 1}, {"topk": 6}, {"topk": 300}],
    "moba": [
        {"block_size": 4, "topk_blocks": 2},
        {"block_size": 7, "topk_blocks": 3},
        {"block_size": 5, "topk_blocks": 100},
    ],
    "mita": [
        {"num_landmarks": 1, "topk": 3},
        {"num_landmarks": 6, "topk": 5},
        {"num_landmarks": 5, "topk": 4, "num_routed": 2},
        {"num_landmarks": 4, "topk": 6, "landmarks": "kmeans"},
        {"num_landmarks": 300, "topk": 300, "num_routed": 3},
    ],
    "mita_route": [{"num_landmarks": 4, "topk": 6}, {"num_landmarks": 3, "topk": 5, "num_routed": 2}],
}


def inputs(batch, heads, n, d, *, masked, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, d, generator=gen, dtype=dtype) for _ in range(3))
    mask = None
    if masked:
        mask = torch.rand(batch, n, generator=gen) > 0.4
        mask[:, torch.randint(n, (1,), generator=gen)] = True
    return q, k, v, mask


def run(name, params, backend, q, k, v, mask, upstream):
    """Output and the gradients of q, k, v for `upstream`."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = FUNCTIONS[name](*leaves, key_padding_mask=mask, backend=backend, **params)
    return (out, *torch.autograd.grad(out, leaves, upstream))


def assert_same(got, expected, atol=1e-12):
    for g, e, what in zip(got, expected, ("output", "dq", "dk", "dv"), strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=atol, msg=lambda m, w=what: f"{w}: {m}")


def grid(names, lengths, **more):
    """Each mechanism's cases, pairwise over its parameter sets, the lengths, the padding patterns
    and the factors `more`: every pair of values of two factors meets in some case."""
    factors = {
        name: {"params": tuple(range(len(CASES[name]))), "n": lengths, "padding": PADDINGS, **more}
        for name in names
    }
    return factors, {name: pairwise_rows(f) for name, f in factors.items()}


def grid_params(rows_by_name):
    """Ids such as mita-p1-n63-trailing-dense: the parameter set, then the other factors' values."""
    return [
        pytest.param(
            name,
            row,
            id="-".join([name, f"p{row['params']}", f"n{row['n']}", *map(str, list(row.values())[2:])]),
        )
        for name, rows in rows_by_name.items()
        for row in rows
    ]


# The reference in either form of `attend_selected` (gathered keys, or dense scores masked).
TORCH_FACTORS, TORCH_GRID = grid(CASES, LENGTHS, reference=("gathered", "dense"))
FLEX_FACTORS, FLEX_GRID = grid(["topk", "moba"], (1, 7, 130, 257))  # 130: past one 128-tile


def check_torch_path(name, row):
    n = row["n"]
    q, k, v, mask = grid_inputs(2, 2, n, 8, row["padding"], seed=n)
    upstream = torch.randn_like(q)
    params = CASES[name][row["params"]]
    fast = run(name, params, "torch", q, k, v, mask, upstream)
    with evaluation_path(name, f"reference-{row['reference']}"):
        assert_same(fast, run(name, params, "reference", q, k, v, mask, upstream))


@pytest.mark.parametrize("name,row", grid_params(TORCH_GRID))
def test_torch_path_matches_reference_forward_and_gradients(name, row):
    check_torch_path(name, row)


def test_grids_cover_every_pair_of_values():
    for factors, rows in ((TORCH_FACTORS, TORCH_GRID), (FLEX_FACTORS, FLEX_GRID)):
        for name in factors:
            assert missing_pairs(rows[name], factors[name]) == [], name


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_torch_path_matches_reference_on_the_full_grid(name):
    assert_all_pass(lambda row: check_torch_path(name, row), product_rows(TORCH_FACTORS[name]), repr)


@pytest.mark.parametrize("budget", [1, 200, 5000], ids=["one-query", "inside-rows", "across-heads"])
@pytest.mark.parametrize("name", list(CASES))
def test_torch_path_is_exact_at_any_chunking(name, budget, monkeypatch):
    """Chunks of one query, of part of a row and of several (row, head) pairs give the same result."""
    monkeypatch.setattr(_selected_keys, "CHUNK_ELEMENTS", budget)
    params = CASES[name][1]
    q, k, v, mask = inputs(2, 3, 45, 8, masked=True, seed=5)
    upstream = torch.randn_like(q)
    assert_same(
        run(name, params, "torch", q, k, v, mask, upstream),
        run(name, params, "reference", q, k, v, mask, upstream),
    )


@pytest.mark.parametrize("path", ["gathered", "dense"])
@pytest.mark.parametrize("name", list(CASES))
def test_both_forms_of_the_reference_match_the_torch_path(name, path, monkeypatch):
    """The reference's `attend_selected` has a gathered and a dense-masked form; each equals the torch path."""
    params = CASES[name][1]
    q, k, v, mask = inputs(2, 2, 45, 8, masked=True, seed=17)
    upstream = torch.randn_like(q)
    fast = run(name, params, "torch", q, k, v, mask, upstream)
    monkeypatch.setattr(attention_zoo._selected_keys, "SELECTED_PATH", path)
    assert_same(fast, run(name, params, "reference", q, k, v, mask, upstream))


def tied_inputs(n=48, d=8):
    """Keys repeated in pairs (equal scores, different values) and queries repeated in pairs
    (equal landmark and routing scores); the selections must break the ties alike."""
    q, k, v, mask = inputs(1, 2, n, d, masked=True, seed=11)
    k[:, :, 1::2] = k[:, :, 0::2]
    q[:, :, 1::2] = q[:, :, 0::2]
    return q, k, v, mask


@pytest.mark.parametrize(
    "name,params",
    [
        ("topk", {"topk": 5}),
        ("moba", {"block_size": 2, "topk_blocks": 3}),  # repeated queries: equal gates
        ("moba", {"block_size": 1, "topk_blocks": 3}),
        ("mita", {"num_landmarks": 6, "topk": 5}),
        ("mita_route", {"num_landmarks": 6, "topk": 3, "num_routed": 2}),
    ],
)
def test_ties_resolve_as_in_the_reference(name, params):
    q, k, v, mask = tied_inputs()
    upstream = torch.randn_like(q)
    for dtype in (torch.float64, torch.float32):
        args = [t.to(dtype) for t in (q, k, v)]
        got = run(name, params, "torch", *args, mask, upstream.to(dtype))
        expected = run(name, params, "reference", *args, mask, upstream.to(dtype))
        assert_same(got, expected, atol=1e-12 if dtype == torch.float64 else 1e-5)


def test_topk_selection_is_the_reference_selection_on_ties():
    """The same fp32 scores through `torch.topk`: identical index sets, ties included."""
    q, k, _, mask = tied_inputs(n=64)
    work_scores = torch.matmul(q.float(), k.float().transpose(-1, -2)).masked_fill(
        ~mask[:, None, None, :], float("-inf")
    )
    expected = work_scores.topk(7, dim=-1, sorted=False).indices.sort(-1).values
    got = topk_indices(q, k, mask, 7).long().sort(-1).values
    assert torch.equal(got, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", list(CASES))
def test_low_precision_inputs(name, dtype):
    """fp32 / bf16 inputs: outputs in the input dtype, close to the reference in fp32."""
    q, k, v, mask = inputs(1, 2, 40, 16, masked=True, seed=3, dtype=torch.float32)
    params = CASES[name][1]
    low = [t.to(dtype) for t in (q, k, v)]
    out = FUNCTIONS[name](*low, key_padding_mask=mask, backend="torch", **params)
    expected = FUNCTIONS[name](
        *[t.float() for t in low], key_padding_mask=mask, backend="reference", **params
    )
    assert out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.float(), expected, rtol=tol, atol=tol)


def _peak_bytes(name, params, n, backend):
    q, k, v, mask = inputs(1, 2, n, 16, masked=True, seed=1, dtype=torch.float32)
    leaves = [t.requires_grad_() for t in (q, k, v)]
    upstream = torch.randn_like(q)
    with TensorMemoryTracker() as tracker:
        out = FUNCTIONS[name](*leaves, key_padding_mask=mask, backend=backend, **params)
        grads = torch.autograd.grad(out, leaves, upstream)
        del out, grads
    return tracker.peak_bytes


@pytest.mark.parametrize(
    "name,params",
    [
        ("topk", {"topk": 64}),
        ("moba", {"block_size": 16, "topk_blocks": 4}),
        ("mita", {"num_landmarks": 16, "topk": 64}),
        ("mita_route", {"num_landmarks": 16, "topk": 64}),
    ],
)
def test_torch_path_memory_is_linear_and_below_the_reference(name, params, monkeypatch):
    """Peak memory of forward + backward: about doubles from N to 2N (chunks of fixed size), and is
    far below the reference, which keeps every query's gathered keys for the backward."""
    monkeypatch.setattr(_selected_keys, "CHUNK_ELEMENTS", 1 << 15)
    small, large = (_peak_bytes(name, params, n, "torch") for n in (512, 1024))
    assert large <= 2.2 * small, (small, large)
    assert large * 3 < _peak_bytes(name, params, 1024, "reference")


# ----------------------------------------------------------------------------------------------
# FlexAttention paths (CPU: eager, forward only)
# ----------------------------------------------------------------------------------------------

UNFUSED = "ignore:flex_attention called without torch.compile"


def check_flex_path(name, row):
    n = row["n"]
    q, k, v, mask = grid_inputs(2, 2, n, 8, row["padding"], seed=n + 1)
    params = CASES[name][row["params"]]
    with torch.no_grad():
        out = FUNCTIONS[name](q, k, v, key_padding_mask=mask, backend="flex", **params)
        expected = FUNCTIONS[name](q, k, v, key_padding_mask=mask, backend="reference", **params)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.filterwarnings(UNFUSED)
@pytest.mark.parametrize("name,row", grid_params(FLEX_GRID))
def test_flex_path_matches_reference_forward(name, row):
    check_flex_path(name, row)


@pytest.mark.slow
@pytest.mark.filterwarnings(UNFUSED)
@pytest.mark.parametrize("name", list(FLEX_GRID))
def test_flex_path_matches_reference_on_the_full_grid(name):
    assert_all_pass(lambda row: check_flex_path(name, row), product_rows(FLEX_FACTORS[name]), repr)


def _listed_tiles_cover(block_mask, allowed):
    """Every (query, key) pair `allowed` [B, H, N, N] lies in a tile the block mask lists."""
    tiles = block_mask.to_dense().bool()  # [B, H, nq, nk]
    n = allowed.shape[-1]
    expanded = tiles.repeat_interleave(_flex_attention.TILE, 2).repeat_interleave(_flex_attention.TILE, 3)[
        ..., :n, :n
    ]
    return bool((expanded | ~allowed).all()), tiles


@pytest.mark.parametrize("block_size,topk_blocks", [(16, 3), (50, 2), (300, 1), (7, 5)])
def test_moba_block_mask_lists_every_selected_tile_and_only_those(block_size, topk_blocks):
    n = 300
    q, k, _, mask = inputs(2, 2, n, 8, masked=True, seed=block_size, dtype=torch.float32)
    mask[:, 280:] = False  # trailing padding
    blocks, valid_padded = moba_blocks(q, k, mask, block_size, topk_blocks)
    allowed = torch.zeros(2, 2, n, n, dtype=torch.bool)
    key_block = torch.arange(n) // block_size
    for j in range(blocks.shape[-1]):
        allowed |= blocks[..., j : j + 1].long() == key_block
    allowed &= mask[:, None, None, :]
    covered, tiles = _listed_tiles_cover(
        _flex_attention.blocks_mask(blocks, block_size, valid_padded), allowed
    )
    assert covered
    # and nothing more than the tiles some selected block reaches (padding aside)
    reached = torch.zeros_like(tiles)
    for j in range(blocks.shape[-1]):
        reach = blocks[..., j : j + 1].long() == key_block
        reached |= _tiles_of(reach)
    assert not (tiles & ~reached).any()


def _tiles_of(pairs):
    """[B, H, N, N] bool -> [B, H, nq, nk]: tiles holding at least one pair."""
    n = pairs.shape[-1]
    t = -(-n // _flex_attention.TILE)
    padded = torch.zeros(
        *pairs.shape[:2], t * _flex_attention.TILE, t * _flex_attention.TILE, dtype=torch.bool
    )
    padded[..., :n, :n] = pairs
    return padded.view(*pairs.shape[:2], t, _flex_attention.TILE, t, _flex_attention.TILE).any(dim=(3, 5))


def test_topk_block_mask_lists_every_selected_tile():
    n = 260
    q, k, _, mask = inputs(1, 2, n, 8, masked=True, seed=4, dtype=torch.float32)
    index = topk_indices(q, k, mask, 9)
    allowed = (
        torch.zeros(1, 2, n, n, dtype=torch.bool).scatter_(-1, index.long(), True) & mask[:, None, None, :]
    )
    covered, tiles = _listed_tiles_cover(_flex_attention.indices_mask(index, mask), allowed)
    assert covered
    assert torch.equal(
        tiles, _tiles_of(torch.zeros(1, 2, n, n, dtype=torch.bool).scatter_(-1, index.long(), True))
    )


@pytest.mark.parametrize("name", ["topk", "moba"])
def test_flex_path_refuses_gradients_on_cpu_with_a_clear_error(name):
    q, k, v, _ = inputs(1, 1, 9, 8, masked=False)
    q.requires_grad_()
    with pytest.raises(ValueError, match="backend='torch'"):
        FUNCTIONS[name](q, k, v, backend="flex", **CASES[name][0])


@pytest.mark.parametrize("name", list(CASES))
def test_auto_is_the_torch_path_on_cpu(name):
    q, k, v, mask = inputs(1, 2, 33, 8, masked=True, seed=9)
    params = CASES[name][1]
    auto = FUNCTIONS[name](q, k, v, key_padding_mask=mask, **params)
    torch.testing.assert_close(
        auto, FUNCTIONS[name](q, k, v, key_padding_mask=mask, backend="torch", **params), rtol=0, atol=0
    )
    assert attention_zoo.get(name).params(backend="reference").backend == "reference"


# ----------------------------------------------------------------------------------------------
# On a GPU (LRA_TEST_DEVICE=cuda): compiled FlexAttention, forward and gradients
# ----------------------------------------------------------------------------------------------

ON_CUDA = pytest.mark.skipif(
    os.environ.get("LRA_TEST_DEVICE", "cpu") != "cuda" or not torch.cuda.is_available(),
    reason="needs LRA_TEST_DEVICE=cuda and a GPU",
)


@ON_CUDA
@pytest.mark.parametrize("n", [257, 1024])
@pytest.mark.parametrize("backend", ["flex", "torch", "auto"])
@pytest.mark.parametrize("name", list(CASES))
def test_cuda_paths_match_reference(name, backend, n):
    if backend == "flex" and name.startswith("mita"):
        pytest.skip("MiTA has no flex path")
    for params in CASES[name][:2]:
        q, k, v, mask = inputs(2, 2, n, 64, masked=True, seed=n, dtype=torch.float32)
        q, k, v, mask = (t.cuda() for t in (q, k, v, mask))
        upstream = torch.randn_like(q)
        got = run(name, params, backend, q, k, v, mask, upstream)
        expected = run(name, params, "reference", q, k, v, mask, upstream)
        valid = mask[:, None, :, None].expand_as(q)
        for g, e in zip(got, expected, strict=True):  # flex leaves padded query rows unspecified
            torch.testing.assert_close(g[valid], e[valid], rtol=2e-3, atol=2e-3)
