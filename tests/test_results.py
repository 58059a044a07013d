"""The results store, leaderboard, comparison and plots on hand-written records.

Expected values are computed here from first principles (statistics.mean / stdev, the binomial
formula written out), never by the code under test.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from results import compare, leaderboard, plots, store
from results.published import load_published, task_columns
from results.records import RUN_FIELDS, write_record

from .builders import efficiency_record, run_record, write_runs


def exact(mean_pct, k, n):
    """A one-seed cell as the tables show it, its Clopper–Pearson interval from scipy."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{mean_pct:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def cell(lb, label, task, preset="quick"):
    cells = lb.cells
    rows = cells[(cells["attention_label"] == label) & (cells["task"] == task) & (cells["preset"] == preset)]
    assert len(rows) == 1
    return rows.iloc[0]


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


def test_store_reads_records_and_reports_bad_files_by_name(tmp_path):
    write_runs(tmp_path, [run_record(seed=0), run_record(seed=1)])
    (tmp_path / "runs" / "torn").mkdir()
    (tmp_path / "runs" / "torn" / "result.json").write_text('{"kind": "run", "schema_ver')
    incomplete = run_record(seed=2)
    del incomplete["test_acc"]
    (tmp_path / "incomplete.json").write_text(json.dumps(incomplete))
    (tmp_path / "config.json").write_text(json.dumps({"task": "listops"}))  # not a record: ignored
    hidden = tmp_path / ".replaced" / "old" / "result.json"
    write_record(hidden, run_record(seed=3))

    st = store.load(tmp_path)

    assert sorted(st.runs["seed"]) == [0, 1]
    assert len(st.problems) == 2
    assert any("torn/result.json" in p and "corrupt" in p for p in st.problems)
    assert any("incomplete.json" in p and "test_acc" in p for p in st.problems)
    assert st.efficiency.empty


def test_store_missing_directory_is_one_line_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        store.load(tmp_path / "nope")


def test_store_keeps_the_newest_record_of_a_run(tmp_path):
    old = run_record(seed=0, test_acc=0.2, finished_at="2026-01-01T00:00:00+00:00")
    new = run_record(seed=0, test_acc=0.4, finished_at="2026-02-01T00:00:00+00:00")
    write_record(tmp_path / "a" / "result.json", old)
    write_record(tmp_path / "b" / "result.json", new)
    st = store.load(tmp_path)
    assert list(st.runs["test_acc"]) == [0.4]
    assert len(st.problems) == 1 and "a/result.json" in st.problems[0]


def test_long_csv_has_one_row_per_run_and_every_field(tmp_path):
    history = [{"step": 10, "val_acc": 0.3, "val_loss": 1.0, "train_loss": 1.2, "lr": 1e-3}]
    write_runs(tmp_path, [run_record(seed=s, history=history) for s in range(3)])
    st = store.load(tmp_path)
    out = tmp_path / "tables" / "results_long.csv"
    store.write_long_csv(st.runs, out)
    table = pd.read_csv(out)
    assert len(table) == 3
    assert set(RUN_FIELDS) <= set(table.columns)
    assert json.loads(table["history"].iloc[0]) == history
    assert [p.name for p in out.parent.iterdir()] == ["results_long.csv"]  # no temp files left


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------


def test_mean_and_std_over_seeds():
    accs = [0.31, 0.35, 0.42]
    runs = pd.DataFrame([run_record(seed=s, test_acc=a) for s, a in enumerate(accs)])
    lb = leaderboard.build(runs)
    got = cell(lb, "full", "listops")
    assert got["mean"] == pytest.approx(100 * statistics.mean(accs))
    assert got["std"] == pytest.approx(100 * statistics.stdev(accs))
    assert got["seeds"] == 3
    table = leaderboard.table(lb, "quick", markdown=False)
    # several seeds: the mean and its bootstrap interval (the std stays in the CSV)
    assert table.loc[0, "ListOps"] == f"36.0 [{got['ci_low']:.1f}, {got['ci_high']:.1f}]"
    assert got["interval"] == "bootstrap" and got["ci_low"] < 36.0 < got["ci_high"]
    assert leaderboard.wide(lb).loc[0, "listops_std"] == pytest.approx(100 * statistics.stdev(accs))


