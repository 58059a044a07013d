"""The same CPU run gives the same numbers under another instruction set, and records say which.

"Another machine" is this one with its libraries capped to what an AVX2-only CPU offers (ATen's
dispatch, oneDNN's JIT, MKL's dispatch): without the pinning the two runs differ in their weights
(on a host with AVX-512), with it they agree bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from results import leaderboard, store
from results.records import read_record
from runners import cli, cpu_pinning
from runners.cpu_pinning import CPU_PINS, OPT_OUT_ENV, apply_cpu_pinning
from runners.train import RunConfig, run
from runners.train.checkpoints import load_checkpoint

from .test_integrity import FAST, config

REPO = Path(__file__).resolve().parents[1]
# What an AVX2-only CPU looks like to the three libraries.
AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lra_data"))


def test_pinning_sets_what_the_user_left_unset_and_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(cpu_pinning.platform, "machine", lambda: "x86_64")
    assert apply_cpu_pinning(environ := {}) == CPU_PINS and environ == CPU_PINS
    assert apply_cpu_pinning(environ := {"MKL_CBWR": "AVX2"}) == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    }
    assert environ["MKL_CBWR"] == "AVX2"  # the user's own choice stays (and the record shows it)
    assert apply_cpu_pinning(environ := {OPT_OUT_ENV: "0"}) == {} and environ == {OPT_OUT_ENV: "0"}
    monkeypatch.setattr(cpu_pinning.platform, "machine", lambda: "aarch64")
    assert apply_cpu_pinning(environ := {}) == {} and environ == {}


def test_lra_no_cpu_pin_turns_it_off_for_the_command_and_its_children(monkeypatch):
    for name, value in CPU_PINS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(OPT_OUT_ENV)
    assert CliRunner().invoke(cli.main, ["--no-cpu-pin", "list", "tasks"]).exit_code == 0
    assert os.environ[OPT_OUT_ENV] == "0" and not any(name in os.environ for name in CPU_PINS)


def test_lra_pins_its_commands_but_not_the_speed_measurements(monkeypatch):
    for name in (*CPU_PINS, OPT_OUT_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpu_pinning.platform, "machine", lambda: "x86_64")
    assert CliRunner().invoke(cli.main, ["bench", "--help"]).exit_code == 0
    assert not any(name in os.environ for name in CPU_PINS)
    assert CliRunner().invoke(cli.main, ["list", "tasks"]).exit_code == 0
    assert {name: os.environ.get(name) for name in CPU_PINS} == CPU_PINS


def _run_in_processes(
    cfg: RunConfig, tmp_path: Path, attempts: dict[str, tuple[bool, dict[str, str]]]
) -> dict[str, dict]:
    """`python -m runners.train` once per attempt `name: (pinned, machine)`, side by side, one thread
    each: per attempt its record and a digest of its weights."""
    processes = {}
    for name, (pinned, machine) in attempts.items():
        path = tmp_path / f"{name}.json"
        path.write_text(dataclasses.replace(cfg, run_dir=str(tmp_path / name)).to_json())
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in (*CPU_PINS, OPT_OUT_ENV, "MKL_ENABLE_INSTRUCTIONS")
        }
        env.update(machine, OMP_NUM_THREADS="1")
        if not pinned:
            env[OPT_OUT_ENV] = "0"
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "runners.train", str(path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
        run_dir = tmp_path / name
        weights = load_checkpoint(run_dir / "checkpoints" / "last.pt", remedy="")["model"]
        digest = hashlib.sha256()
        for key in sorted(weights):
            digest.update(weights[key].numpy().tobytes())
        results[name] = {"record": read_record(run_dir / "result.json"), "weights": digest.hexdigest()}
    return results


def _numbers(record: dict) -> dict:
    keys = ("test_acc", "test_acc_last", "best_val_acc", "final_train_loss", "history")
    return {key: record[key] for key in keys}


@pytest.mark.e2e
@pytest.mark.skipif(
    cpu_pinning.platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 pinning"
)
def test_a_tiny_run_under_two_instruction_set_caps_gives_the_same_numbers_when_pinned(data_dir, tmp_path):
    cfg = config(data_dir, tmp_path / "unused", max_steps=6, overrides={**FAST, "train.eval_every": "3"})
    attempts = {"here": (True, {}), "avx2": (True, AVX2_MACHINE)}
    # The control: the same two machines without the pinning give other weights.
    control = cpu_pinning.cpu_isa() == "avx512" and torch.backends.cpu.get_cpu_capability() == "AVX512"
    if control:
        attempts.update({"here-unpinned": (False, {}), "avx2-unpinned": (False, AVX2_MACHINE)})
    results = _run_in_processes(cfg, tmp_path, attempts)
    here, avx2 = results["here"], results["avx2"]
    assert here["weights"] == avx2["weights"]
    assert _numbers(here["record"]) == _numbers(avx2["record"])
    numerics = here["record"]["config"]["cpu_numerics"]
    assert numerics == avx2["record"]["config"]["cpu_numerics"]
    assert numerics["pinned"] is True and numerics["aten_cpu_capability"] == "avx2"
    assert (numerics["mkl_cbwr"], numerics["onednn_max_cpu_isa"]) == ("COMPATIBLE", "AVX2")
    assert "cpu" not in numerics  # pinned: which CPU ran it does not matter, so tables do not compare it
    assert here["record"]["cpu_model"] == cpu_pinning.cpu_model() and here["record"]["cpu_isa"]
    if control:
        here, avx2 = results["here-unpinned"], results["avx2-unpinned"]
        assert here["weights"] != avx2["weights"]
        assert here["record"]["config"]["cpu_numerics"]["aten_cpu_capability"] == "avx512"
        assert avx2["record"]["config"]["cpu_numerics"]["aten_cpu_capability"] == "avx2"


def test_tables_mark_runs_of_other_cpu_numerics_and_a_resume_refuses_to_mix_them(data_dir, tmp_path):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        run(config(data_dir, tmp_path / "runs" / "0", seed=0))
        torch.set_num_threads(2)
        record = run(config(data_dir, tmp_path / "runs" / "1", seed=1))
        assert record["config"]["cpu_numerics"]["threads"] == 2
        lb = leaderboard.build(store.load(tmp_path).runs)
        (cell,) = lb.cells.itertuples()
        assert cell.seeds == 1  # seeds of other numerics are never averaged
        assert "differs in cpu_numerics.threads" in cell.excluded[0]
        # A resume under another thread count would mix two floating-point orders: refused.
        (tmp_path / "runs" / "0" / "result.json").unlink()
        with pytest.raises(
            ValueError, match=r"last.pt was written under other CPU numerics \(threads 1 then, 2 now\)"
        ):
            run(config(data_dir, tmp_path / "runs" / "0", seed=0, resume=True))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.e2e
@pytest.mark.skipif(
    cpu_pinning.platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 pinning"
)
def test_the_lra_command_pins_before_torch_is_imported_and_the_record_says_so(data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (*CPU_PINS, OPT_OUT_ENV)}
    sets = [arg for key, value in FAST.items() for arg in ("--set", f"{key}={value}")]
    args = ["run", "--attention", "full", "--max-steps", "2", "--data-dir", data_dir,
            "--run-dir", str(tmp_path / "run"), "--quiet", *sets]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "runners.cli", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    numerics = read_record(tmp_path / "run" / "result.json")["config"]["cpu_numerics"]
    assert numerics["pinned"] is True and numerics["aten_cpu_capability"] == "avx2"
