"""The training runner: learning, bit-identical resume after SIGKILL, DDP, the NaN guard, CLI errors."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lra.presets import TrainConfig, apply_overrides, get_preset
from results.records import RUN_FIELDS, read_record
from runners import cli, train
from runners.train import KILL_AFTER_STEP_ENV, RunConfig, lr_multiplier, memory, rng, run, runner, trainer
from runners.train.checkpoints import load_checkpoint
from runners.train.distributed import Dist
from runners.train.evaluation import evaluate

REPO = Path(__file__).resolve().parents[1]

# Small and fast: generated short ListOps, a 1-layer model.
FAST = {
    "data.n_train": "512",
    "data.n_val": "128",
    "data.n_test": "128",
    "train.batch_size": "16",
    "train.eval_every": "10",
    "model.dropout": "0.1",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lra_data"))


def config(data_dir: str, run_dir: Path, **kwargs: Any) -> RunConfig:
    base: dict[str, Any] = {
        "task": "listops",
        "attention": "mita",
        "attn_params": {"num_landmarks": 8, "topk": 8},
        "preset": "tiny",
        "overrides": dict(FAST),
        "data_dir": data_dir,
        "run_dir": str(run_dir),
        "max_steps": 30,
        "quiet": True,
    }
    base.update(kwargs)
    return RunConfig(**base)


def test_loss_goes_down_and_record_is_complete(data_dir, tmp_path):
    cfg = config(
        data_dir,
        tmp_path / "run",
        max_steps=100,
        overrides={**FAST, "train.lr": "5e-3", "train.eval_every": "20"},
    )
    record = run(cfg)
    assert record["status"] == "ok"
    assert set(RUN_FIELDS) <= set(record)
    assert read_record(tmp_path / "run" / "result.json")["test_acc"] == record["test_acc"]
    losses = [h["train_loss"] for h in record["history"]]
    assert losses[-1] < losses[0] - 0.05, losses
    assert record["steps"] == 100 and len(record["history"]) == 5
    assert record["n_train"] == 512 and record["n_test"] == 128
    assert 0.0 <= record["test_acc"] <= 1.0 and 0.0 <= record["test_acc_last"] <= 1.0
    assert record["best_val_acc"] == max(h["val_acc"] for h in record["history"])
    assert record["keys_per_query"] > 0 and record["params"] > 0 and record["train_tokens_per_s"] > 0
    # The best-validation checkpoint is a plain weights-only file.
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt", remedy="")
    assert best["step"] == record["best_step"]
    # CPU memory is the growth over the process before the model was built (a 1-layer model with
    # 32-d embeddings needs a few MiB), not the process's absolute peak (torch alone is hundreds).
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert 0 <= record["peak_memory_bytes"] < min(64 * 2**20, process_peak / 4)


def test_cpu_peak_memory_is_the_growth_over_the_baseline():
    device = torch.device("cpu")
    baseline = memory.memory_baseline(device)
    block = torch.ones(32 * 2**20 // 4)  # 32 MiB, touched
    del block
    grown = memory.peak_memory_growth(device, baseline)
    assert 31 * 2**20 <= grown < 48 * 2**20


def test_rng_state_survives_a_weights_only_checkpoint_and_replays_the_same_draws(tmp_path):
    rng.seed_everything(13)
    path = tmp_path / "rng.pt"
    torch.save(rng.rng_state(), path)
    expected = (random.random(), float(np.random.rand()), torch.rand(5))
    rng.seed_everything(17)  # move every generator elsewhere
    rng.set_rng_state(torch.load(path, weights_only=True))
    python_draw, numpy_draw, torch_draws = random.random(), float(np.random.rand()), torch.rand(5)
    assert (python_draw, numpy_draw) == expected[:2]
    assert torch.equal(torch_draws, expected[2])


def test_a_best_checkpoint_of_another_step_or_configuration_is_refused(data_dir, tmp_path, monkeypatch):
    save = trainer.save_checkpoint

    def stale_best(path, obj):  # as if best.pt were left by an earlier attempt at another step
        if path.name == "best.pt":
            obj = {**obj, "step": obj["step"] + 1}
        save(path, obj)

    monkeypatch.setattr(trainer, "save_checkpoint", stale_best)
    with pytest.raises(
        ValueError, match=r"best.pt holds step 11 of configuration .*best validation step is 10"
    ):
        run(config(data_dir, tmp_path / "run", max_steps=10))
    assert read_record(tmp_path / "run" / "result.json")["status"] == "failed"


def _run_subprocess(cfg: RunConfig, path: Path, kill_after_step: int | None = None) -> subprocess.Popen:
    path.write_text(cfg.to_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(KILL_AFTER_STEP_ENV, None)
    if kill_after_step is not None:
        env[KILL_AFTER_STEP_ENV] = str(kill_after_step)
    return subprocess.Popen(
        [sys.executable, "-m", "runners.train", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _metrics(record: dict) -> dict:
    keys = (
        "status",
        "steps",
        "best_step",
        "best_val_acc",
        "test_acc",
        "test_acc_last",
        "val_acc_last",
        "final_train_loss",
        "history",
        "config_hash",
    )
    return {k: record[k] for k in keys}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "schedule,attention_dropout", [("linear", "0"), ("onecycle", "0.2")], ids=["linear", "onecycle-dropout"]
)
def test_sigkill_and_resume_is_bit_identical(data_dir, tmp_path, schedule, attention_dropout):
    """A run killed right after a checkpoint and resumed ends with the uninterrupted run's metrics;
    with torch's OneCycleLR (learning rate and beta1 held by the scheduler and optimizer states) and
    attention dropout too (its masks come from the global RNG that checkpoints hold; MiTA's torch path
    draws per-chunk seeds from it, its shared expert uses SDPA's own dropout)."""
    overrides = {
        **FAST,
        "train.schedule": schedule,
        "train.warmup_steps": "10",
        "model.attention_dropout": attention_dropout,
    }
    straight = config(data_dir, tmp_path / "straight", max_steps=40, checkpoint_every=7, overrides=overrides)
    killed = config(
        data_dir, tmp_path / "killed", max_steps=40, checkpoint_every=7, resume=True, overrides=overrides
    )
    # The uninterrupted run and the one SIGKILLed after step 17 (between the checkpoints of steps 14
    # and 21) side by side: separate directories, one thread each, the kill decided by the step count.
    straight_proc = _run_subprocess(straight, tmp_path / "a.json")
    proc = _run_subprocess(killed, tmp_path / "b.json", kill_after_step=17)
    _, killed_stderr = proc.communicate(timeout=300)  # reads the pipes: neither process blocks on them
    assert proc.returncode == -signal.SIGKILL, killed_stderr.decode()
    _, straight_stderr = straight_proc.communicate(timeout=300)
    assert straight_proc.returncode == 0, straight_stderr.decode()
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.pt"
    assert load_checkpoint(checkpoint, remedy="")["step"] == 14
    assert read_record(tmp_path / "killed" / "result.json")["status"] == "running"
    proc = _run_subprocess(killed, tmp_path / "b.json")
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()

    a = read_record(tmp_path / "straight" / "result.json")
    b = read_record(tmp_path / "killed" / "result.json")
    assert _metrics(a) == _metrics(b)
    lrs = [h["lr"] for h in a["history"]]
    assert len(set(lrs)) == len(lrs)  # the schedule moved between evaluations
    final = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt", remedy="")
    assert (final["scheduler"] is not None) == (schedule == "onecycle")


def test_finished_run_is_not_overwritten_and_resume_returns_it(data_dir, tmp_path):
    cfg = config(data_dir, tmp_path / "run", max_steps=10)
    first = run(cfg)
    with pytest.raises(ValueError, match="--resume"):
        run(cfg)
    again = run(config(data_dir, tmp_path / "run", max_steps=10, resume=True))
    assert again["finished_at"] == first["finished_at"]
    with pytest.raises(ValueError, match="different configuration"):
        run(config(data_dir, tmp_path / "run", max_steps=11, resume=True))


def test_non_finite_loss_is_skipped_then_run_stops_as_diverged(data_dir, tmp_path, monkeypatch):
    real = torch.nn.functional.cross_entropy

    def poisoned(logits, labels, **kwargs):
        out = real(logits, labels, **kwargs)
        return out * float("nan") if logits.requires_grad else out

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", poisoned)
    record = run(
        config(data_dir, tmp_path / "run", max_steps=30, overrides={**FAST, "train.max_bad_steps": "3"})
    )
    assert record["status"] == "diverged"
    assert "4 non-finite" in record["error"] and record["steps"] == 4
    assert read_record(tmp_path / "run" / "result.json")["status"] == "diverged"


def test_resume_of_a_diverged_run_returns_it_without_training(data_dir, tmp_path, monkeypatch):
    test_non_finite_loss_is_skipped_then_run_stops_as_diverged(data_dir, tmp_path, monkeypatch)
    monkeypatch.setattr(runner, "Trainer", lambda *a, **k: pytest.fail("a diverged run was trained again"))
    cfg = config(data_dir, tmp_path / "run", max_steps=30, overrides={**FAST, "train.max_bad_steps": "3"})
    assert run(dataclasses.replace(cfg, resume=True))["status"] == "diverged"


def test_unreadable_checkpoint_is_a_one_line_error(data_dir, tmp_path):
    cfg = config(data_dir, tmp_path / "run", max_steps=10, resume=True)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(
        ValueError,
        match=r"last.pt is a checkpoint of format 1, .*; delete it to train the run from the start",
    ):
        run(cfg)


def test_configuration_hash_ignores_bookkeeping_and_resolves_the_data_source(data_dir, tmp_path):
    base = config(data_dir, tmp_path / "run", source="auto")
    resolved = train.resolve(base)
    assert resolved.config_dict()["preset"]["data"]["source"] == "generated"  # no official files here
    assert train.resolve(dataclasses.replace(base, checkpoint_every=7)).config_hash == resolved.config_hash
    assert train.resolve(dataclasses.replace(base, source="generated")).config_hash == resolved.config_hash
    # the official files appear in the data dir: "auto" now means other data, so another configuration
    official = tmp_path / "data"
    (official / "listops-1000").mkdir(parents=True)
    (official / "listops-1000" / "basic_train.tsv").write_text("Source\tTarget\n")
    moved = train.resolve(dataclasses.replace(base, data_dir=str(official)))
    assert moved.config_dict()["preset"]["data"]["source"] == "lra_release"
    assert moved.config_hash != resolved.config_hash


def test_ddp_launch_checks_the_run_directory_before_starting_processes(data_dir, tmp_path, monkeypatch):
    run(config(data_dir, tmp_path / "run", max_steps=10))
    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: pytest.fail("processes were started"))
    with pytest.raises(ValueError, match="holds a finished run of a different configuration"):
        train.launch(config(data_dir, tmp_path / "run", max_steps=11, resume=True), 2)


