"""`lra report`: one self-contained HTML page of a results directory, to send to a colleague.

    path = write_report("lra_runs")          # lra_runs/report.html

The page (`REPORT_NAME`, from the Jinja2 template ``results/templates/report.html.j2``, tables by
pandas' own `to_html`) holds, for every preset: the leaderboard as the tables show it (marks
included) and, folded, every number of `leaderboard.csv` for that preset -- both built from the
leaderboard's frames column by column, so that columns added there appear here unchanged; the
accuracy–cost frontier tables with their captions; every figure (`results.plots.plot_all`, written
to ``<dir>/plots/`` as `lra plot` does, and inlined as base64 PNG); the efficiency tables of every
bench call setting (results/cost_tables.py); each run's configuration and provenance (commit,
versions, device, data, plugin, configuration hash, the resolved configuration); and the commands
that reproduce it. It opens offline: no external file, script or font; tables sort by a click on a
column header (a few lines of inline script); details fold with `<details>`.

No torch import: this reads records only.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import atomic_write_text

from . import frontier as frontier_
from . import leaderboard, plots
from .cost_tables import bench_tables, format_length, ratio_table, table_notes
from .records import plugin_label
from .store import Store, load

REPORT_NAME = "report.html"
TEMPLATE = "report.html.j2"
# Columns of the provenance table (one row per run), in this order, where the records have them.
PROVENANCE_COLUMNS = (
    "run_id", "preset", "status", "steps", "reported_acc", "device", "world_size", "data_source", "plugin",
    "config_hash", "git_commit", "package_version", "torch_version", "triton_version", "started_at",
    "finished_at", "wall_time_s",
)  # fmt: skip


def _html(frame: pd.DataFrame, *, sortable: bool = True, index: bool = False) -> str:
    """A table as pandas writes it (values escaped), sortable by a click on its headers."""
    classes = ["table", "sortable"] if sortable else ["table"]
    return frame.to_html(index=index, escape=True, na_rep="–", border=0, classes=classes, float_format=_float)


def _float(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure_caption(path: Path) -> str:
    """What a figure of `plots.plot_all` shows, from its file name."""
    kind, _, rest = path.stem.partition("_")
    what = {
        "accuracy": "Test accuracy per task and attention",
        "curves": "Validation accuracy during training",
        "efficiency": "Time and peak memory against sequence length",
        "frontier": "Accuracy against cost",
    }.get(kind, kind)
    return f"{what} ({rest.replace('_', ', ')})" if rest else what


def _leaderboards(lb: leaderboard.Leaderboard) -> list[dict[str, Any]]:
    wide = leaderboard.wide(lb)
    out = []
    for preset in lb.presets:
        numbers = wide[wide["preset"] == preset].drop(columns=["preset"]).dropna(axis=1, how="all")
        out.append(
            {
                "preset": preset,
                "table": _html(leaderboard.table(lb, preset, markdown=False)),
                "numbers": _html(numbers.reset_index(drop=True)),
                "data": _data_sources(lb, preset),
            }
        )
    return out


def _data_sources(lb: leaderboard.Leaderboard, preset: str) -> list[str]:
    """What data each task of a preset's table read (the records' `data_source`)."""
    cells = lb.cells[lb.cells["preset"] == preset]
    return [
        f"{lb.task_title(task)}: {', '.join(sorted({str(s) for s in mine['data_source'] if s}))}"
        for task, mine in ((t, cells[cells["task"] == t]) for t in lb.tasks(preset))
        if mine["data_source"].notna().any()
    ]


def _frontiers(fr: frontier_.Frontier) -> list[dict[str, Any]]:
    out = []
    for preset in fr.presets:
        tasks = fr.tasks(preset)
        panels = [
            (frontier_.panel_title(fr, preset, panel), _html(frontier_.table(fr, preset, panel)))
            for panel in fr.panels(preset)
            if not (panel != frontier_.AVG and len(tasks) == 1)
        ]
        out.append({"preset": preset, "caption": fr.caption(preset), "panels": panels})
    return out


def _cost_groups(efficiency: pd.DataFrame) -> list[dict[str, Any]]:
    """The efficiency tables of every measurement setting: the records under one
    `efficiency/<bench>/<device>/<config>/` folder, as `lra bench` wrote its tables."""
    if efficiency.empty:
        return []
    settings = efficiency["path"].map(lambda p: str(Path(p).parents[1]))
    out = []
    for setting, group in efficiency.groupby(settings, sort=True):
        rows = [{k: v for k, v in r.items() if not _missing(v)} for r in group.to_dict("records")]
        frame = ratio_table(rows)
        bench = str(group["bench"].iloc[0])
        lengths = sorted(int(n) for n in pd.to_numeric(group["seq_len"]).dropna().unique())
        batch = _requested_batch(group)
        title = (
            f"{bench} bench on {group['device'].iloc[0]}: {Path(setting).name} "
            f"(N = {', '.join(format_length(n) for n in lengths)})"
        )
        tables = [
            (heading, _html(table.reset_index()))
            for heading, table in bench_tables(frame, bench, lengths, batch)
        ]
        out.append({"title": title, "tables": tables, "notes": table_notes(frame)})
    return out


def _requested_batch(group: pd.DataFrame) -> int:
    """The batch a bench call was asked for (the model bench records it; the attention bench's is its batch)."""
    requested = (
        pd.to_numeric(group["batch_requested"], errors="coerce") if "batch_requested" in group else None
    )
    if requested is None or requested.isna().all():
        requested = pd.to_numeric(group["batch"], errors="coerce")
    return int(requested.max())


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _runs(runs: pd.DataFrame) -> tuple[str, list[dict[str, str]]]:
    """The provenance table (one row per run) and each run's resolved configuration as JSON."""
    if runs.empty:
        return "", []
    columns = [c for c in PROVENANCE_COLUMNS if c in runs]
    table = runs[columns].copy()
    if "reported_acc" in table:
        table["reported_acc"] = (100 * pd.to_numeric(table["reported_acc"], errors="coerce")).round(2)
        table = table.rename(columns={"reported_acc": "accuracy (%)"})
    configs = [
        {
            "run_id": str(row["run_id"]),
            "config": json.dumps(row["config"], indent=2, sort_keys=True, default=str),
        }
        for row in runs.to_dict("records")
        if isinstance(row.get("config"), dict)
    ]
    return _html(table.reset_index(drop=True)), configs


def _suite_command(root: Path) -> list[str]:
    """The `lra suite` command of `<root>/suite.json` (what `runners.suite` records), or []."""
    try:
        recorded = json.loads((root / "suite.json").read_text())
    except (OSError, ValueError):
        return []
    suite = recorded.get("suite") or {}
    args = ["lra", "suite", "--preset", str(suite.get("preset", "quick"))]
    if suite.get("tasks"):
        args += ["--tasks", ",".join(suite["tasks"])]
    if suite.get("attentions"):
        args += ["--attentions", ",".join(suite["attentions"])]
    args += ["--seeds", ",".join(str(s) for s in suite.get("seeds") or [0])]
    for plugin in recorded.get("plugins") or []:
        args += ["--plugin", str(plugin.get("module"))]
    for name, params in sorted((suite.get("attn_params") or {}).items()):
        for key, value in sorted(params.items()):
            args += ["--attn-param", f"{name}.{key}={value}"]
    for key, value in sorted((suite.get("overrides") or {}).items()):
        args += ["--set", f"{key}={value}"]
    for option, key in (("--max-steps", "max_steps"), ("--checkpoint-every", "checkpoint_every"),
                        ("--source", "source"), ("--jobs", "jobs")):  # fmt: skip
        if suite.get(key) not in (None, 1 if key == "jobs" else None):
            args += [option, str(suite[key])]
    if suite.get("device") not in (None, "auto"):
        args += ["--device", str(suite["device"])]
    for logger in suite.get("log") or []:
        args += ["--log", str(logger)]
    return [shlex.join([*args, "--out", str(root)])]


def _bench_commands(efficiency: pd.DataFrame, root: Path) -> list[str]:
    """One `lra bench` command per measurement setting of the efficiency records."""
    if efficiency.empty:
        return []
    commands = []
    settings = efficiency["path"].map(lambda p: str(Path(p).parents[1]))
    for _, group in efficiency.groupby(settings, sort=True):
        bench = str(group["bench"].iloc[0])
        if bench not in ("attention", "model"):
            continue
        labels = list(dict.fromkeys(str(label) for label in group["attention_label"]))
        lengths = sorted(int(n) for n in pd.to_numeric(group["seq_len"]).dropna().unique())
        args = ["lra", "bench", bench, "--attentions", ",".join(labels)]
        if "plugin" in group:
            for module in sorted({str(m) for m in group["plugin"].dropna()}):
                args += ["--plugin", module]
        args += ["--lengths", ",".join(str(n) for n in lengths), "--batch", str(_requested_batch(group))]
        if bench == "attention":
            row = group.iloc[0]
            args += [
                "--heads",
                f"{row['heads']:g}",
                "--head-dim",
                f"{row['head_dim']:g}",
                "--dtype",
                str(row["dtype"]),
            ]
        device = "cpu" if str(group["device"].iloc[0]) == "cpu" else "cuda"
        commands.append(shlex.join([*args, "--device", device, "--out", str(root)]))
    return commands


def _environment(st: Store) -> list[tuple[str, str]]:
    """What the numbers depend on, summed up: machines, commits and versions (every distinct value)."""
    frames = [f for f in (st.runs, st.efficiency) if not f.empty]
    rows = []
    for name, column in (("Devices", "device"), ("CPU models", "cpu_model"), ("Commits", "git_commit"),
                         ("Package versions", "package_version"), ("torch", "torch_version"),
                         ("Triton", "triton_version")):  # fmt: skip
        values = sorted({str(v) for f in frames if column in f for v in f[column].dropna()})
        if values:
            rows.append((name, ", ".join(values)))
    return rows


def render_report(
    st: Store,
    figures: Sequence[Path],
    *,
    lb: leaderboard.Leaderboard | None = None,
    fr: frontier_.Frontier | None = None,
    generated_at: str = "",
) -> str:
    """The HTML of the report of `st` with `figures` (PNG files) inlined."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("results", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    lb = lb if lb is not None else leaderboard.build(st.runs)
    fr = fr if fr is not None else frontier_.build(st, lb)
    runs_table, configs = _runs(st.runs)
    root = Path(st.root)
    commands = _suite_command(root) + _bench_commands(st.efficiency, root)
    commands.append(shlex.join(["lra", "report", "--runs", str(root)]))
    counts = st.runs["status"].value_counts().to_dict() if not st.runs.empty else {}
    return env.get_template(TEMPLATE).render(
        title=f"LRA arena results: {root.name or root}",
        root=str(root),
        generated_at=generated_at,
        run_counts=", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
        efficiency_count=len(st.efficiency),
        environment=_environment(st),
        problems=list(st.problems),
        leaderboards=_leaderboards(lb),
        leaderboard_notes=list(leaderboard.FOOTNOTES),
        frontiers=_frontiers(fr),
        frontier_notes=list(frontier_.FOOTNOTES),
        frontier_warning=frontier_.unreliable_line(fr) or "",
        figures=[{"caption": _figure_caption(p), "name": p.name, "src": _image(p)} for p in figures],
        cost_groups=_cost_groups(st.efficiency),
        runs_table=runs_table,
        configs=configs,
        plugins=sorted(
            {
                plugin_label(str(c.attention_label), c.plugin)
                for c in lb.cells.itertuples()
                if isinstance(c.plugin, str)
            }
        ),
        commands=commands,
    )


def write_report(
    root: str | os.PathLike[str],
    *,
    st: Store | None = None,
    lb: leaderboard.Leaderboard | None = None,
    fr: frontier_.Frontier | None = None,
    figures: Sequence[Path] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report of the results under `root` to `path` (default `<root>/report.html`),
    atomically; the figures are drawn into `<root>/plots/` unless given. ValueError when `root` holds
    no record."""
    from .store import with_reported_accuracy

    root = Path(root)
    st = st if st is not None else load(root)
    if st.runs.empty and st.efficiency.empty:
        raise ValueError(f"no result records under {root}; run `lra suite --out {root}` first")
    st.runs = with_reported_accuracy(st.runs)
    lb = lb if lb is not None else leaderboard.build(st.runs)
    fr = fr if fr is not None else frontier_.build(st, lb)
    if figures is None:
        figures = plots.plot_all(st, root / "plots")
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    html = render_report(st, figures, lb=lb, fr=fr, generated_at=stamp)
    target = Path(path) if path is not None else root / REPORT_NAME
    atomic_write_text(target, html)
    return target
