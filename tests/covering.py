"""Pairwise test selection: a covering array of strength 2, deterministic (imported by test modules).

A grid of factors (say lengths x head dims x padding patterns) has as many cases as the product of
the factors' sizes, but most bugs need only one or two factor values to show. `pairwise_rows` picks
rows so that every pair of values of any two factors meets in at least one row, far fewer than the
product (lower bound: the product of the two largest factors). It is the greedy one-row-at-a-time
construction of the AETG / allpairs family without the randomness: each new row starts from an
uncovered pair of the factor pair with the most left, and every other factor takes the value that
covers the most new pairs with the values already chosen (ties: the value used least so far, then
the earliest listed, so cheap values can be listed first). `missing_pairs` is the independent check;
`product_rows` and `assert_all_pass` run the full grid (the slow, exhaustive form of a test).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import combinations, product

Row = dict[str, Hashable]
Pair = tuple[tuple[str, Hashable], tuple[str, Hashable]]


def all_pairs(factors: Mapping[str, Sequence[Hashable]]) -> set[Pair]:
    """Every pair of values of two different factors (factors in their given order)."""
    return {
        ((a, value_a), (b, value_b))
        for a, b in combinations(factors, 2)
        for value_a in factors[a]
        for value_b in factors[b]
    }


def pairs_of(row: Mapping[str, Hashable], factors: Sequence[str]) -> set[Pair]:
    """The pairs of factor values one row covers."""
    return {((a, row[a]), (b, row[b])) for a, b in combinations(factors, 2)}


def missing_pairs(
    rows: Iterable[Mapping[str, Hashable]], factors: Mapping[str, Sequence[Hashable]]
) -> list[Pair]:
    """The pairs of factor values no row covers (empty: the rows are pairwise complete)."""
    covered: set[Pair] = set()
    for row in rows:
        covered |= pairs_of(row, list(factors))
    return sorted(all_pairs(factors) - covered, key=repr)


def pairwise_rows(
    factors: Mapping[str, Sequence[Hashable]], required: Iterable[Mapping[str, Hashable]] = ()
) -> list[Row]:
    """Rows (factor -> value) covering every pair of values of any two factors; `required` rows come
    first, as given. Deterministic: the same factors always give the same rows."""
    names = list(factors)
    for name, values in factors.items():
        if not values or len(set(values)) != len(values):
            raise ValueError(f"factor {name!r} needs distinct values; got {list(values)}")
    position = {(name, value): i for name in names for i, value in enumerate(factors[name])}
    uncovered = all_pairs(factors)
    uses: Counter[tuple[str, Hashable]] = Counter()
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        uncovered.difference_update(pairs_of(row, names))
        uses.update(row.items())

    for row in required:
        if set(row) != set(names) or any(row[n] not in factors[n] for n in names):
            raise ValueError(f"required row {dict(row)} must give one listed value of each factor {names}")
        add({n: row[n] for n in names})

    if len(names) == 1:  # no pairs: one row per value
        for value in factors[names[0]]:
            if (names[0], value) not in uses:
                add({names[0]: value})
    while uncovered:
        # Start from the factor pair with the most uncovered pairs: its pairs bound the row count.
        left = Counter((a, b) for (a, _), (b, _) in uncovered)
        a, b = min(left, key=lambda ab: (-left[ab], names.index(ab[0]), names.index(ab[1])))
        (_, value_a), (_, value_b) = min(
            (p for p in uncovered if p[0][0] == a and p[1][0] == b),
            key=lambda p: (uses[p[0]] + uses[p[1]], position[p[0]], position[p[1]]),
        )
        row: Row = {a: value_a, b: value_b}
        for name in names:
            if name not in row:
                row[name] = min(
                    factors[name],
                    key=lambda v, name=name, row=row: (
                        -_new_pairs(row, name, v, uncovered, names),
                        uses[(name, v)],
                        position[(name, v)],
                    ),
                )
        add({n: row[n] for n in names})
    return rows


def _new_pairs(row: Row, name: str, value: Hashable, uncovered: set[Pair], names: list[str]) -> int:
    """How many uncovered pairs setting factor `name` to `value` would cover, given `row`'s values."""
    count = 0
    for other, chosen in row.items():
        a, b = (other, chosen), (name, value)
        count += ((a, b) if names.index(other) < names.index(name) else (b, a)) in uncovered
    return count


def product_rows(factors: Mapping[str, Sequence[Hashable]]) -> Iterator[Row]:
    """Every combination of the factors' values: the full grid pairwise rows are drawn from."""
    for values in product(*factors.values()):
        yield dict(zip(factors, values, strict=True))


def assert_all_pass(
    check: Callable[[Row], None], rows: Iterable[Row], describe: Callable[[Row], str]
) -> None:
    """Run `check` on every row; one AssertionError lists each failing row (`describe(row)`) with the
    first line of its error, so an exhaustive sweep reports all its failures at once."""
    failures = []
    for row in rows:
        try:
            check(row)
        except AssertionError as err:
            failures.append(f"{describe(row)}: {(str(err).splitlines() or [''])[0]}")
    assert not failures, f"{len(failures)} cases fail:\n" + "\n".join(failures)
