"""The accuracy–cost frontier on hand-made tables: relative costs from the runs or from `lra bench
model` records, the Pareto frontier (ties, one attention dominating all, missing costs, FAIL), the
tables, the figure and the commands.

Expected ratios are worked out here from the hand-written numbers (tokens/s, ms per step, bytes).
"""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from results import frontier, leaderboard, plots, store
from results.records import write_record
from runners import cli

from .builders import efficiency_record, run_record, write_runs

MITA = "mita(num_landmarks=8,topk=8)"


def costly(task, attention, acc, tokens, memory, label=None, seed=0, **fields):
    """A run record with a training throughput (tokens/s) and a peak memory (bytes)."""
    return run_record(
        task,
        attention,
        label=label,
        seed=seed,
        test_acc=acc,
        train_tokens_per_s=tokens,
        peak_memory_bytes=memory,
        device="cpu",
        **fields,
    )


def make_store(tmp_path, records, efficiency=()) -> store.Store:
    write_runs(tmp_path, records)
    for i, record in enumerate(efficiency):
        write_record(tmp_path / "efficiency" / f"{i}.json", record)
    return store.load(tmp_path)


def point(fr, label, panel=frontier.AVG, preset="quick"):
    rows = fr.points[
        (fr.points["attention_label"] == label)
        & (fr.points["panel"] == panel)
        & (fr.points["preset"] == preset)
    ]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ---------------------------------------------------------------------------------------------
# The Pareto frontier
# ---------------------------------------------------------------------------------------------


def test_one_attention_dominating_all_is_the_whole_frontier():
    #          slow/bad  fast/bad  slow/good  fast/good
    accuracy = [50.0, 50.0, 60.0, 60.0]
    speed = [1.0, 2.0, 1.0, 2.0]
    assert frontier.pareto_front(accuracy, speed) == [False, False, False, True]


def test_a_trade_off_keeps_every_undominated_point():
    accuracy = [60.0, 55.0, 54.0, 50.0]
    speed = [1.0, 2.0, 2.0, 3.0]
    # 54 % at 2× is beaten by 55 % at the same speed; the others trade accuracy for speed.
    assert frontier.pareto_front(accuracy, speed) == [True, True, False, True]


def test_ties_at_the_displayed_precision_are_all_on_the_frontier():
    # 55.001 and 55.004 both show as 55.00; speeds 1.999 and 2.0 both show as 2.00.
    assert frontier.pareto_front([55.001, 55.004, 50.0], [2.0, 1.999, 1.0]) == [True, True, False]
    # Equal accuracy, one strictly faster: the slower one is off.
    assert frontier.pareto_front([55.0, 55.0], [2.0, 2.5]) == [False, True]
    # Equal speed, one strictly more accurate: the less accurate one is off.
    assert frontier.pareto_front([55.0, 55.02], [2.0, 2.0]) == [False, True]


def test_points_without_a_cost_or_at_chance_neither_join_nor_push_others_off():
    nan = math.nan
    accuracy = [60.0, 70.0, nan, 99.0]
    speed = [1.0, nan, 9.0, 9.0]
    eligible = [True, True, True, False]
    assert frontier.pareto_front(accuracy, speed, eligible) == [True, False, False, False]
    with pytest.raises(ValueError, match="one value per point"):
        frontier.pareto_front([1.0], [1.0, 2.0])


def test_frontier_points_are_undominated_and_every_other_point_is_dominated():
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 7)
        accuracy = [rng.choice([40.0, 45.0, 50.0, 55.0]) + rng.choice([0.0, 0.001]) for _ in range(n)]
        speed = [rng.choice([0.5, 1.0, 2.0, 4.0]) for _ in range(n)]
        front = frontier.pareto_front(accuracy, speed)
        shown = [(float(f"{a:.2f}"), s) for a, s in zip(accuracy, speed, strict=True)]

        def beats(p, q):
            return p[0] >= q[0] and p[1] >= q[1] and (p[0] > q[0] or p[1] > q[1])

        for i, on in enumerate(front):
            dominated = any(beats(shown[j], shown[i]) for j in range(n))
            assert on == (not dominated), (shown, front)
        assert any(front)


