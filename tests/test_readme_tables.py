"""README tables of measured numbers are rendered from committed records (results/readme.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scipy.stats import binomtest

from results import readme

from .builders import run_record, write_runs

REPO = Path(__file__).resolve().parents[1]
OPEN = "<!-- table quick-suite: rendered by `lra readme` from records/quick -->\n"
CLOSE = "<!-- end table quick-suite -->"


def test_the_readme_matches_the_rendering_of_its_records():
    current, notes = readme.update(REPO, check=True)
    assert current, "README.md differs from its records; run `lra readme`"
    assert all("kept as written" in note for note in notes)


def test_a_marked_table_is_rendered_from_its_records(tmp_path):
    write_runs(
        tmp_path / "records" / "quick",
        [
            run_record("pathfinder", "mita", "mita(topk=8)", seed=0, test_acc=0.7712),
            run_record("pathfinder", "mita", "mita(topk=8)", seed=1, test_acc=0.7688),  # mean 77.0
            run_record("listops", "mita", "mita(topk=8)", test_acc=0.3125),
            run_record("listops", "full", test_acc=0.3175),
            run_record("listops", "full", seed=1, test_acc=0.9, status="failed"),  # not counted
        ],
    )
    text = "# Title\n\n" + OPEN + "| stale | table |\n" + CLOSE + "\n\nAfter.\n"
    rendered, notes = readme.render(text, tmp_path)
    assert notes == []
    head, body = rendered.split(OPEN)
    assert head == "# Title\n\n" and body.endswith(CLOSE + "\n\nAfter.\n")
    lines = body.splitlines()
    assert lines[:2] == [
        "| attention (quick budget: ~16 keys per query) | ListOps | Pathfinder | Avg |",
        "|---|---|---|---|",
    ]
    # 31.8% and 31.2% of 400 examples cannot be told apart: both bold, with their exact intervals
    assert lines[2] == f"| full | **{exact(31.8, 127, 400)}** | – | – |"
    mita = lines[3].split(" | ")
    assert mita[0] == "| mita(topk=8)" and mita[1] == f"**{exact(31.25, 125, 400)}**"
    # two seeds (77.12%, 76.88%): the mean with the bootstrap interval; alone in its column, so bold
    assert re.fullmatch(r"\*\*77\.0 \[7\d\.\d, 8\d\.\d\]\*\*", mita[2]), mita[2]
    assert mita[3].startswith("**54.1 [")  # (31.25 + 77.0) / 2
    assert readme.render(rendered, tmp_path) == (rendered, [])  # rendering again changes nothing


def exact(mean, k, n):
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{mean:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def test_a_table_without_records_is_kept_and_reported(tmp_path):
    text = OPEN + "| kept |\n" + CLOSE + "\n"
    assert readme.render(text, tmp_path) == (
        text,
        ["table quick-suite: no records under records/quick; kept as written"],
    )
    with pytest.raises(ValueError, match="README table 'nope' has no renderer"):
        readme.render(text.replace("quick-suite", "nope"), tmp_path)


def test_update_writes_the_readme_and_check_does_not(tmp_path):
    write_runs(tmp_path / "records" / "quick", [run_record("listops", "full", test_acc=0.5)])
    (tmp_path / "README.md").write_text(OPEN + "| old |\n" + CLOSE + "\n")
    assert readme.update(tmp_path, check=True) == (False, [])
    assert "| old |" in (tmp_path / "README.md").read_text()
    assert readme.update(tmp_path) == (False, [])
    assert f"| full | **{exact(50.0, 200, 400)}** |" in (tmp_path / "README.md").read_text()
    assert readme.update(tmp_path, check=True) == (True, [])


@pytest.mark.slow
def test_records_of_a_tiny_suite_render(tmp_path):
    from runners import suite

    out = tmp_path / "records" / "quick"
    cfg = suite.SuiteConfig(
        tasks=("listops",), attentions=("full",), preset="tiny", max_steps=2, out=str(out),
        data_dir=str(tmp_path / "data"),
    )  # fmt: skip
    assert suite.run_suite(cfg, reports=False).exit_code == 0
    rendered, notes = readme.render(OPEN + CLOSE + "\n", tmp_path)
    rows = rendered.splitlines()[1:-1]
    assert notes == [] and rows[0].endswith("| ListOps | Avg |") and rows[2].startswith("| full | ")
    accuracy = float(re.search(r"\d+\.\d", rows[2].split("|")[2]).group())
    assert 0.0 <= accuracy <= 100.0


def test_the_attention_cost_table_is_ratios_to_full_attention_from_one_run(tmp_path):
    from results.records import write_record

    from .builders import efficiency_record

    records = []
    for name, ms, memory in (("full", 100.0, 1000), ("moba", 50.0, 1500), ("topk", 400.0, 800)):
        for pass_, scale in (("forward", 1.0), ("forward_backward", 3.0)):
            for n, growth in ((4096, 1), (8192, 2 if name != "full" else 4)):
                record = efficiency_record(name, n, ms * scale * growth, memory * growth)
                record["pass"] = pass_
                records.append(record)
    for i, record in enumerate(records):
        write_record(tmp_path / "bench" / f"{i}.json", record)
    text = "<!-- table cpu-attention-cost: rendered by `lra readme` from bench -->\n<!-- end table cpu-attention-cost -->"
    rendered, notes = readme.render(text, tmp_path)
    assert notes == []
    rows = {line.split(" | ")[0]: line for line in rendered.splitlines() if line.startswith("| ")}
    # speed = full's time / its time; memory = its peak / full's peak at 4K; growth = its 8K / 4K peak
    assert rows["| full [torch]"] == "| full [torch] | 1.00× | 1.00× | 1.00× | 4.00× |"
    assert rows["| moba [torch]"] == "| moba [torch] | 2.00× | 2.00× | 1.50× | 2.00× |"
    assert rows["| topk [torch]"] == "| topk [torch] | 0.25× | 0.25× | 0.80× | 2.00× |"
    with pytest.raises(ValueError, match="needs full attention"):
        readme.attention_cost_table(
            readme.store.load(tmp_path / "bench").efficiency.query("attention != 'full'")
        )


def test_the_resolution_summary_is_rendered_from_the_same_records(tmp_path):
    write_runs(
        tmp_path / "records" / "quick",
        [
            run_record("listops", "full", test_acc=0.40),
            run_record("listops", "agent", test_acc=0.38),  # inside the noise of 400 examples
            run_record("listops", "mita", "mita(topk=8)", test_acc=0.25),  # resolved below the best
        ],
    )
    text = (
        "<!-- table quick-suite-resolution: rendered by `lra readme` from records/quick -->\n"
        "<!-- end table quick-suite-resolution -->\n"
    )
    rendered, notes = readme.render(text, tmp_path)
    assert notes == []
    ci = binomtest(40, 400).proportion_ci(0.95, method="exact")  # chance 10% of 400
    half = binomtest(200, 400).proportion_ci(0.95, method="exact")
    assert (
        f"ListOps: 400 test examples, ±{100 * (ci.high - ci.low) / 2:.1f} points at chance (10.0%), "
        f"±{100 * (half.high - half.low) / 2:.1f} at 50%" in rendered
    )
    assert "tests unpaired (the records hold no per-example predictions)" in rendered
    assert "Resolved below the column's best at 0.05 (Holm): ListOps: mita(topk=8). Every other" in rendered
