"""`lra bench` tables, written beside the records of one bench call (`write_tables`); the tables
themselves are results/cost_tables.py (pure functions of the records, shared with `lra report`):
speed-up = full time / time (per example), memory ratio = memory / full memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lra.io import atomic_write, atomic_write_text, slug
from results.cost_tables import markdown_tables, ratio_table

from .options import Grid
from .records import Context


def bench_title(ctx: Context, grid: Grid) -> str:
    """The title of one bench call's tables: the bench, the device and the shape."""
    if ctx.bench == "attention":
        shape = f"B={grid.batch}, H={grid.heads}, d={grid.head_dim}, {grid.dtype}"
    else:
        shape = f"LRA Text model (4 layers, 256-d, 4 heads, MLP 1024), batch {grid.batch}, {ctx.dtype}"
    return f"{ctx.bench} bench on {ctx.device_name}: {shape}"


def write_tables(rows: Sequence[dict[str, Any]], ctx: Context, grid: Grid, notes: Sequence[str] = ()) -> str:
    """Write `<out>/efficiency/<bench>-<device>-<config>.{md,csv}` atomically; return the markdown.

    `notes` are lines added under the tables (reused and not-run cells)."""
    frame = ratio_table(rows)
    markdown = markdown_tables(frame, ctx.bench, bench_title(ctx, grid), grid.lengths, grid.batch, notes)
    stem = ctx.out / "efficiency" / f"{ctx.bench}-{slug(ctx.device_name)}-{ctx.config_slug}"
    atomic_write_text(stem.with_suffix(".md"), markdown)
    atomic_write(stem.with_suffix(".csv"), lambda fh: frame.to_csv(fh, index=False))
    return markdown
