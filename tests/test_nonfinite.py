"""Non-finite means not ok, and numbers out of range never reach the optimizer or torch.

A run whose last step, weights or evaluations are non-finite ends `diverged`, whatever the step at
which it went wrong; `--set train.lr=inf` and its kind are one-line errors before anything runs.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from click.testing import CliRunner

from results.records import read_record
from runners import cli
from runners.train import run, trainer

from .test_integrity import FAST, cli_args, config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lra_data"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.lr=inf"], "train.lr must be a finite number; got inf"),
        (["--set", "train.lr=nan"], "train.lr must be a finite number; got nan"),
        (["--set", "train.weight_decay=-0.1"], "train.weight_decay must be >= 0; got -0.1"),
        (["--set", "train.beta2=1.0"], "train.beta2 must be in [0, 1); got 1.0"),
        (["--set", "train.eps=0"], "train.eps must be in (0, inf); got 0.0"),
        (["--set", "train.grad_clip=-inf"], "train.grad_clip must be a finite number; got -inf"),
        (["--set", "data.seq_len=-1"], "data.seq_len must be an integer from 0 to 2**63 - 1; got -1"),
        (["--seed", str(2**70)], f"seed must be an integer from 0 to 4294967295; got {2**70}"),
        (["--seed", "-1"], "seed must be an integer from 0 to 4294967295; got -1"),
        (["--checkpoint-every", "-1"], "--checkpoint-every must be a whole number of steps >= 1; got -1"),
        (["--max-steps", "0"], "--max-steps must be a whole number of steps >= 1; got 0"),
    ],
)
def test_out_of_range_numbers_are_one_line_errors_before_anything_runs(tmp_path, args, message):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli.main, [*cli_args(str(tmp_path / "data"), run_dir), *args])
    assert result.exit_code == 2, result.output
    assert result.output == f"Error: {message}\n"
    assert not run_dir.exists()


def test_a_run_that_goes_non_finite_just_before_its_end_is_diverged(data_dir, tmp_path, monkeypatch):
    real = torch.nn.functional.cross_entropy
    calls = {"training": 0}

    def nan_for_the_last_two_steps(logits, labels, **kwargs):
        out = real(logits, labels, **kwargs)
        if logits.requires_grad and labels.numel() == 16:  # a training step's batch (not memory.py's probe)
            calls["training"] += 1
            if calls["training"] > 6:  # steps 7 and 8 of 8 (one micro-batch a step)
                return out * float("nan")
        return out

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", nan_for_the_last_two_steps)
    cfg = config(data_dir, tmp_path / "run", overrides={**FAST, "train.max_bad_steps": "5"})
    record = run(cfg)
    assert record["status"] == "diverged" and record["steps"] == 8
    assert record["error"] == "non-finite loss or gradients at the last step (8; 2 non-finite steps in all)"
    assert read_record(tmp_path / "run" / "result.json")["status"] == "diverged"


def test_a_run_whose_final_weights_are_non_finite_is_diverged(data_dir, tmp_path, monkeypatch):
    make = trainer.make_optimizer

    def poisoning_optimizer(model, train_cfg):
        optimizer = make(model, train_cfg)
        step = optimizer.step

        def step_then_poison(*args, **kwargs):
            out = step(*args, **kwargs)
            if optimizer.state[next(iter(model.parameters()))]["step"] == train_cfg.steps:
                with torch.no_grad():
                    next(iter(model.parameters())).view(-1)[0] = math.inf  # the last update blew up
            return out

        optimizer.step = step_then_poison
        return optimizer

    monkeypatch.setattr(trainer, "make_optimizer", poisoning_optimizer)
    record = run(config(data_dir, tmp_path / "run"))
    assert record["status"] == "diverged"
    assert record["error"].startswith("non-finite weights after step 8 (")


def test_a_run_whose_test_evaluation_is_non_finite_is_diverged(data_dir, tmp_path, monkeypatch):
    predict = trainer.predict
    calls = []

    def non_finite_test(model, ds, *args, **kwargs):
        scored = predict(model, ds, *args, **kwargs)
        calls.append(len(ds))
        # 2 validations, then the tests of the last and the best-validation checkpoints
        return dataclasses.replace(scored, loss=math.nan) if len(calls) > 2 else scored

    monkeypatch.setattr(trainer, "predict", non_finite_test)
    record = run(config(data_dir, tmp_path / "run"))
    assert len(calls) == 4 and record["status"] == "diverged"
    assert record["error"] == (
        "non-finite test loss of the last and the best-validation checkpoint after step 8"
    )
