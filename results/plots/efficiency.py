"""``efficiency_<bench>_<pass>_<device>_<dtype>_H<heads>_d<head dim>.png``: time per example and peak
memory against sequence length (log-log) from `lra bench` records, one line per attention and
backend."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from lra.io import slug

from ..records import plugin_label
from .common import (
    attention_styles,
    new_figure,
    save_png,
)

EFFICIENCY_GROUP = ["bench", "pass", "device", "dtype", "heads", "head_dim"]


def plot_efficiency(efficiency: pd.DataFrame, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Time per example and peak memory against sequence length (log-log), one figure per
    measurement setting (bench, pass, device, dtype, heads, head dim), one line per attention and
    backend. Time is the median per call divided by the batch (the model bench halves the batch
    where the full one runs out of memory: those points are drawn hollow, their memory is that of
    the smaller batch). Lengths that ran out of memory are named in the legend."""
    if efficiency.empty:
        return []
    paths = []
    frame = efficiency.assign(
        series=[
            f"{plugin_label(str(label), plugin)} [{backend}]"
            if isinstance(backend, str) and backend
            else plugin_label(str(label), plugin)
            for label, plugin, backend in zip(
                efficiency["attention_label"],
                efficiency.reindex(columns=["plugin"])["plugin"],
                efficiency["backend"],
                strict=True,
            )
        ],
        per_example=pd.to_numeric(efficiency["batch"], errors="coerce").fillna(1.0),
    )
    for keys, group in frame.groupby(EFFICIENCY_GROUP, sort=True, dropna=False):
        setting = dict(zip(EFFICIENCY_GROUP, keys, strict=True))
        series = sorted(group["series"].unique())
        attention_of = dict(zip(group["series"], group["attention"].astype(str), strict=False))
        styles = attention_styles([(attention_of[name], name) for name in series])
        colours = {name: colour for name, (colour, _) in styles.items()}
        fig, (ax_time, ax_mem) = new_figure(11.0, 4.5, ncols=2)
        full_batch = group["per_example"].max()
        for name in series:
            mine = group[group["series"] == name]
            ok = mine[(mine["status"] == "ok") & mine["time_ms_median"].notna()].sort_values("seq_len")
            failed = mine[mine["status"] != "ok"]
            legend = name + (f" (oom/error from N={int(failed['seq_len'].min())})" if len(failed) else "")
            if ok.empty:
                continue
            batch = ok["per_example"]
            median = ok["time_ms_median"] / batch
            lower = ((ok["time_ms_median"] - ok["time_ms_p20"]) / batch).clip(lower=0).fillna(0)
            upper = ((ok["time_ms_p80"] - ok["time_ms_median"]) / batch).clip(lower=0).fillna(0)
            colour = colours[name]
            ax_time.errorbar(
                ok["seq_len"], median, yerr=[lower, upper], color=colour, capsize=2, label=legend
            )
            memory = ok["peak_memory_bytes"] / 2**20
            ax_mem.plot(ok["seq_len"], memory, color=colour, label=legend)
            for ax, values in ((ax_time, median), (ax_mem, memory)):
                reduced = batch < full_batch
                ax.scatter(ok["seq_len"][~reduced], values[~reduced], s=12, color=colour)
                ax.scatter(
                    ok["seq_len"][reduced], values[reduced], s=12, facecolors="none", edgecolors=colour
                )
        for ax in (ax_time, ax_mem):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length N")
            ax.grid(True, which="both", alpha=0.3)
        ax_time.set_ylabel("time per example (ms)\nmedian per call / batch, bars p20-p80")
        ax_mem.set_ylabel("peak memory of a call (MiB)")
        fig.legend(
            *ax_time.get_legend_handles_labels(), loc="outside right upper", fontsize="x-small", frameon=False
        )
        fig.suptitle(
            f"{setting['bench']} bench, {setting['pass']}, {setting['device']}, {setting['dtype']}, "
            f"H={_number(setting['heads'])}, d={_number(setting['head_dim'])}, batch {_number(full_batch)}"
            + (" (hollow: smaller batch that fits)" if (group["per_example"] < full_batch).any() else "")
        )
        name = "_".join(
            ["efficiency", *(slug(setting[k]) for k in ("bench", "pass", "device", "dtype"))]
            + [f"H{_number(setting['heads'])}", f"d{_number(setting['head_dim'])}"]
        )
        paths.append(save_png(fig, Path(out_dir) / f"{name}.png"))
    return paths


def _number(value: object) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "na"
    return "na" if math.isnan(number) else f"{number:g}"
