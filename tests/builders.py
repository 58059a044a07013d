"""Inputs and records that several test modules build (imported by them, never collected: no tests here)."""

from __future__ import annotations

from pathlib import Path

import torch

from results.records import EFFICIENCY_FIELDS, RUN_FIELDS, SCHEMA_VERSION, write_record


def make_inputs(batch, heads, n, d, *, masked, seed, dtype=torch.float32, duplicate_keys=False):
    """Random q, k, v [batch, heads, n, d] and, with `masked`, a random non-contiguous key padding mask."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, d, generator=gen) for _ in range(3))
    if duplicate_keys and n > 1:  # exact score ties for the top-k
        k[:, :, 1::2] = k[:, :, 0 : n - 1 : 2]
    mask = None
    if masked:
        mask = torch.rand(batch, n, generator=gen) > 0.35  # random, non-contiguous padding
        mask[:, torch.randint(n, (1,), generator=gen)] = True
    return q.to(dtype), k.to(dtype), v.to(dtype), mask


def random_inputs(batch, heads, n, d, *, masked, seed=0, dtype=torch.float64):
    """Random fp64 q, k, v and, with `masked`, a random key padding mask with a real token in every row."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, d, generator=gen, dtype=dtype) for _ in range(3))
    mask = None
    if masked:
        mask = torch.rand(batch, n, generator=gen) > 0.4
        mask[:, torch.randint(n, (1,), generator=gen)] = True  # at least one real token per row
    return q, k, v, mask


def run_record(task="listops", attention="full", label=None, seed=0, test_acc=0.5, status="ok", **fields):
    """A complete run record with plausible values; `fields` override any of them."""
    label = label or attention
    record = dict.fromkeys(RUN_FIELDS)
    record.update(
        schema_version=SCHEMA_VERSION,
        kind="run",
        run_id=f"{task}/{label}/{seed}",
        task=task,
        attention=attention,
        attention_params={},
        attention_label=label,
        preset="quick",
        seed=seed,
        status=status,
        test_acc=test_acc,
        best_val_acc=test_acc,
        chance_acc=0.5 if task == "pathfinder" else 0.1,
        num_classes=2 if task == "pathfinder" else 10,
        n_test=400,
        seq_len=512,
        data_source=f"generated:{task}",
        finished_at=f"2026-01-01T00:00:{seed:02d}+00:00",
        history=[],
    )
    record.update(fields)
    return record


def write_runs(root: Path, records) -> None:
    for record in records:
        write_record(root / "runs" / record["run_id"] / "result.json", record)


def efficiency_record(attention, seq_len, time_ms, memory, status="ok", bench="attention", batch=2):
    record = dict.fromkeys(EFFICIENCY_FIELDS)
    record.update(
        schema_version=SCHEMA_VERSION,
        kind="efficiency",
        bench=bench,
        batch=batch,
        heads=4,
        head_dim=32,
        attention=attention,
        attention_params={},
        attention_label=attention,
        backend="torch",
        seq_len=seq_len,
        device="cpu",
        dtype="float32",
        status=status,
        time_ms_median=time_ms,
        time_ms_p20=None if time_ms is None else time_ms * 0.9,
        time_ms_p80=None if time_ms is None else time_ms * 1.1,
        peak_memory_bytes=memory,
        **{"pass": "forward"},
    )
    return record
