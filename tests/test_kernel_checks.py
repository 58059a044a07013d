"""The kernel-check helpers in their one home (runners/bench/kernels/checks.py), which the kernel tests and
`lra bench kernels` share: `rel_err` against its definition, and `fixed_selection_mita` against the
zoo's torch reference given the selection the reference makes, with padding that leaves rows fewer
valid tokens than landmarks, gradients included."""

from __future__ import annotations

import math

import pytest
import torch

from attention_zoo import functional as F
from runners.bench.kernels.checks import NOISE_FLOOR, fixed_selection_mita, rel_err

from .test_bench_kernels import reference_selection


def test_rel_err_is_the_relative_norm_of_the_difference():
    expected = torch.tensor([3.0, 4.0])  # norm 5
    actual = torch.tensor([3.0, 4.5])  # differs by 0.5
    assert rel_err(actual, expected) == pytest.approx(0.1)
    assert rel_err(expected, expected) == 0.0


def test_rel_err_fails_every_limit_on_a_non_finite_value():
    """A kernel that left an element unwritten (buffers poisoned with NaN) fails, never passes."""
    actual = torch.tensor([1.0, math.nan])
    assert rel_err(actual, torch.ones(2)) == math.inf
    assert rel_err(torch.tensor([1.0, math.inf]), torch.ones(2)) == math.inf


def test_rel_err_reads_rounding_noise_against_an_all_zero_tensor_as_no_error():
    """The gradient of keys no query selects is exactly zero in the reference: noise below the floor
    there is no error (not noise / 1e-30), a larger difference still is."""
    zero = torch.zeros(4, dtype=torch.float64)
    assert rel_err(torch.full((4,), NOISE_FLOOR / 2), zero) == 0.0
    assert rel_err(torch.full((4,), 1e-3), zero) > 1.0
    assert rel_err(torch.full((4,), 1e-3, requires_grad=True), zero) > 1.0  # no autograd warning either


@pytest.mark.parametrize("shared", [True, False], ids=["mita", "route"])
def test_fixed_selection_mita_is_the_reference_with_rows_shorter_than_the_landmarks(shared):
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 2, 23, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    mask = torch.ones(2, 23, dtype=torch.bool)
    mask[1] = False
    mask[1, [2, 9, 17]] = True  # three valid tokens for six landmarks
    keys, routing = reference_selection(q, k, mask, 6, 5)
    fn = F.mita_attention if shared else F.mita_route_attention
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    expected = fn(*leaves, key_padding_mask=mask, num_landmarks=6, topk=5, backend="torch")
    mine = [t.clone().requires_grad_() for t in (q, k, v)]
    out = fixed_selection_mita(*mine, mask, 6, keys, routing, shared, chunk=7)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    upstream = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    for got, want in zip(
        torch.autograd.grad(out, mine, upstream), torch.autograd.grad(expected, leaves, upstream), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_fixed_selection_mita_does_not_depend_on_the_query_chunk():
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 3, 40, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    keys, routing = reference_selection(q, k, None, 5, 6)
    whole = fixed_selection_mita(q, k, v, None, 5, keys, routing, chunk=4096)
    torch.testing.assert_close(fixed_selection_mita(q, k, v, None, 5, keys, routing, chunk=9), whole)