def test_text_reports_the_last_checkpoint_because_its_validation_set_is_the_test_set():
    from lra.tasks import get as get_task
    from lra.tasks import text

    assert text.SOURCE_SPLIT["val"] == text.SOURCE_SPLIT["test"]  # why text declares val_is_test
    assert get_task("text").val_is_test and not get_task("listops").val_is_test
    runs = pd.DataFrame(
        [
            run_record(task="text", test_acc=0.70, test_acc_last=0.62, chance_acc=0.5, num_classes=2),
            run_record(task="listops", test_acc=0.40, test_acc_last=0.35),
        ]
    )
    lb = leaderboard.build(runs)
    assert cell(lb, "full", "text")["mean"] == pytest.approx(62.0)  # not the test-selected 70
    assert cell(lb, "full", "listops")["mean"] == pytest.approx(40.0)  # best-validation checkpoint
    assert "Text: of the last checkpoint" in leaderboard.render(lb)
    compared = compare.compare(runs, "text", ["full"])
    assert compared.loc[0, "test_acc"] == pytest.approx(0.62)


def test_seeds_of_different_configurations_are_never_averaged():
    def config(lr):
        return {"task": "listops", "seed": 0, "preset": {"train": {"lr": lr, "steps": 100}}}

    runs = pd.DataFrame(
        [
            run_record(seed=0, test_acc=0.30, config={**config(1e-3), "seed": 0}),
            run_record(seed=1, test_acc=0.34, config={**config(1e-3), "seed": 1}),
            # a later run with another learning rate in the same results directory
            run_record(
                seed=2, test_acc=0.60, config={**config(1e-2), "seed": 2}, finished_at="2026-02-01T00:00:00"
            ),
        ]
    )
    lb = leaderboard.build(runs)
    got = cell(lb, "full", "listops")
    assert got["mean"] == pytest.approx(60.0) and got["seeds"] == 1  # the newest run's configuration only
    assert got["excluded"] == [
        "listops/full/0: differs in preset.train.lr",
        "listops/full/1: differs in preset.train.lr",
    ]
    text = leaderboard.render(lb)
    assert (
        exact(60.0, 240, 400) + "‡" in text
        and "- listops/full/1: differs in preset.train.lr (preset quick)" in text
    )
    # one configuration, several seeds: averaged as usual
    same = leaderboard.build(runs.iloc[:2])
    assert cell(same, "full", "listops")["mean"] == pytest.approx(32.0)
    assert cell(same, "full", "listops")["excluded"] == []


def _config(lr, steps=100, content="data-a", attention="full"):
    return {
        "task": "listops",
        "attention": attention,
        "attention_params": {},
        "seed": 0,
        "preset": {"train": {"lr": lr, "steps": steps}, "attention": {"mita": {"topk": 8}}},
        "data_identity": {"source": "lra_release", "content": content},
    }


