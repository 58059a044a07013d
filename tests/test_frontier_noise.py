"""The accuracy side of the frontier: accuracy intervals as error bars, and the points whose place on
or off the frontier rests on differences the tests cannot resolve."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from results import frontier, leaderboard, plots, store

from .builders import run_record, write_runs


def test_noise_marks_on_hand_made_points():
    #            A     B     C     D     E
    accuracy = [60.0, 59.0, 40.0, 55.0, 30.0]
    speed = [1.0, 2.0, 3.0, 1.5, 0.5]
    front = frontier.pareto_front(accuracy, speed)
    assert front == [True, True, True, False, False]
    resolved = {
        frozenset(pair) for pair in [("A", "C"), ("B", "C"), ("C", "D"), ("A", "E"), ("B", "E"), ("D", "E")]
    }
    names = "ABCDE"

    def p_value(i, j):
        return 0.001 if frozenset((names[i], names[j])) in resolved else 0.4

    marks = frontier.noise_marks(accuracy, speed, front, p_value)
    # A: B is faster and not resolved as less accurate -> on the frontier only within noise
    # B: the only faster point, C, is resolved as less accurate -> robust; C is the fastest -> robust
    # D: dominated by B alone, not resolved -> off the frontier only within noise
    # E: dominated by A, B, D (and C is no better), all resolved -> off the frontier for sure
    assert marks == [True, False, False, True, False]
    assert [frontier.frontier_mark(on, noise) for on, noise in zip(front, marks, strict=True)] == [
        "✓ within noise",
        "✓",
        "✓",
        "within noise",
        "",
    ]


def costly(task, attention, acc, tokens, n_test=400):
    return run_record(
        task,
        attention,
        test_acc=acc,
        train_tokens_per_s=tokens,
        peak_memory_bytes=1e8,
        device="cpu",
        n_test=n_test,
    )


def test_points_carry_the_leaderboards_intervals_and_marks(tmp_path):
    # ListOps on 400 examples: mita is faster and 2 points below full (inside the noise), topk slower
    # and worse, linear much faster and far worse (resolved)
    runs = [
        costly("listops", "full", 0.40, 1000.0),
        costly("listops", "mita", 0.38, 2000.0),
        costly("listops", "topk", 0.30, 500.0),
        costly("listops", "linear", 0.20, 4000.0),
    ]
    write_runs(tmp_path, runs)
    st = store.load(tmp_path)
    lb = leaderboard.build(st.runs)
    fr = frontier.build(st, lb)
    points = fr.panel("quick", "listops").set_index("attention_label")
    cells = lb.cells[lb.cells["task"] == "listops"].set_index("attention_label")
    for label in ("full", "mita", "topk", "linear"):
        assert points.loc[label, "ci_low"] == pytest.approx(cells.loc[label, "ci_low"])
        assert points.loc[label, "ci_high"] == pytest.approx(cells.loc[label, "ci_high"])
    assert list(points["on_frontier"]) == [True, False, True, True]  # full, topk, mita, linear (table order)
    assert points.loc["full", "within_noise"]  # mita is faster and cannot be told apart
    assert not points.loc["mita", "within_noise"] and not points.loc["linear", "within_noise"]
    assert not points.loc["topk", "within_noise"]  # 30% vs full's 40% on 400 examples: resolved
    avg = fr.panel("quick", frontier.AVG).set_index("attention_label")
    stat = lb.stats["quick"].averages["avg"]["full"]
    assert (avg.loc["full", "ci_low"], avg.loc["full", "ci_high"]) == pytest.approx((stat.low, stat.high))
    table = frontier.table(fr, "quick", "listops").set_index("Attention")
    assert table.loc["full", "Frontier"] == "✓ within noise" and table.loc["mita", "Frontier"] == "✓"
    assert table.loc["full", "ListOps accuracy (%) [95% CI]"].startswith("40.0 [")
    frontier.write_all(fr, csv=tmp_path / "frontier.csv")
    csv = pd.read_csv(tmp_path / "frontier.csv")
    assert {"ci_low", "ci_high", "within_noise"} <= set(csv.columns)


def test_the_frontier_figure_draws_the_intervals_as_error_bars(tmp_path):
    runs = [costly("listops", "full", 0.40, 1000.0), costly("listops", "mita", 0.30, 2000.0)]
    write_runs(tmp_path, runs)
    st = store.load(tmp_path)
    lb = leaderboard.build(st.runs)
    fr = frontier.build(st, lb)
    ((name, fig),) = plots.frontier_figures(fr, lb)
    assert name == "frontier_quick.png"
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    spans = sorted(float(v) for c in bars for segment in c.lines[2][0].get_segments() for v in segment[:, 1])
    cells = lb.cells.set_index("attention_label")
    expected = sorted(float(cells.loc[a, end]) for a in ("full", "mita") for end in ("ci_low", "ci_high"))
    assert spans == pytest.approx(expected)
