"""runners/bench*.py and `lra bench`: records, ratios against full attention, the OOM path, the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile

import pytest
import torch
from click.testing import CliRunner

from results import store
from results.cost_tables import format_length, format_number, markdown_tables, ratio_table
from results.records import EFFICIENCY_FIELDS, iter_record_files, read_record
from runners import bench, cli
from runners.bench import BenchConfig, bench_attention, bench_model, options, timing
from runners.bench import attention as attention_bench
from runners.bench import model as model_bench
from runners.bench import records as bench_records
from runners.bench.timing import Measurement

from .scripts import GPU_CHECKS

CPU = torch.device("cpu")
TINY = {"heads": 1, "head_dim": 8, "warmup": 0, "repeats": 1, "device": "cpu", "quiet": True}


def tiny_attention(tmp_path, **overrides) -> BenchConfig:
    values = {
        "attentions": ("full", "agent"),
        "lengths": (16, 32, 64),
        **TINY,
        "out": str(tmp_path),
        **overrides,
    }
    return BenchConfig(**values)


def tiny_model(tmp_path, **fields) -> BenchConfig:
    return BenchConfig(warmup=0, repeats=1, device="cpu", quiet=True, out=str(tmp_path), **fields)


def table_row(markdown: str, series: str) -> list[str]:
    """The cells of the first markdown table row of `series`."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] == series:
            return cells[1:]
    raise AssertionError(f"no row {series!r} in\n{markdown}")


def records_under(root) -> list[dict]:
    return [read_record(path) for path in iter_record_files(root) if path.suffix == ".json"]


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------


def test_parse_lengths_accepts_k_and_m_suffixes():
    assert bench.parse_lengths("2K,1024, 3k,1M") == (1024, 2048, 3072, 2**20)
    for bad in ("abc", "1024,,2048", "0", "-5", "1.5K"):
        with pytest.raises(ValueError, match="--lengths expects comma-separated positive integers"):
            bench.parse_lengths(bad)


def test_format_length_and_numbers():
    assert [format_length(n) for n in (256, 1024, 3072, 2**20, 1000)] == [
        "256",
        "1K",
        "3K",
        "1M",
        "1000",
    ]
    assert [format_number(x) for x in (0.01234, 1.234, 12.34, 123.4, 12345.6)] == [
        "0.0123",
        "1.23",
        "12.3",
        "123",
        "12346",
    ]


def test_series_put_full_first_and_split_backends():
    series = bench.build_series(["mita", "agent"], {"mita": {"topk": "8"}}, CPU)
    assert [s.name for s in series] == [
        "full [sdpa]",
        "mita(topk=8) [torch]",
        "mita(topk=8) [triton]",
        "agent [torch]",
    ]
    assert [s.applicable for s in series] == [True, True, False, True]  # Triton needs CUDA
    assert series[1].params.to_dict()["backend"] == "torch"
    chosen = bench.build_series(["mita"], {"mita": {"backend": "torch"}}, CPU)
    assert [s.name for s in chosen] == ["full [sdpa]", "mita [torch]"]


def test_series_name_each_path_and_time_references_only_when_named():
    series = bench.build_series(["topk", "moba(block_size=8)"], {}, CPU)
    assert [(s.name, s.applicable) for s in series] == [
        ("full [sdpa]", True),
        ("topk [torch]", True),
        ("topk [flex]", False),  # FlexAttention's CPU form has no backward and is not fused
        ("moba(block_size=8) [torch]", True),
        ("moba(block_size=8) [flex]", False),
    ]
    named = bench.build_series(["topk(backend=reference)", "mita(backend=reference)"], {}, CPU)
    assert [s.name for s in named] == ["full [sdpa]", "topk [reference]", "mita [reference]"]
    assert named[1].params.to_dict()["backend"] == "reference"


def test_series_from_specs_with_parameters():
    specs = [
        "mita(topk=8,backend=torch)",
        "mita(topk=16, backend=torch)",
        "full",
        "mita(backend=torch,topk=8)",
    ]
    series = bench.build_series(specs, {"mita": {"num_landmarks": "4", "topk": "99"}}, CPU)
    # the spec's own parameters win over --attn-param; full keeps its place; duplicates run once
    assert [s.name for s in series] == [
        "mita(num_landmarks=4,topk=8) [torch]",
        "mita(num_landmarks=4,topk=16) [torch]",
        "full [sdpa]",
    ]
    assert len({s.slug for s in series}) == 3
    with pytest.raises(ValueError, match="malformed attention"):
        bench.build_series(["mita(topk)"], {}, CPU)


# ----------------------------------------------------------------------------------------------
# Ratios from hand-made timings
# ----------------------------------------------------------------------------------------------