def test_the_newest_configuration_is_chosen_over_every_run_and_counts_its_own_seeds():
    runs = pd.DataFrame(
        [
            run_record(seed=0, test_acc=0.30, config=_config(1e-3), finished_at="2026-01-01T00:00:00"),
            run_record(
                seed=1,
                test_acc=None,
                status="diverged",
                error="diverged: 9 non-finite losses",
                config=_config(1e-3),
                finished_at="2026-01-01T00:00:01",
            ),
            # re-run later with another learning rate: seed 0 finished, seed 1 diverged
            run_record(seed=0, test_acc=0.50, config=_config(1e-2), finished_at="2026-02-01T00:00:00"),
            run_record(
                seed=1,
                test_acc=None,
                status="diverged",
                error="diverged: 7 non-finite losses",
                config=_config(1e-2),
                finished_at="2026-02-01T00:00:01",
            ),
        ]
    )
    runs["run_id"] = [f"listops/full/{i}" for i in range(4)]
    got = cell(leaderboard.build(runs), "full", "listops")
    assert (got["seeds"], got["runs"], got["diverged"], got["failed"]) == (1, 2, 1, 0)
    assert got["mean"] == pytest.approx(50.0)
    assert got["excluded"] == [
        "listops/full/0: differs in preset.train.lr",
        "listops/full/1: differs in preset.train.lr",
    ]
    text = leaderboard.render(leaderboard.build(runs), markdown=False)
    assert exact(50.0, 200, 400) + "†‡" in text
    assert (
        "Diverged runs (not counted):\n- listops/full/3 -- diverged: 7 non-finite losses (preset quick)"
        in text
    )
    # the newest configuration only diverged: the cell is FAIL, not the older configuration's 30%
    newest_diverged = runs.drop(index=2)
    got = cell(leaderboard.build(newest_diverged), "full", "listops")
    assert got["status"] == "FAIL" and got["seeds"] == 0 and got["diverged"] == 1
    # a diverged run of an older configuration does not mark the newest configuration's cell
    clean = pd.concat(
        [
            runs.iloc[[0, 1, 2]],
            runs.iloc[[2]].assign(seed=1, run_id="listops/full/4", test_acc=0.52),
        ],
        ignore_index=True,
    )
    got = cell(leaderboard.build(clean), "full", "listops")
    assert (got["seeds"], got["runs"], got["diverged"]) == (2, 2, 0)
    shown = leaderboard.table(leaderboard.build(clean), "quick", markdown=False).loc[0, "ListOps"]
    assert shown.startswith("51.0 [") and shown.endswith("]‡")


def test_cells_of_another_configuration_than_their_column_are_flagged():
    runs = []
    for task in ("listops", "pathfinder"):
        for attention, acc in (("mita", 0.40), ("agent", 0.35)):
            runs.append(
                run_record(
                    task,
                    attention,
                    test_acc=acc,
                    config={**_config(2e-3, 20, attention=attention), "task": task},
                )
            )
        # full attention re-run with another learning rate and step budget: the best number, not comparable
        runs.append(run_record(task, "full", test_acc=0.90, config={**_config(1e-4, 10), "task": task}))
    # agent on other data in one column only
    runs[4]["config"] = {**runs[4]["config"], "data_identity": {"source": "lra_release", "content": "data-b"}}
    lb = leaderboard.build(pd.DataFrame(runs))
    assert cell(lb, "full", "listops")["differs"] == [
        "preset.train.lr (0.0001 vs 0.002)",
        "preset.train.steps (10 vs 20)",
    ]
    assert cell(lb, "mita", "listops")["differs"] == []
    assert cell(lb, "agent", "pathfinder")["differs"] == ["data_identity.content (data-b vs data-a)"]
    table = leaderboard.table(lb, "quick").set_index("Attention")
    assert table.loc["full", "ListOps"] == exact(90.0, 360, 400) + "§"
    assert table.loc["full", "Avg"].startswith("90.0 [") and table.loc["full", "Avg"].endswith("§")
    # the best among comparable cells (full's 90% is of another configuration: never bold)
    assert table.loc["mita", "ListOps"] == f"**{exact(40.0, 160, 400)}**"
    assert table.loc["mita", "Avg"].startswith("**40.0 [")
    # below chance + 2 SE (shown with its measured accuracy), and of other data
    assert table.loc["agent", "Pathfinder"] == f"FAIL {exact(35.0, 140, 400)}§"
    text = leaderboard.render(lb)
    assert "- full / ListOps: preset.train.lr (0.0001 vs 0.002), preset.train.steps (10 vs 20)" in text
    assert "- agent / Pathfinder: data_identity.content (data-b vs data-a)" in text
    wide = leaderboard.wide(lb).set_index("attention_label")
    assert (
        wide.loc["full", "listops_differs"]
        == "preset.train.lr (0.0001 vs 0.002); preset.train.steps (10 vs 20)"
    )
    assert wide.loc["mita", "listops_differs"] == ""


