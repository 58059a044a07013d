"""The suite runner against a fake, fast `runners.train`-compatible runner.

The fake runner (written to a temporary file by the `fake` fixture) reads the same RunConfig JSON
as `python -m runners.train`, logs each invocation, writes a `running` record and a checkpoint,
and then does what the test asks for that run: finish ok, crash without a record, SIGKILL
itself, write its own failed / diverged record, hang, or wait for other runs to be running. The suite's planning (registry,
presets, configuration hashes) is the real one.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from results import store
from results.records import read_record, write_record
from runners import cli, suite
from runners.cli.run import format_run_summary
from runners.suite import SuiteConfig, launchers
from runners.train import resolve
from runners.train.rundir import BUSY_EXIT_CODE

# Labels and directories of MiTA under the tiny / quick presets' matched keys-per-query budget.
MITA = "mita(num_landmarks=8,topk=8)"
MITA_DIR = "mita-num_landmarks=8-topk=8"

REPO = Path(__file__).resolve().parents[1]

FAKE_RUNNER = textwrap.dedent(
    """
    import datetime, json, os, signal, sys, time
    from pathlib import Path
    from results.records import RUN_FIELDS, SCHEMA_VERSION, write_record
    from runners.train.checkpoints import write_checkpoint_bytes

    cfg = json.loads(Path(sys.argv[1]).read_text())
    plan = json.loads(Path(os.environ["FAKE_PLAN"]).read_text())
    run_dir = Path(cfg["run_dir"])
    cell = plan["cells"][str(run_dir)]
    key = f"{cfg['task']}/{cfg['attention']}/{cfg['seed']}"
    behaviour = plan["behaviours"].get(key, "ok")
    checkpoint = run_dir / "checkpoints" / "last.pt"

    def log(**entry):
        with open(plan["log"], "a") as fh:
            fh.write(json.dumps({"key": key, "pid": os.getpid(), "time": time.time(), **entry}) + "\\n")

    def record(status, **values):
        r = dict.fromkeys(RUN_FIELDS)
        r.update(schema_version=SCHEMA_VERSION, kind="run", run_id=cell["run_id"], task=cfg["task"],
                 attention=cfg["attention"], attention_params=cfg["attn_params"], attention_label=cell["label"],
                 preset=cfg["preset"], seed=cfg["seed"], status=status, config_hash=cell["hash"],
                 chance_acc=0.1, num_classes=10, n_test=1000, history=[], started_at="2026-01-01T00:00:00+00:00")
        r.update(values)
        write_record(run_dir / "result.json", r)

    log(event="start", resumed=checkpoint.exists(), behaviour=behaviour, resume=cfg["resume"], quiet=cfg["quiet"],
        threads=os.environ.get("OMP_NUM_THREADS"))
    if behaviour == "config_error":
        print("Error: unknown setting 'model.nope'", file=sys.stderr)
        sys.exit(2)
    record("running")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint_bytes(checkpoint, b"fake checkpoint")  # the checkpoint format, without importing torch
    log(event="checkpointed")
    print("step 1", flush=True)
    if behaviour == "crash":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: boom", file=sys.stderr)
        sys.exit(1)
    if behaviour == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if behaviour == "hang":
        time.sleep(300)
    if behaviour.startswith("meet:"):  # wait until that many runs are running at once (or fail)
        meeting = Path(plan["log"]).parent / "meeting"
        meeting.mkdir(exist_ok=True)
        (meeting / key.replace("/", "__")).touch()
        deadline = time.monotonic() + 120
        while len(list(meeting.iterdir())) < int(behaviour.split(":")[1]):
            if time.monotonic() > deadline:
                print("RuntimeError: no other run started alongside this one", file=sys.stderr)
                sys.exit(1)
            time.sleep(0.05)
    if behaviour == "fail_record":
        record("failed", error="ValueError: bad value", finished_at="2026-01-01T00:01:00+00:00")
        sys.exit(1)
    if behaviour == "diverge":
        record("diverged", error="diverged after 5 non-finite losses", finished_at="2026-01-01T00:01:00+00:00")
        sys.exit(1)
    acc = 0.3 + 0.01 * cfg["seed"] + (0.05 if cfg["attention"] == "mita" else 0.0)
    fast = cfg["attention"] == "mita"
    record("ok", test_acc=acc, best_val_acc=acc, steps=2, max_steps=2, device="cpu", seq_len=64,
           train_tokens_per_s=3000.0 if fast else 1000.0, peak_memory_bytes=2**20 if fast else 2**22,
           history=[{"step": 1, "val_acc": acc / 2}, {"step": 2, "val_acc": acc}],
           finished_at=datetime.datetime.now(datetime.timezone.utc).isoformat())
    log(event="end")
    """
)


class Fake:
    """The fake runner's command, its per-run behaviours and its invocation log."""

    def __init__(self, root: Path) -> None:
        self.script = root / "fake_runner.py"
        self.script.write_text(FAKE_RUNNER)
        self.plan_path = root / "fake_plan.json"
        self.log_path = root / "fake_log.jsonl"
        self.command = [sys.executable, str(self.script)]
        self.behaviours: dict[str, str] = {}
        self.cells: dict[str, dict[str, str]] = {}

    def prepare(self, cfg: SuiteConfig, **behaviours: str) -> None:
        """Plan `cfg` (for the hashes and labels the runner would write) and set behaviours, keyed
        'task/attention/seed' with '/' written as '__' (keyword arguments)."""
        for cell in suite.plan(cfg):
            self.cells[str(cell.run_dir)] = {
                "run_id": cell.run_id,
                "label": cell.label,
                "hash": cell.config_hash,
            }
        self.behaviours = {key.replace("__", "/"): value for key, value in behaviours.items()}
        self.plan_path.write_text(
            json.dumps({"cells": self.cells, "behaviours": self.behaviours, "log": str(self.log_path)})
        )

    def calls(self, event: str = "start") -> list[dict]:
        if not self.log_path.exists():
            return []
        entries = [json.loads(line) for line in self.log_path.read_text().splitlines()]
        return [e for e in entries if e["event"] == event]