def row(attention, seq_len, time_ms, memory, *, batch=1, status="ok", pass_="forward", backend="torch"):
    ok = status == "ok"
    return {
        "bench": "attention",
        "pass": pass_,
        "attention": attention,
        "attention_label": attention,
        "backend": backend,
        "seq_len": seq_len,
        "batch": batch,
        "status": status,
        "time_ms_median": time_ms if ok else None,
        "steps_per_s": 1000 / time_ms if ok else None,
        "peak_memory_bytes": memory if ok else None,
        "error": None if ok else "OutOfMemoryError: x",
    }


def test_ratios_against_full_attention():
    rows = [
        row("full", 1024, 10.0, 400),
        row("full", 2048, 40.0, 1600),
        row("mita", 1024, 5.0, 100),
        row("mita", 2048, 8.0, 200),
        row("agent", 1024, 20.0, 800),
        row("agent", 2048, 0.0, 0, status="oom"),
        row("full", 1024, 30.0, 900, pass_="forward_backward"),
        row("mita", 1024, 10.0, 300, pass_="forward_backward"),
    ]
    frame = ratio_table(rows).set_index(["pass", "attention", "seq_len"])
    speed, memory = frame["speedup_vs_full"], frame["memory_vs_full"]
    assert speed[("forward", "full", 1024)] == 1.0 and memory[("forward", "full", 2048)] == 1.0
    assert speed[("forward", "mita", 1024)] == 2.0 and memory[("forward", "mita", 1024)] == 0.25
    assert speed[("forward", "mita", 2048)] == 5.0 and memory[("forward", "mita", 2048)] == 0.125
    assert speed[("forward", "agent", 1024)] == 0.5 and memory[("forward", "agent", 1024)] == 2.0
    assert math.isnan(speed[("forward", "agent", 2048)])  # out of memory: no ratio
    assert speed[("forward_backward", "mita", 1024)] == 3.0  # each pass has its own reference
    assert memory[("forward_backward", "mita", 1024)] == pytest.approx(1 / 3)
    assert frame.loc[("forward", "mita", 1024), "series"] == "mita [torch]"


def test_ratios_compare_per_example_when_the_batch_was_halved():
    rows = [
        row("full", 4096, 100.0, 8e9, batch=32, pass_="train_step"),
        row("mita", 4096, 60.0, 3e9, batch=16, pass_="train_step"),
        row("topk", 4096, 0.0, 0, status="oom", pass_="train_step"),
    ]
    frame = ratio_table(rows).set_index("attention")
    # full: 100 ms / 32 examples; mita: 60 ms / 16 examples -> (100 / 32) / (60 / 16)
    assert frame.loc["mita", "speedup_vs_full"] == pytest.approx((100 / 32) / (60 / 16))
    assert frame.loc["mita", "memory_vs_full"] == pytest.approx(3 / 8)


def test_ratios_are_missing_where_full_attention_ran_out_of_memory():
    frame = ratio_table([row("full", 8192, 0.0, 0, status="oom"), row("mita", 8192, 4.0, 10)])
    assert frame["speedup_vs_full"].isna().all() and frame["memory_vs_full"].isna().all()


def test_model_markdown_mirrors_table_2():
    rows = [
        row("full", 1024, 125.0, 0.85e9, batch=32, pass_="train_step"),
        row("full", 2048, 250.0, 2.65e9, batch=32, pass_="train_step"),
        row("mita", 1024, 100.0, 0.40e9, batch=32, pass_="train_step"),
        row("mita", 2048, 100.0, 0.60e9, batch=16, pass_="train_step"),
    ]
    text = markdown_tables(ratio_table(rows), "model", "title", (1024, 2048), batch=32)
    cells = {}
    for line in text.splitlines():
        if line.startswith("| "):
            name, *values = [c.strip() for c in line.strip("|").split("|")]
            cells[name] = values
    assert cells["attention"] == ["1K", "2K", "Mem 1K", "Mem 2K"]
    assert cells["full [torch]"] == ["8.00 (1.00×)", "4.00 (1.00×)", "0.850", "2.65"]
    # 10 steps/s at 1K; at 2K 10 steps/s with half the batch: (250 / 32) / (100 / 16) = 1.25 per example
    assert cells["mita [torch]"] == ["10.0 (1.25×)", "10.0 (1.25×) [b16]", "0.400", "0.600"]
    assert "Mem 1K" in text and "steps/s" in text


# ----------------------------------------------------------------------------------------------
# The attention benchmark end to end (tiny shapes)
# ----------------------------------------------------------------------------------------------