def test_avg_leaves_path_x_out_as_lra_publishes_and_shows_both():
    runs = pd.DataFrame(
        [
            run_record("listops", "full", test_acc=0.40),
            run_record("pathfinder", "full", test_acc=0.80),
            run_record("pathx", "full", test_acc=0.51, chance_acc=0.5, n_test=400),
        ]
    )
    lb = leaderboard.build(runs)
    table = leaderboard.table(lb, "quick", markdown=False)
    assert list(table.columns) == ["Attention", "ListOps", "Pathfinder", "Path-X", "Avg", "Avg with Path-X"]
    assert table.loc[0, "Avg"].startswith(f"{(40 + 80) / 2:.1f} [")
    assert table.loc[0, "Avg with Path-X"].startswith(f"{(40 + 80 + 51) / 3:.1f} [")
    wide = leaderboard.wide(lb)
    assert wide.loc[0, "avg"] == pytest.approx(60.0) and wide.loc[0, "avg_with_pathx"] == pytest.approx(57.0)
    no_pathx = leaderboard.table(leaderboard.build(runs.iloc[:2]), "quick", markdown=False)
    assert list(no_pathx.columns) == ["Attention", "ListOps", "Pathfinder", "Avg"]


def test_one_seed_shows_its_exact_binomial_interval_not_a_std():
    lb = leaderboard.build(pd.DataFrame([run_record(test_acc=0.4575)]))  # 183 of 400
    assert leaderboard.table(lb, "quick", markdown=False).loc[0, "ListOps"] == exact(45.75, 183, 400)


@pytest.mark.parametrize(
    ("chance", "n_test", "acc", "fail"),
    [
        # 0.5 + 2 * sqrt(0.25 / 400) = 0.55
        (0.5, 400, 0.549, True),
        (0.5, 400, 0.551, False),
        # 0.1 + 2 * sqrt(0.09 / 900) = 0.12
        (0.1, 900, 0.1199, True),
        (0.1, 900, 0.1201, False),
        (0.5, 400, 0.30, True),  # below chance is chance level too
    ],
    ids=["pf-below", "pf-above", "lo-below", "lo-above", "worse-than-chance"],
)
def test_fail_is_two_binomial_standard_errors_above_chance(chance, n_test, acc, fail):
    assert leaderboard.chance_threshold(chance, n_test) == pytest.approx(
        chance + 2 * math.sqrt(chance * (1 - chance) / n_test)
    )
    runs = pd.DataFrame([run_record(test_acc=acc, chance_acc=chance, n_test=n_test)])
    lb = leaderboard.build(runs)
    assert (cell(lb, "full", "listops")["status"] == "FAIL") is fail
    text = leaderboard.table(lb, "quick", markdown=False).loc[0, "ListOps"]
    measured = exact(100 * acc, round(acc * n_test), n_test)
    # FAIL with the measured accuracy and its interval; just above the line, the interval still
    # reaches chance: marked °
    assert text == (f"FAIL {measured}" if fail else f"{measured}°")


def test_fail_uses_one_over_classes_when_chance_is_unknown():
    runs = pd.DataFrame([run_record(test_acc=0.11, chance_acc=None, num_classes=10, n_test=900)])
    assert cell(leaderboard.build(runs), "full", "listops")["status"] == "FAIL"


def test_every_seed_diverged_is_fail_and_partial_seeds_are_marked():
    runs = pd.DataFrame(
        [
            run_record(attention="topk", seed=0, test_acc=None, status="diverged"),
            run_record(attention="topk", seed=1, test_acc=None, status="diverged"),
            run_record(attention="mita", seed=0, test_acc=0.40),
            run_record(attention="mita", seed=1, test_acc=None, status="failed", error="RuntimeError: boom"),
        ]
    )
    lb = leaderboard.build(runs)
    table = leaderboard.table(lb, "quick", markdown=False).set_index("Attention")
    assert table.loc["topk", "ListOps"] == "FAIL"
    assert table.loc["mita", "ListOps"] == exact(40.0, 160, 400) + "†"
    text = leaderboard.render(lb, markdown=False)
    assert "listops/mita/1" in text and "RuntimeError: boom" in text


