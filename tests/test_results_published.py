"""Published rows of the kernelized and low-rank baselines: labelled, consistent, registered, and shown
by the leaderboard and `lra compare` for the attentions on the table only."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

import attention_zoo
from results import compare, leaderboard
from results.published import load_published, published_for, task_columns
from runners import cli

from .builders import run_record, write_runs

BASELINES = ("linear", "performer", "cosformer", "linformer", "nystrom", "skyformer")


def test_every_published_row_names_a_registered_attention_and_its_protocol():
    published = load_published()
    assert set(published["attention"]) <= set(attention_zoo.names())
    for row in published.itertuples():
        assert row.source and row.protocol and row.avg_over
        values = [
            float(getattr(row, t)) for t in task_columns(published) if getattr(row, t) not in ("", "FAIL")
        ]
        # a paper's Avg as printed may differ from the mean of its own scores (LRA's Sinkhorn: 51.39 vs 51.48)
        tolerance = 0.1 if "as printed" in row.avg_over else 0.006
        assert float(row.avg) == pytest.approx(sum(values) / len(values), abs=tolerance)


def test_baseline_rows_as_in_the_papers():
    published = load_published().set_index(["attention", "source"])

    def row(attention, paper):
        match = published[
            (published.index.get_level_values(0) == attention)
            & published.index.get_level_values(1).str.startswith(paper)
        ]
        assert len(match) == 1, (attention, paper)
        return [match.iloc[0][t] for t in ("listops", "text", "retrieval", "image", "pathfinder")]

    assert row("performer", "LRA paper") == ["18.01", "65.40", "53.82", "42.77", "77.05"]
    assert row("linear", "LRA paper") == ["16.13", "65.90", "53.09", "42.34", "75.30"]
    assert row("linformer", "LRA paper") == ["35.70", "53.94", "52.27", "38.56", "76.34"]
    assert row("nystrom", "Nyströmformer") == ["37.15", "65.52", "79.56", "41.58", "70.94"]
    # Skyformer's Table 1 orders its columns Text / ListOps / Retrieval / Pathfinder / Image
    assert row("skyformer", "Skyformer") == ["38.69", "64.70", "82.06", "40.77", "70.73"]
    assert row("nystrom", "Skyformer") == ["38.51", "64.83", "80.52", "41.30", "69.48"]
    lra_performer = published.loc[("performer", "LRA paper (Tay et al., ICLR 2021), Table 1")]
    assert "ReLU" in lra_performer["protocol"] and "NOT our softmax FAVOR+" in lra_performer["protocol"]
    assert set(published.index.get_level_values(0)) >= set(BASELINES) - {"cosformer"}  # no LRA row


def test_published_for_keeps_only_the_named_attentions_in_file_order():
    published = load_published()
    chosen = published_for(published, ["nystrom", "full"])
    assert set(chosen["attention"]) == {"nystrom", "full"}
    assert list(chosen["model"]) == [
        m for m, a in zip(published["model"], published["attention"], strict=True) if a in ("nystrom", "full")
    ]


def test_leaderboard_shows_the_published_rows_of_the_attentions_on_the_table():
    lb = leaderboard.build(pd.DataFrame([run_record("listops", "full"), run_record("listops", "nystrom")]))
    text = leaderboard.render(lb, markdown=True, published=load_published())
    _, _, block = text.partition("## Published results (not measured here)")
    assert "Nyströmformer" in block and "37.15" in block and "Transformer" in block
    assert "Skyformer |" not in block and "Performer" not in block and "Linear Trans." not in block


@pytest.fixture
def runs_dir(tmp_path):
    write_runs(
        tmp_path,
        [
            run_record(
                "listops",
                attention,
                seed=seed,
                test_acc=0.3,
                train_tokens_per_s=100.0,
                peak_memory_bytes=2**20,
                params=10,
                keys_per_query=16,
            )
            for attention in ("full", "performer")
            for seed in (0, 1)
        ],
    )
    return tmp_path


def test_compare_shows_the_published_accuracies_of_the_compared_attentions(runs_dir, tmp_path):
    result = CliRunner().invoke(
        cli.main,
        ["compare", "--task", "listops", "--runs", str(runs_dir), "--markdown", str(tmp_path / "c.md")],
    )
    assert result.exit_code == 0, result.output
    _, _, block = result.output.partition("Published results (not measured here)")
    assert "18.01" in block and "18.80" in block and "38.02" in block  # Performer, three papers
    assert "36.37" in block  # full attention's LRA row
    assert "37.15" not in block  # Nyströmformer is not compared
    assert "Published results" in (tmp_path / "c.md").read_text()
    quiet = CliRunner().invoke(
        cli.main, ["compare", "--task", "listops", "--runs", str(runs_dir), "--no-published"]
    )
    assert quiet.exit_code == 0 and "Published" not in quiet.output


def test_compare_published_block_keeps_rows_that_report_the_task():
    assert compare.published_block(load_published(), "listops", ["agent"]).empty
    assert compare.published_block(load_published(), "pathx", ["full"])["pathx (%)"].tolist() == ["FAIL"]
