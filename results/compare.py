"""Side-by-side comparison of attentions on one task: accuracy and cost from the run records, and
paired tests against a reference attention.

`compare(runs, task, attentions, reference)` returns one row per (preset, attention label) with
the mean over the seeds that finished ok of test accuracy (with its 95% interval and n), best
validation accuracy, training throughput, peak memory and wall time, plus parameter count and
keys per query; throughput and memory also as ratios to the reference attention (default `full`,
else the first attention named). Against the reference, each attention's accuracy difference, its
95% interval and its p-value (results/stats.py: McNemar's exact test or a paired bootstrap when
both kept per-example predictions of the same test examples, otherwise an unpaired test, with the
reason), the p-values corrected with Holm over the attentions compared in each preset.
`format_comparison` and `format_tests` turn it into display strings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import SupportsFloat

import pandas as pd

from lra.io import atomic_write, atomic_write_text

from . import order as order_
from . import stats
from .leaderboard import accuracy_text, one_configuration
from .leaderboard import build as build_leaderboard
from .published import published_for
from .records import plugin_label
from .store import with_reported_accuracy

REFERENCE = "full"
# Columns of the tests against the reference (fractions like test_acc; NaN for the reference).
TEST_COLUMNS = [
    "reference",
    "diff_vs_reference",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "p_holm",
    "test",
    "paired",
    "unpaired",
]

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


def _matching(of_task: pd.DataFrame, wanted: str) -> list[str]:
    """The attention labels an entry names: the label itself, or failing that every label of that
    registry name (the exact label first)."""
    match = of_task[of_task["attention_label"] == wanted]
    if match.empty:
        match = of_task[of_task["attention"] == wanted]
    return sorted(match["attention_label"].unique(), key=lambda label: (label != wanted, label))


def compare(
    runs: pd.DataFrame, task: str, attentions: Sequence[str], reference: str | None = None
) -> pd.DataFrame:
    """One row per (preset, attention label) of `task` for the requested attentions, in the order
    given, the reference first when it was not named. An entry matches an attention label exactly
    (`mita(topk=64)`) or, failing that, every label of that registry name (`mita`). `reference`
    (same matching; default `full` when it has runs of the task, else the first attention named)
    is what ratios and tests are against. ValueError when the task or an attention has no runs.
    Test accuracy is the leaderboard's (`results.store.with_reported_accuracy`)."""
    runs = with_reported_accuracy(runs)
    of_task = runs[runs["task"] == task]
    if of_task.empty:
        known = ", ".join(sorted(runs["task"].dropna().unique())) or "none"
        raise ValueError(f"no runs of task {task!r} in the results; tasks with runs: {known}")
    if not attentions:
        raise ValueError("no attentions to compare; pass --attentions a,b,...")
    known = ", ".join(sorted(of_task["attention_label"].unique()))
    selected: list[str] = []
    for wanted in attentions:
        labels = _matching(of_task, wanted)
        if not labels:
            raise ValueError(
                f"no runs of attention {wanted!r} for task {task!r}; attentions with runs: {known}"
            )
        selected.extend(label for label in labels if label not in selected)
    if reference is not None:
        references = _matching(of_task, reference)
        if not references:
            raise ValueError(
                f"no runs of the reference attention {reference!r} for task {task!r}; attentions with runs: {known}"
            )
    else:
        references = _matching(of_task, REFERENCE) or selected[:1]
    reference_label = references[0]
    if reference_label not in selected:
        selected.insert(0, reference_label)
    rows = []
    for label in selected:
        for preset, group in of_task[of_task["attention_label"] == label].groupby("preset", dropna=False):
            rows.append(_row(label, preset, group))
    table = pd.DataFrame(rows)
    first = table[table["attention_label"] == reference_label].iloc[0]
    table["tokens_per_s_ratio"] = table["train_tokens_per_s"] / first["train_tokens_per_s"]
    # Memory compares within one kind of device only (CUDA allocations vs CPU resident growth).
    kinds = table["device"].map(_device_kind)
    same_kind = (kinds == _device_kind(first["device"])) & (kinds != "mixed")
    table["memory_ratio"] = (table["peak_memory_bytes"] / first["peak_memory_bytes"]).where(same_kind)
    return _with_tests(table, of_task, task, reference_label)


def _with_tests(table: pd.DataFrame, of_task: pd.DataFrame, task: str, reference: str) -> pd.DataFrame:
    """The table with each row's accuracy interval and its difference from the reference of its
    preset (`TEST_COLUMNS`; Holm over the attentions compared in the preset)."""
    lb = build_leaderboard(of_task)
    table.attrs["problems"] = list(lb.problems)  # predictions files that failed their check
    table = table.assign(
        acc_ci_low=math.nan, acc_ci_high=math.nan, n_test=math.nan, interval=None, reference=reference,
        diff_vs_reference=math.nan, diff_ci_low=math.nan, diff_ci_high=math.nan, p_value=math.nan,
        p_holm=math.nan, test=None, paired=None, unpaired=None,
    )  # fmt: skip
    for preset, rows in table.groupby("preset", dropna=False, sort=False):
        cells = lb.cells[(lb.cells["preset"] == preset) & (lb.cells["task"] == task)].set_index(
            "attention_label"
        )
        table_stats = lb.stats.get(preset)
        for index, label in rows["attention_label"].items():
            if label in cells.index:
                cell = cells.loc[label]
                table.loc[index, ["acc_ci_low", "acc_ci_high"]] = [
                    cell["ci_low"] / 100,
                    cell["ci_high"] / 100,
                ]
                table.loc[index, ["n_test", "interval"]] = [cell["n_test"], cell["interval"]]
        if table_stats is None or (reference, task) not in table_stats.samples:
            continue
        compared = [
            (index, label)
            for index, label in rows["attention_label"].items()
            if label != reference and (label, task) in table_stats.samples
        ]
        differences = [table_stats.cell_difference(task, label, reference) for _, label in compared]
        corrected, _ = stats.holm([d.p_value for d in differences])
        for (index, _), diff, p_holm in zip(compared, differences, corrected, strict=True):
            table.loc[index, ["diff_vs_reference", "diff_ci_low", "diff_ci_high", "p_value", "p_holm"]] = [
                diff.estimate, diff.low, diff.high, diff.p_value, p_holm
            ]  # fmt: skip
            table.loc[index, ["test", "paired", "unpaired"]] = [diff.test, diff.paired, diff.unpaired]
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