def test_a_cell_whose_runs_ran_out_of_memory_is_oom_not_missing():
    oom = "OutOfMemoryError: CUDA out of memory. Tried to allocate 64.00 GiB"
    runs = pd.DataFrame(
        [
            run_record("pathx", "full", test_acc=None, status="failed", error=oom),
            run_record("pathx", "topk", test_acc=None, status="failed", error="RuntimeError: boom"),
            run_record("pathx", "mita", seed=0, test_acc=None, status="failed", error=oom),
            run_record("pathx", "mita", seed=1, test_acc=None, status="failed", error="RuntimeError: boom"),
            run_record("pathx", "agent", test_acc=0.51),
        ]
    )
    lb = leaderboard.build(runs)
    table = leaderboard.table(lb, "quick", markdown=False).set_index("Attention")
    assert table.loc["full", "Path-X"] == "OOM"
    assert table.loc["topk", "Path-X"] == "–" and table.loc["mita", "Path-X"] == "–"  # not every run OOM
    wide = leaderboard.wide(lb).set_index("attention_label")
    assert wide.loc["full", "pathx_status"] == "OOM" and math.isnan(wide.loc["full", "pathx"])
    assert "OOM: every run of the cell's configuration ran out of memory" in leaderboard.render(
        lb, markdown=True
    )


def test_missing_cells_and_average_only_over_complete_rows():
    runs = pd.DataFrame(
        [
            run_record("listops", "full", test_acc=0.40),
            run_record("pathfinder", "full", test_acc=0.80),
            run_record("listops", "mita", test_acc=0.30),
            run_record("listops", "agent", test_acc=0.11, chance_acc=0.1, n_test=900),  # FAIL, measured
            run_record("pathfinder", "agent", test_acc=0.70),
        ]
    )
    lb = leaderboard.build(runs)
    table = leaderboard.table(lb, "quick", markdown=False).set_index("Attention")
    assert list(table.columns) == ["ListOps", "Pathfinder", "Avg"]
    assert table.loc["mita", "Pathfinder"] == "–"
    assert table.loc["mita", "Avg"] == "–"
    assert table.loc["full", "Avg"].startswith(f"{(40 + 80) / 2:.1f} [")
    assert table.loc["agent", "ListOps"] == f"FAIL {exact(11.0, 99, 900)}"
    assert table.loc["agent", "Avg"].startswith(
        f"{(11 + 70) / 2:.1f} ["
    )  # FAIL counts at its measured accuracy
    wide = leaderboard.wide(lb).set_index("attention_label")
    assert math.isnan(wide.loc["mita", "avg"])
    assert wide.loc["mita", "pathfinder_status"] == "missing"
    assert wide.loc["agent", "listops_status"] == "FAIL"
    assert wide.loc["agent", "listops"] == pytest.approx(11.0)
    markdown = leaderboard.render(lb, markdown=True)
    assert (
        "Avg: mean over this table's columns except Path-X (LRA's published average leaves Path-X out), "
        "only for rows with a measured accuracy in each of them" in markdown
    )


def test_rows_follow_the_zoo_order_and_labels_with_parameters_are_rows():
    runs = pd.DataFrame(
        [
            run_record(attention="mita", label="mita(topk=64)", test_acc=0.5),
            run_record(attention="mita", test_acc=0.5),
            run_record(attention="full", test_acc=0.5),
            run_record(attention="agent", test_acc=0.5),
        ]
    )
    table = leaderboard.table(leaderboard.build(runs), "quick")
    assert list(table["Attention"]) == ["full", "agent", "mita", "mita(topk=64)"]