@pytest.fixture
def fake(tmp_path, monkeypatch) -> Fake:
    fake = Fake(tmp_path)
    monkeypatch.setenv("FAKE_PLAN", str(fake.plan_path))
    return fake


def grid(tmp_path: Path, **kwargs) -> SuiteConfig:
    base = {
        "tasks": ("listops",),
        "attentions": ("full", "mita"),
        "seeds": (0,),
        "preset": "tiny",
        "out": str(tmp_path / "out"),
    }
    base.update(kwargs)
    return SuiteConfig(**base)


def run(cfg: SuiteConfig, fake: Fake, reports: bool = False) -> suite.SuiteResult:
    return suite.run_suite(cfg, command=fake.command, echo=lambda line: None, reports=reports)


def statuses(result: suite.SuiteResult) -> dict[str, str]:
    return {o.cell.run_id: o.status for o in result.outcomes}


# ---------------------------------------------------------------------------------------------
# Skip / retry / resume / crash
# ---------------------------------------------------------------------------------------------


def test_runs_every_combination_writes_reports_and_skips_finished_runs(tmp_path, fake):
    cfg = grid(tmp_path, seeds=(0, 1))
    fake.prepare(cfg)
    result = run(cfg, fake, reports=True)
    assert statuses(result) == {
        "listops/full/0": "ok",
        "listops/full/1": "ok",
        f"listops/{MITA}/0": "ok",
        f"listops/{MITA}/1": "ok",
    }
    assert result.exit_code == 0
    out = Path(cfg.out)
    for outcome in result.outcomes:
        assert read_record(outcome.cell.run_dir / "result.json")["status"] == "ok"
    calls = fake.calls()
    assert len(calls) == 4 and all(c["resume"] and c["quiet"] and not c["resumed"] for c in calls)
    for name in ("leaderboard.csv", "leaderboard.md", "results_long.csv", "plots/accuracy_tiny.png"):
        assert (out / name).is_file(), name
    # the accuracy-cost frontier from the runs' own throughput and memory (the fake's: MiTA 3x, 1/4)
    for name in ("frontier.md", "frontier.csv", "plots/frontier_tiny.png"):
        assert (out / name).is_file(), name
    points = pd.read_csv(out / "frontier.csv").query("panel == 'avg'").set_index("attention_label")
    assert points.loc[MITA, "speed_vs_full"] == pytest.approx(3.0)
    assert points.loc[MITA, "memory_vs_full"] == pytest.approx(0.25)
    assert points.loc[MITA, "on_frontier"] and not points.loc["full", "on_frontier"]
    wide = pd.read_csv(out / "leaderboard.csv").set_index("attention_label")
    assert wide.loc[MITA, "listops"] == pytest.approx(100 * (0.35 + 0.36) / 2)
    assert len(pd.read_csv(out / "results_long.csv")) == 4
    assert json.loads((out / "suite.json").read_text())["suite"]["preset"] == "tiny"

    again = run(cfg, fake)
    assert set(statuses(again).values()) == {"skipped"}
    assert again.exit_code == 0
    assert len(fake.calls()) == 4  # nothing ran the second time


