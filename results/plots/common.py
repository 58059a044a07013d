"""What every figure shares: the figure and its atomic PNG write, an attention's colour (by registry
name, the same in every figure) and marker (one per label of that attention), a column's chance
level and FAIL line."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import atomic_path

from .. import order as order_
from ..leaderboard import Leaderboard

DPI = 150
# Markers telling apart several labels of one attention (same colour), in table order.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def new_figure(width: float, height: float, ncols: int = 1, **kwargs: Any):  # -> (Figure, list[Axes])
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, **kwargs)[0]
    return fig, list(axes)


def save_png(fig, path: Path) -> Path:  # fig: matplotlib Figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


# An RGBA colour, as matplotlib takes it.
Colour = tuple[float, float, float, float]


def _rgba(value: Any) -> Colour:
    red, green, blue, alpha = (float(v) for v in value)
    return red, green, blue, alpha


def attention_colour(attention: str) -> Colour:
    """The colour of an attention (registry name) in every figure: the registry's order through
    tab20, its ten dark shades first, then the light ones (neighbours in the tables differ in hue);
    attentions outside the registry (plugins) from tab20b, by a stable hash of the name."""
    from matplotlib import colormaps

    built_ins = order_.registry_attention_names()
    if attention in built_ins:
        i = built_ins.index(attention)
        return _rgba(colormaps["tab20"]((2 * i) % 20 + (i // 10) % 2))
    digest = int(hashlib.sha256(attention.encode()).hexdigest(), 16)
    return _rgba(colormaps["tab20b"](digest % 20))


def attention_styles(pairs: Sequence[tuple[str, str]]) -> dict[str, tuple[Colour, str]]:
    """(colour, marker) per label, from its (attention, label) pair: the attention's colour, and a
    marker per label of that attention in the order given."""
    seen: dict[str, int] = {}
    out: dict[str, tuple[Colour, str]] = {}
    for attention, label in pairs:
        if label in out:
            continue
        k = seen.get(attention, 0)
        seen[attention] = k + 1
        out[label] = (attention_colour(attention), MARKERS[k % len(MARKERS)])
    return out


def label_styles(lb: Leaderboard, preset: str) -> dict[str, tuple[Colour, str]]:
    """(colour, marker) of every attention label of a preset table, in table order."""
    cells = lb.cells[lb.cells["preset"] == preset]
    attention_of = dict(zip(cells["attention_label"], cells["attention"], strict=True))
    return attention_styles([(attention_of[label], label) for label in lb.labels(preset)])


def chance_and_fail(cells: pd.DataFrame) -> tuple[float, float]:
    """A column's chance level and FAIL line in % (their medians over its cells)."""
    chance = pd.to_numeric(cells["chance"], errors="coerce").dropna()
    threshold = pd.to_numeric(cells["threshold"], errors="coerce").dropna()
    return (
        float(chance.median()) * 100 if len(chance) else math.nan,
        float(threshold.median()) * 100 if len(threshold) else math.nan,
    )
