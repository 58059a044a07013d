"""`lra sweep mk`: one trained MiTA checkpoint evaluated at other numbers of landmarks m and keys
per expert k, without retraining.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import attention_zoo

from .evaluation import DIAGNOSTIC_KEYS, EvalOptions, Evaluator, progress_bar
from .figures import (
    ExperimentResult,
    heatmap,
    new_figure,
    outline_cell,
    percent_text,
    save_figure,
    suptitle,
    write_table,
)
from .runs import Echo, TrainedRun, is_mita, load_run, quiet_echo

# The default (m, k) grid: powers of two from 8 to 64; the trained values are added to each axis (see `sweep_mk`).
DEFAULT_GRID = {"num_landmarks": (8, 16, 32, 64), "topk": (8, 16, 32, 64)}
GRID_AXES = {"m": "num_landmarks", "k": "topk", "num_landmarks": "num_landmarks", "topk": "topk"}
# Parameters whose values are learned weights of a given shape: m cannot change at evaluation.
LEARNED_LANDMARKS = ("learned", "avgpool+learned")


def parse_grid(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """`["m=8,16", "k=8,16"]` (or one item "m=8,16 k=8,16") -> {"num_landmarks": (8, 16), "topk": (8, 16)}.

    An axis that is not given is left out (the caller fills it). ValueError, one line, on an unknown
    or repeated axis, a value that is not a positive integer, or no axis at all.
    """
    example = "e.g. --grid m=8,16,32,64 k=8,16,32,64"
    grid: dict[str, tuple[int, ...]] = {}
    for item in (part for text in items for part in text.split()):
        axis, sep, values = item.partition("=")
        name = GRID_AXES.get(axis.strip())
        if not sep or name is None:
            raise ValueError(f"--grid takes AXIS=VALUES with axes m and k ({example}); got {item!r}")
        if name in grid:
            raise ValueError(f"--grid names axis {axis.strip()!r} twice ({example})")
        parsed = []
        for value in values.split(","):
            if not re.fullmatch(r"\s*\d+\s*", value) or int(value) < 1:
                raise ValueError(
                    f"--grid {axis.strip()} values must be positive integers ({example}); got {values!r}"
                )
            parsed.append(int(value))
        grid[name] = tuple(sorted(set(parsed)))
    if not grid:
        raise ValueError(f"--grid is empty ({example})")
    return grid


def mk_grid(
    run: TrainedRun, grid: Mapping[str, Sequence[int]] | None, include_trained: bool = True
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (m values, k values) to evaluate `run` at; ValueError where the run cannot take them."""
    if not is_mita(run.mechanism):
        mita_like = ", ".join(n for n in attention_zoo.names() if is_mita(attention_zoo.get(n)))
        raise ValueError(
            f"lra sweep mk needs a run trained with MiTA ({mita_like}); {run.run_dir} was trained with {run.label}"
        )
    trained = run.params.to_dict()
    learned = trained.get("landmarks") in LEARNED_LANDMARKS
    grid = dict(grid or {})
    m_values = tuple(
        grid.get("num_landmarks")
        or ((trained["num_landmarks"],) if learned else DEFAULT_GRID["num_landmarks"])
    )
    k_values = tuple(grid.get("topk") or DEFAULT_GRID["topk"])
    if learned and set(m_values) != {trained["num_landmarks"]}:
        raise ValueError(
            f"this run's landmark queries are learned parameters (landmarks={trained['landmarks']}, m="
            f"{trained['num_landmarks']}); m cannot change without retraining: --grid m={trained['num_landmarks']} k=..."
        )
    if include_trained:
        m_values += (trained["num_landmarks"],)
        k_values += (trained["topk"],)
    return tuple(sorted(set(m_values))), tuple(sorted(set(k_values)))


def sweep_mk(
    run_dir: str | Path,
    grid: Mapping[str, Sequence[int]] | None = None,
    opts: EvalOptions | None = None,
    *,
    include_trained: bool = True,
    echo: Echo = quiet_echo,
) -> ExperimentResult:
    """Evaluate a trained MiTA checkpoint at every (m, k) of the grid, without retraining.

    `grid` is {"num_landmarks": values, "topk": values} (`parse_grid`); a missing axis takes the
    default values 8, 16, 32, 64 (m stays at the trained value when the landmarks are learned).
    With `include_trained` the trained m and k are added to the axes, so the grid holds the run's
    own configuration as the reference. Every other parameter (routing, landmark construction,
    backend) stays as trained. Writes one eval record per cell, `mk-<checkpoint>-<split>.{md,csv}`
    and the heat map `mk-<checkpoint>-<split>.png` (trained cell outlined).
    """
    opts = opts or EvalOptions()
    evaluator = Evaluator(opts)
    run = load_run(run_dir, checkpoint=opts.checkpoint, data_dir=opts.data_dir)
    m_values, k_values = mk_grid(run, grid, include_trained)
    where = Path(opts.out) / "mk" / run.task / run.tag
    cells = [(m, k) for m in m_values for k in k_values]
    records = []
    with progress_bar(len(cells), f"sweep mk {run.label}", opts.quiet) as bar:
        for m, k in cells:
            params = dataclasses.replace(run.params, **{"num_landmarks": m, "topk": k})  # a MiTA dataclass
            path = where / f"{opts.checkpoint}-{opts.split}" / f"m{m}-k{k}.json"
            record = evaluator.run_eval("mk", run, run.mechanism, params, path)
            records.append(record)
            bar.update()
            echo(
                f"m={m} k={k}: {opts.split} accuracy {percent_text(record['accuracy'], 2)}% (n={record['n_examples']})"
            )
    frame = mk_frame(records)
    markdown = mk_markdown(frame, run, opts)
    stem = where / f"mk-{opts.checkpoint}-{opts.split}"
    paths = write_table(frame, markdown, stem)
    paths.append(plot_mk(frame, run, opts, stem.with_suffix(".png")))
    return ExperimentResult(records, markdown, paths)