def test_bold_marks_every_cell_the_tests_cannot_tell_from_the_columns_best():
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import test_proportions_2indep

    # 400 test examples, one seed each, no per-example predictions: unpaired score tests against the
    # column's best, Holm over the column.
    runs = pd.DataFrame(
        [
            run_record("listops", "full", test_acc=0.40),
            run_record("listops", "agent", test_acc=0.40),
            run_record("listops", "mita", test_acc=0.35),
            run_record("pathfinder", "full", test_acc=0.70),
            run_record("pathfinder", "agent", test_acc=0.60),
            run_record("pathfinder", "mita", test_acc=0.90),
        ]
    )
    lb = leaderboard.build(runs)
    md = leaderboard.table(lb, "quick", markdown=True).set_index("Attention")
    # ListOps: 35% vs 40% on 400 examples each is inside the noise, so all three are bold, not one winner
    assert [md.loc[a, "ListOps"].startswith("**") for a in ("full", "agent", "mita")] == [True] * 3
    # Pathfinder: 90% is resolved from 70% and 60%
    assert md.loc["mita", "Pathfinder"] == f"**{exact(90.0, 360, 400)}**"
    assert md.loc["full", "Pathfinder"] == exact(70.0, 280, 400)
    assert md.loc["agent", "Pathfinder"] == exact(60.0, 240, 400)
    p = [test_proportions_2indep(k, 400, 360, 400, method="score").pvalue for k in (280, 240)]
    _, holm, _, _ = multipletests(p, method="holm")
    assert cell(lb, "full", "pathfinder")["p_vs_best"] == pytest.approx(holm[0])
    assert cell(lb, "agent", "pathfinder")["p_vs_best"] == pytest.approx(holm[1])
    assert cell(lb, "mita", "pathfinder")["best"] and math.isnan(cell(lb, "mita", "pathfinder")["p_vs_best"])
    p_listops = test_proportions_2indep(140, 400, 160, 400, method="score").pvalue
    assert p_listops > 0.05 and cell(lb, "mita", "listops")["test_vs_best"] == "score test, not paired"
    assert md.loc["mita", "Avg"].startswith("**62.5 [")  # (35 + 90) / 2, resolved from 55 and 50
    assert not md.loc["full", "Avg"].startswith("**") and not md.loc["agent", "Avg"].startswith("**")
    wide = leaderboard.wide(lb).set_index("attention_label")
    assert list(wide["listops_best"]) == [True, True, True] and list(wide["pathfinder_best"]) == [
        False,
        False,
        True,
    ]
    assert list(wide["avg_best"]) == [False, False, True]
    plain = leaderboard.table(lb, "quick", markdown=False)
    assert not plain.apply(lambda col: col.str.contains(r"\*\*")).any().any()


def test_fail_cells_are_never_bold():
    runs = pd.DataFrame(
        [
            run_record("pathfinder", "full", test_acc=0.52),  # FAIL (threshold 0.55)
            run_record("pathfinder", "mita", test_acc=0.51),
        ]
    )
    md = leaderboard.table(leaderboard.build(runs), "quick", markdown=True)
    assert list(md["Pathfinder"]) == [f"FAIL {exact(52.0, 208, 400)}", f"FAIL {exact(51.0, 204, 400)}"]


def test_presets_get_separate_tables():
    runs = pd.DataFrame(
        [
            run_record(test_acc=0.40, preset="quick"),
            run_record(test_acc=0.20, preset="tiny"),
        ]
    )
    lb = leaderboard.build(runs)
    assert lb.presets == ["quick", "tiny"]
    assert leaderboard.table(lb, "quick", markdown=False).loc[0, "ListOps"] == exact(40.0, 160, 400)
    assert leaderboard.table(lb, "tiny", markdown=False).loc[0, "ListOps"] == exact(20.0, 80, 400)
    text = leaderboard.render(lb, markdown=True)
    assert "## Leaderboard, preset quick" in text and "## Leaderboard, preset tiny" in text


def test_published_rows_are_consistent_and_labelled():
    published = load_published()
    assert {"LRA paper", "Nyströmformer", "Skyformer"} == {s.split(" (")[0] for s in published["source"]}
    for row in published.itertuples():
        assert row.source and row.protocol
        values = [
            float(getattr(row, t)) for t in task_columns(published) if getattr(row, t) not in ("", "FAIL")
        ]
        assert len(values) == 5
        # Papers round to 2 decimals; an average printed inconsistently is kept and says so.
        tolerance = 0.1 if "as printed" in row.avg_over else 0.006
        assert float(row.avg) == pytest.approx(sum(values) / 5, abs=tolerance)
    lra_row = published[published["source"].str.contains("LRA paper")].iloc[0]
    assert (lra_row["listops"], lra_row["pathfinder"], lra_row["pathx"]) == ("36.37", "71.40", "FAIL")


