"""`lra sweep scaling`: forward and forward + backward time of every attention against N,
measured by `lra bench attention` (runners/bench/attention.py), with the crossover length and the log-log figure.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import slug
from results.cost_tables import NOT_RUN, PASSES, REFERENCE, format_length, ratio_table

from .. import bench
from ..bench import bench_attention
from ..devices import resolve_device
from .figures import ExperimentResult, new_figure, save_figure, suptitle, write_table
from .runs import Echo, quiet_echo

# Lengths of `lra sweep scaling`: 2^10..2^20 on CUDA (as far as memory allows), reduced on CPU.
SCALING_LENGTHS = {"cuda": tuple(2**e for e in range(10, 21)), "cpu": tuple(2**e for e in range(10, 13))}


def parse_scaling_lengths(text: str) -> tuple[int, ...]:
    """`2^10..2^20` (every power of two in between), `2^10,2^12`, or `1024,4K` -> sorted lengths."""
    problem = f"--lengths expects powers of two 2^10..2^20, a list 2^10,2^12 or lengths 1K,4K; got {text!r}"
    lengths: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        span = re.fullmatch(r"2\^(\d+)\s*\.\.\s*2\^(\d+)", part)
        power = re.fullmatch(r"2\^(\d+)", part)
        if span:
            low, high = int(span.group(1)), int(span.group(2))
            if low > high or high > 30:
                raise ValueError(problem)
            lengths += [2**e for e in range(low, high + 1)]
        elif power:
            if int(power.group(1)) > 30:
                raise ValueError(problem)
            lengths.append(2 ** int(power.group(1)))
        else:
            try:
                lengths += list(bench.parse_lengths(part))
            except ValueError:
                raise ValueError(problem) from None
    return tuple(sorted(set(lengths)))


def sweep_scaling(cfg: bench.BenchConfig, *, echo: Echo = quiet_echo) -> ExperimentResult:
    """Forward and forward + backward time of every attention against N (the paper's wall-clock figure).

    `runners.bench.bench_attention` measures and writes the efficiency records under
    `<cfg.out>/efficiency/` (lengths default to `SCALING_LENGTHS`: 2^10..2^20 on CUDA, where memory
    allows; 2^10..2^12 on CPU). This adds `<cfg.out>/scaling-<device>-<setting>.{md,png}`: the
    bench tables plus, per attention and pass, the length from which it is faster than full
    attention, and the log-log figure; the `.csv` holds those crossovers.
    """
    device = resolve_device(cfg.device)
    if cfg.lengths is None:
        cfg = dataclasses.replace(cfg, lengths=SCALING_LENGTHS[device.type])
    rows, bench_markdown = bench_attention(cfg)
    records = [r for r in rows if r.get("kind") == "efficiency"]
    if not records and any(r["status"] == NOT_RUN for r in rows):
        raise ValueError("nothing was measured before --max-minutes ran out; give it more minutes")
    if not records:
        raise ValueError(
            "nothing was measured: every attention needs CUDA on this machine; add --attentions full,mita"
        )
    first = records[0]
    setting = f"{first['dtype']}-B{first['batch']}-H{first['heads']}-d{first['head_dim']}"
    frame = ratio_table(rows)
    crossovers = crossover_table(frame)
    title = (
        f"Attention time against sequence length on {first['device']}: B={first['batch']}, H={first['heads']}, "
        f"d={first['head_dim']}, {first['dtype']}"
    )
    markdown = "\n".join(
        [
            f"# {title}",
            "",
            "## Where each attention becomes faster than full attention",
            "",
            "From N: the shortest length from which it is faster at every longer length measured (median time per "
            "call); speed-up: full attention's time / this time at the longest length both ran.",
            "",
            crossover_markdown(crossovers),
            "",
            re.sub(r"^(#+) ", r"#\1 ", bench_markdown, flags=re.MULTILINE).strip(),
        ]
    )
    stem = Path(cfg.out) / f"scaling-{slug(first['device'])}-{setting}"
    paths = write_table(crossovers, markdown.rstrip() + "\n", stem)
    paths.append(plot_scaling(frame, title, stem.with_suffix(".png")))
    echo(f"wrote {len(records)} efficiency records under {Path(cfg.out) / 'efficiency'}")
    return ExperimentResult(records, markdown.rstrip() + "\n", paths)


def crossover_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per series and pass (full attention excluded): the shortest N from which the series is faster
    than full attention at every longer N both measured (`faster_from`, None if it never is), the
    speed-up at the longest N both measured, and the longest N each one measured.

    `frame` is `runners.ratio_table` output.
    """
    rows = []
    ok = frame[frame["status"] == "ok"]
    for (series, pass_), group in frame.groupby(["series", "pass"], sort=False):
        if group["attention"].iloc[0] == REFERENCE:
            continue
        full_longest = ok[(ok["attention"] == REFERENCE) & (ok["pass"] == pass_)]["seq_len"].max()
        mine = ok[(ok["series"] == series) & (ok["pass"] == pass_)]
        both = mine[mine["speedup_vs_full"].notna()].sort_values("seq_len")
        faster_from = None
        for n, speedup in zip(both["seq_len"][::-1], both["speedup_vs_full"][::-1], strict=True):
            if speedup < 1:
                break
            faster_from = int(n)
        rows.append(
            {
                "series": series,
                "pass": pass_,
                "faster_from": faster_from,
                "speedup_at_longest_common": float(both["speedup_vs_full"].iloc[-1]) if len(both) else None,
                "longest_common": int(both["seq_len"].iloc[-1]) if len(both) else None,
                "longest_measured": int(mine["seq_len"].max()) if len(mine) else None,
                "full_longest_measured": None if pd.isna(full_longest) else int(full_longest),
                "status": "ok" if len(mine) else str(group["status"].iloc[0]),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "series", "pass", "faster_from", "speedup_at_longest_common", "longest_common", "longest_measured",
            "full_longest_measured", "status",
        ],
    )  # fmt: skip


def crossover_markdown(crossovers: pd.DataFrame) -> str:
    def length(value: Any) -> str:
        return "–" if value is None or pd.isna(value) else format_length(int(value))

    table = pd.DataFrame(
        {
            "attention": crossovers["series"],
            "pass": crossovers["pass"].str.replace("_", " + "),
            "faster from N": [
                "never" if s == "ok" and (f is None or pd.isna(f)) else (length(f) if s == "ok" else s)
                for f, s in zip(crossovers["faster_from"], crossovers["status"], strict=True)
            ],
            "speed-up (at N)": [
                "–" if pd.isna(v) else f"{v:.2f}× ({length(n)})"
                for v, n in zip(
                    crossovers["speedup_at_longest_common"], crossovers["longest_common"], strict=True
                )
            ],
            "longest N run": [length(v) for v in crossovers["longest_measured"]],
            "full's longest N": [length(v) for v in crossovers["full_longest_measured"]],
        }
    )
    return table.to_markdown(index=False, disable_numparse=True)


def plot_scaling(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Median time per call against N, log-log, forward and forward + backward side by side;
    dotted guides ∝ N and ∝ N^2 through full attention's shortest point."""
    import numpy as np

    passes = [p for p in PASSES if (frame["pass"] == p).any()]
    fig, axes = new_figure(6.0 * len(passes) + 1.0, 4.8, len(passes))
    series = list(dict.fromkeys(frame["series"]))
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(series) <= 10 else "tab20"]
    colours = {name: cmap(i % cmap.N) for i, name in enumerate(series)}
    for ax, pass_ in zip(axes, passes, strict=True):
        part = frame[frame["pass"] == pass_]
        for name in series:
            mine = part[part["series"] == name]
            ok = mine[(mine["status"] == "ok") & mine["time_ms_median"].notna()].sort_values("seq_len")
            if ok.empty:
                continue
            stopped = mine[mine["status"].isin(["oom", "skipped"])]
            legend = name + (
                f" ({stopped['status'].iloc[0]} from {format_length(int(stopped['seq_len'].min()))})"
                if len(stopped)
                else ""
            )
            ax.plot(
                ok["seq_len"],
                ok["time_ms_median"],
                marker="o",
                markersize=3,
                color=colours[name],
                label=legend,
            )
        full = part[(part["attention"] == REFERENCE) & (part["status"] == "ok")].sort_values("seq_len")
        if len(full):
            n0, t0 = float(full["seq_len"].iloc[0]), float(full["time_ms_median"].iloc[0])
            ns = np.array(sorted(part["seq_len"].unique()), dtype=float)
            ax.plot(ns, t0 * ns / n0, color="grey", linestyle="dotted", linewidth=1, label="∝ N")
            ax.plot(ns, t0 * (ns / n0) ** 2, color="grey", linestyle="dashdot", linewidth=1, label="∝ N²")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length N")
        ax.set_ylabel("median time per call (ms)")
        ax.set_title(pass_.replace("_", " + "))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
    suptitle(fig, title)
    return save_figure(fig, path)
