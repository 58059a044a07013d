"""The attention zoo against independent dense definitions (tests/zoo_reference.py), in fp64.

Every registered mechanism is covered through `attention_zoo.names()`: a new mechanism without a
dense definition here fails `test_every_mechanism_has_a_reference`.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import attention_zoo
from attention_zoo import functional as F

from . import zoo_reference as ref
from .builders import random_inputs
from .covering import assert_all_pass, missing_pairs, pairwise_rows, product_rows
from .zoo_grid import BACKENDS, HEAD_DIMS, LENGTHS, PADDINGS, evaluation_path, grid_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

UNFUSED = "ignore:flex_attention called without torch.compile"

# Parameter sets per mechanism; the last ones exceed every test length (m, k > N).
PARAM_SETS = {
    "full": [{}],
    "agent": [{"num_agents": 1}, {"num_agents": 5}, {"num_agents": 300}],
    "topk": [{"topk": 1}, {"topk": 6}, {"topk": 300}],
    "moba": [
        {"block_size": 4, "topk_blocks": 2},
        {"block_size": 16, "topk_blocks": 3},
        {"block_size": 7, "topk_blocks": 100},
    ],
    "mita": [
        {"num_landmarks": 1, "topk": 3},
        {"num_landmarks": 6, "topk": 5},
        {"num_landmarks": 300, "topk": 300},
    ],
    "mita_route": [{"num_landmarks": 4, "topk": 6}, {"num_landmarks": 300, "topk": 300}],
}
# Kernelized and low-rank baselines (Nystrom's convolution is tested with its weight below).
PARAM_SETS.update(
    {
        "linear": [{}],
        "performer": [{"num_features": 1}, {"num_features": 7}, {"num_features": 300}],
        "cosformer": [{}],
        "linformer": [{"proj_dim": 1}, {"proj_dim": 6}, {"proj_dim": 300}],
        "nystrom": [
            {"num_landmarks": 1, "pinv_iters": 6, "conv_kernel": 0},
            {"num_landmarks": 5, "pinv_iters": 6, "conv_kernel": 0},
            {"num_landmarks": 300, "pinv_iters": 3, "conv_kernel": 0},
        ],
        "skyformer": [
            {"num_samples": 1, "pinv_iters": 6},
            {"num_samples": 7, "pinv_iters": 6},
            {"num_samples": 300, "pinv_iters": 2},
        ],
    }
)
FUNCTIONS = {
    "full": F.full_attention,
    "agent": F.agent_attention,
    "topk": F.topk_attention,
    "moba": F.moba_attention,
    "mita": F.mita_attention,
    "mita_route": F.mita_route_attention,
}
FUNCTIONS.update(
    linear=F.linear_attention,
    performer=F.performer_attention,
    cosformer=F.cosformer_attention,
    linformer=F.linformer_attention,
    nystrom=F.nystrom_attention,
    skyformer=F.skyformer_attention,
)
TORCH_ONLY = {"mita": {"backend": "torch"}, "mita_route": {"backend": "torch"}}

# Classic LRA baselines with fixed and learned sparsity patterns.
PARAM_SETS.update(
    {
        "local": [{"window": 0}, {"window": 5}, {"window": 300}],
        "longformer": [
            {"window": 1, "num_global": 0},
            {"window": 4, "num_global": 3},
            {"window": 300, "num_global": 300},
        ],
        "bigbird": [
            {"block_size": 4, "num_global_blocks": 1, "num_random_blocks": 1, "seed": 0},
            {"block_size": 7, "num_global_blocks": 2, "num_random_blocks": 3, "seed": 5},
            {"block_size": 16, "num_global_blocks": 0, "num_random_blocks": 0, "seed": 0},
            {"block_size": 3, "num_global_blocks": 1, "num_random_blocks": 300, "seed": 1},
        ],
        "sparse": [
            {"block_size": 4, "num_summary": 1},
            {"block_size": 16, "num_summary": 3},
            {"block_size": 300, "num_summary": 0},
        ],
    }
)


def _synthesizer(q, k, v, *, key_padding_mask=None, **params):
    """The functional with the fixed logits of tests/zoo_reference.py (the layer's learned R)."""
    inputs = {name: t[: q.shape[1]].to(q.dtype) for name, t in ref.synthesizer_inputs(params).items()}
    return F.synthesizer_attention(q, k, v, key_padding_mask=key_padding_mask, **params, **inputs)


def _sinkhorn(q, k, v, *, key_padding_mask=None, **params):
    """The functional with the fixed sorting network of tests/zoo_reference.py."""
    inputs = {name: t.to(q.dtype) for name, t in ref.sinkhorn_inputs(params, q.shape[-1]).items()}
    return F.sinkhorn_attention(q, k, v, key_padding_mask=key_padding_mask, **params, **inputs)


PARAM_SETS.update(
    {
        "sinkhorn": [
            {"block_size": 4, "sinkhorn_iters": 0},
            {"block_size": 7, "sinkhorn_iters": 3},
            {"block_size": 300, "sinkhorn_iters": 1},
        ],
        "reformer": [
            {"bucket_size": 4, "num_hashes": 1, "seed": 0},
            {"bucket_size": 8, "num_hashes": 3, "seed": 2},
            {"bucket_size": 300, "num_hashes": 2, "seed": 0},
        ],
        "synthesizer": [
            {"factorized": False, "rank": 32},
            {"factorized": True, "rank": 3},
            {"factorized": True, "rank": 300},
        ],
    }
)
FUNCTIONS.update(
    {
        "reformer": F.reformer_attention,
        "sinkhorn": _sinkhorn,
        "synthesizer": _synthesizer,
        "local": F.local_attention,
        "longformer": F.longformer_attention,
        "bigbird": F.bigbird_attention,
        "sparse": F.sparse_attention,
    }
)


def typical(name):
    """A mid-sized parameter set of the mechanism (with the torch backend where there is a choice)."""
    sets = PARAM_SETS[name]
    return {**sets[min(1, len(sets) - 1)], **TORCH_ONLY.get(name, {})}


def test_every_mechanism_has_a_reference():
    assert set(attention_zoo.names()) == set(PARAM_SETS) == set(FUNCTIONS)


def grid_factors(name):
    """The factors of mechanism `name`'s grid against its dense definition."""
    factors = {
        "params": tuple(range(len(PARAM_SETS[name]))),
        "n": LENGTHS,
        "d": HEAD_DIMS,
        "padding": PADDINGS,
    }
    if name in BACKENDS:
        factors["backend"] = BACKENDS[name]
    return factors


def case_id(name, case):
    """Readable ids: moba-p1-n257-d16-trailing-reference-dense."""
    parts = [name, f"p{case['params']}", f"n{case['n']}", f"d{case['d']}", case["padding"]]
    return "-".join(parts + ([case["backend"]] if "backend" in case else []))


# Every mechanism's grid, pairwise: each pair of factor values (parameter set x length, length x
# padding, padding x backend, ...) meets in at least one case (test_grid_covers_every_pair_of_values).
DENSE_GRID = {name: pairwise_rows(grid_factors(name)) for name in PARAM_SETS}


def check_dense_definition(name, case):
    params = PARAM_SETS[name][case["params"]]
    n, d = case["n"], case["d"]
    q, k, v, mask = grid_inputs(2, 2, n, d, case["padding"], seed=n * 131 + d)
    with evaluation_path(name, case.get("backend")) as path:
        out = FUNCTIONS[name](
            q, k, v, key_padding_mask=mask, **params, **{**TORCH_ONLY.get(name, {}), **path}
        )
    expected = ref.apply_removing_padding(name, q, k, v, mask, **params)
    assert out.shape == q.shape and out.dtype == q.dtype
    valid = torch.ones(2, n, dtype=torch.bool) if mask is None else mask
    sel = valid[:, None, :, None].expand_as(out)
    torch.testing.assert_close(out[sel], expected[sel], rtol=0, atol=1e-10)
    assert torch.isfinite(out).all(), "outputs at padded positions must be finite"


@pytest.mark.filterwarnings(UNFUSED)
@pytest.mark.parametrize(
    "name,case",
    [pytest.param(name, case, id=case_id(name, case)) for name, grid in DENSE_GRID.items() for case in grid],
)
def test_matches_dense_definition(name, case):
    check_dense_definition(name, case)


def test_grid_covers_every_pair_of_values():
    """The pairwise grid's coverage, checked independently of the generator: every pair of values of
    two factors meets in some case, per mechanism, and the edge values are factors."""
    assert set(DENSE_GRID) == set(attention_zoo.names())
    for name, grid in DENSE_GRID.items():
        assert missing_pairs(grid, grid_factors(name)) == [], name
    assert {1, 7, 63, 257} <= set(LENGTHS) and {"none", "trailing", "random", "single"} == set(PADDINGS)


@pytest.mark.slow
@pytest.mark.filterwarnings(UNFUSED)
@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_matches_dense_definition_on_the_full_grid(name):
    """Every combination of the grid's factors (the product the pairwise cases are drawn from)."""
    assert_all_pass(
        lambda case: check_dense_definition(name, case),
        product_rows(grid_factors(name)),
        lambda case: case_id(name, case),
    )


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_padding_is_removed_not_zeroed(name):
    """Valid outputs (and their gradients) with random padding equal the mechanism on the valid
    subsequence alone. For positional mechanisms (MoBA, local, ...) only trailing padding is invisible."""
    params = typical(name)
    n_valid, n_total, d = 37, 64, 16
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(1, 2, n_valid, d, generator=gen, dtype=torch.float64) for _ in range(3))
    if not attention_zoo.get(name).padding_invariant:  # positional: trailing padding only
        positions = torch.arange(n_valid)
    else:
        positions = torch.randperm(n_total, generator=gen)[:n_valid].sort().values
    mask = torch.zeros(1, n_total, dtype=torch.bool)
    mask[0, positions] = True
    big = [torch.randn(1, 2, n_total, d, generator=gen, dtype=torch.float64) * 5 for _ in range(3)]
    for small, padded in zip((q, k, v), big, strict=True):
        padded[:, :, positions] = small
    inputs_small = [t.clone().requires_grad_() for t in (q, k, v)]
    inputs_big = [t.clone().requires_grad_() for t in big]
    fn = FUNCTIONS[name]
    out_small = fn(*inputs_small, **params)
    out_big = fn(*inputs_big, key_padding_mask=mask, **params)[:, :, positions]
    torch.testing.assert_close(out_big, out_small, rtol=0, atol=1e-12)
    upstream = torch.randn_like(out_small)
    grads_small = torch.autograd.grad(out_small, inputs_small, upstream)
    grads_big = torch.autograd.grad(out_big, inputs_big, upstream)
    for g_small, g_big in zip(grads_small, grads_big, strict=True):
        torch.testing.assert_close(g_big[:, :, positions], g_small, rtol=0, atol=1e-12)
        padded_only = torch.ones(n_total, dtype=torch.bool)
        padded_only[positions] = False
        assert g_big[:, :, padded_only].abs().max() == 0, "padded tokens must not influence valid outputs"