def test_published_block_is_separate_and_never_averaged(tmp_path):
    runs = pd.DataFrame([run_record("listops", test_acc=0.30), run_record("pathfinder", test_acc=0.60)])
    lb = leaderboard.build(runs)
    published = load_published()
    md = leaderboard.render(lb, markdown=True, published=published)
    measured, _, block = md.partition("## Published results (not measured here)")
    assert block, "the published block has its own heading"
    assert "36.37" not in measured and "36.37" in block and "71.40" in block
    assert "Transformer" not in measured
    assert "| full " in measured and "45.0 [" in measured  # Avg of the measured row alone
    leaderboard.write_all(lb, csv=tmp_path / "lb.csv", markdown=tmp_path / "lb.md", published=published)
    wide = pd.read_csv(tmp_path / "lb.csv")
    assert list(wide["attention_label"]) == ["full"]  # no published row in the measured CSV
    assert wide.loc[0, "avg"] == pytest.approx(45.0)
    assert "Published results" in (tmp_path / "lb.md").read_text()
    assert "Published" not in leaderboard.render(lb, markdown=True, published=None)


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def _costly(attention, seed, acc, tokens, memory, **kw):
    return run_record(
        attention=attention,
        seed=seed,
        test_acc=acc,
        train_tokens_per_s=tokens,
        peak_memory_bytes=memory,
        params=1000,
        keys_per_query=512 if attention == "full" else 64,
        wall_time_s=10.0,
        device="cpu",
        **kw,
    )


def test_compare_side_by_side():
    runs = pd.DataFrame(
        [
            _costly("full", 0, 0.40, 1000.0, 200 * 2**20),
            _costly("full", 1, 0.44, 1200.0, 200 * 2**20),
            _costly("mita", 0, 0.38, 3000.0, 50 * 2**20),
            _costly("topk", 0, 0.30, 500.0, 100 * 2**20),
        ]
    )
    # ratios against the reference: full by default, whatever the order the attentions are named in
    table = compare.compare(runs, "listops", ["mita", "full"]).set_index("attention_label")
    assert list(table.index) == ["mita", "full"]
    assert table.loc["full", "test_acc"] == pytest.approx(0.42)
    assert table.loc["full", "test_acc_std"] == pytest.approx(statistics.stdev([0.40, 0.44]))
    assert table.loc["full", "train_tokens_per_s"] == pytest.approx(1100.0)
    assert table.loc["mita", "tokens_per_s_ratio"] == pytest.approx(3000.0 / 1100.0)
    assert table.loc["mita", "memory_ratio"] == pytest.approx(0.25)
    assert table.loc["mita", "keys_per_query"] == 64
    # another reference
    by_mita = compare.compare(runs, "listops", ["mita", "full"], reference="mita").set_index(
        "attention_label"
    )
    assert by_mita.loc["full", "tokens_per_s_ratio"] == pytest.approx(1100.0 / 3000.0)
    assert by_mita.loc["full", "memory_ratio"] == pytest.approx(4.0)
    # the reference joins the table when it was not named
    assert list(compare.compare(runs, "listops", ["mita"])["attention_label"]) == ["full", "mita"]
    shown = compare.format_comparison(compare.compare(runs, "listops", ["full", "mita"]))
    assert shown["Test acc (%) [95% CI]"][0].startswith("42.0 [")
    assert shown["Test acc (%) [95% CI]"][1] == exact(38.0, 152, 400)
    assert list(shown["Peak mem (MiB)"]) == ["200.0", "50.0"]


