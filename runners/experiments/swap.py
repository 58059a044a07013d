"""`lra swap`: checkpoints evaluated with other attentions, one run (`swap_run`) or the train x
evaluation matrix over the finished runs of one task (`swap_matrix`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import attention_zoo
from lra.io import slug

from .evaluation import EvalOptions, Evaluator, progress_bar
from .figures import (
    ExperimentResult,
    count_text,
    heatmap,
    new_figure,
    outline_cell,
    percent_text,
    save_figure,
    suptitle,
    write_table,
)
from .runs import Echo, TrainedRun, find_runs, load_run, quiet_echo, resolve_one, spec_under_preset


def _swap_path(opts: EvalOptions, run: TrainedRun, mechanism: attention_zoo.Mechanism, params: Any) -> Path:
    return (
        Path(opts.out)
        / "swap"
        / run.task
        / run.tag
        / f"{opts.checkpoint}-{opts.split}"
        / f"{slug(mechanism.slug(params))}.json"
    )


def swap_run(
    run_dir: str | Path,
    attentions: Sequence[str],
    opts: EvalOptions | None = None,
    *,
    attn_params: Mapping[str, Mapping[str, Any]] | None = None,
    echo: Echo = quiet_echo,
) -> ExperimentResult:
    """Evaluate one checkpoint with each of `attentions` (specs such as `mita(topk=64)`, with
    `attn_params` per name, resolved against the run's preset: see `resolve_attentions`) and,
    first, with the attention it was trained with (the reference of the differences).

    Writes one eval record per attention and `swap-<checkpoint>-<split>.{md,csv,png}` in the run's
    folder under `<out>/swap/<task>/`: accuracy, the difference to the trained attention, keys
    per query, and the parameters that were initialised or dropped.
    """
    opts = opts or EvalOptions()
    if not attentions:
        raise ValueError("lra swap needs at least one --attention to evaluate with, e.g. --attention full")
    evaluator = Evaluator(opts)
    run = load_run(run_dir, checkpoint=opts.checkpoint, data_dir=opts.data_dir)
    todo, notes = [(run.mechanism, run.params)], []
    for spec in attentions:
        mechanism, params = resolve_one(spec, attn_params, run.preset.attention)
        if mechanism.label(params) == run.label:
            notes.append(f"- {spec} in preset {run.preset.name} is {run.label}, the trained attention.")
        elif all(mechanism.label(params) != m.label(p) for m, p in todo):
            todo.append((mechanism, params))
    for note in notes:
        echo(note[2:])
    records = []
    with progress_bar(len(todo), f"swap {run.label}", opts.quiet) as bar:
        for mechanism, params in todo:
            record = evaluator.run_eval(
                "swap", run, mechanism, params, _swap_path(opts, run, mechanism, params)
            )
            records.append(record)
            bar.update()
            echo(_describe_swap(record))
    frame = swap_frame(records)
    markdown = swap_markdown(frame, records, run, opts, notes)
    stem = Path(opts.out) / "swap" / run.task / run.tag / f"swap-{opts.checkpoint}-{opts.split}"
    paths = write_table(frame, markdown, stem)
    paths.append(plot_swap(frame, run, opts, stem.with_suffix(".png")))
    return ExperimentResult(records, markdown, paths)


def _describe_swap(record: dict[str, Any]) -> str:
    text = (
        f"{record['train_attention_label']} -> {record['attention_label']}: {record['split']} accuracy "
        f"{percent_text(record['accuracy'], 2)}% (n={record['n_examples']})"
    )
    if record["missing_parameters"]:
        text += f"; initialised {len(record['missing_parameters'])} parameters the checkpoint lacks"
    if record["unused_parameters"]:
        text += f"; dropped {len(record['unused_parameters'])} checkpoint parameters"
    return text


def swap_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per evaluation: training and evaluation attention, accuracy, loss, keys per query,
    the initialised / dropped parameters (';'-joined), and the difference to the same run
    evaluated with its own attention (percentage points) where that is among the records."""
    rows = []
    for r in records:
        rows.append(
            {
                "run_id": r["run_id"],
                "preset": r["preset"],
                "seed": r["seed"],
                "train_attention_label": r["train_attention_label"],
                "attention_label": r["attention_label"],
                "trained": r["attention_label"] == r["train_attention_label"],
                "accuracy": r["accuracy"],
                "loss": r["loss"],
                "keys_per_query": r["keys_per_query"],
                "n_examples": r["n_examples"],
                "chance_acc": r["chance_acc"],
                "missing_parameters": "; ".join(r["missing_parameters"]),
                "unused_parameters": "; ".join(r["unused_parameters"]),
                "run_dir": r["run_dir"],
            }
        )
    frame = pd.DataFrame(rows)
    own = frame[frame["trained"]].set_index("run_dir")["accuracy"]
    frame["delta_vs_trained_pp"] = [
        100 * (acc - own[d]) if d in own.index else float("nan")
        for acc, d in zip(frame["accuracy"], frame["run_dir"], strict=True)
    ]
    return frame


def _parameter_notes(records: Sequence[dict[str, Any]]) -> list[str]:
    notes, seen = [], set()
    for r in records:
        for key, verb in (("missing_parameters", "initialised (not in the checkpoint; seeded with the run's seed)"),
                          ("unused_parameters", "dropped (in the checkpoint, not used by this attention)")):  # fmt: skip
            names = r[key]
            if names and (r["attention_label"], key, tuple(names)) not in seen:
                seen.add((r["attention_label"], key, tuple(names)))
                notes.append(
                    f"- {r['train_attention_label']} -> {r['attention_label']}: {verb}: {', '.join(names)}"
                )
    return notes


def swap_markdown(
    frame: pd.DataFrame,
    records: Sequence[dict[str, Any]],
    run: TrainedRun,
    opts: EvalOptions,
    notes: Sequence[str] = (),
) -> str:
    table = pd.DataFrame(
        {
            "evaluated with": [
                f"{label} (trained)" if t else label
                for label, t in zip(frame["attention_label"], frame["trained"], strict=True)
            ],
            f"{opts.split} acc (%)": [percent_text(v, 2) for v in frame["accuracy"]],
            "Δ vs trained (pp)": [
                "" if t else f"{d:+.2f}"
                for d, t in zip(frame["delta_vs_trained_pp"], frame["trained"], strict=True)
            ],
            "loss": [f"{v:.4f}" for v in frame["loss"]],
            "keys/query": [count_text(v) for v in frame["keys_per_query"]],
            "initialised": [str(len(r["missing_parameters"])) for r in records],
            "dropped": [str(len(r["unused_parameters"])) for r in records],
        }
    )
    if any(r["diagnostics"] for r in records):  # MiTA routing on the first --diag-batches batches
        for key, title in (("pruned_fraction", "pruned (%)"), ("overlap", "overlap (%)")):
            table[title] = [percent_text((r["diagnostics"] or {}).get(key)) for r in records]
    lines = [
        f"## {run.task}: checkpoint trained with {run.label} (seed {run.seed}), evaluated with other attentions",
        "",
        f"Checkpoint `{run.checkpoint_path}` ({opts.checkpoint}, step {run.step}); {int(frame['n_examples'].iloc[0])} "
        f"{opts.split} examples, chance {percent_text(float(frame['chance_acc'].iloc[0]))}%. Only the attention changes; "
        "every weight comes from the checkpoint except the ones listed below.",
        "",
        table.to_markdown(index=False, disable_numparse=True),
    ]
    notes = [*notes, *_parameter_notes(records)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines).rstrip() + "\n"


def plot_swap(frame: pd.DataFrame, run: TrainedRun, opts: EvalOptions, path: Path) -> Path:
    """Horizontal bars: accuracy with each evaluation attention, the trained one highlighted."""
    fig, (ax,) = new_figure(8.0, max(2.5, 0.45 * len(frame) + 1.5))
    labels = list(frame["attention_label"])
    values = list(frame["accuracy"] * 100)
    colours = ["tab:orange" if t else "tab:blue" for t in frame["trained"]]
    ax.barh(range(len(labels)), values, color=colours)
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:.1f}", va="center", fontsize="small")
    ax.set_yticks(
        range(len(labels)),
        [f"{x} (trained)" if t else x for x, t in zip(labels, frame["trained"], strict=True)],
    )
    ax.invert_yaxis()
    chance = float(frame["chance_acc"].iloc[0]) * 100
    ax.axvline(chance, color="black", linestyle="dashed", linewidth=1, label="chance")
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"{opts.split} accuracy (%)")
    ax.legend(fontsize="small", loc="lower right")
    suptitle(fig, f"{run.task}: trained with {run.label} (seed {run.seed}), evaluated with other attentions")
    return save_figure(fig, path)