# ---------------------------------------------------------------------------------------------
# Costs from the runs, from bench records, and missing costs
# ---------------------------------------------------------------------------------------------


def two_task_runs():
    """full, MiTA, top-k on ListOps and Pathfinder; agent without any cost recorded."""
    return [
        costly("listops", "full", 0.40, 1000.0, 400e6),
        costly("listops", "mita", 0.42, 4000.0, 100e6, label=MITA),
        costly("listops", "topk", 0.35, 2000.0, 200e6),
        costly("listops", "agent", 0.30, None, None),
        costly("pathfinder", "full", 0.70, 500.0, 100e6),
        costly("pathfinder", "mita", 0.72, 500.0, 100e6, label=MITA),
        costly("pathfinder", "topk", 0.66, 2000.0, 25e6),
        costly("pathfinder", "agent", 0.60, None, None),
    ]


def test_costs_from_the_runs_relative_to_full_and_the_avg_as_geometric_mean(tmp_path):
    fr = frontier.build(make_store(tmp_path, two_task_runs()))

    mita = point(fr, MITA, "listops")
    assert mita["accuracy"] == pytest.approx(42.0)
    assert mita["speed_vs_full"] == pytest.approx(4.0)  # 4000 / 1000 tokens/s
    assert mita["memory_vs_full"] == pytest.approx(0.25)  # 100 / 400 MB
    assert mita["cost_source"] == "runs" and mita["device"] == "cpu" and mita["seq_len"] == 512
    assert point(fr, MITA, "pathfinder")["speed_vs_full"] == pytest.approx(1.0)

    avg = point(fr, MITA)
    assert avg["accuracy"] == pytest.approx((42.0 + 72.0) / 2)
    assert avg["speed_vs_full"] == pytest.approx(math.sqrt(4.0 * 1.0))
    assert avg["memory_vs_full"] == pytest.approx(math.sqrt(0.25 * 1.0))
    topk = point(fr, "topk")
    assert topk["speed_vs_full"] == pytest.approx(math.sqrt(2.0 * 4.0))
    assert topk["memory_vs_full"] == pytest.approx(math.sqrt(0.5 * 0.25))
    full = point(fr, "full")
    assert (full["speed_vs_full"], full["memory_vs_full"]) == (1.0, 1.0)

    # Avg: MiTA (57 %, 2×) and top-k (50.5 %, 2.83×) trade off; full (55 %, 1×) is beaten by MiTA.
    on = fr.points[fr.points["panel"] == frontier.AVG].set_index("attention_label")["on_frontier"]
    assert on.to_dict() == {"full": False, "agent": False, "topk": True, MITA: True}
    # ListOps: MiTA is the most accurate and the fastest, so it alone is on the frontier.
    on = fr.points[fr.points["panel"] == "listops"].set_index("attention_label")["on_frontier"]
    assert [label for label, v in on.items() if v] == [MITA]

    agent = point(fr, "agent")
    assert agent["accuracy"] == pytest.approx(45.0) and math.isnan(agent["speed_vs_full"])
    assert fr.without_cost("quick") == ["agent"]
    text = frontier.render(fr, markdown=True)
    assert "Without a cost" in text and "agent" in text.split("Without a cost")[1]
    assert "training throughput" in text and "N=512" in text and "on cpu" in text
    assert frontier.run_memory_meaning() in text  # the caption quotes what the field holds
    assert frontier.missing_cost_line(fr) is None


