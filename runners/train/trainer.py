"""The `Trainer`: one resolved run's data, model, optimizer and position, and what it does with them --
`step` (one optimizer step), `evaluate` (validation, history, the best checkpoint), `checkpoint`
(everything a resume needs), `train` (the loop) and `finish` (the test of the last and the
best-validation checkpoints, the predictions, the final record).

What a run does:

* trains with AdamW, the preset's warmup/decay schedule (a function of the step, or torch's own
  `OneCycleLR` for "onecycle"), gradient clipping, gradient accumulation to the preset batch, and
  autocast on CUDA (attention kept in fp32 where the preset says so);
* evaluates on the validation split every `train.eval_every` steps and at the end, keeps the
  best-validation and the last checkpoints, and reports the test accuracy of both: `test_acc` of
  the best-validation checkpoint (what the PyTorch lineage tests) and `test_acc_last` of the last
  (what LRA's JAX code tests); `train.report_checkpoint` says which one the tables report;
* checkpoints model, optimizer, AMP scaler, learning-rate scheduler, step, data position and
  every RNG state, atomically, so a run killed at any point and resumed finishes with exactly the
  same metrics as an uninterrupted one (same device, same seed);
* skips and counts non-finite losses / gradients, and stops as `diverged` after
  `train.max_bad_steps` of them, or when it ends non-finite (`non_finite_end`);
* a run that ends `ok` writes `<run_dir>/predictions.npz`, the predicted class of every test
  example for the best-validation and the last checkpoint (results/predictions.py), named in the
  record with its sha256.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn
from tqdm.auto import tqdm

from lra import models, tasks
from lra.tasks.base import LRADataset
from results.predictions import write_predictions
from results.records import RECORD_NAME, write_record

from ..provenance import utc_now
from .checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from .config import Resolved
from .distributed import Dist
from .evaluation import Evaluation, batch_inputs, predict
from .memory import memory_baseline, peak_memory_growth
from .rng import rng_state, seed_everything, set_rng_state
from .run_logging import RunLogger, open_run_logger
from .schedule import BatchOrder, lr_multiplier, make_optimizer, make_scheduler
from .step import Autocast, classification_loss

# Fault injection for resume tests: with this variable set to N, the process kills itself with SIGKILL
# right after step N (after that step's checkpoint, if it writes one), exactly where an outside kill
# would land, without depending on how fast the run goes.
KILL_AFTER_STEP_ENV = "LRA_KILL_AFTER_STEP"


@dataclass
class Position:
    """Where a run stands: what its last checkpoint saves besides the model, the optimizer, the
    scheduler, the scaler and the RNG states (the checkpoint's own keys, `Trainer.checkpoint`).

    Attributes:
        step, epoch, offset: optimizer steps done, and the data position (epoch, step within it).
        best_val_acc, best_step: the best validation accuracy so far and its step (None before one).
        bad_steps, last_bad_step: non-finite steps skipped so far, and the latest of them.
        history: one entry per evaluation (step, train_loss, val_acc, val_loss, lr).
        intervals: (seconds, tokens, steps) of training between evaluations.
        losses: training losses since the last evaluation.
        wall_time_s: training wall time of the earlier processes of this run (a resume's).
        started_at: when the run first started.
    """

    step: int = 0
    epoch: int = 0
    offset: int = 0
    best_val_acc: float = -1.0
    best_step: int | None = None
    bad_steps: int = 0
    last_bad_step: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    intervals: list[tuple[float, float, int]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0
    started_at: str = ""

    @classmethod
    def of_checkpoint(cls, state: dict[str, Any]) -> Position:
        return cls(
            step=state["step"],
            epoch=state["epoch"],
            offset=state["offset"],
            best_val_acc=state["best_val_acc"],
            best_step=state["best_step"],
            bad_steps=state["bad_steps"],
            last_bad_step=state["last_bad_step"],
            history=list(state["history"]),
            intervals=[(float(s), float(t), int(n)) for s, t, n in state["intervals"]],
            losses=list(state["losses"]),
            wall_time_s=state["wall_time_s"],
            started_at=state["started_at"],
        )


class Trainer:
    """Trains one resolved run in this process (one of its DDP ranks under torchrun).

    Built from the run, its processes, the checkpoint to resume from (None for a new run) and the
    record it started; `train()` then `finish()` bring the record to its end.
    """

    def __init__(self, r: Resolved, dist: Dist, state: dict[str, Any] | None, record: dict[str, Any]) -> None:
        self.r, self.dist, self.record = r, dist, record
        self.started = time.perf_counter()
        self.train_cfg = train_cfg = r.preset.train
        self.device = r.device
        self.train_ds, self.val_ds, self.test_ds = self._load_data()
        self._record_data()

        self.baseline_memory = memory_baseline(self.device)
        seed_everything(r.cfg.seed + 7919 * dist.rank)
        self.model = self._build_model()
        record["params"] = models.count_parameters(self.model)
        self.wrapped: nn.Module = self.model
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        if dist.world > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[dist.local_rank] if self.device.type == "cuda" else None
            )
            self.wrapped = self.ddp

        self.optimizer = make_optimizer(self.model, train_cfg)
        self.scheduler = make_scheduler(self.optimizer, train_cfg)
        self.autocast = Autocast.of(self.device, train_cfg.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast.needs_scaler)
        self.local_batch, self.micro = self._batch_split()
        self.order = BatchOrder(len(self.train_ds), self.local_batch, r.cfg.seed, dist)
        self.eval_batch = max(self.micro, 1)
        self.checkpoint_every = train_cfg.checkpoint_every or train_cfg.eval_every

        self.at = self._restore(state) if state is not None else Position(started_at=record["started_at"])
        self.logger = (
            open_run_logger(r.cfg.log, r.run_dir, resumed_step=self.at.step, config=r.logged_config())
            if dist.main
            else RunLogger()
        )
        self.numerics = r.numerics()  # a resume checks it against its own
        self.interval_time = self.interval_tokens = 0.0
        self.interval_start = self.at.step
        self.step_lr = self.optimizer.param_groups[0]["lr"]  # the learning rate of the latest step

    def _record_data(self) -> None:
        """What the record says about the data: split sizes, length, source, chance, keys per query."""
        spec = tasks.get(self.r.cfg.task)
        seq_len = self.train_ds.seq_len
        counts = torch.bincount(self.test_ds.labels, minlength=spec.num_classes)
        mechanism, params = self.r.attention.mechanism, self.r.attention.params
        self.record.update(
            n_train=len(self.train_ds),
            n_val=len(self.val_ds),
            n_test=len(self.test_ds),
            seq_len=seq_len,
            data_source=self.train_ds.info.get("data_source", self.train_ds.info.get("source")),
            chance_acc=float(counts.max()) / max(1, len(self.test_ds)),
            keys_per_query=mechanism.keys_per_query(params, seq_len) if mechanism.keys_per_query else None,
        )

    def _build_model(self) -> nn.Module:
        """The task's model with the run's attention, on the run's device."""
        spec = tasks.get(self.r.cfg.task)
        vocab = int(max(int(self.train_ds.inputs.max()), spec.vocab_size - 1)) + 1
        return models.build(
            vocab_size=vocab,
            max_len=self.train_ds.seq_len,
            num_classes=spec.num_classes,
            dual_input=spec.dual_input,
            model=self.r.preset.model,
            attention=self.r.attention.name,
            attn_params=self.r.attention.params,
        ).to(self.device)

    def _batch_split(self) -> tuple[int, int]:
        """(examples per process per step, examples per micro-batch); ValueError when they do not divide."""
        batch, world = self.train_cfg.batch_size, self.dist.world
        if batch % world:
            raise ValueError(f"train.batch_size={batch} must be divisible by the {world} processes")
        local = batch // world
        micro = min(self.train_cfg.micro_batch_size or local, local)
        if local % micro:
            raise ValueError(f"train.micro_batch_size={micro} must divide the per-process batch {local}")
        return local, micro

    def _restore(self, state: dict[str, Any]) -> Position:
        """Load a checkpoint's model, optimizer, scheduler, scaler and RNG; returns its position."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # after the scheduler set its initial values
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][self.dist.rank])
        return Position.of_checkpoint(state)

    @property
    def last_path(self) -> Path:
        return self.r.run_dir / "checkpoints" / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.r.run_dir / "checkpoints" / "best.pt"

    def _load_data(self) -> tuple[LRADataset, LRADataset, LRADataset]:
        """The three splits; the main process loads (and, for generated sources, generates) first."""
        spec = tasks.get(self.r.cfg.task)
        splits: dict[str, LRADataset] = {}
        for turn in (0, 1):
            if (turn == 0) == self.dist.main:
                splits = {split: spec.load(split, self.r.preset.data) for split in ("train", "val", "test")}
            self.dist.barrier()
        return splits["train"], splits["val"], splits["test"]

    # -- one optimizer step -----------------------------------------------------------------------

    def _set_lr(self, next_step: int) -> None:
        # The schedule is a pure function of the step, so the step in a checkpoint restores it
        # exactly; torch's scheduler (onecycle) is restored from its own state instead.
        if self.scheduler is not None:
            return
        for group in self.optimizer.param_groups:
            group["lr"] = self.train_cfg.lr * lr_multiplier(self.train_cfg, next_step)

    def step(self) -> str | None:
        """One optimizer step over the preset batch (micro-batches accumulated); a non-finite loss
        or gradient skips the update and is counted. Returns why the run diverged, else None."""
        at, train_cfg, dist = self.at, self.train_cfg, self.dist
        tick = time.perf_counter()
        self._set_lr(at.step + 1)
        index = self.order.batch(at.epoch, at.offset)
        at.offset += 1
        if at.offset == self.order.steps_per_epoch:
            at.epoch, at.offset = at.epoch + 1, 0
        loss_total = torch.zeros((), device=self.device)
        tokens_seen = 0
        for start in range(0, self.local_batch, self.micro):
            idx = index[start : start + self.micro]
            inputs = batch_inputs(self.train_ds, idx, self.device)
            labels = self.train_ds.labels[idx].to(self.device)
            tokens_seen += sum(t.numel() for t in inputs)
            last_micro = start + self.micro >= self.local_batch
            # DDP averages gradients at the last micro-batch's backward only
            sync = self.ddp.no_sync() if self.ddp is not None and not last_micro else contextlib.nullcontext()
            with sync:
                loss = classification_loss(self.wrapped, inputs, labels, self.autocast)
                loss = loss * (len(idx) / self.local_batch)
                self.scaler.scale(loss).backward()
            loss_total += loss.detach()
        at.step += 1
        self.scaler.unscale_(self.optimizer)
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), train_cfg.grad_clip or float("inf"))
        (loss_value,) = dist.sum([float(loss_total)])
        loss_value /= dist.world
        diverged = None
        finite_loss = math.isfinite(loss_value)
        if not finite_loss or (not self.scaler.is_enabled() and not math.isfinite(float(grad_norm))):
            at.bad_steps, at.last_bad_step = at.bad_steps + 1, at.step
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler.is_enabled():
                self.scaler.update()
            if at.bad_steps > train_cfg.max_bad_steps:
                diverged = f"{at.bad_steps} non-finite losses or gradients (the last at step {at.step})"
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            at.losses.append(loss_value)
            lr = self.optimizer.param_groups[0]["lr"]
            self.logger.train_step(at.step, loss=loss_value, lr=lr, grad_norm=grad_norm)
        self.step_lr = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None:  # once per step, skipped updates included, as the lineage does
            self.scheduler.step()
        self.interval_time += time.perf_counter() - tick
        self.interval_tokens += tokens_seen * dist.world
        return diverged

    # -- validation and checkpoints ---------------------------------------------------------------

    def evaluate(self) -> tuple[float, float]:
        """Score the validation split; add the evaluation to the history and the logs, and save the
        best-validation checkpoint when it improved. Returns (accuracy, loss)."""
        at, dist = self.at, self.dist
        scored = predict(
            self.wrapped,
            self.val_ds,
            self.eval_batch,
            self.device,
            dist,
            self.autocast,
            self.train_cfg.eval_examples,
        )
        val_acc, val_loss = scored.accuracy, scored.loss
        train_loss = sum(at.losses) / len(at.losses) if at.losses else float("nan")
        at.losses = []
        at.intervals.append((self.interval_time, self.interval_tokens, at.step - self.interval_start))
        self.interval_time = self.interval_tokens = 0.0
        self.interval_start = at.step
        at.history.append(
            {
                "step": at.step,
                "train_loss": train_loss,
                "val_acc": val_acc,
                "val_loss": val_loss,
                "lr": self.step_lr,
            }
        )
        seconds, tokens, steps_done = at.intervals[-1]
        self.logger.evaluation(
            at.step,
            val_acc=val_acc,
            val_loss=val_loss,
            train_loss=train_loss,
            tokens_per_s=tokens / seconds if seconds > 0 else None,
            steps_per_s=steps_done / seconds if seconds > 0 else None,
            peak_memory_bytes=peak_memory_growth(self.device, self.baseline_memory),
        )
        if val_acc > at.best_val_acc:
            at.best_val_acc, at.best_step = val_acc, at.step
            if dist.main:
                payload = {"model": self.model.state_dict(), "step": at.step, "val_acc": val_acc}
                save_checkpoint(self.best_path, {**payload, "config_hash": self.r.config_hash})
            dist.barrier()
        return val_acc, val_loss

    def checkpoint(self) -> None:
        """Save everything a resume needs (`last.pt`, atomically, with its digest)."""
        at, dist = self.at, self.dist
        rng: list[Any] = [rng_state()]
        if dist.world > 1:
            rng = [None] * dist.world
            torch_dist.all_gather_object(rng, rng_state())
        if dist.main:
            self.logger.checkpoint(at.step)  # the curves up to the step are on disk before the checkpoint is
            payload = {
                "format": CHECKPOINT_FORMAT,
                "config_hash": self.r.config_hash,
                "step": at.step,
                "epoch": at.epoch,
                "offset": at.offset,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict(),
                "rng": rng,
                "best_val_acc": at.best_val_acc,
                "best_step": at.best_step,
                "bad_steps": at.bad_steps,
                "last_bad_step": at.last_bad_step,
                "history": at.history,
                "intervals": [list(x) for x in at.intervals],
                "losses": at.losses,
                "wall_time_s": self.wall_time_s(),
                "started_at": at.started_at,
                "cpu_numerics": self.numerics,
            }
            save_checkpoint(self.last_path, payload)
        dist.barrier()

    def wall_time_s(self) -> float:
        return self.at.wall_time_s + time.perf_counter() - self.started

    # -- the loop and the end ---------------------------------------------------------------------

    def train(self) -> str | None:
        """Step until `train.steps`, evaluating and checkpointing on the preset's schedule; returns
        why the run diverged, or None."""
        at, train_cfg, dist = self.at, self.train_cfg, self.dist
        self.model.train()
        # A bar on a terminal; in logs (not a TTY) one line per evaluation instead; nothing when quiet.
        show_bar = not self.r.cfg.quiet and dist.main and sys.stderr.isatty()
        log_lines = not self.r.cfg.quiet and dist.main and not show_bar
        bar = tqdm(
            total=train_cfg.steps,
            initial=at.step,
            disable=not show_bar,
            dynamic_ncols=True,
            desc=f"{self.r.cfg.task}/{self.r.attention.label}",
            unit="step",
        )
        kill_after = int(os.environ[KILL_AFTER_STEP_ENV]) if os.environ.get(KILL_AFTER_STEP_ENV) else None
        diverged = None
        while at.step < train_cfg.steps:
            diverged = self.step()
            bar.update(1)
            if diverged:
                break
            if at.step % train_cfg.eval_every == 0 or at.step == train_cfg.steps:
                val_acc, val_loss = self.evaluate()
                train_loss = at.history[-1]["train_loss"]
                bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}")
                if log_lines:
                    print(
                        f"step {at.step}/{train_cfg.steps}  train_loss {train_loss:.4f}  val_acc {val_acc:.4f}  "
                        f"val_loss {val_loss:.4f}",
                        file=sys.stderr,
                        flush=True,
                    )
            if at.step % self.checkpoint_every == 0 or at.step == train_cfg.steps:
                self.checkpoint()
            if kill_after == at.step:
                os.kill(os.getpid(), signal.SIGKILL)
        bar.close()
        return diverged or non_finite_end(self.model, at.step, at.last_bad_step, at.bad_steps, at.history)

    def finish(self, diverged: str | None) -> dict[str, Any]:
        """Test the last and the best-validation checkpoints (unless the run diverged), write the
        predictions and the final record; returns the record."""
        at, record, r = self.at, self.record, self.r
        record.update(
            steps=at.step,
            history=at.history,
            best_val_acc=at.best_val_acc if at.best_step else None,
            best_step=at.best_step,
            final_train_loss=at.history[-1]["train_loss"] if at.history else None,
        )
        if diverged:
            self.checkpoint()
            record.update(status="diverged", error=diverged)
        else:
            self._test()
        timed = at.intervals[1:] if len(at.intervals) > 1 else at.intervals  # the first includes warm-up
        rates = sorted(tokens / seconds for seconds, tokens, _ in timed if seconds > 0)
        step_rates = sorted(steps / seconds for seconds, _, steps in timed if seconds > 0)
        record.update(
            train_tokens_per_s=rates[len(rates) // 2] if rates else None,
            train_steps_per_s=step_rates[len(step_rates) // 2] if step_rates else None,
            peak_memory_bytes=peak_memory_growth(self.device, self.baseline_memory),
            wall_time_s=self.wall_time_s(),
            finished_at=utc_now(),
        )
        self.logger.end(record)
        self.logger.close()
        if self.dist.main:
            write_record(r.run_dir / RECORD_NAME, record)
        self.dist.barrier()
        return record

    def _score_test(self) -> Evaluation:
        return predict(self.wrapped, self.test_ds, self.eval_batch, self.device, self.dist, self.autocast)

    def _test(self) -> None:
        """The test accuracy of the last and the best-validation checkpoints, and the predictions."""
        at, record, r = self.at, self.record, self.r
        record["val_acc_last"] = at.history[-1]["val_acc"] if at.history else None
        last = self._score_test()
        record["test_acc_last"] = last.accuracy
        test_losses = {"last": last.loss}
        best_scored = None
        if at.best_step is not None:
            best = load_checkpoint(self.best_path, remedy=f"delete {r.run_dir} and train the run again")
            if best.get("step") != at.best_step or best.get("config_hash") != r.config_hash:
                raise ValueError(
                    f"{self.best_path} holds step {best.get('step')} of configuration {best.get('config_hash')}, "
                    f"but this run's best validation step is {at.best_step} of configuration {r.config_hash}; "
                    f"delete {r.run_dir} and train the run again"
                )
            self.model.load_state_dict(best["model"])
            best_scored = self._score_test()
            record["test_acc"] = best_scored.accuracy
            test_losses["best-validation"] = best_scored.loss
        non_finite = [name for name, loss in test_losses.items() if not math.isfinite(loss)]
        if non_finite:
            record.update(
                status="diverged",
                error=f"non-finite test loss of the {' and the '.join(non_finite)} checkpoint after step {at.step}",
            )
            return
        if self.dist.main:  # the predicted class of every test example, for paired comparisons
            record.update(
                write_predictions(
                    r.run_dir,
                    index=last.index,
                    label=self.test_ds.labels[torch.as_tensor(last.index)].numpy(),
                    last=last.predicted,
                    best=best_scored.predicted if best_scored is not None else None,
                    run_id=record["run_id"],
                    config_hash=r.config_hash,
                    data_identity=record["config"]["data_identity"],
                )
            )
        record["status"] = "ok"


def non_finite_end(
    model: nn.Module, step: int, last_bad_step: int | None, bad_steps: int, history: list[dict[str, Any]]
) -> str | None:
    """Why a run that reached its last step is `diverged` although it stayed under
    `train.max_bad_steps` (None when it is not): its last step was non-finite, its weights are, or
    so is its last evaluation. Skipping and counting bad steps is for blips along the way; a run
    must end finite to count."""
    if last_bad_step is not None and last_bad_step == step:
        return f"non-finite loss or gradients at the last step ({step}; {bad_steps} non-finite steps in all)"
    for name, parameter in model.named_parameters():
        if not bool(torch.isfinite(parameter).all()):
            return f"non-finite weights after step {step} ({name})"
    last = history[-1] if history else {}
    for key in ("train_loss", "val_loss"):
        value = last.get(key)
        if value is not None and not math.isfinite(value):
            return f"non-finite {key.replace('_', ' ')} at the last evaluation (step {last['step']})"
    return None