def test_crashed_run_is_recorded_failed_others_go_on_and_a_rerun_resumes_it(tmp_path, fake):
    cfg = grid(tmp_path)
    fake.prepare(cfg, listops__mita__0="crash")
    result = run(cfg, fake, reports=True)
    assert statuses(result) == {"listops/full/0": "ok", f"listops/{MITA}/0": "failed"}
    assert result.exit_code == 1
    run_dir = Path(cfg.out) / "runs" / "listops" / MITA_DIR / "0"
    record = read_record(run_dir / "result.json")
    assert record["status"] == "failed"
    assert record["error"] == "RuntimeError: boom"  # the last line the process wrote
    assert record["config_hash"] == fake.cells[str(run_dir)]["hash"]
    assert record["started_at"] == "2026-01-01T00:00:00+00:00"  # kept from the runner's running record
    assert "RuntimeError: boom" in (run_dir / "log.txt").read_text()
    assert f"listops/{MITA}/0" in (Path(cfg.out) / "leaderboard.md").read_text()

    fake.prepare(cfg)  # the cause is fixed
    again = run(cfg, fake)
    assert statuses(again) == {"listops/full/0": "skipped", f"listops/{MITA}/0": "ok"}
    assert again.exit_code == 0
    retried = fake.calls()[-1]
    assert retried["key"] == "listops/mita/0" and retried["resumed"] is True  # continued from the checkpoint
    log = (run_dir / "log.txt").read_text()
    assert log.count("lra suite:") == 2  # both attempts are in the log


def test_a_sigkilled_run_gets_a_failed_record_naming_the_signal(tmp_path, fake):
    cfg = grid(tmp_path, attentions=("full",))
    fake.prepare(cfg, listops__full__0="sigkill")
    result = run(cfg, fake)
    outcome = result.outcomes[0]
    assert outcome.status == "failed" and result.exit_code == 1
    assert "killed by SIGKILL" in outcome.error and "out-of-memory" in outcome.error
    record = read_record(Path(cfg.out) / "runs" / "listops" / "full" / "0" / "result.json")
    assert record["status"] == "failed" and "SIGKILL" in record["error"]
    assert record["test_acc"] is None and record["run_id"] == "listops/full/0"


def test_records_written_by_the_runner_are_taken_as_they_are(tmp_path, fake):
    cfg = grid(tmp_path)
    fake.prepare(cfg, listops__full__0="fail_record", listops__mita__0="diverge")
    result = run(cfg, fake)
    assert statuses(result) == {"listops/full/0": "failed", f"listops/{MITA}/0": "diverged"}
    assert result.outcomes[0].error == "ValueError: bad value"
    assert result.exit_code == 1

    fake.prepare(cfg)
    again = run(cfg, fake)
    # a diverged run is a result of its configuration: not run again; the failed one is retried
    assert statuses(again) == {"listops/full/0": "ok", f"listops/{MITA}/0": "skipped"}
    assert again.exit_code == 0