def test_bench_model_records_at_the_task_length_on_the_same_device_are_preferred(tmp_path):
    def model(attention, time_ms, memory, batch=32, backend="torch", seq_len=512, device="cpu", label=None):
        record = efficiency_record(attention, seq_len, time_ms, memory, bench="model", batch=batch)
        record.update(
            {"pass": "train_step", "backend": backend, "device": device, "head_dim": 256, "heads": 4},
            batch_requested=32,
            cpu_model="Test CPU 9000",
            attention_label=label or attention,
        )
        return record

    bench = [
        model("full", 100.0, 800e6),
        model("mita", 40.0, 200e6, label=MITA, backend="torch"),
        model("mita", 25.0, 240e6, label=MITA, backend="chunked"),  # the fastest backend counts
        model("topk", 50.0, 300e6, batch=8),  # quarter batch: 50 / 8 ms per example
        # other lengths and other devices are not this task's cost
        model("full", 1.0, 1e6, seq_len=1024),
        model("mita", 1000.0, 1e9, label=MITA, seq_len=1024),
        model("full", 5.0, 1e6, device="NVIDIA H200"),
        model("mita", 50.0, 1e9, label=MITA, device="NVIDIA H200"),
    ]
    runs = [r for r in two_task_runs() if r["task"] == "listops"]
    fr = frontier.build(make_store(tmp_path, runs, bench))

    mita = point(fr, MITA, "listops")
    assert mita["cost_source"] == "bench" and mita["backend"] == "chunked"
    assert mita["speed_vs_full"] == pytest.approx((100.0 / 32) / (25.0 / 32))
    assert mita["memory_vs_full"] == pytest.approx(240e6 / 800e6)
    topk = point(fr, "topk", "listops")
    assert topk["speed_vs_full"] == pytest.approx((100.0 / 32) / (50.0 / 8))
    assert math.isnan(point(fr, "agent", "listops")["speed_vs_full"])  # not benchmarked
    caption = fr.caption("quick")
    assert "`lra bench model`" in caption and "N=512" in caption and "cpu (Test CPU 9000)" in caption
    assert "batch 32" in caption


def test_no_cost_anywhere_names_the_command_that_measures_one(tmp_path):
    runs = [
        run_record("listops", "full", test_acc=0.4),
        run_record("listops", "mita", label=MITA, test_acc=0.45),
    ]
    fr = frontier.build(make_store(tmp_path, runs))
    assert not fr.has_cost()
    line = frontier.missing_cost_line(fr)
    assert "\n" not in line
    assert f"lra bench model --attentions 'full,{MITA}' --lengths 512 --out {tmp_path}" in line
    assert "recorded no training throughput" in line
    assert plots.plot_frontier(fr, leaderboard.build(store.load(tmp_path).runs), tmp_path) == []


def test_run_costs_come_from_the_device_of_the_full_attention_runs(tmp_path):
    runs = [
        costly("listops", "full", 0.40, 1000.0, 4e8),
        costly("listops", "topk", 0.38, 2000.0, 2e8),
        {**costly("listops", "mita", 0.45, 9000.0, 1e8, label=MITA), "device": "NVIDIA H200"},
    ]
    fr = frontier.build(make_store(tmp_path, runs))
    assert point(fr, "topk", "listops")["speed_vs_full"] == pytest.approx(2.0)
    assert fr.without_cost("quick", "listops") == [MITA]  # trained elsewhere: not comparable


def test_without_a_full_attention_run_there_is_no_reference_for_costs(tmp_path):
    runs = [
        costly("listops", "mita", 0.45, 1000.0, 1e6, label=MITA),
        costly("listops", "topk", 0.4, 900.0, 1e6),
    ]
    fr = frontier.build(make_store(tmp_path, runs))
    assert not fr.has_cost()
    assert "no finished full-attention run" in frontier.missing_cost_line(fr)


def test_fail_points_are_kept_but_never_on_the_frontier(tmp_path):
    # chance 0.1 with 400 test examples: FAIL at or below 0.1 + 2 * sqrt(0.09 / 400) = 13 %.
    runs = [
        costly("listops", "full", 0.40, 1000.0, 4e8),
        costly("listops", "moba", 0.12, 5000.0, 1e8),
        costly("listops", "topk", 0.30, 2000.0, 2e8),
    ]
    fr = frontier.build(make_store(tmp_path, runs))
    moba = point(fr, "moba", "listops")
    assert moba["status"] == "FAIL" and moba["speed_vs_full"] == pytest.approx(5.0)
    assert not moba["on_frontier"]
    assert point(fr, "topk", "listops")["on_frontier"] and point(fr, "full", "listops")["on_frontier"]

    at_chance = [costly("listops", "full", 0.11, 1000.0, 4e8), costly("listops", "moba", 0.12, 5000.0, 1e8)]
    fr = frontier.build(make_store(tmp_path / "chance", at_chance))
    assert not fr.points["on_frontier"].any()
    assert "no frontier" in frontier.render(fr)