@pytest.mark.parametrize("name", list(PARAM_SETS))
@pytest.mark.parametrize("masked", [False, True], ids=["dense", "padded"])
def test_gradcheck(name, masked):
    params = typical(name)
    q, k, v, mask = random_inputs(1, 2, 11, 4, masked=masked, seed=3)
    inputs = tuple(t.requires_grad_() for t in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda q_, k_, v_: FUNCTIONS[name](q_, k_, v_, key_padding_mask=mask, **params),
        inputs,
        eps=1e-6,
        atol=1e-7,
    )


def test_topk_with_k_at_least_n_is_full_attention():
    q, k, v, mask = random_inputs(2, 3, 50, 16, masked=True)
    torch.testing.assert_close(
        F.topk_attention(q, k, v, key_padding_mask=mask, topk=50),
        F.full_attention(q, k, v, key_padding_mask=mask),
    )


def test_moba_with_all_blocks_is_full_attention():
    q, k, v, mask = random_inputs(2, 3, 50, 16, masked=True)
    out = F.moba_attention(q, k, v, key_padding_mask=mask, block_size=8, topk_blocks=7)
    torch.testing.assert_close(out, F.full_attention(q, k, v, key_padding_mask=mask))


def test_mita_with_one_landmark_and_all_keys_is_softmax_over_shared_plus_all_keys():
    q, k, v, _ = random_inputs(2, 3, 40, 16, masked=False)
    d = q.shape[-1]
    landmark = q.mean(dim=2, keepdim=True)  # m = 1: the mean of all queries
    landmark_value = torch.softmax(landmark @ k.transpose(-1, -2) / d**0.5, -1) @ v
    logits = torch.cat([q @ landmark.transpose(-1, -2) / d, q @ k.transpose(-1, -2) / d**0.5], dim=-1)
    expected = torch.softmax(logits, -1) @ torch.cat([landmark_value, v], dim=2)
    out = F.mita_attention(q, k, v, num_landmarks=1, topk=40, backend="torch")
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_mita_route_with_all_keys_is_full_attention():
    q, k, v, mask = random_inputs(2, 2, 30, 8, masked=True)
    out = F.mita_route_attention(q, k, v, key_padding_mask=mask, num_landmarks=4, topk=30, backend="torch")
    torch.testing.assert_close(out, F.full_attention(q, k, v, key_padding_mask=mask))


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_row_without_valid_token_is_a_clear_error(name):
    q, k, v, mask = random_inputs(2, 1, 9, 8, masked=True)
    mask[1] = False
    with pytest.raises(ValueError, match="no valid token"):
        FUNCTIONS[name](q, k, v, key_padding_mask=mask, **PARAM_SETS[name][0])


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_bad_shapes_and_masks_are_clear_errors(name):
    params = PARAM_SETS[name][0]
    q, k, v, _ = random_inputs(2, 1, 9, 8, masked=False)
    with pytest.raises(ValueError, match=r"\[B, H, N, d\]"):
        FUNCTIONS[name](q[0], k[0], v[0], **params)
    with pytest.raises(ValueError, match="bool"):
        FUNCTIONS[name](q, k, v, key_padding_mask=torch.ones(2, 9), **params)
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        FUNCTIONS[name](q, k, v, key_padding_mask=torch.ones(2, 8, dtype=torch.bool), **params)


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_registry_parameters_are_validated(name):
    mech = attention_zoo.get(name)
    with pytest.raises(ValueError, match="valid parameters"):
        mech.params(no_such_param=1)
    for field, value in mech.params().to_dict().items():
        if isinstance(value, int) and not isinstance(value, bool):
            with pytest.raises(ValueError, match=field):
                mech.params(**{field: -1})
            with pytest.raises(ValueError, match="int"):
                mech.params(**{field: "many"})
            assert getattr(mech.params(**{field: str(value + 1)}), field) == value + 1  # CLI strings coerce


