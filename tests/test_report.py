"""`lra report`: one self-contained HTML page, checked in a real headless Chromium (Playwright driving the
system's /usr/bin/chromium): no console error, no request leaving the file, every figure shown, tables
that sort; its leaderboard built from the leaderboard's frames column by column; each run's provenance;
and the suite's reproduction command, which plans exactly the runs it reports."""

from __future__ import annotations

import os
import shlex
import shutil
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from results import leaderboard, report, store
from results.records import write_record
from runners import cli

from .builders import efficiency_record, run_record, write_runs
from .tiny_suite import isolated_registry


def chromium_path() -> str | None:
    """The system's Chromium: $LRA_CHROMIUM, else `chromium` / `chromium-browser` on PATH, else None."""
    for candidate in (
        os.environ.get("LRA_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


CHROMIUM = chromium_path()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium, or set LRA_CHROMIUM)"
)
# Flags that keep a headless Chromium quiet and offline in a container.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def open_in_chromium(html: Path, screenshot: Path, actions=None) -> dict:
    """Load `html` in headless Chromium; returns the console messages, page errors, requests that
    leave the file, the images' natural widths and whatever `actions(page)` returns; keeps a
    full-page screenshot."""
    from playwright.sync_api import sync_playwright

    seen: dict = {"console": [], "errors": [], "requests": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on(
                "request",
                lambda r: (
                    seen["requests"].append(r.url) if not r.url.startswith(("file:", "data:")) else None
                ),
            )
            page.goto(html.resolve().as_uri(), wait_until="load")
            seen["images"] = page.eval_on_selector_all(
                "img", "images => images.map(i => ({complete: i.complete, width: i.naturalWidth}))"
            )
            seen["actions"] = actions(page) if actions else None
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return seen


class _Links(HTMLParser):
    """Every src / href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


# --- a hand-made results folder: distinct numbers, a bench call, a column added to the leaderboard --

MITA = "mita(num_landmarks=8,topk=8)"


def small_results(root: Path) -> Path:
    runs = [
        run_record("listops", "full", test_acc=0.40, train_tokens_per_s=1000.0, peak_memory_bytes=4e8, device="cpu"),
        run_record("listops", "mita", label=MITA, test_acc=0.45, train_tokens_per_s=3000.0,
                   peak_memory_bytes=1e8, device="cpu"),
        run_record("listops", "topk", test_acc=0.30, train_tokens_per_s=2000.0, peak_memory_bytes=2e8, device="cpu"),
    ]  # fmt: skip
    for i, record in enumerate(runs):
        record["config"] = {"preset": {"train": {"lr": 0.002}}, "seed": 0, "task": "listops"}
        record.update(config_hash=f"c0ffee{i:010d}", git_commit="0123abc", torch_version="2.99")
    write_runs(root, runs)
    for i, (attention, time_ms) in enumerate((("full", 10.0), ("mita", 4.0), ("topk", 5.0))):
        record = efficiency_record(attention, 1024, time_ms, 1e6 * (i + 1))
        record.update(bench_call_id="20260101T000000.000000Z-abcdef12", other_cpu_load=0.9 if i == 1 else 0.0)
        if attention == "mita":
            record["attention_label"] = MITA
        write_record(root / "efficiency" / "attention" / "cpu" / "float32-B2-H4-d32" / attention / "forward-N1024.json",
                     record)  # fmt: skip
    return root


def test_report_command_writes_one_page_with_every_section(tmp_path):
    root = small_results(tmp_path / "results")
    result = CliRunner().invoke(cli.main, ["report", "--runs", str(root)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {root / 'report.html'}"
    html = (root / "report.html").read_text()
    for heading in (
        "Leaderboard",
        "Accuracy and cost",
        "Figures",
        "Cost tables",
        "Runs and provenance",
        "Reproduce",
    ):
        assert f">{heading}</h2>" in html
    # Self-contained: no link or source outside the page but inlined images and in-page anchors.
    parser = _Links()
    parser.feed(html)
    assert parser.links and all(link.startswith(("data:image/png;base64,", "#")) for link in parser.links)
    assert "link" not in parser.tags
    figures = sorted((root / "plots").glob("*.png"))
    assert len(figures) >= 3 and html.count("<img ") == len(figures)
    # The cost table of the bench call, with MiTA's unreliable ratio marked (others used 90% of the cores).
    assert "forward: median time per call (ms), speed-up over full attention" in html
    assert "4.00 (2.50×)†" in html and "others used 90% of the cores" in html
    text = unescape(html)
    assert f"lra bench attention --attentions 'full,{MITA},topk' --lengths 1024 --batch 2" in text
    assert f"lra report --runs {root}" in text
    # Provenance: every run, its configuration hash and its configuration.
    for record in store.load(root).runs.to_dict("records"):
        assert record["run_id"] in html and record["config_hash"] in html
    assert '"lr": 0.002' in text


def test_the_leaderboard_section_is_built_from_the_leaderboard_frames_column_by_column(tmp_path, monkeypatch):
    """Columns the leaderboard adds (e.g. confidence intervals) appear in the report without a change there."""
    real_wide, real_table = leaderboard.wide, leaderboard.table

    def wide_with_interval(lb):
        frame = real_wide(lb)
        return frame.assign(listops_ci_low=frame["listops"] - 1.5, listops_ci_high=frame["listops"] + 1.5)

    def table_with_mark(lb, preset, *, markdown=True):
        frame = real_table(lb, preset, markdown=markdown)
        return frame.assign(**{"ListOps 95% CI": [f"[{i}.0, {i + 3}.0]" for i in range(len(frame))]})

    monkeypatch.setattr(leaderboard, "wide", wide_with_interval)
    monkeypatch.setattr(leaderboard, "table", table_with_mark)
    root = small_results(tmp_path / "results")
    html = report.write_report(root).read_text()
    assert "<th>listops_ci_low</th>" in html and "<th>listops_ci_high</th>" in html
    assert "<th>ListOps 95% CI</th>" in html and "[1.0, 4.0]" in html
    assert "43.5" in html  # MiTA's 45.0 - 1.5, formatted as the frame's other numbers


@needs_chromium
def test_report_opens_in_headless_chromium_and_its_tables_sort(tmp_path):
    root = small_results(tmp_path / "results")
    path = report.write_report(root)

    def sort_by_accuracy(page):
        table = page.locator("table.sortable").first
        header = table.locator("thead th", has_text="ListOps")
        orders = []
        for _ in range(2):
            header.click()
            orders.append([row.split("\t")[0] for row in table.locator("tbody tr").all_inner_texts()])
        return orders

    seen = open_in_chromium(path, tmp_path / "report.png", sort_by_accuracy)
    assert seen["errors"] == [] and [m for m in seen["console"] if m.startswith("error")] == []
    assert seen["requests"] == []
    assert seen["images"] and all(i["complete"] and i["width"] > 0 for i in seen["images"])
    ascending, descending = seen["actions"]
    assert ascending == ["topk", "full", MITA] and descending == [MITA, "full", "topk"]  # 30, 40, 45 %
    assert (tmp_path / "report.png").stat().st_size > 10_000


# --- the tiny suite: report.html written at the end, opened in Chromium, reproducible ----------


@pytest.mark.e2e
@needs_chromium
def test_the_suite_writes_a_report_that_opens_in_headless_chromium(tiny_suite, tmp_path):
    out, output = tiny_suite
    path = out / "report.html"
    assert str(path) in output
    seen = open_in_chromium(path, tmp_path / "suite_report.png")
    assert seen["errors"] == [] and [m for m in seen["console"] if m.startswith("error")] == []
    assert seen["requests"] == []
    shown = [i for i in seen["images"] if i["complete"] and i["width"] > 0]
    assert len(shown) == len(seen["images"]) == len(list((out / "plots").glob("*.png")))
    assert (tmp_path / "suite_report.png").stat().st_size > 10_000


@pytest.mark.e2e
def test_the_suites_reproduction_command_plans_exactly_the_reported_runs(tiny_suite, monkeypatch):
    out, _ = tiny_suite
    html = (out / "report.html").read_text()
    (command,) = [line for line in html.splitlines() if line.startswith("lra suite ")]
    args = shlex.split(unescape(command))
    assert args[:2] == ["lra", "suite"] and "--plugin" in args and "tensorboard" in args
    monkeypatch.chdir(out.parent)  # where the plugin file is
    with isolated_registry():
        planned = CliRunner().invoke(cli.main, [*args[1:], "--dry-run"])
    assert planned.exit_code == 0, planned.output
    plan = [line for line in planned.output.splitlines()[:-1] if not line.startswith("resolution:")]
    states = [line.split()[0] for line in plan]
    runs = pd.read_csv(out / "results_long.csv")
    assert states == ["done"] * len(runs)  # the same configurations, finished
