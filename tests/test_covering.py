"""The pairwise selection behind the zoo's test grids (tests/covering.py), property-based."""

from __future__ import annotations

import math
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .covering import assert_all_pass, missing_pairs, pairwise_rows, product_rows

# Factors: up to 6 of them, each with 1 to 5 distinct values (ints, or strings to vary the types).
factor_sets = st.dictionaries(
    keys=st.sampled_from("abcdef"),
    values=st.one_of(
        st.lists(st.integers(0, 9), min_size=1, max_size=5, unique=True),
        st.lists(
            st.sampled_from(["none", "trailing", "random", "single", "x"]),
            min_size=1,
            max_size=5,
            unique=True,
        ),
    ),
    min_size=1,
    max_size=6,
)
derandomized = settings(derandomize=True, max_examples=60, deadline=None)


@derandomized
@given(factor_sets)
def test_rows_cover_every_pair_with_listed_values_only(factors):
    rows = pairwise_rows(factors)
    assert missing_pairs(rows, factors) == []
    for row in rows:
        assert set(row) == set(factors) and all(row[name] in factors[name] for name in factors)
    assert all({row[name] for row in rows} == set(values) for name, values in factors.items())
    sizes = sorted((len(values) for values in factors.values()), reverse=True)
    pair_bound = sizes[0] * sizes[1] if len(sizes) > 1 else sizes[0]
    assert pair_bound <= len(rows) <= math.prod(sizes)


@derandomized
@given(factor_sets)
def test_selection_is_deterministic(factors):
    assert pairwise_rows(factors) == pairwise_rows(dict(factors))


def test_two_factors_need_their_whole_product_and_the_check_sees_any_row_missing():
    factors = {"n": [1, 7, 63], "padding": ["none", "single"]}
    rows = pairwise_rows(factors)
    assert sorted((r["n"], r["padding"]) for r in rows) == sorted(
        (n, p) for n in factors["n"] for p in factors["padding"]
    )
    for dropped in range(len(rows)):
        left = rows[:dropped] + rows[dropped + 1 :]
        gone = rows[dropped]
        assert missing_pairs(left, factors) == [(("n", gone["n"]), ("padding", gone["padding"]))]


def test_many_factors_take_far_fewer_rows_than_their_product():
    factors = {f"f{i}": list(range(3)) for i in range(8)}  # 6561 combinations
    rows = pairwise_rows(factors)
    assert missing_pairs(rows, factors) == [] and len(rows) <= 20


def test_required_rows_come_first_as_given():
    factors = {"n": [1, 7, 257], "d": [8, 64], "padding": ["none", "single"]}
    edge = {"n": 257, "d": 64, "padding": "single"}
    rows = pairwise_rows(factors, required=[edge])
    assert rows[0] == edge and missing_pairs(rows, factors) == []
    with pytest.raises(ValueError, match="required row"):
        pairwise_rows(factors, required=[{"n": 5, "d": 8, "padding": "none"}])
    with pytest.raises(ValueError, match="distinct values"):
        pairwise_rows({"n": [1, 1]})


def test_product_rows_and_assert_all_pass():
    factors = {"a": [0, 1], "b": ["x", "y", "z"]}
    rows = list(product_rows(factors))
    assert sorted((r["a"], r["b"]) for r in rows) == [(a, b) for a in factors["a"] for b in factors["b"]]
    assert_all_pass(lambda row: None, rows, repr)

    def fails_on_z(row):
        assert row["b"] != "z", "z is bad"

    with pytest.raises(AssertionError, match=r"2 cases fail:\n.*'z'.*z is bad\n.*'z'.*z is bad$"):
        assert_all_pass(fails_on_z, rows, repr)


def test_missing_pairs_lists_pairs_in_factor_order():
    factors = {"a": [0, 1], "b": [0, 1], "c": [0]}
    rows = [{"a": 0, "b": 0, "c": 0}]
    expected = {
        ((x, vx), (y, vy))
        for x, y in combinations("abc", 2)
        for vx in factors[x]
        for vy in factors[y]
        if not (vx == 0 and vy == 0)
    }
    assert set(missing_pairs(rows, factors)) == expected