def test_unknown_attention_lists_valid_names():
    with pytest.raises(ValueError, match="valid attentions: full, agent"):
        attention_zoo.get("flash")


def test_mita_backend_choice_is_validated():
    with pytest.raises(ValueError, match="'auto'"):
        attention_zoo.get("mita").params(backend="cuda")


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_module_wrapper(name):
    torch.manual_seed(0)
    layer = attention_zoo.make(
        name, dim=32, num_heads=4, params=PARAM_SETS[name][0], dropout=0.0, max_length=21
    )
    layer.eval()  # deterministic: sampling mechanisms (Skyformer) redraw at every training call
    x = torch.randn(3, 21, 32)
    mask = torch.ones(3, 21, dtype=torch.bool)
    mask[1, 15:] = False
    y = layer(x, key_padding_mask=mask)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())
    # Trailing padding never changes valid outputs of any mechanism.
    y_short = layer(x[1:2, :15])
    torch.testing.assert_close(y[1:2, :15], y_short, rtol=1e-5, atol=1e-5)


def test_module_rejects_heads_not_dividing_dim():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        attention_zoo.make("full", dim=30, num_heads=4)


def test_every_mechanism_parameter_signature_matches_its_dataclass():
    import dataclasses
    import inspect

    for name in attention_zoo.names():
        mech = attention_zoo.get(name)
        kwonly = {
            p.name
            for p in inspect.signature(mech.fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        fields = {f.name for f in dataclasses.fields(mech.params_cls)}
        assert kwonly - {"key_padding_mask"} == fields | set(mech.runtime_inputs)


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize(
    "name,params",
    [
        ("agent", {"num_agents": 16}),
        ("mita", {"num_landmarks": 16, "topk": 16, "backend": "torch"}),
        ("mita_route", {"num_landmarks": 16, "topk": 16, "backend": "torch"}),
        ("linear", {}),
        ("performer", {"num_features": 16}),
        ("cosformer", {}),
        ("linformer", {"proj_dim": 16}),
        ("nystrom", {"num_landmarks": 16, "pinv_iters": 6, "conv_kernel": 35}),
        ("skyformer", {"num_samples": 16, "pinv_iters": 6}),
        ("local", {"window": 16}),
        ("longformer", {"window": 16, "num_global": 2}),
        ("bigbird", {"block_size": 16, "num_global_blocks": 2, "num_random_blocks": 3, "seed": 0}),
        ("sparse", {"block_size": 64, "num_summary": 2}),
    ],
)
def test_linear_mechanisms_never_build_an_n_by_n_tensor(name, params):
    n, d = 4096, 8
    q, k, v, mask = random_inputs(1, 1, n, d, masked=True, dtype=torch.float32)
    q.requires_grad_()
    with _LargestTensor() as probe:
        out = FUNCTIONS[name](q, k, v, key_padding_mask=mask, **params)
        out.sum().backward()
    assert probe.largest < n * n // 16, f"{name} built a tensor of {probe.largest} elements at N={n}"


# --- Classic LRA baselines with fixed and learned sparsity patterns ------------------------------


@pytest.mark.parametrize("name", ["local", "longformer"])
def test_window_at_least_n_is_full_attention(name):
    q, k, v, mask = random_inputs(2, 3, 41, 16, masked=True)
    params = {"window": 41} if name == "local" else {"window": 41, "num_global": 0}
    out = FUNCTIONS[name](q, k, v, key_padding_mask=mask, **params)
    torch.testing.assert_close(out, F.full_attention(q, k, v, key_padding_mask=mask))


@pytest.mark.parametrize(
    "params",
    [
        {"block_size": 6, "num_global_blocks": 0, "num_random_blocks": 7, "seed": 3},
        {"block_size": 6, "num_global_blocks": 7, "num_random_blocks": 0, "seed": 0},
        {"block_size": 64, "num_global_blocks": 1, "num_random_blocks": 3, "seed": 0},
    ],
    ids=["random", "global", "one-block"],
)
def test_bigbird_with_every_block_selected_is_full_attention(params):
    q, k, v, mask = random_inputs(2, 3, 41, 16, masked=True)
    out = F.bigbird_attention(q, k, v, key_padding_mask=mask, **params)
    torch.testing.assert_close(out, F.full_attention(q, k, v, key_padding_mask=mask))


def test_bigbird_random_blocks_follow_the_seed_and_differ_per_head():
    q, k, v, _ = random_inputs(1, 2, 64, 8, masked=False)
    params = {"block_size": 4, "num_global_blocks": 1, "num_random_blocks": 2}
    same = [F.bigbird_attention(q, k, v, **params, seed=s) for s in (0, 0, 1)]
    torch.testing.assert_close(same[0], same[1], rtol=0, atol=0)
    assert not torch.allclose(same[0], same[2])
    one_head = F.bigbird_attention(
        q[:, :1].expand(1, 2, 64, 8),
        k[:, :1].expand(1, 2, 64, 8),
        v[:, :1].expand(1, 2, 64, 8),
        **params,
        seed=0,
    )
    assert not torch.allclose(one_head[:, 0], one_head[:, 1]), "heads draw their own random blocks"


FLEX_CASES = [
    ("local", {"window": 3}),
    ("local", {"window": 50}),
    ("longformer", {"window": 4, "num_global": 3}),
    ("bigbird", {"block_size": 4, "num_global_blocks": 1, "num_random_blocks": 2, "seed": 7}),
    ("sparse", {"block_size": 8, "num_summary": 2}),
]


@pytest.mark.parametrize("n", [37, 130])
@pytest.mark.parametrize("name,params", FLEX_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FLEX_CASES)])
def test_flex_block_mask_path_agrees_with_the_chunked_path(name, params, n, monkeypatch):
    """The CUDA path (FlexAttention with a block mask; eager here, where it has no backward) and the
    CPU path compute the same function, with trailing padding."""
    import attention_zoo._block_patterns as block_patterns

    q, k, v, _ = random_inputs(2, 2, n, 8, masked=False, seed=n)
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, n - n // 3 :] = False
    sel = mask[:, None, :, None].expand_as(q)
    outputs = {}
    for path in ("blocks", "flex"):
        monkeypatch.setattr(block_patterns, "PATH", path)
        outputs[path] = FUNCTIONS[name](q, k, v, key_padding_mask=mask, **params)[sel]
    torch.testing.assert_close(outputs["flex"], outputs["blocks"], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "name,params",
    [
        ("local", {"window": -1}),
        ("longformer", {"num_global": -2}),
        ("bigbird", {"block_size": 0}),
        ("sparse", {"block_size": 8, "num_summary": 9}),
    ],
)
def test_bad_sparse_pattern_parameters_are_one_line_errors(name, params):
    with pytest.raises(ValueError) as err:
        attention_zoo.get(name).params(**params)
    assert "\n" not in str(err.value) and next(iter(params)) in str(err.value)