def _trained_value(run: TrainedRun, name: str) -> Any:
    return run.params.to_dict()[name]


def mk_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per grid cell: m, k, keys per query, accuracy, loss, and the diagnostics if recorded."""
    rows = []
    for r in records:
        row = {
            "num_landmarks": r["attention_params"]["num_landmarks"],
            "topk": r["attention_params"]["topk"],
            "trained": r["attention_params"] == r["train_attention_params"],
            "attention_label": r["attention_label"],
            "keys_per_query": r["keys_per_query"],
            "accuracy": r["accuracy"],
            "loss": r["loss"],
            "n_examples": r["n_examples"],
            "chance_acc": r["chance_acc"],
        }
        diag = r.get("diagnostics") or {}
        row.update({key: diag.get(key) for key in DIAGNOSTIC_KEYS})
        rows.append(row)
    return pd.DataFrame(rows)


def mk_markdown(frame: pd.DataFrame, run: TrainedRun, opts: EvalOptions) -> str:
    m0, k0 = _trained_value(run, "num_landmarks"), _trained_value(run, "topk")
    n = int(frame["n_examples"].iloc[0])
    table = _grid_table(frame, "accuracy", lambda v: percent_text(v))
    lines = [
        f"## {run.task}: {run.label} (seed {run.seed}) at other (m, k) -- {opts.split} accuracy (%)",
        "",
        f"Checkpoint `{run.checkpoint_path}` ({opts.checkpoint}, step {run.step}), trained at m={m0}, k={k0} "
        f"(**bold**); rows m = num_landmarks, columns k = topk; {n} {opts.split} examples, chance "
        f"{percent_text(float(frame['chance_acc'].iloc[0]))}%. Every other parameter as trained.",
        "",
        table.to_markdown(disable_numparse=True),
        "",
    ]
    trained = frame[frame["trained"]]
    reference = (run.record or {}).get("test_acc" if opts.checkpoint == "best" else "test_acc_last")
    if not trained.empty and opts.split == "test" and not opts.limit and reference is not None:
        lines.append(
            f"Trained (m, k) here: {percent_text(float(trained['accuracy'].iloc[0]), 2)}%; the run's own record: "
            f"{percent_text(reference, 2)}%."
        )
    if frame["pruned_fraction"].notna().any():
        for key, title in (
            ("pruned_fraction", "pruned fraction (%)"),
            ("overlap", "overlap with own top-k (%)"),
        ):
            lines += [
                "",
                f"### {title}",
                "",
                _grid_table(frame, key, lambda v: percent_text(v)).to_markdown(disable_numparse=True),
            ]
    return "\n".join(lines).rstrip() + "\n"


def _grid_table(frame: pd.DataFrame, value: str, render: Callable[[float], str]) -> pd.DataFrame:
    ms, ks = sorted(frame["num_landmarks"].unique()), sorted(frame["topk"].unique())
    table = pd.DataFrame("", index=[f"m={m}" for m in ms], columns=[f"k={k}" for k in ks], dtype=object)
    for row in frame.itertuples():
        text = render(getattr(row, value))
        table.loc[f"m={row.num_landmarks}", f"k={row.topk}"] = f"**{text}**" if row.trained else text
    table.index.name = "m \\ k"
    return table


def plot_mk(frame: pd.DataFrame, run: TrainedRun, opts: EvalOptions, path: Path) -> Path:
    """Heat map of accuracy over (m, k), trained cell outlined; pruned fraction and overlap beside
    it when diagnostics were recorded."""
    panels = [("accuracy", f"{opts.split} accuracy (%)")]
    if frame["pruned_fraction"].notna().any():
        panels += [("pruned_fraction", "pruned fraction (%)"), ("overlap", "overlap with own top-k (%)")]
    ms, ks = sorted(frame["num_landmarks"].unique()), sorted(frame["topk"].unique())
    fig, axes = new_figure(
        1.0 + len(panels) * max(3.5, 0.8 * len(ks) + 1.5), max(3.5, 0.6 * len(ms) + 1.8), len(panels)
    )
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = (
            frame.pivot(index="num_landmarks", columns="topk", values=key).reindex(index=ms, columns=ks) * 100
        )
        heatmap(ax, fig, values.to_numpy(dtype=float), [str(k) for k in ks], [str(m) for m in ms], title)
        ax.set_xlabel("k (topk, keys per expert)")
        ax.set_ylabel("m (num_landmarks)")
        for row in frame[frame["trained"]].itertuples():
            outline_cell(ax, ks.index(row.topk), ms.index(row.num_landmarks), "trained")
    suptitle(
        fig,
        f"{run.task}: {run.label}, seed {run.seed}, evaluated at other (m, k) ({opts.checkpoint} checkpoint, "
        f"n={int(frame['n_examples'].iloc[0])}; red box: trained)",
    )
    return save_figure(fig, path)
