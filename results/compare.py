"""Side-by-side comparison of attentions on one task: accuracy and cost from the run records.

`compare(runs, task, attentions)` returns one row per (preset, attention label) with the mean
over the seeds that finished ok of test accuracy, best validation accuracy, training throughput,
peak memory and wall time, plus parameter count and keys per query; throughput and memory also as
ratios to the first attention named. `format_comparison` turns it into display strings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import pandas as pd

from lra.io import atomic_write, atomic_write_text

from .leaderboard import ATTENTION_ORDER, one_configuration
from .published import published_for
from .records import plugin_label
from .store import with_reported_accuracy

NUMERIC_COLUMNS = [
    "test_acc",
    "test_acc_std",
    "best_val_acc",
    "train_tokens_per_s",
    "train_steps_per_s",
    "peak_memory_bytes",
    "wall_time_s",
    "params",
    "keys_per_query",
    "seq_len",
]


def compare(runs: pd.DataFrame, task: str, attentions: Sequence[str]) -> pd.DataFrame:
    """One row per (preset, attention label) of `task` for the requested attentions, in the order
    given. An entry matches an attention label exactly (`mita(topk=64)`) or, failing that, every
    label of that registry name (`mita`). ValueError when the task or an attention has no runs.
    Test accuracy is the leaderboard's (`results.store.with_reported_accuracy`)."""
    runs = with_reported_accuracy(runs)
    of_task = runs[runs["task"] == task]
    if of_task.empty:
        known = ", ".join(sorted(runs["task"].dropna().unique())) or "none"
        raise ValueError(f"no runs of task {task!r} in the results; tasks with runs: {known}")
    if not attentions:
        raise ValueError("no attentions to compare; pass --attentions a,b,...")
    selected = []
    for wanted in attentions:
        match = of_task[of_task["attention_label"] == wanted]
        if match.empty:
            match = of_task[of_task["attention"] == wanted]
        if match.empty:
            known = ", ".join(sorted(of_task["attention_label"].unique()))
            raise ValueError(
                f"no runs of attention {wanted!r} for task {task!r}; attentions with runs: {known}"
            )
        labels = sorted(match["attention_label"].unique(), key=lambda label: (label != wanted, label))
        selected.extend(label for label in labels if label not in selected)
    rows = []
    for label in selected:
        for preset, group in of_task[of_task["attention_label"] == label].groupby("preset", dropna=False):
            rows.append(_row(label, preset, group))
    table = pd.DataFrame(rows)
    first = table.iloc[0]
    table["tokens_per_s_ratio"] = table["train_tokens_per_s"] / first["train_tokens_per_s"]
    # Memory compares within one kind of device only (CUDA allocations vs CPU resident growth).
    kinds = table["device"].map(_device_kind)
    same_kind = (kinds == _device_kind(first["device"])) & (kinds != "mixed")
    table["memory_ratio"] = (table["peak_memory_bytes"] / first["peak_memory_bytes"]).where(same_kind)
    return table


def _device_kind(device: object) -> str:
    names = {name.strip() for name in str(device).split(",")}
    return "cpu" if names == {"cpu"} else "mixed" if "cpu" in names else "accelerator"


def _row(label: str, preset: object, group: pd.DataFrame) -> dict[str, object]:
    group, _ = one_configuration(group)  # as the leaderboard: the newest configuration's runs only
    ok = group[group["status"] == "ok"]
    basis = ok if not ok.empty else group
    counts = group["status"].value_counts()
    row: dict[str, object] = {
        "attention_label": label,
        "attention": group["attention"].iloc[0],
        "preset": preset,
        "seeds": len(ok),
        "runs": ", ".join(f"{n} {status}" for status, n in counts.items()),
        "device": ", ".join(sorted({str(d) for d in basis["device"].dropna()})),
        "plugin": next((p for p in group.reindex(columns=["plugin"])["plugin"] if isinstance(p, str)), None),
    }
    for column in NUMERIC_COLUMNS:
        # accuracy as the leaderboard reports it (results.records.reported_accuracy_field)
        source = "reported_acc" if column in ("test_acc", "test_acc_std") else column
        values = pd.to_numeric(ok[source] if source in ("reported_acc", "best_val_acc") else basis[source])
        values = values.dropna()
        if column == "test_acc_std":
            row[column] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        else:
            row[column] = float(values.mean()) if len(values) else math.nan
    return row


