"""MiTA variants (routing to several experts, learned / random / k-means landmarks) and diagnostics,
against the independent dense definitions of tests/zoo_reference.py, in fp64."""

from __future__ import annotations

import pytest
import torch

import attention_zoo
from attention_zoo import functional as F
from attention_zoo.mita import diagnostics, make_landmarks

from . import zoo_reference as ref
from .builders import random_inputs
from .covering import assert_all_pass, missing_pairs, pairwise_rows, product_rows
from .zoo_grid import LENGTHS, PADDINGS, SELECTED_BACKENDS, evaluation_path, grid_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DETERMINISTIC_VARIANTS = [
    {"num_routed": 2},
    {"num_routed": 3, "landmarks": "kmeans"},
    {"landmarks": "learned"},
    {"landmarks": "avgpool+learned"},
    {"landmarks": "kmeans"},
    {"landmarks": "kmeans", "kmeans_iters": 1},
]
FUNCTIONS = {"mita": F.mita_attention, "mita_route": F.mita_route_attention}


def learned_queries(heads, m, d, seed=11):
    return torch.randn(heads, m, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def runtime(params, heads, m, d):
    if params.get("landmarks") in ("learned", "avgpool+learned"):
        return {"landmark_queries": learned_queries(heads, m, d)}
    return {}


def test_every_declared_variant_is_covered_here():
    declared = [p for name, p in attention_zoo.registry.variants() if name == "mita" and p]
    for params in declared:
        assert any(params.items() <= case.items() for case in DETERMINISTIC_VARIANTS) or params == {
            "landmarks": "random"
        }


def variant_id(params):
    return "-".join(f"{k}={v}" for k, v in params.items())


# Every pair of values of two factors meets in some case (test_grid_covers_every_pair_of_values):
# each variant with both mechanisms, both (m, k), every length, padding pattern and backend.
FACTORS = {
    "variant": tuple(range(len(DETERMINISTIC_VARIANTS))),
    "name": ("mita", "mita_route"),
    "m,k": ((6, 5), (300, 300)),
    "n": LENGTHS,
    "padding": PADDINGS,
    "backend": SELECTED_BACKENDS,
}
GRID = pairwise_rows(FACTORS)


def case_id(case):
    m, k = case["m,k"]
    return (
        f"{variant_id(DETERMINISTIC_VARIANTS[case['variant']])}-{case['name']}-m{m}-k{k}-n{case['n']}"
        f"-{case['padding']}-{case['backend']}"
    )


def check_variant(case):
    variant, name, (m, k), n = DETERMINISTIC_VARIANTS[case["variant"]], case["name"], case["m,k"], case["n"]
    d, heads = 8, 2
    q, k_, v, mask = grid_inputs(2, heads, n, d, case["padding"], seed=n + m)
    extra = runtime(variant, heads, m, d)
    with evaluation_path(name, case["backend"]) as path:
        out = FUNCTIONS[name](
            q, k_, v, key_padding_mask=mask, num_landmarks=m, topk=k, **path, **variant, **extra
        )
    per_head = (lambda b, h: {"learned": extra["landmark_queries"][h]}) if extra else None
    expected = ref.apply_removing_padding(
        name, q, k_, v, mask, per_head=per_head, num_landmarks=m, topk=k, **variant
    )
    valid = torch.ones(2, n, dtype=torch.bool) if mask is None else mask
    sel = valid[:, None, :, None].expand_as(out)
    torch.testing.assert_close(out[sel], expected[sel], rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", [pytest.param(case, id=case_id(case)) for case in GRID])
def test_variant_matches_dense_definition(case):
    check_variant(case)


def test_grid_covers_every_pair_of_values():
    assert missing_pairs(GRID, FACTORS) == []


@pytest.mark.slow
@pytest.mark.parametrize("variant", FACTORS["variant"], ids=lambda i: variant_id(DETERMINISTIC_VARIANTS[i]))
def test_variant_matches_dense_definition_on_the_full_grid(variant):
    """Every combination of the other factors (the product the pairwise cases are drawn from)."""
    rows = product_rows({**FACTORS, "variant": (variant,)})
    assert_all_pass(check_variant, rows, case_id)


def test_random_landmarks_are_distinct_valid_queries_and_the_rest_is_mita():
    q, k, v, mask = random_inputs(3, 2, 40, 8, masked=True, seed=5)
    landmarks, valid = make_landmarks(q, mask, 6, "random", training=False)
    for b in range(3):
        positions = []
        for j in range(6):
            if not valid[b, j]:
                continue
            match = ((q[b, 0] - landmarks[b, 0, j]).abs().sum(-1) == 0).nonzero().flatten().tolist()
            assert len(match) == 1 and mask[b, match[0]], "a landmark must be one real token's query"
            assert torch.equal(landmarks[b, 1, j], q[b, 1, match[0]]), "the same token in every head"
            positions.append(match[0])
        assert len(set(positions)) == len(positions) == min(6, int(mask[b].sum()))
    out = F.mita_attention(
        q, k, v, key_padding_mask=mask, num_landmarks=6, topk=5, landmarks="random", backend="torch"
    )
    for b in range(3):
        keep = mask[b]
        for h in range(2):
            given = landmarks[b, h][valid[b]]
            expected = ref.mita(q[b, h, keep], k[b, h, keep], v[b, h, keep], 6, 5, given=given)
            torch.testing.assert_close(out[b, h, keep], expected, rtol=0, atol=1e-10)


def test_random_landmarks_in_evaluation_do_not_depend_on_the_batch():
    q, k, v, mask = random_inputs(3, 2, 40, 8, masked=True, seed=4)
    kwargs = {"num_landmarks": 5, "topk": 4, "landmarks": "random", "backend": "torch"}
    together = F.mita_attention(q, k, v, key_padding_mask=mask, **kwargs)
    for row in range(3):  # each sequence alone, and moved to another row, gets the same output
        alone = F.mita_attention(
            q[row : row + 1],
            k[row : row + 1],
            v[row : row + 1],
            key_padding_mask=mask[row : row + 1],
            **kwargs,
        )
        torch.testing.assert_close(alone[0], together[row], rtol=1e-6, atol=1e-6)
    flipped = F.mita_attention(q.flip(0), k.flip(0), v.flip(0), key_padding_mask=mask.flip(0), **kwargs)
    torch.testing.assert_close(flipped.flip(0), together, rtol=1e-6, atol=1e-6)


def test_random_landmarks_redraw_in_training_and_are_fixed_in_evaluation():
    q, k, v, mask = random_inputs(2, 1, 50, 8, masked=True, seed=9)
    kwargs = {
        "key_padding_mask": mask,
        "num_landmarks": 4,
        "topk": 4,
        "landmarks": "random",
        "backend": "torch",
    }
    eval_a = F.mita_attention(q, k, v, **kwargs)
    eval_b = F.mita_attention(q, k, v, **kwargs)
    assert torch.equal(eval_a, eval_b)
    torch.manual_seed(0)
    train_a = F.mita_attention(q, k, v, training=True, **kwargs)
    train_b = F.mita_attention(q, k, v, training=True, **kwargs)
    assert not torch.equal(train_a, train_b)
    torch.manual_seed(0)
    assert torch.equal(F.mita_attention(q, k, v, training=True, **kwargs), train_a), (
        "draws follow the torch seed"
    )


ALL_VARIANTS = DETERMINISTIC_VARIANTS + [{"landmarks": "random"}]


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_variant_padding_is_removed_not_zeroed(variant):
    n_valid, n_total, d, m = 23, 40, 8, 5
    gen = torch.Generator().manual_seed(3)
    small = [torch.randn(1, 2, n_valid, d, generator=gen, dtype=torch.float64) for _ in range(3)]
    positions = torch.randperm(n_total, generator=gen)[:n_valid].sort().values
    mask = torch.zeros(1, n_total, dtype=torch.bool)
    mask[0, positions] = True
    big = [torch.randn(1, 2, n_total, d, generator=gen, dtype=torch.float64) * 3 for _ in range(3)]
    for s_, b_ in zip(small, big, strict=True):
        b_[:, :, positions] = s_
    extra = runtime(variant, 2, m, d)
    kwargs = dict(num_landmarks=m, topk=4, backend="torch", **variant, **extra)
    out_small = F.mita_attention(*small, **kwargs)
    out_big = F.mita_attention(*big, key_padding_mask=mask, **kwargs)[:, :, positions]
    torch.testing.assert_close(out_big, out_small, rtol=0, atol=1e-12)


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_variant_gradcheck(variant):
    q, k, v, mask = random_inputs(1, 2, 10, 4, masked=True, seed=2)
    extra = runtime(variant, 2, 3, 4)
    tensors = [q, k, v] + list(extra.values())
    inputs = tuple(t.requires_grad_() for t in tensors)

    def fn(*xs):
        named = dict(zip(extra, xs[3:], strict=True))
        return F.mita_attention(
            *xs[:3], key_padding_mask=mask, num_landmarks=3, topk=4, backend="torch", **variant, **named
        )

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


def test_learned_landmarks_are_layer_parameters_and_train():
    layer = attention_zoo.make("mita", 32, 4, params={"landmarks": "learned", "num_landmarks": 8, "topk": 4})
    names = dict(layer.named_parameters())
    assert names["mechanism_parameters.landmark_queries"].shape == (4, 8, 8)
    layer(torch.randn(2, 20, 32)).sum().backward()
    assert names["mechanism_parameters.landmark_queries"].grad.abs().sum() > 0


def test_default_mita_adds_no_parameters_so_full_attention_weights_transfer():
    full = attention_zoo.make("full", 32, 4)
    mita = attention_zoo.make("mita", 32, 4, params={"num_landmarks": 4, "topk": 4})
    mita.load_state_dict(full.state_dict(), strict=True)
    x = torch.randn(1, 12, 32)
    # With k >= N and one landmark MiTA sees every key: close to (not equal to) full attention.
    assert mita(x).shape == full(x).shape


def test_diagnostics_against_a_direct_count():
    q, k, v, mask = random_inputs(1, 1, 30, 8, masked=True, seed=4)
    with diagnostics.collect() as calls:
        out = F.mita_attention(q, k, v, key_padding_mask=mask, num_landmarks=4, topk=3, backend="torch")
    assert len(calls) == 1
    stats = calls[0]
    plain = F.mita_attention(q, k, v, key_padding_mask=mask, num_landmarks=4, topk=3, backend="torch")
    assert torch.equal(out, plain), "collecting must not change outputs"

    keep = mask[0]
    qv, kv = q[0, 0, keep], k[0, 0, keep]
    r = ref.pool(qv, 4)
    experts = [set(torch.argsort(rj @ kv.T, descending=True)[:3].tolist()) for rj in r]
    routed = [int(torch.argmax(r @ qn)) for qn in qv]
    load = [routed.count(j) / len(routed) for j in range(4)]
    assert stats["expert_load"] == pytest.approx(load)
    covered = set().union(*experts)
    assert stats["pruned_fraction"] == pytest.approx(1 - len(covered) / len(qv))
    overlaps = []
    for n, qn in enumerate(qv):
        own = set(torch.argsort(kv @ qn, descending=True)[:3].tolist())
        overlaps.append(len(own & experts[routed[n]]) / 3)
    assert stats["overlap"] == pytest.approx(sum(overlaps) / len(overlaps))


def test_diagnostics_with_all_keys_selected():
    q, k, v, _ = random_inputs(1, 2, 12, 8, masked=False, seed=1)
    with diagnostics.collect() as calls:
        F.mita_attention(q, k, v, num_landmarks=3, topk=12, backend="torch")
    assert calls[0]["pruned_fraction"] == 0.0 and calls[0]["overlap"] == pytest.approx(1.0)
    assert not diagnostics.active()