def test_reformer_with_one_bucket_is_full_shared_qk_attention():
    """One chunk: every token attends to every valid token but itself, keys = normalised queries."""
    q, _, v, mask = random_inputs(2, 3, 41, 16, masked=True)
    d = q.shape[-1]
    keys = q / q.norm(dim=-1, keepdim=True)
    allowed = mask[:, None, None, :] & ~torch.eye(41, dtype=torch.bool)
    logits = (q @ keys.transpose(-1, -2) / d**0.5).masked_fill(~allowed, float("-inf"))
    expected = torch.softmax(logits, dim=-1) @ v
    out = F.reformer_attention(q, q, v, key_padding_mask=mask, bucket_size=41, num_hashes=3, seed=4)
    sel = mask[:, None, :, None].expand_as(out)
    torch.testing.assert_close(out[sel], expected[sel], rtol=0, atol=1e-12)


def test_reformer_ties_keys_to_queries_in_the_layer():
    assert attention_zoo.get("reformer").shared_qk
    layer = attention_zoo.make("reformer", dim=16, num_heads=2, params={"bucket_size": 4})
    x = torch.randn(2, 13, 16)
    with torch.no_grad():
        before = layer(x)
        layer.qkv.weight[16:32].normal_()  # the key slice of the fused projection is unused
        layer.qkv.bias[16:32].normal_()
        after = layer(x)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_synthesizer_with_zero_logits_is_full_attention():
    q, k, v, mask = random_inputs(2, 3, 41, 16, masked=True)
    for params, inputs in (
        ({"factorized": False, "rank": 4}, {"logits": torch.zeros(3, 50, 50, dtype=torch.float64)}),
        (
            {"factorized": True, "rank": 4},
            {
                "logits_left": torch.zeros(3, 50, 4, dtype=torch.float64),
                "logits_right": torch.randn(3, 4, 50),
            },
        ),
    ):
        out = F.synthesizer_attention(q, k, v, key_padding_mask=mask, **params, **inputs)
        torch.testing.assert_close(out, F.full_attention(q, k, v, key_padding_mask=mask))


