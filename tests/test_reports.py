"""One module assembles every report (results/reports.py): what `lra suite` writes at its end, and
what `lra leaderboard`, `lra compare` and `lra plot` print and write, from the same records."""

from __future__ import annotations

import pytest

from results import reports, store

from .builders import run_record, write_runs


@pytest.fixture
def folder(tmp_path):
    write_runs(
        tmp_path,
        [
            run_record(task=task, attention=attention, seed=seed, test_acc=acc + 0.01 * seed)
            for task in ("listops", "pathfinder")
            for attention, acc in (("full", 0.6), ("mita", 0.55))
            for seed in (0, 1)
        ],
    )
    return tmp_path


def test_the_suite_writes_every_table_figure_and_the_page_and_prints_the_leaderboard(folder):
    lines: list[str] = []
    written = reports.write_suite_reports(folder, echo=lines.append)
    names = {path.name for path in written}
    assert {"leaderboard.csv", "leaderboard.md", "results_long.csv", "frontier.md", "frontier.csv"} <= names
    assert "report.html" in names and any(path.suffix == ".png" for path in written)
    assert all(path.exists() for path in written)
    assert any("mita" in line and "full" in line for line in lines)  # the leaderboard, printed
    assert lines[-1].startswith("wrote ")


def test_a_folder_without_run_records_is_said_so_and_writes_nothing(tmp_path):
    lines: list[str] = []
    assert reports.write_suite_reports(tmp_path, echo=lines.append) == []
    assert lines == ["no run records yet; nothing to tabulate"] and not list(tmp_path.iterdir())


def test_the_leaderboard_report_is_what_the_suite_writes(folder, tmp_path):
    st, warnings = reports.load_results(folder)
    assert warnings == []
    report = reports.leaderboard_report(
        st, csv=tmp_path / "lb.csv", markdown=tmp_path / "lb.md", long_csv=tmp_path / "long.csv"
    )
    assert report.written == [tmp_path / "lb.csv", tmp_path / "lb.md", tmp_path / "long.csv"]
    reports.write_suite_reports(folder, echo=lambda line: None)
    assert (tmp_path / "lb.md").read_text() == (folder / "leaderboard.md").read_text()
    assert (tmp_path / "lb.csv").read_text() == (folder / "leaderboard.csv").read_text()
    assert "mita" in report.text and report.notes == []


def test_an_empty_folder_is_a_one_line_error_naming_the_command(tmp_path):
    with pytest.raises(ValueError, match=r"no result records under .*; run `lra suite --out .*` first"):
        reports.load_results(tmp_path)


def test_figures_and_the_comparison_come_from_the_same_records(folder, tmp_path):
    st = store.load(folder)
    figures = reports.figures_report(st, tmp_path / "plots")
    assert figures.written and all(path.suffix == ".png" and path.exists() for path in figures.written)
    comparison = reports.comparison_report(st, "listops", csv=tmp_path / "c.csv")
    assert comparison.written == [tmp_path / "c.csv"] and "mita" in comparison.text