def test_capped_evaluation_is_a_subset_with_both_classes_of_a_label_sorted_split():
    from lra.tasks.base import LRADataset

    labels = torch.arange(1000) // 500  # 500 zeros, then 500 ones
    ds = LRADataset(torch.ones(1000, 4, dtype=torch.long), labels)

    class AlwaysZero(torch.nn.Module):
        def forward(self, tokens):
            return torch.stack([torch.ones(len(tokens)), torch.zeros(len(tokens))], dim=1)

    accuracy, _ = evaluate(AlwaysZero(), ds, 16, torch.device("cpu"), Dist(), torch.no_grad, limit=64)
    assert 0.3 < accuracy < 0.7  # a prefix of 64 would be all zeros: accuracy 1.0
    assert evaluate(AlwaysZero(), ds, 16, torch.device("cpu"), Dist(), torch.no_grad)[0] == 0.5


@pytest.mark.parametrize("schedule", ["linear", "constant"])
def test_schedules(schedule):
    """The project's own schedules (LRA's and the lineage's: tests/test_schedules.py)."""
    t = TrainConfig(schedule=schedule, warmup_steps=10, steps=110, lr=1.0)
    f = [lr_multiplier(t, s) for s in range(1, 111)]
    assert f[4] == pytest.approx(0.5) and f[9] == pytest.approx(1.0)  # linear warmup
    # The decay reaches 0 one step after the last (step 111): every one of the 110 steps learns.
    decayed = [(s - 10) / 101 for s in range(1, 111)]
    if schedule == "linear":
        assert f[10:] == pytest.approx([1 - x for x in decayed[10:]])
        assert f[109] == pytest.approx(1 / 101)
    else:
        assert f[109] == 1.0
    assert min(f) > 0


