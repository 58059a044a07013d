"""`lra leaderboard`, `lra compare` and `lra plot` through click's CliRunner on hand-written records."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from runners import cli

from .builders import efficiency_record, run_record, write_runs


@pytest.fixture
def runs_dir(tmp_path):
    write_runs(
        tmp_path,
        [
            run_record(
                task,
                attention,
                seed=seed,
                test_acc=acc + 0.01 * seed,
                train_tokens_per_s=tokens,
                peak_memory_bytes=memory,
                params=1000,
                keys_per_query=kpq,
            )
            for task, attention, acc, tokens, memory, kpq in (
                ("listops", "full", 0.40, 1000.0, 2**30, 512),
                ("listops", "mita", 0.38, 4000.0, 2**28, 64),
                ("pathfinder", "full", 0.70, 500.0, 2**30, 1024),
            )
            for seed in (0, 1)
        ],
    )
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_leaderboard_prints_and_writes_tables(runs_dir, tmp_path):
    result = invoke(
        "leaderboard",
        "--runs",
        str(runs_dir),
        "--csv",
        str(tmp_path / "lb.csv"),
        "--markdown",
        str(tmp_path / "lb.md"),
        "--long-csv",
        str(tmp_path / "long.csv"),
    )
    assert result.exit_code == 0, result.output
    assert "Leaderboard, preset quick" in result.output
    assert "40.5 [" in result.output  # full on ListOps: the mean of 40 and 41 with its interval
    assert "Published results (not measured here)" in result.output
    wide = pd.read_csv(tmp_path / "lb.csv").set_index("attention_label")
    assert wide.loc["full", "avg"] == pytest.approx((40.5 + 70.5) / 2)
    assert pd.isna(wide.loc["mita", "avg"])
    assert "**40.5 [" in (tmp_path / "lb.md").read_text()
    assert {"listops_ci_low", "listops_ci_high", "listops_n", "listops_best", "avg_ci_low"} <= set(
        wide.columns
    )
    assert wide.loc["full", "listops_n"] == 400 and wide.loc["full", "listops_ci_low"] < 40.5
    assert len(pd.read_csv(tmp_path / "long.csv")) == 6


def test_leaderboard_markdown_to_stdout_without_published(runs_dir):
    result = invoke("leaderboard", "--runs", str(runs_dir), "--markdown", "-", "--no-published")
    assert result.exit_code == 0, result.output
    assert "| full" in result.output and "**" in result.output
    assert "Published" not in result.output


def test_leaderboard_reports_a_corrupt_record_and_goes_on(runs_dir):
    (runs_dir / "runs" / "broken").mkdir()
    (runs_dir / "runs" / "broken" / "result.json").write_text("{")
    result = invoke("leaderboard", "--runs", str(runs_dir))
    assert result.exit_code == 0
    assert "warning:" in result.output and "broken/result.json" in result.output
    assert "40.5 [" in result.output


def test_compare_prints_side_by_side(runs_dir, tmp_path):
    result = invoke(
        "compare",
        "--task",
        "listops",
        "--attentions",
        "full,mita",
        "--runs",
        str(runs_dir),
        "--csv",
        str(tmp_path / "cmp.csv"),
    )
    assert result.exit_code == 0, result.output
    assert "× tokens/s vs full" in result.output
    assert "Tests against full" in result.output and "not paired: mita was recorded without" in result.output
    table = pd.read_csv(tmp_path / "cmp.csv").set_index("attention_label")
    assert table.loc["mita", "tokens_per_s_ratio"] == pytest.approx(4.0)
    assert table.loc["mita", "memory_ratio"] == pytest.approx(0.25)
    # two seeds each, counts only: an independent bootstrap of the difference
    assert table.loc["mita", "diff_vs_reference"] == pytest.approx(-0.02)
    assert table.loc["mita", "test"] == "bootstrap, not paired" and 0 < table.loc["mita", "p_value"] <= 1
    assert table.loc["mita", "diff_ci_low"] < -0.02 < table.loc["mita", "diff_ci_high"]


def test_plot_writes_pngs(runs_dir, tmp_path):
    from results.records import write_record

    for n in (128, 256):
        write_record(runs_dir / "bench" / f"full-{n}.json", efficiency_record("full", n, n / 100, n * 1000))
    result = invoke("plot", "--runs", str(runs_dir), "--out", str(tmp_path / "figs"))
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert written == [
        "accuracy_quick.png",
        "efficiency_attention_forward_cpu_float32_H4_d32.png",
        "frontier_quick.png",  # the runs record throughput and memory
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["leaderboard", "--runs", "{missing}"], "does not exist"),
        (["leaderboard", "--runs", "{empty}"], "no result records"),
        (["plot", "--runs", "{empty}"], "no result records"),
        (["compare", "--task", "image", "--runs", "{runs}"], "no runs of task 'image'"),
        (
            ["compare", "--task", "listops", "--attentions", "full,agent", "--runs", "{runs}"],
            "no runs of attention 'agent'",
        ),
        (
            ["compare", "--task", "listops", "--reference", "agent", "--runs", "{runs}"],
            "no runs of the reference attention 'agent'",
        ),
    ],
    ids=["missing-dir", "empty-dir", "plot-empty", "compare-task", "compare-attention", "compare-reference"],
)
def test_results_cli_bad_input_is_one_line_exit_2(runs_dir, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "runs": runs_dir}
    result = invoke(*[a.format(**paths) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
