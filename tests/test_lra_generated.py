"""The LRA-scale leaderboard step of scripts/gpu_checks.sh and its bookkeeping (scripts/lra_generated.py).

The step is meant for scarce GPU time on fresh machines: check on CPU, with the tiny preset and a
few steps, that it runs, packs exactly what gets committed, and that a second call on a "fresh
machine" resumes from the committed records instead of running the finished runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from results.records import RUN_FIELDS, SCHEMA_VERSION, read_record, write_record

from .scripts import GPU_CHECKS as SCRIPT
from .scripts import REPO, load_script

lra_generated = load_script("lra_generated")
OOM_ERROR = "OutOfMemoryError: CUDA out of memory. Tried to allocate 8.00 GiB"


def _record(task: str, attention: str, status: str, **values) -> dict:
    record = dict.fromkeys(RUN_FIELDS)
    record.update(
        schema_version=SCHEMA_VERSION,
        kind="run",
        run_id=f"{task}/{attention}/0",
        task=task,
        attention=attention,
        attention_params={},
        attention_label=attention,
        preset="pytorch",
        seed=0,
        status=status,
        history=[],
    )
    record.update(values)
    return record


def _run_dir(root: Path, task: str, attention: str, status: str, **values) -> Path:
    run_dir = root / "runs" / task / attention / "0"
    run_dir.mkdir(parents=True)
    write_record(run_dir / "result.json", _record(task, attention, status, **values))
    (run_dir / "config.json").write_text("{}\n")
    (run_dir / "run_config.json").write_text("{}\n")
    (run_dir / "log.txt").write_text(f"{attention} log\n")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"weights")
    (run_dir / "checkpoints" / "best.pt").write_bytes(b"weights")
    return run_dir


def test_collect_copies_the_three_files_of_finished_runs_only(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "dest"
    _run_dir(out, "listops", "full", "ok", test_acc=0.37)
    _run_dir(out, "listops", "topk", "failed", error=OOM_ERROR)
    _run_dir(out, "listops", "moba", "running")  # cut off with the call: run again next time
    (dest / "runs" / "listops" / "gone" / "0").mkdir(parents=True)  # e.g. moved aside by the suite
    assert lra_generated.collect(out, dest) == 2
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == [
        f"runs/listops/{name}/0/{file}"
        for name in ("full", "topk")
        for file in ("config.json", "log.txt", "result.json")
    ]
    assert read_record(dest / "runs/listops/full/0/result.json")["test_acc"] == 0.37


def test_restore_copies_committed_runs_but_keeps_newer_local_records(tmp_path):
    records, out = tmp_path / "records", tmp_path / "out"
    _run_dir(records, "listops", "full", "ok", test_acc=0.37)
    _run_dir(records, "listops", "agent", "ok", test_acc=0.30)
    local = out / "runs" / "listops" / "agent" / "0"
    local.mkdir(parents=True)
    write_record(local / "result.json", _record("listops", "agent", "ok", test_acc=0.31))
    assert lra_generated.restore(records, out) == 1
    assert read_record(out / "runs/listops/full/0/result.json")["test_acc"] == 0.37
    assert read_record(local / "result.json")["test_acc"] == 0.31
    assert not (out / "runs/listops/full/0/checkpoints").exists()


def test_out_of_memory_names_the_attentions_per_task(tmp_path):
    _run_dir(tmp_path, "pathx", "full", "failed", error=OOM_ERROR)
    _run_dir(tmp_path, "pathx", "topk", "failed", error="RuntimeError: CUDA error: out of memory")
    _run_dir(tmp_path, "pathx", "moba", "failed", error="ValueError: bad value")
    _run_dir(tmp_path, "listops", "agent", "failed", error=OOM_ERROR)
    assert lra_generated.out_of_memory(tmp_path, "pathx") == ["full", "topk"]
    assert lra_generated.out_of_memory(tmp_path, "pathfinder") == []
    assert len(lra_generated.oom_lines(tmp_path)) == 3


def test_probe_table_projects_the_budget_from_steps_per_s(tmp_path, capsys):
    timing = {"steps": 200, "peak_memory_bytes": 2**30}
    _run_dir(tmp_path, "listops", "full", "ok", train_steps_per_s=50.0, wall_time_s=12.0, **timing)
    _run_dir(tmp_path, "listops", "topk", "ok", train_steps_per_s=12.5, wall_time_s=24.0, **timing)
    _run_dir(tmp_path, "listops", "moba", "failed", error=OOM_ERROR)
    assert (
        lra_generated.main(["probe-table", str(tmp_path), "--steps", "listops=5000", "--run-minutes", "3"])
        == 0
    )
    table = capsys.readouterr().out
    assert (
        "| full | ok | 50.0 | 1.00 | 12 (200) | 1.7 | 5.0 |" in table
    )  # 5000 / 50 / 60; 5000 * 12 / 200 / 60
    assert "| topk | ok | 12.5 | 1.00 | 24 (200) | 6.7 | 10.0 |" in table
    assert "| moba | OOM | – | – | – | – | – |" in table
    # the slowest: 0.08 s per training step, 0.12 s per step of wall time; 180 s
    assert "fits in 3 min: 2250 steps (training), 1500 steps (wall)." in table


def _tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as archive:
        return archive.getnames()


def _extract(archive: Path, to: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(to, filter="data")
    return to / "lra-generated"


@pytest.mark.e2e
def test_gpu_checks_lra_generated_step_resumes_from_committed_records(tmp_path):
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(REPO),
        "LRA_PROGRESS": "0",
        "LRA_DATA_DIR": str(tmp_path / "data"),
        "LRA_TASKS": "listops",
        "LRA_PRESET": "tiny",
        "LRA_GENERATOR": "short",
        "LRA_STEPS_LISTOPS": "3",
        "LRA_SET_LISTOPS": "data.n_train=64 data.n_val=32 data.n_test=32",
        "LRA_PROBE_STEPS": "2",
        "LRA_MEASURE_EXPRESSIONS": "50",
        "LRA_MINUTES": "60",  # generous: no call here depends on the clock
        "LRA_RECORDS": str(tmp_path / "committed"),
    }

    def call(name: str, **more: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT)],
            cwd=tmp_path,
            env={
                **env,
                "OUT": f"{name}/out",
                "LRA_OUT": f"{name}/suite",
                "LRA_PROBE_OUT": f"{name}/probe",
                **more,
            },
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "WARNING" not in done.stdout
        return done.stdout

    # First call on a "machine": measure, then the leaderboard of one attention.
    first = call("one", STEPS="lra-measure lra-generated", LRA_ATTENTIONS="full")
    assert "listops: suite exit 0" in first and "runs: 1 ok" in first
    measured = (tmp_path / "one/out/lra_measure.md").read_text()
    assert "| full | ok |" in measured and "listops: generated 50 examples in" in measured
    kept = _extract(tmp_path / "one/out/gpu_checks.tgz", tmp_path / "one/unpacked")
    names = _tar_names(tmp_path / "one/out/gpu_checks.tgz")
    assert not [n for n in names if n.endswith(".pt") or "checkpoints" in n or "probe" in n]
    run_files = sorted(p.name for p in (kept / "runs/listops/full/0").iterdir())
    assert run_files == ["config.json", "log.txt", "result.json"]
    for name in (
        "leaderboard.md",
        "leaderboard.csv",
        "compare_listops.md",
        "compare_listops.csv",
        "README.md",
    ):
        assert (kept / name).is_file(), name
    assert list((kept / "plots").glob("*.png"))
    readme = (kept / "README.md").read_text()
    assert "lra suite --tasks listops --preset tiny --attentions full" in readme and "wall time" in readme
    assert (tmp_path / "one/out/lra_leaderboard.md").is_file()

    # Commit it, plus a run of another attention that ran out of memory on the GPU.
    shutil.copytree(kept, tmp_path / "committed")
    full_record = (kept / "runs/listops/full/0/result.json").read_bytes()
    oom_dir = tmp_path / "committed/runs/listops/agent-num_agents=16/0"
    oom_dir.mkdir(parents=True)
    write_record(
        oom_dir / "result.json",
        _record(
            "listops",
            "agent",
            "failed",
            error=OOM_ERROR,
            attention_label="agent(num_agents=16)",
            preset="tiny",
        ),
    )

    # Second call on a fresh "machine" (new suite output): the finished run is skipped, the one
    # that ran out of memory is not retried, the new attention runs.
    second = call("two", STEPS="lra-generated", LRA_ATTENTIONS="full,agent,linear")
    assert "--attentions full,linear " in second and "runs: 1 ok, 1 skipped" in second
    suite_log = (tmp_path / "two/suite/runs/listops/full/0/log.txt").read_text()
    assert suite_log.count("lra suite:") == 1  # the committed log, no second attempt
    kept = _extract(tmp_path / "two/out/gpu_checks.tgz", tmp_path / "two/unpacked")
    assert (kept / "runs/listops/full/0/result.json").read_bytes() == full_record
    assert read_record(kept / "runs/listops/linear/0/result.json")["status"] == "ok"
    assert read_record(kept / "runs/listops/agent-num_agents=16/0/result.json")["error"] == OOM_ERROR
    readme = (kept / "README.md").read_text()
    assert f"- listops/agent/0: {OOM_ERROR}" in readme
    oom_row = next(line for line in readme.splitlines() if line.startswith("| agent(num_agents=16)"))
    assert "| OOM " in oom_row  # the leaderboard says OOM where LRA wrote FAIL
    assert readme.count("## 20") == 2  # both calls, from the committed calls.md
    assert json.loads((tmp_path / "two/suite/suite.json").read_text())["suite"]["max_minutes"] > 0


def test_lra_generated_cli_rejects_bad_steps(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        lra_generated.main(["probe-table", str(tmp_path), "--steps", "listops", "--run-minutes", "3"])
    assert exit_info.value.code == 2