def test_overrides_are_validated():
    preset = get_preset("listops", "tiny")
    assert apply_overrides(preset, {"model.layers": "3"}).model.layers == 3
    with pytest.raises(ValueError, match="valid model settings"):
        apply_overrides(preset, {"model.depth": "3"})
    with pytest.raises(ValueError, match="must divide"):
        apply_overrides(preset, {"model.heads": "3"})
    with pytest.raises(ValueError, match="int"):
        apply_overrides(preset, {"train.steps": "many"})


@pytest.mark.parametrize(
    "args,message",
    [
        (["--task", "nope"], "unknown task 'nope'; valid tasks: listops"),
        (["--attention", "flash"], "valid attentions: full"),
        (["--preset", "huge"], "valid presets: tiny"),
        (["--attn-param", "depth=3"], "valid parameters: num_landmarks"),
        (["--attn-param", "topk"], "--attn-param expects [NAME.]KEY=VALUE"),
        (["--attention", "mita(topk"], "malformed attention"),
        (["--attention", "mita", "--attn-param", "full.x=1"], "not among the attentions run (mita)"),
        (["--set", "model.heads=3"], "must divide"),
        (["--set", "optimizer.lr=1"], "unknown setting"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(args, message, tmp_path):
    result = CliRunner().invoke(cli.main, ["run", "--run-dir", str(tmp_path / "r"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_run_takes_an_attention_spec_and_attn_params(data_dir, tmp_path):
    sets = [arg for key, value in FAST.items() for arg in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(
        cli.main,
        ["run", "--attention", "mita(topk=3)", "--attn-param", "num_landmarks=5", "--attn-param", "mita.topk=7",
         "--max-steps", "3", "--data-dir", data_dir, "--run-dir", str(tmp_path / "r"), "--quiet", *sets],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = read_record(tmp_path / "r" / "result.json")
    assert record["attention"] == "mita"  # the spec's own topk wins over --attn-param
    assert (record["attention_params"]["topk"], record["attention_params"]["num_landmarks"]) == (3, 5)


@pytest.mark.e2e
def test_ddp_two_processes_gloo(data_dir, tmp_path):
    cfg = config(data_dir, tmp_path / "ddp", max_steps=12, overrides={**FAST, "model.dropout": "0.0"})
    path = tmp_path / "ddp.json"
    path.write_text(cfg.to_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "runners.train",
            str(path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = read_record(tmp_path / "ddp" / "result.json")
    assert record["status"] == "ok" and record["world_size"] == 2 and record["steps"] == 12
    assert record["n_test"] == 128 and 0.0 <= record["test_acc"] <= 1.0
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok"


def _official_listops(root: Path, first_label: int) -> Path:
    """A minimal official-layout ListOps folder whose data depend on `first_label`."""
    folder = root / "listops-1000"
    folder.mkdir(parents=True)
    for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"):
        (folder / name).write_text(f"Source\tTarget\n( ( [MAX 2 {first_label} ) ]\t{first_label}\n")
    return root


def test_configuration_hash_holds_the_identity_of_the_data_not_their_place(data_dir, tmp_path):
    base = config(data_dir, tmp_path / "run", source="lra_release")
    one = train.resolve(dataclasses.replace(base, data_dir=str(_official_listops(tmp_path / "a", 3))))
    other = train.resolve(dataclasses.replace(base, data_dir=str(_official_listops(tmp_path / "b", 5))))
    assert other.config_hash != one.config_hash  # different files under the same source
    copied = tmp_path / "elsewhere" / "copy"
    copied.parent.mkdir()
    subprocess.run(["cp", "-r", str(tmp_path / "a"), str(copied)], check=True)  # new times, new path
    moved = train.resolve(dataclasses.replace(base, data_dir=str(copied)))
    assert moved.config_hash == one.config_hash
    assert moved.config_dict()["data_identity"] == one.config_dict()["data_identity"]
    # the same path, its content replaced: another configuration
    (copied / "listops-1000" / "basic_test.tsv").write_text("Source\tTarget\n( [MIN 1 4 ] )\t1\n")
    assert train.resolve(dataclasses.replace(base, data_dir=str(copied))).config_hash != one.config_hash
    # generated data: a function of the generator's settings, wherever the data dir is
    generated = dataclasses.replace(base, source="generated")
    assert (
        train.resolve(dataclasses.replace(generated, data_dir=str(tmp_path / "x"))).config_hash
        == train.resolve(dataclasses.replace(generated, data_dir=str(tmp_path / "y"))).config_hash
    )
    reseeded = dataclasses.replace(generated, overrides={**FAST, "data.gen_seed": "1"})
    assert train.resolve(reseeded).config_hash != train.resolve(generated).config_hash
