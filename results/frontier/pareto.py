"""The Pareto frontier in (accuracy, speed) and the points whose place on it rests on noise (the
rules are the package docstring's, results/frontier/__init__.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .. import stats


def _speed_key(speed: float) -> float:
    return float(f"{speed:.3g}")


def pareto_front(
    accuracy: Sequence[float], speed: Sequence[float], eligible: Sequence[bool] | None = None
) -> list[bool]:
    """Which points are on the accuracy–speed Pareto frontier (see the module docstring).

    `accuracy` in %, `speed` relative to a reference; NaN in either (or `eligible` False) keeps a
    point off the frontier and out of the comparison."""
    if len(accuracy) != len(speed) or (eligible is not None and len(eligible) != len(accuracy)):
        raise ValueError("accuracy, speed and eligible must have one value per point")
    keys = []
    for i, (acc, spd) in enumerate(zip(accuracy, speed, strict=True)):
        ok = eligible is None or bool(eligible[i])
        usable = ok and not (is_missing(acc) or is_missing(spd))
        keys.append((round(float(acc), 2), _speed_key(float(spd))) if usable else None)
    front = []
    for key in keys:
        if key is None:
            front.append(False)
            continue
        dominated = any(
            other is not None and other[0] >= key[0] and other[1] >= key[1] and other != key for other in keys
        )
        front.append(not dominated)
    return front


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def noise_marks(
    accuracy: Sequence[float],
    speed: Sequence[float],
    on_frontier: Sequence[bool],
    p_value: Callable[[int, int], float],
    eligible: Sequence[bool] | None = None,
) -> list[bool]:
    """Which points are on or off the frontier only within noise (the module docstring's
    ``within_noise``). `p_value(i, j)`: the two-sided p-value of "points i and j are equally
    accurate"; Holm over the points each point is compared with, at `stats.ALPHA`."""
    usable = [
        (eligible is None or bool(eligible[i])) and not (is_missing(a) or is_missing(s))
        for i, (a, s) in enumerate(zip(accuracy, speed, strict=True))
    ]
    marks = []
    for i in range(len(accuracy)):
        if not usable[i]:
            marks.append(False)
            continue
        speed_i, accuracy_i = _speed_key(float(speed[i])), round(float(accuracy[i]), 2)
        as_fast = [
            j for j in range(len(accuracy)) if j != i and usable[j] and _speed_key(float(speed[j])) >= speed_i
        ]
        if on_frontier[i]:  # robust only if every attention at least as fast is resolved as less accurate
            _, rejected = stats.holm([p_value(i, j) for j in as_fast])
            marks.append(not all(rejected))
        else:  # within noise if no attention dominating it is resolved as more accurate
            dominating = [j for j in as_fast if round(float(accuracy[j]), 2) >= accuracy_i]
            _, rejected = stats.holm([p_value(j, i) for j in dominating])
            marks.append(bool(dominating) and not any(rejected))
    return marks