def test_attention_records_are_valid_and_found_by_the_store(tmp_path):
    rows, markdown = bench_attention(tiny_attention(tmp_path, attentions=("agent", "mita")))
    records = records_under(tmp_path)
    # full (added as the reference), agent, mita[torch]; mita[triton] is n/a on CPU and not recorded
    assert len(records) == 3 * 2 * 3
    assert {(r["attention"], r["backend"]) for r in records} == {
        ("full", "sdpa"),
        ("agent", "torch"),
        ("mita", "torch"),
    }
    for r in records:
        assert set(EFFICIENCY_FIELDS) <= set(r)
        assert r["status"] == "ok" and r["bench"] == "attention" and r["device"] == "cpu"
        assert r["time_ms_p20"] <= r["time_ms_median"] <= r["time_ms_p80"]
        assert r["steps_per_s"] == pytest.approx(1000 / r["time_ms_median"])
        assert r["peak_memory_bytes"] > 0 and r["memory_method"] == "cpu-dispatch-tensors"
        assert (r["batch"], r["heads"], r["head_dim"], r["dtype"]) == (1, 1, 8, "float32")
    mita = [r for r in records if r["attention"] == "mita"][0]
    assert mita["attention_label"] == "mita" and mita["attention_params"]["backend"] == "torch"
    path = (
        tmp_path / "efficiency" / "attention" / "cpu" / "float32-B1-H1-d8" / "full-sdpa" / "forward-N32.json"
    )
    assert read_record(path)["seq_len"] == 32

    loaded = store.load(tmp_path)
    assert len(loaded.efficiency) == len(records) and not loaded.problems

    na = [r for r in rows if r["backend"] == "triton"]
    assert len(na) == 6 and {r["status"] for r in na} == {"n/a"}
    assert set(table_row(markdown, "mita [triton]")) == {"n/a"}
    table = (tmp_path / "efficiency" / "attention-cpu-float32-B1-H1-d8.md").read_text()
    assert table == markdown
    csv = (tmp_path / "efficiency" / "attention-cpu-float32-B1-H1-d8.csv").read_text().splitlines()
    assert csv[0].startswith("bench,pass,attention") and len(csv) == 1 + len(rows)


def test_full_attention_forward_memory_is_its_output(tmp_path):
    bench_attention(tiny_attention(tmp_path, attentions=("full",), lengths=(64, 128)))
    forward = {r["seq_len"]: r for r in records_under(tmp_path) if r["pass"] == "forward"}
    # SDPA's fused kernel allocates the output [B, H, N, d] (plus its log-sum-exp or nothing): O(N)
    for n, r in forward.items():
        assert 1 * 1 * n * 8 * 4 <= r["peak_memory_bytes"] < 3 * 1 * 1 * n * 8 * 4


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError, torch.OutOfMemoryError])
def test_out_of_memory_is_recorded_and_longer_lengths_are_skipped(tmp_path, monkeypatch, error):
    calls: list[tuple[str, str, int]] = []
    real = attention_bench._attention_call

    def fake(series, pass_, q, k, v, grad_out):
        fn = real(series, pass_, q, k, v, grad_out)
        length = q.shape[2]

        def call():
            calls.append((series.mechanism.name, pass_, length))
            if series.mechanism.name == "agent" and length >= 32:
                raise error("CUDA out of memory. Tried to allocate 80.00 GiB")
            return fn()

        return call

    monkeypatch.setattr(attention_bench, "_attention_call", fake)
    rows, markdown = bench_attention(tiny_attention(tmp_path))
    agent = {(r["pass"], r["seq_len"]): r for r in records_under(tmp_path) if r["attention"] == "agent"}
    assert len(agent) == 6  # every cell is recorded, measured or not
    assert agent[("forward", 16)]["status"] == "ok"
    oom = agent[("forward", 32)]
    assert oom["status"] == "oom" and oom["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert oom["time_ms_median"] is None and oom["peak_memory_bytes"] is None
    for key in (("forward_backward", 32), ("forward", 64), ("forward_backward", 64)):
        assert agent[key]["status"] == "oom"
        assert agent[key]["error"] == "skipped: out of memory at N=32"
    # after the forward ran out of memory at 32, no agent call was made at 32 (backward) or 64
    assert [c for c in calls if c[0] == "agent" and c[2] >= 32] == [("agent", "forward", 32)]
    # full attention is unaffected
    assert all(r["status"] == "ok" for r in records_under(tmp_path) if r["attention"] == "full")
    assert table_row(markdown, "agent [torch]")[1:] == ["OOM", "OOM"]  # forward at 32, 64


def test_backward_oom_skips_only_the_backward(tmp_path, monkeypatch):
    real = attention_bench._attention_call

    def fake(series, pass_, q, k, v, grad_out):
        fn = real(series, pass_, q, k, v, grad_out)
        if series.mechanism.name == "agent" and pass_ == "forward_backward" and q.shape[2] >= 32:
            return lambda: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("out of memory"))
        return fn

    monkeypatch.setattr(attention_bench, "_attention_call", fake)
    bench_attention(tiny_attention(tmp_path))
    agent = {
        (r["pass"], r["seq_len"]): r["status"] for r in records_under(tmp_path) if r["attention"] == "agent"
    }
    assert agent == {
        ("forward", 16): "ok",
        ("forward", 32): "ok",
        ("forward", 64): "ok",
        ("forward_backward", 16): "ok",
        ("forward_backward", 32): "oom",
        ("forward_backward", 64): "oom",
    }