def test_attentions_select_the_points_and_costs_stay_relative_to_full(tmp_path):
    fr = frontier.build(make_store(tmp_path, two_task_runs()), attentions=["mita", "topk"])
    assert set(fr.points["attention_label"]) == {MITA, "topk"}
    assert point(fr, MITA, "listops")["speed_vs_full"] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no runs of attention 'nope'"):
        frontier.build(make_store(tmp_path, two_task_runs()), attentions=["nope"])


def test_frontier_csv_and_markdown(tmp_path):
    fr = frontier.build(make_store(tmp_path / "runs", two_task_runs()))
    frontier.write_all(fr, csv=tmp_path / "frontier.csv", markdown=tmp_path / "frontier.md")
    table = pd.read_csv(tmp_path / "frontier.csv")
    assert len(table) == 4 * 3  # four attentions x (Avg, ListOps, Pathfinder)
    row = table[(table["panel"] == "listops") & (table["attention_label"] == MITA)].iloc[0]
    assert row["speed_vs_full"] == pytest.approx(4.0) and bool(row["on_frontier"])
    markdown = (tmp_path / "frontier.md").read_text()
    assert "### Avg over ListOps, Pathfinder" in markdown and "### Pathfinder" in markdown
    assert f"| {MITA}" in markdown and "| 4.00 " in markdown and "✓" in markdown


# ---------------------------------------------------------------------------------------------
# The figure and the commands
# ---------------------------------------------------------------------------------------------


def test_frontier_figure_with_panels_per_task_and_the_attentions_without_a_cost_listed(tmp_path):
    st = make_store(tmp_path, two_task_runs())
    lb = leaderboard.build(st.runs)
    fr = frontier.build(st, lb)
    (one,) = plots.plot_frontier(fr, lb, tmp_path / "plots")
    with Image.open(one) as image:
        assert image.format == "PNG"
        single_width = image.width
    (three,) = plots.plot_frontier(fr, lb, tmp_path / "wide", per_task=True)
    with Image.open(three) as image:
        assert image.width > 2 * single_width
    assert one.name == three.name == "frontier_quick.png"
    notes = plots.frontier_notes(fr, "quick", [frontier.AVG, "listops", "pathfinder"])
    assert any(note.startswith("Cost of ListOps at N=512, Pathfinder at N=512: the runs'") for note in notes)
    assert "Without a cost (Avg, ListOps, Pathfinder), not drawn: agent." in notes


def invoke(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def test_compare_frontier_and_plot_commands(tmp_path):
    write_runs(tmp_path, two_task_runs())
    result = invoke("compare", "--frontier", "--runs", tmp_path, "--csv", tmp_path / "f.csv")
    assert result.exit_code == 0, result.output
    assert "Accuracy–cost frontier, preset quick" in result.output and "Frontier" in result.output
    assert set(pd.read_csv(tmp_path / "f.csv")["panel"]) == {"avg", "listops", "pathfinder"}
    result = invoke("compare", "--frontier", "--task", "pathfinder", "--runs", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Pathfinder accuracy (%)" in result.output and "Avg accuracy" not in result.output
    result = invoke("plot", "--runs", tmp_path, "--out", tmp_path / "figs")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figs" / "frontier_quick.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--frontier"], "lra bench model --attentions"),
        (["compare", "--frontier", "--task", "image"], "no runs of task 'image'"),
        (["compare"], "--task is required"),
    ],
    ids=["no-cost", "unknown-task", "no-task"],
)
def test_frontier_bad_input_is_one_line_exit_2(tmp_path, args, message):
    write_runs(tmp_path, [run_record("listops", "full"), run_record("listops", "mita", label=MITA)])
    result = invoke(*args, "--runs", tmp_path)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


def test_plot_without_any_cost_says_which_command_measures_one(tmp_path):
    write_runs(tmp_path, [run_record("listops", "full"), run_record("listops", "mita", label=MITA)])
    result = invoke("plot", "--runs", tmp_path, "--out", tmp_path / "figs")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "figs" / "frontier_quick.png").exists()
    assert "no cost for the accuracy–cost frontier" in result.output and "lra bench model" in result.output
