"""The committed quick suite's figures are readable: no text box overlaps another, legends sit off the
data, the accuracy axis shows the spread with chance and FAIL lines and intervals (not one-seed
"± std"), and every figure gives an attention the same colour."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.legend import Legend
from matplotlib.text import Text
from scipy.stats import binomtest

import attention_zoo
from results import leaderboard, plots, store

QUICK = Path(__file__).resolve().parents[1] / "results" / "measured" / "cpu-quick"


@pytest.fixture(scope="module")
def quick():
    return store.load(QUICK)


@pytest.fixture(scope="module")
def quick_figures(quick):
    return dict(plots.figures(quick)) | {
        f"per_task/{name}": fig
        for name, fig in plots.figures(quick, frontier_per_task=True)
        if "frontier" in name
    }


def drawn_texts(fig, monkeypatch):
    """(text, window extent) of every non-empty text the figure draws (tick labels out of view,
    which matplotlib never draws, are not counted)."""
    boxes = []
    original = Text.draw

    def recording(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            boxes.append((self.get_text(), self.get_window_extent(renderer)))

    with monkeypatch.context() as patch:
        patch.setattr(Text, "draw", recording)
        FigureCanvasAgg(fig).draw()
    return boxes


def test_the_committed_quick_suite_draws_its_figures(quick_figures):
    assert {"accuracy_quick.png", "frontier_quick.png", "per_task/frontier_quick.png"} <= set(quick_figures)
    assert any(name.startswith("curves_quick_") for name in quick_figures)


def test_no_two_text_boxes_intersect(quick_figures, monkeypatch):
    for name, fig in quick_figures.items():
        boxes = drawn_texts(fig, monkeypatch)
        assert len(boxes) > 20, name
        overlapping = [(a[0], b[0]) for a, b in itertools.combinations(boxes, 2) if a[1].overlaps(b[1])]
        assert not overlapping, f"{name}: {overlapping[:5]}"
        # and every text lies within the figure (nothing cut off at the edges)
        width, height = fig.canvas.get_width_height()
        outside = [
            t for t, box in boxes if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1
        ]
        assert not outside, f"{name}: {outside}"


def test_legends_sit_off_the_data(quick_figures, monkeypatch):
    for name, fig in quick_figures.items():
        FigureCanvasAgg(fig).draw()
        renderer = fig.canvas.get_renderer()
        data_axes = [ax for ax in fig.axes if ax.axison]
        legends = fig.findobj(Legend)
        assert legends, name
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in data_axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: a legend on the data"


def test_the_accuracy_axis_shows_the_spread_with_chance_and_fail_lines_and_intervals(quick, quick_figures):
    lb = leaderboard.build(quick.runs)
    fig = quick_figures["accuracy_quick.png"]
    listops = next(ax for ax in fig.axes if ax.get_title() == "ListOps")
    cells = lb.cells[lb.cells["task"] == "listops"]
    low, high = listops.get_xlim()
    assert high - low < 30  # not 0-100: the 16-32% spread fills the axis
    chance, threshold = 100 * cells["chance"].iloc[0], 100 * cells["threshold"].iloc[0]
    assert low < chance < threshold < cells["ci_low"].min() and cells["ci_high"].max() < high
    vertical = {
        round(line.get_xdata()[0], 6) for line in listops.get_lines() if len(set(line.get_xdata())) == 1
    }
    assert round(chance, 6) in vertical and round(threshold, 6) in vertical
    # one seed: each row's bar is the Clopper-Pearson interval of its 500 examples, not a zero-width std
    full = cells[cells["attention_label"] == "full"].iloc[0]
    ci = binomtest(round(full["mean"] * 5), 500).proportion_ci(0.95, method="exact")
    bars = [tuple(line.get_xdata()) for line in listops.get_lines() if len(line.get_xdata()) == 2]
    assert any(a == pytest.approx(100 * ci.low) and b == pytest.approx(100 * ci.high) for a, b in bars)


# An entry of the frontier's key: "  3  topk(topk=16) ≈" (number, label, frontier mark).
KEY_ENTRY = re.compile(r"^\s*\d+\s+(.+?)(?: ✓≈| ✓| ≈)?$")


def test_one_colour_per_attention_in_every_figure(quick, quick_figures):
    colours = [plots.attention_colour(name) for name in attention_zoo.names()]
    assert len(set(colours)) == len(colours)  # 19 distinct colours, one per registered attention
    assert plots.attention_colour("myplugin") == plots.attention_colour("myplugin")
    attention_of = dict(zip(quick.runs["attention_label"], quick.runs["attention"], strict=False))
    seen = 0
    for name, fig in quick_figures.items():
        for legend in fig.findobj(Legend):
            for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
                if "frontier" in name:  # numbered key: the marker's colour
                    match = KEY_ENTRY.match(text.get_text())
                    label, colour = (match.group(1) if match else None), handle.get_markerfacecolor()
                else:  # curves: the line's colour
                    label, colour = text.get_text(), handle.get_color()
                if label not in attention_of:
                    continue
                expected = plots.attention_colour(attention_of[label])
                assert to_rgba(colour) == pytest.approx(to_rgba(expected)), (name, label)
                seen += 1
    assert seen == 4 * 19  # two curve figures and two frontier figures, every attention
    accuracy = quick_figures["accuracy_quick.png"]
    for ax in accuracy.axes:  # rows in table order: the first marker is full's
        first = next(line for line in ax.get_lines() if line.get_marker() == "o")
        assert to_rgba(first.get_color()) == pytest.approx(to_rgba(plots.attention_colour("full")))
