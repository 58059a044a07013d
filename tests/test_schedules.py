"""The sources' learning-rate schedules: torch's OneCycleLR as the PyTorch lineage steps it, and LRA's
rsqrt / cosine factors counted as LRA counts steps."""

from __future__ import annotations

import math

import pytest
import torch

from lra.presets import TrainConfig, get_preset
from runners.train import RunConfig, lr_multiplier, make_scheduler, run


def lineage_scheduler(optimizer: torch.optim.Optimizer, lr: float, warmup: int, steps: int):
    """mlpen/Nystromformer LRA/code/run_tasks.py's scheduler, as written there."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer=optimizer,
        max_lr=lr,
        pct_start=warmup / steps,
        anneal_strategy="linear",
        total_steps=steps,
    )


def lra_factor(factors: str, base: float, warmup: int, cycle: int, step: int) -> float:
    """lra_benchmarks/utils/train_utils.py create_learning_rate_scheduler's step_fn, transcribed."""
    ret = 1.0
    for name in [n.strip() for n in factors.split("*")]:
        if name == "constant":
            ret *= base
        elif name == "linear_warmup":
            ret *= min(1.0, step / warmup)
        elif name == "rsqrt_decay":
            ret /= math.sqrt(max(step, warmup))
        elif name == "cosine_decay":
            progress = max(0.0, (step - warmup) / float(cycle))
            ret *= max(0.0, 0.5 * (1.0 + math.cos(math.pi * (progress % 1.0))))
    return ret


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=1.0, betas=(0.9, 0.999), eps=1e-6)


def test_onecycle_is_torchs_scheduler_with_the_lineages_arguments():
    train = TrainConfig(schedule="onecycle", lr=1e-4, warmup_steps=100, steps=1000)
    ours, theirs = _optimizer(), _optimizer()
    scheduler = make_scheduler(ours, train)
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    reference = lineage_scheduler(theirs, 1e-4, 100, 1000)
    lrs, betas = [], []
    for _ in range(1000):
        assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"]
        assert ours.param_groups[0]["betas"] == theirs.param_groups[0]["betas"]
        lrs.append(ours.param_groups[0]["lr"])
        betas.append(ours.param_groups[0]["betas"][0])
        ours.step(), theirs.step()
        scheduler.step(), reference.step()
    # What the lineage trains with: from lr / 25 up to lr at the end of warmup, then linearly down;
    # beta1 the other way round, 0.95 -> 0.85 -> 0.95.
    assert lrs[0] == pytest.approx(1e-4 / 25) and max(lrs) == pytest.approx(1e-4)
    assert lrs.index(max(lrs)) == 99 and lrs[-1] < 1e-6
    assert (
        betas[0] == pytest.approx(0.95)
        and betas[99] == pytest.approx(0.85)
        and betas[-1] == pytest.approx(0.95)
    )


def test_onecycle_of_a_run_shorter_than_its_warmup_still_runs():
    train = TrainConfig(schedule="onecycle", lr=1e-4, warmup_steps=1000, steps=5)
    optimizer = _optimizer()
    scheduler = make_scheduler(optimizer, train)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    with pytest.raises(ValueError, match="not a multiplier"):
        lr_multiplier(train, 1)


def test_a_training_run_follows_the_lineages_scheduler(tmp_path):
    """The learning rates a run records at its evaluations are the lineage scheduler's at those steps."""
    steps, warmup = 12, 4
    record = run(
        RunConfig(
            task="listops",
            attention="full",
            preset="tiny",
            overrides={
                "train.schedule": "onecycle",
                "train.warmup_steps": str(warmup),
                "train.eval_every": "3",
                "train.batch_size": "16",
                "data.n_train": "64",
                "data.n_val": "16",
                "data.n_test": "16",
            },
            data_dir=str(tmp_path / "data"),
            run_dir=str(tmp_path / "run"),
            max_steps=steps,
            quiet=True,
        )
    )
    optimizer = _optimizer()
    reference = lineage_scheduler(optimizer, get_preset("listops", "tiny").train.lr, warmup, steps)
    used = []
    for _ in range(steps):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert [h["lr"] for h in record["history"]] == pytest.approx(
        [used[s - 1] for s in (3, 6, 9, 12)], rel=1e-12
    )


@pytest.mark.parametrize(
    ("task", "factors"),
    [
        ("listops", "constant * linear_warmup * rsqrt_decay"),
        ("pathfinder", "constant * linear_warmup * cosine_decay"),
    ],
)
def test_lra_schedules_are_lras_factors_at_its_step_count(task, factors):
    """Update k (1-based) has the learning rate LRA's train_step computes at optimizer.state.step =
    k - 1: the first update's is 0, and the cosine cycle is the run's length."""
    train = get_preset(task, "lra").train
    for k in (1, 2, train.warmup_steps, train.warmup_steps + 1, train.steps // 2, train.steps):
        expected = lra_factor(factors, train.lr, train.warmup_steps, train.steps, k - 1)
        assert train.lr * lr_multiplier(train, k) == pytest.approx(expected, rel=1e-12, abs=0.0)
    assert lr_multiplier(train, 1) == 0.0


def test_lra_retrieval_warms_up_for_longer_than_it_trains():
    """Matching: warmup 8000 > 5000 steps, so the rate rises to the last step (about 3.5e-4)."""
    train = get_preset("retrieval", "lra").train
    rates = [train.lr * lr_multiplier(train, k) for k in range(1, train.steps + 1)]
    assert rates == sorted(rates)
    assert rates[-1] == pytest.approx(0.05 * 4999 / 8000 / math.sqrt(8000))