def test_cpu_memory_limit_ends_a_call_as_oom(tmp_path):
    # 512 KiB: full attention's O(N) output (9 KiB at N=256) fits, topk's N x N scores (over 1 MiB) do not
    cfg = tiny_attention(tmp_path, attentions=("topk",), lengths=(256, 512), memory_limit_gb=2**-11)
    bench_attention(cfg)
    topk = {(r["pass"], r["seq_len"]): r for r in records_under(tmp_path) if r["attention"] == "topk"}
    assert topk[("forward", 256)]["status"] == "oom"
    assert "CPU memory limit" in topk[("forward", 256)]["error"]
    assert topk[("forward", 512)]["error"] == "skipped: out of memory at N=256"
    assert topk[("forward", 256)]["memory_limit_bytes"] == 2**19
    assert all(r["status"] == "ok" for r in records_under(tmp_path) if r["attention"] == "full")


def test_slow_series_skip_longer_lengths_without_records(tmp_path, monkeypatch):
    real_measure = attention_bench.measure

    def slow(fn, device, **kwargs):
        m = real_measure(fn, device, **kwargs)
        return Measurement("ok", times_ms=(5000.0,), peak_memory_bytes=m.peak_memory_bytes, warmup=m.warmup)

    monkeypatch.setattr(attention_bench, "measure", slow)
    rows, markdown = bench_attention(tiny_attention(tmp_path, attentions=("full",), max_call_s=1.0))
    # the slow forward at N=16 also stops the (slower) forward + backward from N=16 on
    measured = {(r["seq_len"], r["pass"]) for r in rows if r["status"] == "ok"}
    assert measured == {(16, "forward")}
    assert {r["status"] for r in rows if (r["seq_len"], r["pass"]) not in measured} == {"skipped"}
    assert {(r["seq_len"], r["pass"]) for r in records_under(tmp_path)} == measured
    assert "slower than --max-call-s 1 s at N=16" in markdown


# ----------------------------------------------------------------------------------------------
# Surviving a stop: --resume and --max-minutes
# ----------------------------------------------------------------------------------------------


def counting_measure(monkeypatch, fail_after: int | None = None):
    """Wrap attention_bench.measure: count the measurements; Ctrl-C instead of the one after `fail_after`."""
    calls = []
    real = timing.measure

    def wrapped(fn, device, **kwargs):
        if fail_after is not None and len(calls) == fail_after:
            raise KeyboardInterrupt
        calls.append(1)
        return real(fn, device, **kwargs)

    monkeypatch.setattr(attention_bench, "measure", wrapped)
    return calls


def record_texts(root) -> dict[str, str]:
    return {str(path.relative_to(root)): path.read_text() for path in iter_record_files(root / "efficiency")}


def test_resume_reuses_every_record_and_measures_nothing(tmp_path, monkeypatch):
    rows, markdown = bench_attention(tiny_attention(tmp_path))
    before = record_texts(tmp_path)
    assert len(before) == 12
    calls = counting_measure(monkeypatch)
    again, resumed = bench_attention(tiny_attention(tmp_path, resume=True))
    assert calls == []
    assert record_texts(tmp_path) == before  # read back, not rewritten
    assert again == rows
    assert resumed == markdown + "- 12 of 12 cells reused from earlier records (--resume).\n"  # the same call