def test_a_runner_that_exits_before_any_record_is_recorded_with_its_error_line(tmp_path, fake):
    cfg = grid(tmp_path, attentions=("full",))
    fake.prepare(cfg, listops__full__0="config_error")
    result = run(cfg, fake)
    assert result.outcomes[0].status == "failed"
    assert result.outcomes[0].error == "Error: unknown setting 'model.nope'"
    record = read_record(Path(cfg.out) / "runs" / "listops" / "full" / "0" / "result.json")
    assert record["error"] == "Error: unknown setting 'model.nope'"


def test_a_changed_configuration_moves_the_old_run_aside_and_reruns(tmp_path, fake):
    cfg = grid(tmp_path, attentions=("full",), max_steps=5)
    fake.prepare(cfg)
    run(cfg, fake)
    changed = dataclasses.replace(cfg, max_steps=6)
    fake.prepare(changed)
    assert [suite.cell_state(c) for c in suite.plan(changed)] == ["stale"]
    result = run(changed, fake)
    assert statuses(result) == {"listops/full/0": "ok"}
    assert len(fake.calls()) == 2 and fake.calls()[-1]["resumed"] is False  # started afresh
    archived = list((Path(cfg.out) / ".replaced").rglob("result.json"))
    assert len(archived) == 1
    st = store.load(cfg.out)  # the archive is not part of the results
    assert len(st.runs) == 1 and st.runs.loc[0, "config_hash"] == suite.plan(changed)[0].config_hash


def test_other_data_under_the_same_source_and_folder_is_not_taken_as_finished(tmp_path, fake):
    data = tmp_path / "data" / "listops-1000"
    data.mkdir(parents=True)

    def write_data(label: int) -> None:
        for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"):
            (data / name).write_text(f"Source\tTarget\n( [MAX 2 {label} ] )\t{label}\n")

    write_data(3)
    cfg = grid(tmp_path, attentions=("full",), source="lra_release", data_dir=str(tmp_path / "data"))
    fake.prepare(cfg)
    run(cfg, fake)
    assert [suite.cell_state(c) for c in suite.plan(cfg)] == ["done"]
    write_data(7)  # another data set in the same place
    assert [suite.cell_state(c) for c in suite.plan(cfg)] == ["stale"]