def _fmt(value: object, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(float(value) * scale, spec)


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Display strings: accuracy in %, throughput in tokens/s, memory in MiB, ratios as ×."""
    first = table.iloc[0]["attention_label"]
    plugins = table["plugin"] if "plugin" in table else [None] * len(table)
    out = pd.DataFrame(
        {
            "Attention": [
                plugin_label(label, p) for label, p in zip(table["attention_label"], plugins, strict=True)
            ]
        }
    )
    if table["preset"].nunique(dropna=False) > 1:
        out["Preset"] = table["preset"]
    out["Test acc (%)"] = [
        _fmt(acc, ".2f", 100) + ("" if math.isnan(std) else f" ± {std * 100:.2f}")
        for acc, std in zip(table["test_acc"], table["test_acc_std"], strict=True)
    ]
    out["Best val (%)"] = [_fmt(v, ".2f", 100) for v in table["best_val_acc"]]
    out["Tokens/s"] = [_fmt(v, ",.0f") for v in table["train_tokens_per_s"]]
    out[f"× tokens/s vs {first}"] = [_fmt(v, ".2f") for v in table["tokens_per_s_ratio"]]
    out["Peak mem (MiB)"] = [_fmt(v, ",.1f", 1 / 2**20) for v in table["peak_memory_bytes"]]
    out[f"× mem vs {first}"] = [_fmt(v, ".2f") for v in table["memory_ratio"]]
    out["Params"] = [_fmt(v, ",.0f") for v in table["params"]]
    out["Keys/query"] = [_fmt(v, ".0f") for v in table["keys_per_query"]]
    out["Seq len"] = [_fmt(v, ".0f") for v in table["seq_len"]]
    out["Wall (s)"] = [_fmt(v, ".0f") for v in table["wall_time_s"]]
    out["Runs"] = table["runs"]
    out["Device"] = table["device"]
    return out


def published_block(published: pd.DataFrame, task: str, attentions: Sequence[str]) -> pd.DataFrame:
    """The published accuracies on `task` of the given registry names, one row per paper row."""
    rows = published_for(published, attentions)
    rows = rows[rows[task] != ""] if task in rows.columns else rows.iloc[0:0]
    return pd.DataFrame(
        {
            "Model": rows["model"],
            "Attention": rows["attention"],
            f"{task} (%)": rows[task] if task in rows.columns else [],
            "Source": rows["source"],
            "Protocol": rows["protocol"],
        }
    )


def render_comparison(
    table: pd.DataFrame, task: str, *, markdown: bool = False, published: pd.DataFrame | None = None
) -> str:
    """The comparison as a text or markdown table with a one-line caption, followed by the published
    accuracies of the compared attentions on the task (when `published` is given and has any)."""
    caption = (
        f"Task {task}: means over seeds with status ok (test accuracy of the checkpoint the preset reports: best validation, lra the last; "
        "throughput and memory as recorded by each run, so compare runs made on the same device and --jobs; "
        "peak memory: CUDA allocations, or on CPU the growth of resident memory from just before the model "
        "was built; memory ratios only between runs on the same kind of device)."
    )
    fmt = "github" if markdown else "simple"
    body = format_comparison(table).to_markdown(index=False, tablefmt=fmt, disable_numparse=True)
    text = f"{caption}\n\n{body}\n"
    block = None if published is None else published_block(published, task, list(table["attention"].unique()))
    if block is not None and not block.empty:
        heading = "## " if markdown else ""
        text += (
            f"\n{heading}Published results (not measured here)\n\nReported in the papers below with their own "
            "code, the real LRA data and full training budgets; for orientation only.\n\n"
            + block.to_markdown(index=False, tablefmt=fmt, disable_numparse=True)
            + "\n"
        )
    return text


def write_comparison(
    table: pd.DataFrame,
    task: str,
    *,
    csv: str | os.PathLike[str] | None = None,
    markdown: str | os.PathLike[str] | None = None,
    published: pd.DataFrame | None = None,
) -> None:
    """Atomically write the numeric comparison as CSV and / or the display table as markdown (with the
    published block; the CSV holds measured rows only)."""
    if csv is not None:
        atomic_write(csv, lambda fh: table.to_csv(fh, index=False, float_format="%.6g"))
    if markdown is not None:
        atomic_write_text(markdown, render_comparison(table, task, markdown=True, published=published))


def default_attentions(runs: pd.DataFrame, task: str) -> list[str]:
    """Every attention label with runs of `task`, in leaderboard order."""
    of_task = runs[runs["task"] == task][["attention", "attention_label"]].drop_duplicates()
    pairs = sorted(
        of_task.itertuples(index=False),
        key=lambda p: (
            ATTENTION_ORDER.index(p[0]) if p[0] in ATTENTION_ORDER else len(ATTENTION_ORDER),
            p[1],
        ),
    )
    return [label for _, label in pairs]