def test_a_killed_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    calls = counting_measure(monkeypatch, fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        bench_attention(tiny_attention(tmp_path))
    finished = record_texts(tmp_path)
    assert len(finished) == 5 and calls == [1] * 5  # every finished cell was already on disk

    calls = counting_measure(monkeypatch)
    rows, markdown = bench_attention(tiny_attention(tmp_path, resume=True))
    assert len(calls) == 12 - 5
    after = record_texts(tmp_path)
    assert len(after) == 12 and all(after[name] == text for name, text in finished.items())
    assert {r["status"] for r in rows} == {"ok"}
    assert "- 5 of 12 cells reused from earlier records (--resume)." in markdown


def test_resume_measures_again_what_differs_or_is_damaged(tmp_path, monkeypatch):
    bench_attention(tiny_attention(tmp_path))
    config = tmp_path / "efficiency" / "attention" / "cpu" / "float32-B1-H1-d8"
    (config / "agent-torch" / "forward-N16.json").write_text('{"kind": "effic')  # torn
    failed = read_record(config / "full-sdpa" / "forward-N32.json")
    failed.update(status="error", error="RuntimeError: boom", time_ms_median=None)
    (config / "full-sdpa" / "forward-N32.json").write_text(json.dumps(failed))
    calls = counting_measure(monkeypatch)
    bench_attention(tiny_attention(tmp_path, resume=True))
    assert len(calls) == 2  # the torn record and the error
    assert read_record(config / "full-sdpa" / "forward-N32.json")["status"] == "ok"

    calls = counting_measure(monkeypatch)  # other settings: nothing is reused
    _, markdown = bench_attention(tiny_attention(tmp_path, resume=True, repeats=2))
    assert len(calls) == 12 and "reused" not in markdown
    assert {r["repeats_requested"] for r in records_under(tmp_path)} == {2}


def test_resume_measures_again_where_the_cpu_memory_limit_changes_the_outcome(tmp_path, monkeypatch):
    # topk's N x N scores at N=256 (over 256 KiB) exceed a 128 KiB limit; full attention's do not
    tight, loose = 2**-13, 2**-6  # GiB: 128 KiB, 16 MiB
    cfg = {"attentions": ("topk",), "lengths": (256,), "memory_limit_gb": tight}
    bench_attention(tiny_attention(tmp_path, **cfg))
    calls = counting_measure(monkeypatch)
    bench_attention(tiny_attention(tmp_path, resume=True, **cfg))
    assert calls == []  # same limit: the limit's OOMs and the measurements under it still hold

    bench_attention(tiny_attention(tmp_path, resume=True, **{**cfg, "memory_limit_gb": loose}))
    assert len(calls) == 2  # topk's two OOMs may fit now; full's cells fit under either
    topk = {r["pass"]: r["status"] for r in records_under(tmp_path) if r["attention"] == "topk"}
    assert topk == {"forward": "ok", "forward_backward": "ok"}

    calls.clear()
    bench_attention(tiny_attention(tmp_path, resume=True, **cfg))
    # topk's forward needs more than the tight limit: measured again, it ends as OOM, and its
    # backward is recorded as skipped without a call
    assert len(calls) == 1
    topk = {r["pass"]: r["error"] for r in records_under(tmp_path) if r["attention"] == "topk"}
    assert "CPU memory limit" in topk["forward"] and topk["forward_backward"].startswith(
        "skipped: out of memory"
    )


@pytest.mark.parametrize("change", ["code", "threads"])
def test_resume_measures_again_after_a_code_or_machine_change(tmp_path, monkeypatch, change):
    bench_attention(tiny_attention(tmp_path, attentions=("full",)))
    if change == "code":  # e.g. another uncommitted edit on the same dirty commit
        monkeypatch.setattr(bench_records, "code_hash", lambda: "0123456789abcdef")
    else:
        monkeypatch.setattr(torch, "get_num_threads", lambda: 97)
    calls = counting_measure(monkeypatch)
    bench_attention(tiny_attention(tmp_path, attentions=("full",), resume=True))
    assert len(calls) == 6


def fake_model_step(limit_tokens: int, seen: list):
    """A model step that 'runs out of memory' above limit_tokens tokens per batch; its own
    allocations are 1 byte per token, the whole step (with weights etc.) 1000 bytes more."""

    def step(ctx, grid, model, optimizer, batch, length, autocast):
        seen.append((batch, length))
        if batch * length > limit_tokens:
            return Measurement("oom", error="OutOfMemoryError: CPU memory limit (fake)"), None
        return Measurement("ok", times_ms=(1.0,), peak_memory_bytes=batch * length), 1000 + batch * length

    return step


def test_model_resume_measures_again_a_batch_halved_under_a_tighter_limit(tmp_path, monkeypatch):
    seen: list = []
    monkeypatch.setattr(model_bench, "_measure_step", fake_model_step(2 * 64, seen))
    cfg = {"attentions": ("full",), "lengths": (64,), "batch": 4, "device": "cpu", "quiet": True}
    cfg["out"] = str(tmp_path)
    bench_model(BenchConfig(memory_limit_gb=2**-20, **cfg))  # 1 KiB
    assert seen == [(4, 64), (2, 64)] and records_under(tmp_path)[0]["batch"] == 2

    seen.clear()  # the same limit: reused (the whole step's 1128 bytes exceed 1 KiB, its own 128 do not)
    bench_model(BenchConfig(memory_limit_gb=2**-20, resume=True, **cfg))
    assert seen == []

    monkeypatch.setattr(model_bench, "_measure_step", fake_model_step(4 * 64, seen))
    bench_model(BenchConfig(memory_limit_gb=0, resume=True, **cfg))  # no limit: batch 4 may fit now
    assert seen == [(4, 64)] and records_under(tmp_path)[0]["batch"] == 4


class FakeClock:
    """Stands in for the `time` module in runners.bench.records: each measurement takes a minute."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_max_minutes_leaves_cells_not_run_and_resume_measures_them(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(bench_records, "time", clock)
    real = timing.measure

    def one_minute(fn, device, **kwargs):
        clock.now += 60.0
        return real(fn, device, **kwargs)

    monkeypatch.setattr(attention_bench, "measure", one_minute)
    rows, markdown = bench_attention(tiny_attention(tmp_path, max_minutes=2.5))
    # started before 2.5 minutes: the first three cells; the nine after are not run nor recorded
    statuses = [r["status"] for r in rows]
    assert statuses == ["ok"] * 3 + ["not run"] * 9
    assert len(record_texts(tmp_path)) == 3
    # cells run length by length: at N=16 full (forward, forward + backward) and agent's forward
    assert table_row(markdown, "agent [torch]")[1:] == ["not run"] * 2  # the forward table
    assert table_row(markdown.split("forward + backward: median")[1], "agent [torch]") == ["not run"] * 3
    assert (
        "- 9 of 12 cells not run: --max-minutes 2.5 was reached; the same command with --resume" in markdown
    )

    rows, markdown = bench_attention(tiny_attention(tmp_path, resume=True, max_minutes=60))
    assert [r["status"] for r in rows] == ["ok"] * 12 and clock.now == 12 * 60.0
    assert "not run" not in markdown and "- 3 of 12 cells reused" in markdown


def test_resume_keeps_what_stopped_a_series(tmp_path, monkeypatch):
    real = attention_bench._attention_call

    def fake(series, pass_, q, k, v, grad_out):
        fn = real(series, pass_, q, k, v, grad_out)
        if series.mechanism.name == "agent" and q.shape[2] >= 32:
            return lambda: (_ for _ in ()).throw(torch.OutOfMemoryError("out of memory"))
        return fn

    monkeypatch.setattr(attention_bench, "_attention_call", fake)
    _, markdown = bench_attention(tiny_attention(tmp_path))
    calls = counting_measure(monkeypatch)
    _, resumed = bench_attention(tiny_attention(tmp_path, resume=True))
    # the reused OOM at N=32 stops agent again: its longer cells are derived, not measured
    assert calls == []
    assert table_row(resumed, "agent [torch]")[1:] == ["OOM", "OOM"]
    # 9 reused; agent's 3 cells after its OOM are written again as skipped, as in the first run
    assert resumed == markdown + "- 9 of 12 cells reused from earlier records (--resume).\n"


def test_model_bench_resume_builds_no_model_and_keeps_the_halved_batch(tmp_path, monkeypatch):
    seen = []

    def fake_step(ctx, grid, model, optimizer, batch, length, autocast):
        seen.append((batch, length))
        if batch * length > 32 * 32:
            return Measurement("oom", error="OutOfMemoryError: out of memory"), None
        return Measurement("ok", times_ms=(10.0 * batch,), peak_memory_bytes=1), batch * length

    monkeypatch.setattr(model_bench, "_measure_step", fake_step)
    cfg = {"attentions": ("full",), "batch": 32, "device": "cpu", "quiet": True, "out": str(tmp_path)}
    bench_model(BenchConfig(lengths=(32, 64), **cfg))
    assert seen == [(32, 32), (32, 64), (16, 64)]

    seen.clear()
    built = []
    # more free memory now (the default CPU limit is half of it): the halving came from the
    # machine, not from the limit, so the cells are still reused
    monkeypatch.setattr(options, "default_memory_limit", lambda: 2**50)
    real_build = model_bench.models.build
    monkeypatch.setattr(model_bench.models, "build", lambda **kw: built.append(1) or real_build(**kw))
    bench_model(BenchConfig(lengths=(32, 64), resume=True, **cfg))
    assert seen == [] and built == []  # every cell reused: no model, no step

    rows, markdown = bench_model(BenchConfig(lengths=(32, 64, 128), resume=True, **cfg))
    assert seen == [(16, 128), (8, 128)]  # 128 starts from the batch the reused 64 ran with
    assert [r["batch"] for r in rows] == [32, 16, 8] and built == [1]
    assert "- 2 of 3 cells reused" in markdown


@pytest.mark.e2e
def test_gpu_checks_script_full_grid_step_runs_and_packs_its_records(tmp_path):
    # The script is meant for scarce GPU time: check on CPU that its full-grid step runs, stops at
    # its time budget, and packs the records with the log.
    script = GPU_CHECKS
    env = {**os.environ, "PYTHON": sys.executable, "OUT": "out", "RUNS": "runs/lra_runs"}
    env |= {"FULL_MINUTES": "0.05", "MIN_STEP_MINUTES": "0"}
    for step in ("attention-full", "model-full"):  # each call: a first cell, then out of time
        done = subprocess.run(  # started elsewhere, with relative OUT and RUNS (as the default RUNS is)
            ["bash", str(script)], cwd=tmp_path, env={**env, "STEPS": step}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "exit 0" in done.stdout and "cells not run: --max-minutes" in done.stdout
        assert "WARNING" not in done.stdout and not (tmp_path / "out" / "gpu_checks.tgz.part").exists()
    with tarfile.open(tmp_path / "out" / "gpu_checks.tgz") as archive:
        names = archive.getnames()
    assert "./bench_model_full.log" in names  # the archive of the latest call, with every record
    for bench_name in ("attention", "model"):
        prefix = f"lra_runs/efficiency/{bench_name}/cpu/"
        assert any(n.startswith(prefix) and n.endswith(".json") for n in names)
    assert list((tmp_path / "runs" / "lra_runs" / "efficiency").glob("*.md"))  # the records stay in RUNS

    env |= {"MIN_STEP_MINUTES": "0.5", "STEPS": "model-full"}
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "skipped, FULL_MINUTES is used up (the next call continues)" in done.stdout


# ----------------------------------------------------------------------------------------------
# The model benchmark
# ----------------------------------------------------------------------------------------------


def test_model_bench_halves_the_batch_on_oom_and_records_it(tmp_path, monkeypatch):
    seen = []

    def fake_step(ctx, grid, model, optimizer, batch, length, autocast):
        seen.append((batch, length))
        if batch * length > 32 * 32:  # "memory" holds 1024 tokens
            return Measurement("oom", error="OutOfMemoryError: out of memory"), None
        return Measurement("ok", times_ms=(10.0 * batch,), peak_memory_bytes=batch * length), batch * length

    monkeypatch.setattr(model_bench, "_measure_step", fake_step)
    cfg = BenchConfig(
        attentions=("full",), lengths=(32, 64, 2048), batch=32, device="cpu", quiet=True, out=str(tmp_path)
    )
    rows, markdown = bench_model(cfg)
    assert seen == [(32, 32), (32, 64), (16, 64), (16, 2048), (8, 2048), (4, 2048), (2, 2048), (1, 2048)]
    by_length = {r["seq_len"]: r for r in records_under(tmp_path)}
    assert (by_length[32]["batch"], by_length[64]["batch"]) == (32, 16)
    assert by_length[64]["batch_requested"] == 32 and by_length[64]["steps_per_s"] == pytest.approx(
        1000 / 160
    )
    assert by_length[2048]["status"] == "oom"
    assert by_length[64]["pass"] == "train_step" and by_length[64]["head_dim"] == 256
    assert "[b16]" in markdown and "OOM" in markdown


def test_model_bench_records_a_mechanism_that_cannot_train(tmp_path, monkeypatch):
    real = model_bench._prime

    def prime(model, optimizer, device):
        if model.encoder.blocks[0].attn.mechanism.name == "agent":
            raise RuntimeError("kernel launch failed\nsecond line")
        real(model, optimizer, device)

    monkeypatch.setattr(model_bench, "_prime", prime)
    cfg = tiny_model(tmp_path, attentions=("agent",), lengths=(8, 16), batch=1)
    rows, markdown = bench_model(cfg)
    status = {(r["attention"], r["seq_len"]): (r["status"], r["error"]) for r in records_under(tmp_path)}
    message = "skipped: the first training step failed: RuntimeError: kernel launch failed"
    assert status[("agent", 8)] == status[("agent", 16)] == ("error", message)
    assert status[("full", 8)][0] == status[("full", 16)][0] == "ok"
    assert table_row(markdown, "agent [torch]")[:2] == ["error", "error"]


def test_model_bench_real_step_on_cpu(tmp_path):
    cfg = tiny_model(tmp_path, attentions=("mita",), lengths=(16,), batch=2)
    rows, markdown = bench_model(cfg)
    records = records_under(tmp_path)
    assert {(r["attention"], r["backend"], r["status"]) for r in records} == {
        ("full", "sdpa", "ok"),
        ("mita", "torch", "ok"),
    }
    for r in records:
        assert (r["bench"], r["pass"], r["batch"], r["heads"], r["head_dim"], r["layers"]) == (
            "model", "train_step", 2, 4, 256, 4,
        )  # fmt: skip
        # the whole step: at least the weights and the two AdamW moments (4 bytes each)
        params = 4 * 256 * 256 * 4 + 4 * 2 * 256 * 1024  # q/k/v/out projections and MLP weights
        assert r["peak_memory_bytes"] > 3 * 4 * params
    assert set(table_row(markdown, "mita [triton]")) == {"n/a"}


@pytest.mark.slow
def test_model_bench_compiled_step_on_cpu(tmp_path):
    """--compile reduce-overhead: on CPU inductor compiles the model without CUDA graphs; the step
    trains and the records say it was compiled, in their own configuration directory."""
    cfg = tiny_model(tmp_path, attentions=("full",), lengths=(16,), batch=2, compile="reduce-overhead")
    bench_model(cfg)
    (record,) = records_under(tmp_path)
    assert (record["status"], record["compile"]) == ("ok", "reduce-overhead")
    assert (tmp_path / "efficiency" / "model" / "cpu" / "text-lra-B2-compile-reduce-overhead").is_dir()


def test_model_bench_compile_mode_is_recorded_and_checked(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(kw) or model)
    bench_model(tiny_model(tmp_path, attentions=("full",), lengths=(8,), batch=1, compile="default"))
    assert compiled == [{"mode": "default", "dynamic": False}]
    assert [r["compile"] for r in records_under(tmp_path)] == ["default"]
    bench_model(tiny_model(tmp_path / "eager", attentions=("full",), lengths=(8,), batch=1))
    assert [r["compile"] for r in records_under(tmp_path / "eager")] == [None]
    with pytest.raises(ValueError, match="--compile must be one of"):
        bench_model(tiny_model(tmp_path, compile="fast"))
    with pytest.raises(ValueError, match="applies to `lra bench model`"):
        bench_attention(tiny_model(tmp_path, compile="default"))


# ----------------------------------------------------------------------------------------------
# The CLI
# ----------------------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(cli.main, ["bench", *args], catch_exceptions=False)


def test_cli_attention_tiny_grid(tmp_path):
    result = invoke(
        "attention", "--attentions", "moba,moba(block_size=4)", "--lengths", "16,32", "--heads", "1",
        "--head-dim", "8", "--repeats", "1", "--warmup", "0", "--device", "cpu",
        "--attn-param", "moba.block_size=8", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "speed-up over full attention" in result.output
    for series in ("full [sdpa]", "moba(block_size=8) [torch]", "moba(block_size=4) [torch]"):
        assert len(table_row(result.output, series)) == 2
    records = records_under(tmp_path)
    assert len(records) == 3 * 2 * 2
    assert sorted({r["attention_params"].get("block_size") for r in records if r["attention"] == "moba"}) == [
        4,
        8,
    ]
    config = tmp_path / "efficiency" / "attention" / "cpu" / "float32-B1-H1-d8"
    assert sorted(p.name for p in config.iterdir()) == [
        "full-sdpa",
        "moba-block_size=4-torch",
        "moba-block_size=8-torch",
    ]


def test_cli_resume_continues_a_time_limited_run(tmp_path):
    args = ("attention", "--attentions", "full", "--lengths", "16,32", "--heads", "1", "--head-dim", "8",
            "--repeats", "1", "--warmup", "0", "--device", "cpu", "--out", str(tmp_path), "--quiet")  # fmt: skip
    first = invoke(*args, "--max-minutes", "1e-9")
    assert first.exit_code == 0, first.output
    assert "- 4 of 4 cells not run: --max-minutes 1e-09 was reached" in first.output
    assert records_under(tmp_path) == []
    second = invoke(*args, "--resume")
    assert second.exit_code == 0 and "not run" not in second.output and "reused" not in second.output
    third = invoke(*args, "--resume")
    reused = "- 4 of 4 cells reused from earlier records (--resume).\n"
    assert reused in third.output and third.output.replace(reused, "") == second.output


def test_cli_model_compile_defaults_to_reduce_overhead(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw["mode"]) or model)
    result = invoke(
        "model", "--attentions", "full", "--lengths", "8", "--batch", "1", "--repeats", "1", "--warmup", "0",
        "--device", "cpu", "--quick", "--compile", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen == ["reduce-overhead"]


def test_cli_model_quick_grid_override(tmp_path):
    result = invoke(
        "model", "--attentions", "agent", "--lengths", "16", "--batch", "1", "--repeats", "1", "--warmup", "0",
        "--device", "cpu", "--quick", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Mem 16" in result.output and len(table_row(result.output, "agent [torch]")) == 2
    assert len(records_under(tmp_path)) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["attention", "--attentions", "full,nope"],
            "Error: unknown attention 'nope'; valid attentions: full",
        ),
        (
            ["attention", "--lengths", "1024,abc"],
            "Error: --lengths expects comma-separated positive integers",
        ),
        (["model", "--lengths", "0"], "Error: --lengths expects comma-separated positive integers"),
        (
            ["attention", "--attn-param", "mita.nope=3", "--attentions", "mita"],
            "Error: attention 'mita' has no parameter 'nope'",
        ),
        (
            ["attention", "--attn-param", "mita.topk=3", "--attentions", "agent"],
            "Error: --attn-param names attention 'mita'",
        ),
        (["attention", "--attn-param", "topk=3"], "Error: --attn-param expects NAME.KEY=VALUE"),
        (["attention", "--repeats", "0"], "Error: --repeats must be >= 1; got 0"),
        (["model", "--time-budget", "0"], "Error: --time-budget must be > 0 seconds; got 0"),
        (["model", "--batch", "0"], "Error: --batch must be >= 1; got 0"),
        (["attention", "--max-minutes", "0"], "Error: --max-minutes must be > 0; got 0"),
        (
            ["attention", "--device", "cpu", "--dtype", "float16"],
            "Error: --dtype float16 is not supported on CPU",
        ),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(cli.main, ["bench", *args, "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.strip().count("\n") == 0  # one line, no traceback
    assert not list(iter_record_files(tmp_path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cli_cuda_without_cuda_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli.main, ["bench", "attention", "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "CUDA is not available; use --device cpu" in result.output