def _fmt(value: SupportsFloat | None, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(float(value) * scale, spec)


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Display strings: accuracy in % with its 95% interval, throughput in tokens/s, memory in MiB,
    ratios to the reference as ×."""
    first = str(table["reference"].iloc[0]) if "reference" in table else table.iloc[0]["attention_label"]
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
    out["Test acc (%) [95% CI]"] = [
        accuracy_text(100 * acc, 100 * low, 100 * high) if not math.isnan(acc) else "–"
        for acc, low, high in zip(table["test_acc"], table["acc_ci_low"], table["acc_ci_high"], strict=True)
    ]
    out["n test"] = [_fmt(v, ",.0f") for v in table["n_test"]]
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


def _p_text(value: float) -> str:
    if math.isnan(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:+.1f}".replace("-", "−")


def format_tests(table: pd.DataFrame) -> pd.DataFrame:
    """The tests against the reference as display strings, one row per compared attention (and
    preset): difference in points with its 95% interval, p-value, Holm-corrected p-value, test."""
    rows = table[table["attention_label"] != table["reference"]]
    out = pd.DataFrame(
        {
            "Attention": [
                plugin_label(label, p)
                for label, p in zip(rows["attention_label"], rows["plugin"], strict=True)
            ]
        }
    )
    if table["preset"].nunique(dropna=False) > 1:
        out["Preset"] = list(rows["preset"])
    reference = str(table["reference"].iloc[0])
    out[f"Δ acc vs {reference} (points) [95% CI]"] = [
        "–" if math.isnan(d) else f"{_signed(d)} [{_signed(low)}, {_signed(high)}]"
        for d, low, high in zip(
            rows["diff_vs_reference"], rows["diff_ci_low"], rows["diff_ci_high"], strict=True
        )
    ]
    out["p"] = [_p_text(v) for v in rows["p_value"]]
    out["p (Holm)"] = [_p_text(v) for v in rows["p_holm"]]
    out["Resolved at 0.05"] = [
        "–" if math.isnan(p) else ("yes" if p < stats.ALPHA else "no") for p in rows["p_holm"]
    ]
    out["Test"] = [
        "–" if not isinstance(test, str) else test + (" (paired)" if paired is True else "")
        for test, paired in zip(rows["test"], rows["paired"], strict=True)
    ]
    return out.reset_index(drop=True)


def tests_caption(table: pd.DataFrame, task: str) -> str:
    """What the tests block holds, and one line per attention compared unpaired saying why."""
    reference = str(table["reference"].iloc[0])
    compared = table[(table["attention_label"] != table["reference"]) & table["p_value"].notna()]
    presets = table["preset"].nunique(dropna=False)
    text = (
        f"Against {reference} on {task}: accuracy difference (points) with its 95% interval and the p-value of "
        "no difference; McNemar's exact test (one seed each) or a paired bootstrap over seeds and examples "
        "when both kept per-example predictions of the same test examples, otherwise an unpaired test (score "
        "test, independent bootstrap), which resolves fewer differences. p (Holm): corrected with Holm's method "
        f"for the {len(compared)} attentions compared" + (" in each preset" if presets > 1 else "") + "."
    )
    reasons = [
        part
        for why, paired in zip(compared["unpaired"], compared["paired"], strict=True)
        if paired is not True and isinstance(why, str)
        for part in why.split("; ")
    ]
    lines = [f"- not paired: {reason}" for reason in dict.fromkeys(reasons)]
    lines += [f"- never used: {problem}" for problem in table.attrs.get("problems", [])]
    return text + ("\n\n" + "\n".join(lines) if lines else "")


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
        f"Task {task}: means over seeds with status ok (test accuracy of the checkpoint the preset reports: "
        "best validation, lra the last; with its 95% interval: Clopper–Pearson for one seed, a bootstrap over "
        "seeds and examples for several; "
        "throughput and memory as recorded by each run, so compare runs made on the same device and --jobs; "
        "peak memory: CUDA allocations, or on CPU the growth of resident memory from just before the model "
        "was built; memory ratios only between runs on the same kind of device)."
    )
    fmt = "github" if markdown else "simple"
    body = format_comparison(table).to_markdown(index=False, tablefmt=fmt, disable_numparse=True)
    text = f"{caption}\n\n{body}\n"
    tests = format_tests(table)
    if not tests.empty:
        heading = "## " if markdown else ""
        text += (
            f"\n{heading}Tests against {table['reference'].iloc[0]}\n\n"
            + tests.to_markdown(index=False, tablefmt=fmt, disable_numparse=True)
            + "\n\n"
            + tests_caption(table, task)
            + "\n"
        )
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
    of_task = runs[runs["task"] == task]
    order = order_.from_records(of_task)
    pairs = sorted(
        of_task[["attention", "attention_label"]].drop_duplicates().itertuples(index=False),
        key=lambda p: (order.attention_key(p[0]), p[1]),
    )
    return [label for _, label in pairs]