def test_compare_gives_memory_ratios_only_between_runs_on_one_kind_of_device():
    runs = pd.DataFrame(
        [
            _costly("full", 0, 0.40, 1000.0, 200 * 2**20),
            _costly("mita", 0, 0.38, 3000.0, 50 * 2**20),
            {**_costly("topk", 0, 0.30, 500.0, 2**30), "device": "NVIDIA H200"},
        ]
    )
    table = compare.compare(runs, "listops", ["full", "mita", "topk"]).set_index("attention_label")
    assert table.loc["mita", "memory_ratio"] == pytest.approx(0.25)
    assert math.isnan(table.loc["topk", "memory_ratio"])  # CUDA allocations vs CPU resident growth


def test_compare_names_missing_task_or_attention():
    runs = pd.DataFrame([run_record(attention="full")])
    with pytest.raises(ValueError, match="no runs of task 'image'.*listops"):
        compare.compare(runs, "image", ["full"])
    with pytest.raises(ValueError, match="no runs of attention 'mita'.*full"):
        compare.compare(runs, "listops", ["full", "mita"])


def test_compare_matches_a_label_exactly_else_every_label_of_the_name():
    runs = pd.DataFrame(
        [
            run_record(attention="mita", label="mita(topk=64)", test_acc=0.5),
            run_record(attention="mita", label="mita(topk=16)", test_acc=0.4),
            run_record(attention="full", test_acc=0.4),
        ]
    )
    table = compare.compare(runs, "listops", ["full", "mita"])
    assert list(table["attention_label"]) == ["full", "mita(topk=16)", "mita(topk=64)"]
    table = compare.compare(runs, "listops", ["mita(topk=64)"], reference="mita(topk=64)")
    assert list(table["attention_label"]) == ["mita(topk=64)"]
    table = compare.compare(runs, "listops", ["mita(topk=64)"])  # the default reference joins
    assert list(table["attention_label"]) == ["full", "mita(topk=64)"]


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def test_plots_are_pngs(tmp_path):
    history = [
        {"step": s, "val_acc": 0.1 + s / 1000, "val_loss": 1.0, "train_loss": 1.0, "lr": 1e-3}
        for s in (0, 100, 200)
    ]
    write_runs(
        tmp_path,
        [
            run_record(task, attention, seed=seed, test_acc=0.3 + 0.01 * seed, history=history)
            for task in ("listops", "pathfinder")
            for attention in ("full", "mita")
            for seed in (0, 1)
        ],
    )
    out = tmp_path / "plots"
    paths = plots.plot_all(store.load(tmp_path), out)
    names = sorted(p.name for p in paths)
    assert names == ["accuracy_quick.png", "curves_quick_listops.png", "curves_quick_pathfinder.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
    assert sorted(p.name for p in out.iterdir()) == names  # nothing half-written left behind

    for n, ms in ((256, 1.0), (512, 4.0), (1024, 16.0)):
        write_record(tmp_path / "bench" / f"full-{n}.json", efficiency_record("full", n, ms, n * n * 4))
        write_record(tmp_path / "bench" / f"mita-{n}.json", efficiency_record("mita", n, ms / 4, n * 64))
    write_record(
        tmp_path / "bench" / "full-4096.json", efficiency_record("full", 4096, None, None, status="oom")
    )
    # the model bench halves the batch where the full one does not fit
    write_record(
        tmp_path / "bench" / "model-1.json",
        efficiency_record("full", 1024, 50.0, 2**30, bench="model", batch=32),
    )
    write_record(
        tmp_path / "bench" / "model-2.json",
        efficiency_record("full", 2048, 60.0, 2**30, bench="model", batch=16),
    )
    paths = plots.plot_efficiency(store.load(tmp_path).efficiency, out)
    assert [p.name for p in paths] == [
        "efficiency_attention_forward_cpu_float32_H4_d32.png",
        "efficiency_model_forward_cpu_float32_H4_d32.png",
    ]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"


def test_results_package_does_not_import_torch():
    code = (
        "import sys; import results.store, results.leaderboard, results.compare, results.plots, "
        "results.published, results.frontier; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_table_rows_follow_the_registry_order():
    import attention_zoo

    built_ins = attention_zoo.names()
    runs = pd.DataFrame([run_record(attention=name) for name in reversed(built_ins)])
    assert leaderboard.build(runs).labels("quick") == built_ins