def test_synthesizer_needs_its_logits_and_max_length():
    q, k, v, _ = random_inputs(1, 2, 9, 4, masked=False)
    with pytest.raises(ValueError, match="needs `logits`"):
        F.synthesizer_attention(q, k, v, factorized=False, rank=2)
    with pytest.raises(ValueError, match="max_length >= 9"):
        F.synthesizer_attention(q, k, v, factorized=False, rank=2, logits=torch.zeros(2, 5, 5))
    with pytest.raises(ValueError, match="max_length"):
        attention_zoo.make("synthesizer", dim=8, num_heads=2)
    layer = attention_zoo.make(
        "synthesizer", dim=8, num_heads=2, params={"factorized": True, "rank": 3}, max_length=9
    )
    assert {n for n, _ in layer.named_parameters() if n.startswith("mechanism")} == {
        "mechanism_parameters.logits_left",
        "mechanism_parameters.logits_right",
    }


def test_sinkhorn_iterations_make_the_sorting_matrix_doubly_stochastic():
    from attention_zoo.sinkhorn import sorting_matrix

    scores = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    block_valid = torch.ones(2, 6, dtype=torch.bool)
    block_valid[1, 4:] = False
    softmax_rows = sorting_matrix(scores, block_valid, 0)
    torch.testing.assert_close(softmax_rows[0], torch.softmax(scores[0], dim=-1))
    p = sorting_matrix(scores, block_valid, 200)
    for row, n in ((0, 6), (1, 4)):
        square = p[row, :, :n, :n]
        torch.testing.assert_close(square.sum(-1), torch.ones(3, n, dtype=torch.float64), rtol=0, atol=1e-6)
        torch.testing.assert_close(square.sum(-2), torch.ones(3, n, dtype=torch.float64), rtol=0, atol=1e-9)
    assert p[1, :, 4:].abs().max() == 0 and p[1, :, :, 4:].abs().max() == 0


def test_sinkhorn_needs_its_sorting_network_and_max_length():
    q, k, v, _ = random_inputs(1, 2, 9, 4, masked=False)
    with pytest.raises(ValueError, match="needs `sort_weight`"):
        F.sinkhorn_attention(q, k, v, block_size=2, sinkhorn_iters=0)
    with pytest.raises(ValueError, match="max_length >= 9"):
        F.sinkhorn_attention(
            q, k, v, block_size=2, sinkhorn_iters=0, sort_weight=torch.zeros(4, 3), sort_bias=torch.zeros(3)
        )
    with pytest.raises(ValueError, match="max_length"):
        attention_zoo.make("sinkhorn", dim=8, num_heads=2)


def test_published_rows_name_registered_mechanisms():
    from results.published import load_published

    named = {name for name in load_published()["attention"] if name}
    assert named <= set(attention_zoo.names()), sorted(named - set(attention_zoo.names()))