def swap_matrix(
    runs_root: str | Path,
    attentions: Sequence[str] | None = None,
    opts: EvalOptions | None = None,
    *,
    attn_params: Mapping[str, Mapping[str, Any]] | None = None,
    task: str | None = None,
    echo: Echo = quiet_echo,
) -> ExperimentResult:
    """Every finished run of one task under `runs_root`, evaluated with every attention: the matrix
    train attention x evaluation attention.

    Rows and columns are attention specs relative to each run's preset (`spec_under_preset`):
    column `mita` is MiTA with the budget of each run's own preset, so every run is evaluated with
    every column and a run trained with a column's attention is on the diagonal. The columns
    default to the attentions the runs were trained with (a square matrix). A cell is the mean
    over the seeds of that training attention; a list under the table says what each spec is in
    each preset where that is not the spec itself. Writes one eval record per (run, attention) and
    `<out>/swap/<task>/matrix-<checkpoint>-<split>.{md,csv,png}`.
    """
    opts = opts or EvalOptions()
    evaluator = Evaluator(opts)
    runs = [
        load_run(d, checkpoint=opts.checkpoint, data_dir=opts.data_dir) for d in find_runs(runs_root, task)
    ]
    runs.sort(key=lambda r: (r.preset.name, r.label, r.seed))
    own = {run.run_dir: spec_under_preset(run.mechanism, run.params, run.preset.attention) for run in runs}
    columns = list(attentions) if attentions else list(dict.fromkeys(own.values()))
    several_presets = len({run.preset.name for run in runs}) > 1
    records, cells, legend = [], [], {}
    with progress_bar(len(runs) * len(columns), "swap matrix", opts.quiet) as bar:
        for run in runs:
            row = f"{own[run.run_dir]} [{run.preset.name}]" if several_presets else own[run.run_dir]
            for column in columns:
                mechanism, params = resolve_one(column, attn_params, run.preset.attention)
                if mechanism.label(params) != column:
                    legend[(run.preset.name, column)] = mechanism.label(params)
                path = _swap_path(opts, run, mechanism, params)
                record = evaluator.run_eval("swap", run, mechanism, params, path)
                records.append(record)
                cells.append((row, column))
                bar.update()
                echo(_describe_swap(record) + f" [{run.run_dir}]")
    frame = swap_frame(records)
    frame["row"], frame["column"] = [row for row, _ in cells], [column for _, column in cells]
    matrix = matrix_table(frame, columns)
    notes = [f"- {column} in preset {preset}: {label}" for (preset, column), label in legend.items()]
    markdown = matrix_markdown(matrix, frame, records, runs[0].task, opts, notes)
    stem = Path(opts.out) / "swap" / runs[0].task / f"matrix-{opts.checkpoint}-{opts.split}"
    paths = write_table(frame, markdown, stem)
    paths.append(plot_matrix(matrix, frame, runs[0].task, opts, stem.with_suffix(".png")))
    return ExperimentResult(records, markdown, paths)