def test_jobs_run_in_parallel_with_the_cores_split(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(launchers, "available_cores", lambda: 4)
    cfg = grid(tmp_path, seeds=(0, 1), jobs=2)
    # each run waits until two runs are running at once: run one after another, they would fail
    fake.prepare(cfg, **{f"listops__{a}__{s}": "meet:2" for a in ("full", "mita") for s in (0, 1)})
    result = run(cfg, fake)
    assert set(statuses(result).values()) == {"ok"}
    starts = {c["key"]: c["time"] for c in fake.calls()}
    ends = {c["key"]: c["time"] for c in fake.calls("end")}
    overlapping = [
        (a, b) for a in starts for b in starts if a < b and starts[a] < ends[b] and starts[b] < ends[a]
    ]
    assert overlapping, "no two runs overlapped in time"
    assert all(c["threads"] == "2" for c in fake.calls())  # 4 cores / 2 jobs


def test_a_run_locked_by_another_process_is_reported_busy(tmp_path, fake):
    cfg = grid(tmp_path, attentions=("full",))
    fake.prepare(cfg)
    run_dir = suite.plan(cfg)[0].run_dir
    run_dir.mkdir(parents=True)
    with open(run_dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run(cfg, fake)
    assert result.outcomes[0].status == "busy" and result.exit_code == BUSY_EXIT_CODE
    assert fake.calls() == []


def test_a_running_run_of_another_configuration_is_not_moved_away(tmp_path, fake):
    cfg = grid(tmp_path, attentions=("full",), max_steps=5)
    fake.prepare(cfg)
    run(cfg, fake)
    changed = dataclasses.replace(cfg, max_steps=6)  # while the old configuration still runs there
    fake.prepare(changed)
    run_dir = suite.plan(changed)[0].run_dir
    with open(run_dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run(changed, fake)
    assert (
        result.outcomes[0].status == "busy" and "still running in another process" in result.outcomes[0].error
    )
    assert run_dir.is_dir() and not (Path(cfg.out) / ".replaced").exists()


# ---------------------------------------------------------------------------------------------
# Interrupting the suite itself
# ---------------------------------------------------------------------------------------------

DRIVER = textwrap.dedent(
    """
    import json, sys
    from runners import suite
    cfg = suite.SuiteConfig(**json.loads(sys.argv[1]))
    try:
        result = suite.run_suite(cfg, command=json.loads(sys.argv[2]), reports=False)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(result.exit_code)
    """
)


def _start_driver(cfg: SuiteConfig, fake: Fake) -> subprocess.Popen:
    fields = {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items() if k != "slurm"
    }
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(fields), json.dumps(fake.command)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers signal 0; its /proc status says Z
    with open(f"/proc/{pid}/status") as fh:
        return any(line.startswith("State:") and "Z" in line for line in fh)


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killing_the_suite_stops_its_runs_and_the_same_command_resumes(tmp_path, fake, sig):
    cfg = grid(tmp_path, attentions=("full",), seeds=(0, 1))
    fake.prepare(cfg, listops__full__1="hang")
    driver = _start_driver(cfg, fake)
    try:
        # killed once the run has a checkpoint, which the same command then resumes from
        _wait_for(lambda: any(c["key"] == "listops/full/1" for c in fake.calls("checkpointed")))
        child = next(c for c in fake.calls() if c["key"] == "listops/full/1")["pid"]
        driver.send_signal(sig)
        code = driver.wait(timeout=180)  # an upper bound for a busy machine, not a timing assertion
    finally:
        if driver.poll() is None:
            driver.kill()
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    _wait_for(lambda: _gone(child), timeout=120)  # the run did not outlive the suite (bound only)

    fake.prepare(cfg)
    result = run(cfg, fake)
    assert statuses(result) == {"listops/full/0": "skipped", "listops/full/1": "ok"}
    assert fake.calls()[-1]["resumed"] is True


class _InterruptedLauncher:
    """A launcher that gets Ctrl-C in the middle of collecting, as a suite can at any instant."""

    desc, poll_s = "test", 0.0

    def __init__(self) -> None:
        self.polls, self.finished_polls, self.stopped = 0, 0, False

    def start_ready(self):
        return []

    def collect(self):
        self.polls += 1
        if self.polls == 1:
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(10_000))  # bytecode after the signal, where Python would otherwise raise
        self.finished_polls += 1
        return []

    def pending(self) -> bool:
        return True

    def in_progress(self) -> bool:
        return True

    def stop(self) -> None:
        self.stopped = True


def test_ctrl_c_is_raised_between_polls_never_inside_one():
    launcher, handler = _InterruptedLauncher(), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        launchers.poll(launcher, total=1)
    # however soon the signal's handler runs, every poll that began also ended
    assert launcher.polls >= 1 and launcher.finished_polls == launcher.polls and launcher.stopped
    assert signal.getsignal(signal.SIGINT) is handler  # handed back


# ---------------------------------------------------------------------------------------------
# SLURM through submitit (its local executors)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cluster", ["debug", pytest.param("local", marks=pytest.mark.slow)])
def test_submitit_launcher_runs_each_cell_as_a_job(tmp_path, fake, cluster):
    pytest.importorskip("submitit")
    cfg = grid(tmp_path, launcher="submitit", slurm=suite.SlurmOptions(cluster=cluster, gpus_per_run=0))
    fake.prepare(cfg, listops__mita__0="crash")
    result = run(cfg, fake)
    assert statuses(result) == {"listops/full/0": "ok", f"listops/{MITA}/0": "failed"}
    assert result.outcomes[-1].error == "RuntimeError: boom"


def test_submitit_launcher_without_slurm_is_a_clear_error(tmp_path, fake, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    cfg = grid(tmp_path, launcher="submitit")
    fake.prepare(cfg)
    with pytest.raises(ValueError, match="no SLURM"):
        run(cfg, fake)


# ---------------------------------------------------------------------------------------------
# Planning and parsing
# ---------------------------------------------------------------------------------------------


def test_plan_defaults_and_labels(tmp_path):
    import attention_zoo

    cells = suite.plan(SuiteConfig(preset="quick", out=str(tmp_path)))
    assert {c.task for c in cells} == {"listops", "pathfinder"}
    assert sorted({c.attention for c in cells}) == sorted(attention_zoo.names())
    cells = suite.plan(
        grid(tmp_path, attentions=("mita(topk=16)", "mita"), attn_params={"mita": {"num_landmarks": "4"}})
    )
    assert [c.label for c in cells] == ["mita(num_landmarks=4,topk=16)", "mita(num_landmarks=4,topk=8)"]
    assert cells[0].run_dir == tmp_path / "out" / "runs" / "listops" / "mita-num_landmarks=4-topk=16" / "0"
    assert cells[0].config.attn_params == {"num_landmarks": "4", "topk": "16"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks planning on a machine without CUDA")
def test_slurm_gpu_runs_are_planned_for_cuda_on_a_login_node_without_it(tmp_path):
    # The job computes its configuration hash on the GPU node; the plan must agree, or every
    # re-run of the suite would find its finished runs "stale" and train them again.
    gpu = suite.plan(grid(tmp_path, launcher="submitit", slurm=suite.SlurmOptions(gpus_per_run=1)))
    assert {c.config.device for c in gpu} == {"cuda"}
    assert {c.resolved_config["device_type"] for c in gpu} == {"cuda"}
    on_cuda = resolve(dataclasses.replace(gpu[0].config), elsewhere=True)
    assert on_cuda.config_hash == gpu[0].config_hash
    cpu = suite.plan(grid(tmp_path, launcher="submitit", slurm=suite.SlurmOptions(gpus_per_run=0)))
    assert {c.config.device for c in cpu} == {"auto"} and cpu[0].config_hash != gpu[0].config_hash


def test_an_interrupted_run_with_a_torn_checkpoint_is_set_aside(tmp_path, fake):
    cfg = grid(tmp_path, attentions=("full",))
    cell = suite.plan(cfg)[0]
    (cell.run_dir / "checkpoints").mkdir(parents=True)
    (cell.run_dir / "checkpoints" / "last.pt").write_bytes(b"torn")
    write_record(cell.run_dir / "result.json", suite.failed_record(cell, "KeyboardInterrupt"))
    assert suite.cell_state(cell) == "damaged"  # set aside, not "resume", which would fail on every re-run


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "nope"], "unknown task 'nope'"),
        (["--attentions", "full,nope"], "unknown attention 'nope'"),
        (["--attentions", "mita(topk"], "malformed attention"),
        (["--attentions", "mita", "--attn-param", "mita.nope=1"], "has no parameter 'nope'"),
        (["--attentions", "mita", "--attn-param", "full.x=1"], "not among the attentions"),
        (["--attn-param", "topk=3"], "NAME.KEY=VALUE"),
        (["--seeds", "a"], "--seeds expects integers"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--set", "model.nope=1"], "model.nope"),
    ],
    ids=[
        "task",
        "attention",
        "malformed",
        "param",
        "param-owner",
        "param-form",
        "seeds",
        "jobs",
        "preset",
        "set",
    ],
)
def test_suite_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(cli.main, ["suite", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_suite_cli_dry_run_plans_without_running(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.main,
        [
            "suite",
            "--dry-run",
            "--preset",
            "tiny",
            "--tasks",
            "listops",
            "--attentions",
            "full,agent",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "new       listops/full/0" in result.output and "listops/agent(num_agents=16)/0" in result.output
    assert not out.exists()


def test_progress_line_and_run_summary_say_where_texts_number_comes_from():
    from types import SimpleNamespace

    lines: list[str] = []
    bar = SimpleNamespace(write=lines.append)
    record = {"task": "text", "test_acc": 0.91, "test_acc_last": 0.83}
    launchers.report(
        bar, suite.Outcome(SimpleNamespace(run_id="text/full/0"), "ok", record=record, seconds=3)
    )
    assert "test 83.00% (last checkpoint: its validation set is its test set" in lines[0]
    assert "91.00" not in lines[0]
    launchers.report(
        bar,
        suite.Outcome(
            SimpleNamespace(run_id="listops/full/0"),
            "ok",
            record={"task": "listops", "test_acc": 0.41, "test_acc_last": 0.38},
            seconds=3,
        ),
    )
    assert "] listops/full/0  test 41.00%  (3 s)" in lines[1]
    summary = format_run_summary(
        {
            **dict.fromkeys(
                [
                    "error",
                    "best_val_acc",
                    "best_step",
                    "val_acc_last",
                    "chance_acc",
                    "steps",
                    "params",
                    "train_tokens_per_s",
                    "wall_time_s",
                ]
            ),
            "attention_label": "full",
            "seed": 0,
            "status": "ok",
            **record,
        },
        "run",
    )
    assert "chosen on the test set, which is this task's validation set" in summary
    assert "test 83.00%, val – (the number the tables report)" in summary


def test_max_minutes_starts_no_run_after_the_budget_and_the_same_command_continues(
    tmp_path, fake, monkeypatch
):
    # The clock of --max-minutes advances one minute per finished run (no real time involved).
    monkeypatch.setattr(launchers, "clock", lambda: 60.0 * len(fake.calls("end")))
    cfg = grid(tmp_path, attentions=("full", "agent", "mita"), max_minutes=1.5)
    fake.prepare(cfg)
    agent, mita = "listops/agent(num_agents=16)/0", f"listops/{MITA}/0"
    first = run(cfg, fake)
    assert statuses(first) == {
        "listops/full/0": "ok",
        agent: "ok",
        mita: suite.NOT_RUN,
    }  # would start at 2 min
    assert first.exit_code == 0
    left = next(o.cell for o in first.outcomes if o.status == suite.NOT_RUN)
    assert not (left.run_dir / "result.json").exists() and suite.cell_state(left) == "new"

    again = run(cfg, fake)  # a new budget from now: the finished runs are skipped, the last one runs
    assert statuses(again) == {"listops/full/0": "skipped", agent: "skipped", mita: "ok"}
    assert [c["key"] for c in fake.calls()] == ["listops/full/0", "listops/agent/0", "listops/mita/0"]


def test_suite_cli_max_minutes_says_what_is_left(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(launchers, "clock", lambda: 60.0 * len(fake.calls("end")))
    cfg = grid(tmp_path, attentions=("full", "mita"), max_minutes=0.5)
    fake.prepare(cfg)
    real = suite.run_suite
    monkeypatch.setattr(suite, "run_suite", lambda c, **kw: real(c, **{**kw, "command": fake.command}))
    args = [
        "suite",
        "--preset",
        "tiny",
        "--tasks",
        "listops",
        "--attentions",
        "full,mita",
        "--max-minutes",
        "0.5",
    ]
    result = CliRunner().invoke(cli.main, [*args, "--out", cfg.out])
    assert result.exit_code == 0, result.output
    assert "runs: 1 not run, 1 ok" in result.output
    assert "1 runs not started: --max-minutes 0.5 was reached; the same command continues" in result.output
    bad = CliRunner().invoke(cli.main, [*args[:-1], "0", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--max-minutes must be > 0" in bad.output
