"""Honest costs: every timing record keeps its spread and the machine's load; ratios are formed only
within one bench call; an unreliable ratio is marked († in tables and figures) and warned about in one
line; the frontier falls back to training throughput for an attention without a matching bench record.

The machine's load and the clock are injected (a patched counter reader, a fake perf_counter), so that
nothing here depends on how busy the machine running the tests is.
"""

from __future__ import annotations

import itertools
import math

import pytest
from click.testing import CliRunner

from results import costs, frontier, store
from results.cost_tables import ratio_table
from results.records import iter_record_files, read_record, write_record
from runners import cli
from runners.bench import timing

from .builders import efficiency_record, run_record, write_runs

GRID = ("--attentions", "full,local", "--lengths", "16,32", "--heads", "1", "--head-dim", "8",
        "--repeats", "5", "--warmup", "0", "--device", "cpu", "--quiet")  # fmt: skip


class FakeCpu:
    """/proc/stat as a machine where other processes keep `others` of the 4 cores busy: every
    reading is 1 s after the previous one; this process uses 0.5 core-seconds a second."""

    def __init__(self, others: float) -> None:
        self.others, self.readings = others, 0

    def __call__(self) -> timing.CpuCounters:
        t = float(self.readings)
        self.readings += 1
        return timing.CpuCounters(
            wall_s=t, busy_s=(4 * self.others + 0.5) * t, steal_s=0.0, own_s=0.5 * t, cores=4, load_avg_1m=4.0
        )


class FakeClock:
    """perf_counter for `timing`: each call of the measured function takes `durations` in turn (ms)."""

    def __init__(self, durations: tuple[float, ...]) -> None:
        self.now, self.steps = 0.0, itertools.cycle(durations)
        self.started = False

    def perf_counter(self) -> float:
        # calls come in pairs around each timed call: advance on the second of each pair
        if self.started:
            self.now += next(self.steps) / 1e3
        self.started = not self.started
        return self.now

    def __getattr__(self, name):  # monotonic, sleep, ... from the real module
        import time

        return getattr(time, name)


def bench(tmp_path, monkeypatch, *, others: float, durations: tuple[float, ...] = (1.0,), extra=()):
    monkeypatch.setattr(timing, "read_cpu_counters", FakeCpu(others))
    monkeypatch.setattr(timing, "time", FakeClock(durations))
    result = CliRunner().invoke(cli.main, ["bench", "attention", *GRID, "--out", str(tmp_path), *extra])
    assert result.exit_code == 0, result.output
    records = [read_record(p) for p in iter_record_files(tmp_path / "efficiency") if p.suffix == ".json"]
    return result.output, records


def table_cells(output: str, series: str) -> list[str]:
    return [line.split("|")[2:-1] for line in output.splitlines() if line.startswith(f"| {series} ")][
        0
    ]  # the first table: forward times


# --- what a record keeps -----------------------------------------------------------------------


def test_the_load_between_two_readings_is_the_other_processes_share_of_the_cores():
    before = timing.CpuCounters(wall_s=10.0, busy_s=100.0, steal_s=5.0, own_s=20.0, cores=8, load_avg_1m=2.0)
    after = timing.CpuCounters(wall_s=12.0, busy_s=110.0, steal_s=5.8, own_s=23.0, cores=8, load_avg_1m=6.0)
    load = timing.MachineLoad.between(before, after)
    # others: (10 busy - 3 own) core-seconds + 0.8 stolen over 2 s x 8 cores
    assert load.other_cpu_load == pytest.approx((10.0 - 3.0 + 0.8) / 16.0)
    assert load.cpu_steal == pytest.approx(0.8 / 16.0)
    assert (load.load_per_core_before, load.load_per_core_after, load.cpu_cores) == (0.25, 0.75, 8)
    short = timing.CpuCounters(wall_s=10.05, busy_s=100.1, steal_s=5.0, own_s=20.0, cores=8, load_avg_1m=2.0)
    assert timing.MachineLoad.between(before, short).other_cpu_load is None  # under one 10 ms tick's meaning
    assert timing.MachineLoad.between(None, after) == timing.MachineLoad()


def test_read_cpu_counters_reads_this_linux_machine():
    counters = timing.read_cpu_counters()
    if counters is None:
        pytest.skip("no /proc/stat here (not Linux)")
    with open("/proc/stat") as fh:
        cpus = sum(1 for line in fh if line.startswith("cpu") and line[3].isdigit())
    assert counters.cores == cpus and counters.busy_s > 0 and counters.own_s > 0


def test_every_record_keeps_its_spread_the_load_and_its_bench_call(tmp_path, monkeypatch):
    _, records = bench(tmp_path, monkeypatch, others=0.25, durations=(1.0, 1.0, 2.0, 2.0, 2.0))
    assert len(records) == 8
    assert len({r["bench_call_id"] for r in records}) == 1 and records[0]["bench_call_id"]
    for record in records:
        assert record["time_ms_p20"] == pytest.approx(1.0) and record["time_ms_p80"] == pytest.approx(2.0)
        assert record["time_spread"] == pytest.approx(2.0)
        assert record["other_cpu_load"] == pytest.approx(0.25) and record["cpu_cores"] == 4
        assert record["load_per_core_before"] == 1.0