def matrix_table(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean, std and count of accuracy per (training row, evaluation column)."""
    stats = frame.groupby(["row", "column"], sort=False)["accuracy"].agg(["mean", "std", "count"])
    rows = list(dict.fromkeys(frame["row"]))
    return stats.reindex(pd.MultiIndex.from_product([rows, list(columns)], names=["row", "column"]))


def _diagonal(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """(row, column) cells where runs were evaluated with their own attention."""
    own = frame[frame["trained"]]
    return set(zip(own["row"], own["column"], strict=True))


def matrix_markdown(
    matrix: pd.DataFrame,
    frame: pd.DataFrame,
    records: Sequence[dict[str, Any]],
    task: str,
    opts: EvalOptions,
    legend: Sequence[str] = (),
) -> str:
    rows = list(dict.fromkeys(matrix.index.get_level_values("row")))
    columns = list(dict.fromkeys(matrix.index.get_level_values("column")))
    table = pd.DataFrame("", index=rows, columns=columns, dtype=object)
    for (row, column), stat in matrix.iterrows():
        if pd.isna(stat["mean"]):
            text = "–"
        else:
            text = percent_text(stat["mean"])
            if stat["count"] > 1:
                text += f" ± {100 * stat['std']:.1f}"
        table.loc[row, column] = f"**{text}**" if (row, column) in _diagonal(frame) else text
    table.index.name = "trained with \\ evaluated with"
    seeds = frame.groupby("row")["seed"].nunique()
    lines = [
        f"## {task}: accuracy (%) of checkpoints trained with one attention and evaluated with another",
        "",
        f"{opts.split} split ({int(frame['n_examples'].iloc[0])} examples), {opts.checkpoint} checkpoints; rows: training "
        "attention, columns: evaluation attention, **bold**: the training attention itself; mean ± std over seeds "
        f"({', '.join(f'{row}: {n}' for row, n in seeds.items())}). Attentions are written relative to the "
        "budget of each run's preset (e.g. `mita` is MiTA as that preset trains it); the exact parameters follow.",
        "",
        table.to_markdown(disable_numparse=True),
    ]
    notes = [*legend, *_parameter_notes(records)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines).rstrip() + "\n"


def plot_matrix(matrix: pd.DataFrame, frame: pd.DataFrame, task: str, opts: EvalOptions, path: Path) -> Path:
    """Heat map train attention x evaluation attention, the diagonal (own attention) outlined."""
    rows = list(dict.fromkeys(matrix.index.get_level_values("row")))
    columns = list(dict.fromkeys(matrix.index.get_level_values("column")))
    values = matrix["mean"].to_numpy(dtype=float).reshape(len(rows), len(columns)) * 100
    fig, (ax,) = new_figure(max(5.0, 1.4 * len(columns) + 3.5), max(3.0, 0.6 * len(rows) + 2.2))
    heatmap(ax, fig, values, columns, rows, f"{opts.split} accuracy (%), mean over seeds")
    ax.invert_yaxis()
    for row, column in _diagonal(frame):
        outline_cell(ax, columns.index(column), rows.index(row))
    ax.set_xlabel("evaluated with")
    ax.set_ylabel("trained with")
    suptitle(
        fig,
        f"{task}: checkpoints evaluated with other attentions ({opts.checkpoint} checkpoints; red box: own attention)",
    )
    return save_figure(fig, path)