# --- unreliable ratios, marked and warned about ------------------------------------------------


def test_a_quiet_machine_and_steady_calls_give_reliable_ratios_without_a_warning(tmp_path, monkeypatch):
    output, _ = bench(tmp_path, monkeypatch, others=0.1)
    assert costs.MARK not in output and "warning:" not in output
    assert table_cells(output, "local [torch]") == [" 1.00 (1.00×) ", " 1.00 (1.00×) "]


def test_costs_measured_under_an_injected_cpu_load_are_marked_unreliable(tmp_path, monkeypatch):
    output, records = bench(tmp_path, monkeypatch, others=0.9)
    assert all(r["other_cpu_load"] == pytest.approx(0.9) for r in records)
    assert table_cells(output, "local [torch]") == [" 1.00 (1.00×)† ", " 1.00 (1.00×)† "]
    (warning,) = [line for line in output.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: 8 of 8 ratios to full attention are unreliable (†: p80/p20 of the")
    assert (
        "local [torch] forward N=16 (others used 90% of the cores; full attention: others used 90%" in output
    )
    frame = ratio_table(records)
    assert (frame["unreliable"] != "").all()


def test_a_wide_spread_of_the_timed_calls_alone_marks_a_ratio(tmp_path, monkeypatch):
    output, records = bench(tmp_path, monkeypatch, others=0.0, durations=(1.0, 1.0, 40.0, 40.0, 1.0))
    assert all(r["time_spread"] == pytest.approx(40.0) for r in records)
    assert costs.MARK in table_cells(output, "local [torch]")[0]
    assert "p80/p20 = 40" in output
    assert costs.unreliable_reason({"status": "ok", "time_ms_p20": 1.0, "time_ms_p80": 1.5}) is None
    assert (
        costs.unreliable_reason({"status": "ok", "time_ms_p20": 1.0, "time_ms_p80": 1.51}) == "p80/p20 = 1.5"
    )


# --- ratios within one bench call --------------------------------------------------------------


def _call(record, call, **fields):
    return {**record, "bench_call_id": call, **fields}


def test_ratios_are_formed_only_with_full_attention_of_the_same_call():
    rows = [
        _call(efficiency_record("full", 1024, 100.0, 8e6), "A"),
        _call(efficiency_record("local", 1024, 50.0, 1e6), "A"),
        _call(efficiency_record("full", 2048, 10.0, 8e6), "B"),  # a later call at another length
        _call(efficiency_record("local", 2048, 40.0, 1e6), "A"),  # no full attention of call A here
    ]
    frame = ratio_table(rows).set_index(["attention", "seq_len"])
    assert frame.loc[("local", 1024), "speedup_vs_full"] == pytest.approx(2.0)
    assert math.isnan(frame.loc[("local", 2048), "speedup_vs_full"])


def test_a_resumed_bench_continues_the_newest_call_and_measures_other_calls_again(tmp_path, monkeypatch):
    _, first = bench(tmp_path, monkeypatch, others=0.0)
    (call_a,) = {r["bench_call_id"] for r in first}
    # A second call without --resume measures full attention again: its records take a new call id.
    runner = CliRunner()
    grid_full = [a if a != "full,local" else "full" for a in GRID]
    assert runner.invoke(cli.main, ["bench", "attention", *grid_full, "--out", str(tmp_path)]).exit_code == 0
    by_attention = {}
    for path in iter_record_files(tmp_path / "efficiency"):
        if path.suffix == ".json":
            record = read_record(path)
            by_attention.setdefault(record["attention"], set()).add(record["bench_call_id"])
    (call_b,) = by_attention["full"]
    assert call_b != call_a and by_attention["local"] == {call_a}
    # --resume continues the newest call (B): local's records of call A are measured again, in call B.
    result = runner.invoke(cli.main, ["bench", "attention", *GRID, "--out", str(tmp_path), "--resume"])
    assert result.exit_code == 0, result.output
    assert "- 4 of 8 cells reused" in result.output
    calls = {
        read_record(p)["bench_call_id"]
        for p in iter_record_files(tmp_path / "efficiency")
        if p.suffix == ".json"
    }
    assert calls == {call_b}


# --- the frontier ------------------------------------------------------------------------------

MITA = "mita(num_landmarks=8,topk=8)"


def _model(attention, time_ms, call, label=None, measured_at="2026-01-01T00:00:00+00:00", **fields):
    record = efficiency_record(attention, 512, time_ms, 100e6, bench="model", batch=32)
    record.update(
        {"pass": "train_step", "head_dim": 256, "heads": 4},
        attention_label=label or attention,
        batch_requested=32,
        bench_call_id=call,
        measured_at=measured_at,
        **fields,
    )
    return record


def _store(tmp_path, efficiency):
    runs = [
        run_record("listops", "full", test_acc=0.40, train_tokens_per_s=1000.0, peak_memory_bytes=400e6, device="cpu"),
        run_record("listops", "mita", label=MITA, test_acc=0.42, train_tokens_per_s=3000.0,
                   peak_memory_bytes=100e6, device="cpu"),
        run_record("listops", "topk", test_acc=0.35, train_tokens_per_s=2000.0, peak_memory_bytes=200e6, device="cpu"),
    ]  # fmt: skip
    write_runs(tmp_path, runs)
    for i, record in enumerate(efficiency):
        write_record(tmp_path / "efficiency" / f"{i}.json", record)
    return store.load(tmp_path)


def _point(fr, label):
    points = fr.points[(fr.points["attention_label"] == label) & (fr.points["panel"] == "avg")]
    return points.iloc[0]


def test_the_frontier_never_combines_records_of_two_bench_calls(tmp_path):
    early, late = "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"
    efficiency = [
        _model("full", 100.0, "A", measured_at=early),
        _model("mita", 50.0, "A", label=MITA, measured_at=early),
        _model("full", 10.0, "B", measured_at=late),  # a second `lra bench model`, on a quieter machine
        _model("topk", 5.0, "B", measured_at=late),
    ]
    fr = frontier.build(_store(tmp_path, efficiency))
    assert _point(fr, MITA)["speed_vs_full"] == pytest.approx(100.0 / 50.0)  # call A's full, not B's
    assert _point(fr, "topk")["speed_vs_full"] == pytest.approx(10.0 / 5.0)
    assert _point(fr, "full")["speed_vs_full"] == pytest.approx(1.0)
    assert set(fr.points["cost_source"]) == {"bench"}


def test_an_attention_without_a_matching_bench_record_falls_back_to_its_training_throughput(tmp_path):
    efficiency = [
        _model("full", 100.0, "A"),
        _model("mita", 50.0, "A", label="mita"),  # MiTA at other parameters than the table's
        _model("topk", 25.0, "B"),  # top-k only in a call without full attention
    ]
    fr = frontier.build(_store(tmp_path, efficiency))
    mita, topk = _point(fr, MITA), _point(fr, "topk")
    assert mita["cost_source"] == "runs" and mita["speed_vs_full"] == pytest.approx(3000.0 / 1000.0)
    assert topk["cost_source"] == "runs" and topk["speed_vs_full"] == pytest.approx(2000.0 / 1000.0)
    assert _point(fr, "full")["cost_source"] == "bench"
    caption = fr.caption("quick")
    fallback = caption.split("from the runs' own training throughput and peak memory instead: ")[1]
    assert sorted(fallback.rstrip(".").split(", ")) == sorted([MITA, "topk"])


def test_an_unreliable_bench_ratio_is_marked_in_the_frontier_table_caption_and_figure(tmp_path, monkeypatch):
    efficiency = [
        _model("full", 100.0, "A", other_cpu_load=0.1),
        _model("mita", 50.0, "A", label=MITA, other_cpu_load=0.8),
        _model("topk", 40.0, "A", time_ms_p20=10.0, time_ms_p80=400.0),
    ]
    fr = frontier.build(_store(tmp_path, efficiency))
    assert _point(fr, MITA)["cost_unreliable"] == "ListOps: others used 80% of the cores"
    assert _point(fr, "topk")["cost_unreliable"] == "ListOps: p80/p20 = 40"
    assert _point(fr, "full")["cost_unreliable"] == ""
    text = frontier.render(fr, markdown=True)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "2.00†" in rows[MITA] and "2.50†" in rows["topk"] and "†" not in rows["full"]
    assert costs.RULE in fr.caption("quick")
    warning = frontier.unreliable_line(fr)
    assert warning.startswith("warning: 4 of 6 speed ratios of the accuracy–cost frontier are unreliable")
    # The suite's figure labels them with the mark too (the caption says why).
    from results import leaderboard, plots
    from results.plots import frontier_figure

    lb = leaderboard.build(store.load(tmp_path).runs)
    labels, numbers = [], {}
    real = frontier_figure._frontier_panel

    def spy(ax, fr, preset, panel, styles, numbers_, chance):
        out = real(ax, fr, preset, panel, styles, numbers_, chance)
        labels.extend(t.get_text() for t in ax.texts)
        numbers.update(numbers_)  # attention label -> the number drawn for it (named in the key)
        return out

    monkeypatch.setattr(frontier_figure, "_frontier_panel", spy)
    plots.plot_frontier(fr, lb, tmp_path / "plots")
    assert f"{numbers[MITA]} †" in labels and f"{numbers['topk']} †" in labels
    assert str(numbers["full"]) in labels
