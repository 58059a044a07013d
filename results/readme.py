"""README tables of measured numbers, rendered from committed records.

Every such table in README.md sits between two markers naming its source::

    <!-- table quick-suite: rendered by `lra readme` from results/measured/cpu-quick -->
    | attention | ListOps | Pathfinder |
    ...
    <!-- end table quick-suite -->

`render(text, root)` replaces each marked table with the rendering of the records under its folder
(relative to `root`, the repository); a folder without records leaves the table as written and is
reported. Tables made from code rather than records (the presets' provenance, from lra/presets/)
name that file as their source and are rendered from it. `lra readme` (or `python -m results.readme`) rewrites README.md; `--check` only says
whether it is up to date (exit 1 when not), which the tests run.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lra.io import atomic_write_text

from . import leaderboard, stats, store
from . import order as order_

README_NAME = "README.md"
_TABLE = re.compile(
    r"(?P<open><!-- table (?P<name>[\w-]+): rendered by `lra readme` from (?P<source>\S+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- end table (?P=name) -->)",
    re.S,
)


def accuracy_table(runs: pd.DataFrame, first_column: str = "attention") -> str:
    """The leaderboard's table of the runs that finished ok (one preset): per cell the mean reported
    accuracy (%) with its 95% interval, bold where the tests cannot tell it from its column's best,
    `°` where the interval reaches chance, FAIL within two standard errors of chance; then Avg
    (results/leaderboard/, results/stats.py)."""
    ok = store.with_reported_accuracy(runs[runs["status"] == "ok"])
    presets = sorted(ok["preset"].unique())
    if len(presets) != 1:
        raise ValueError(f"a README accuracy table shows one preset; the records hold {', '.join(presets)}")
    shown = leaderboard.table(leaderboard.build(ok), presets[0], markdown=True)
    header = [first_column, *shown.columns[1:]]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def attention_cost_table(efficiency: pd.DataFrame, length: int = 4096, longer: int = 8192) -> str:
    """`lra bench attention` records of one run as ratios to full attention at `length`: forward and
    forward + backward speed (full's time / the attention's), peak memory, and each attention's own
    peak-memory growth from `length` to `longer` (2.0 = linear in N). One row per attention and path."""
    ok = efficiency[(efficiency["bench"] == "attention") & (efficiency["status"] == "ok")]
    devices = sorted(ok["device"].unique())
    if len(devices) != 1:
        raise ValueError(
            f"a README cost table shows one device; the records hold {', '.join(devices) or 'none'}"
        )

    def value(label: str, backend: str, pass_: str, n: int, field: str) -> float | None:
        rows = ok[(ok["attention_label"] == label) & (ok["backend"] == backend) & (ok["pass"] == pass_)
                  & (ok["seq_len"] == n)]  # fmt: skip
        return float(rows[field].iloc[0]) if len(rows) else None

    full = ok[ok["attention"] == "full"]
    if full.empty:
        raise ValueError("a README cost table needs full attention's records (the reference of the ratios)")
    full_label, full_backend = full["attention_label"].iloc[0], full["backend"].iloc[0]

    def ratio(a: float | None, b: float | None) -> str:
        return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}×"

    lines = [
        f"| attention [path] | forward speed | fwd+bwd speed | fwd+bwd peak memory | fwd+bwd memory {longer // 1024}K / {length // 1024}K |",
        "|---|---|---|---|---|",
    ]
    series = ok[["attention", "attention_label", "backend"]].drop_duplicates()
    order = order_.from_records(ok)
    ranked = sorted(series.itertuples(index=False), key=lambda r: (order.attention_key(r[0]), r[1], r[2]))
    for _, label, backend in ranked:
        cells = []
        for pass_ in ("forward", "forward_backward"):
            mine = value(label, backend, pass_, length, "time_ms_median")
            cells.append(ratio(value(full_label, full_backend, pass_, length, "time_ms_median"), mine))
        memory = value(label, backend, "forward_backward", length, "peak_memory_bytes")
        cells.append(
            ratio(memory, value(full_label, full_backend, "forward_backward", length, "peak_memory_bytes"))
        )
        cells.append(ratio(value(label, backend, "forward_backward", longer, "peak_memory_bytes"), memory))
        lines.append(f"| {label} [{backend}] | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def resolution_summary(runs: pd.DataFrame) -> str:
    """A few lines under an accuracy table, kept true by rendering them from the same records: the
    resolution of each task's test set, whether the tests were paired, and which attentions the tests
    resolve below each column's best (every other one is tied with it)."""
    ok = store.with_reported_accuracy(runs[runs["status"] == "ok"])
    lb = leaderboard.build(ok)
    (preset,) = lb.presets
    cells = lb.cells[(lb.cells["preset"] == preset) & (lb.cells["seeds"] > 0)]
    resolution = []
    for task in lb.tasks(preset):
        mine = cells[cells["task"] == task]
        n = int(mine["n_test"].min())
        chance = float(mine["chance"].median())
        resolution.append(
            f"{lb.task_title(task)}: {n:,} test examples, ±{stats.half_width(n, chance):.1f} points at "
            f"chance ({100 * chance:.1f}%), ±{stats.half_width(n, 0.5):.1f} at 50%"
        )
    seeds = sorted({int(v) for v in cells["seeds"]})
    paired = int(cells["paired"].map(leaderboard.flag).sum())
    tests = (
        "paired (every cell kept per-example predictions of its column's test examples)"
        if paired == len(cells)
        else "unpaired (the records hold no per-example predictions), so they resolve fewer differences"
        if paired == 0
        else f"paired for the {paired} of {len(cells)} cells with per-example predictions, unpaired otherwise"
    )
    below = []
    for task in lb.tasks(preset):
        column = cells[(cells["task"] == task) & (cells["status"] == "ok")].set_index("attention_label")
        resolved = [
            label
            for label in lb.labels(preset)
            if label in column.index and not leaderboard.flag(column.loc[label, "tied_best"])
        ]
        below.append(f"{lb.task_title(task)}: {', '.join(resolved) or 'none'}")
    averaged = lb.stats[preset].averages["avg"]
    if len(lb.tasks(preset)) > 1:
        resolved = [label for label, a in averaged.items() if a.tie is not None and not a.tie.tied]
        below.append(f"Avg: {', '.join(resolved) or 'none'}")
    return (
        f"Resolution (half-width of one cell's 95% Clopper–Pearson interval): {'; '.join(resolution)}. "
        f"Seeds per cell: {', '.join(map(str, seeds))}; tests {tests}.\n\n"
        f"Resolved below the column's best at 0.05 (Holm): {'; '.join(below)}. Every other attention is "
        "tied with the best of its column: the table does not rank them against each other.\n"
    )


@dataclass(frozen=True)
class Table:
    """How a named README table is made: from the store of its records folder (`render`), or from
    the code its marker names (`render_code`, no records)."""

    render: Callable[[store.Store], str] | None = None
    render_code: Callable[[], str] | None = None


def preset_provenance_table() -> str:
    """The provenance table of the `pytorch` and `lra` presets (lra.preset_provenance)."""
    from lra import preset_provenance  # the presets' code, imported only for this table

    return preset_provenance.markdown()


TABLES: dict[str, Table] = {
    "quick-suite": Table(lambda st: accuracy_table(st.runs, "attention (quick budget: ~16 keys per query)")),
    "quick-suite-resolution": Table(lambda st: resolution_summary(st.runs)),
    "cpu-attention-cost": Table(lambda st: attention_cost_table(st.efficiency)),
    "preset-provenance": Table(render_code=preset_provenance_table),
}


def render(text: str, root: str | Path) -> tuple[str, list[str]]:
    """(`text` with every marked table rendered from its records, notes on tables kept as written)."""
    notes: list[str] = []

    def one(match: re.Match[str]) -> str:
        name, source = match["name"], match["source"]
        if name not in TABLES:
            raise ValueError(f"README table {name!r} has no renderer; known tables: {', '.join(TABLES)}")
        table = TABLES[name]
        if table.render_code is not None:
            return match["open"] + table.render_code() + match["close"]
        if table.render is None:
            raise ValueError(f"README table {name!r} has neither a records nor a code renderer")
        folder = Path(root) / source
        st = store.load(folder) if folder.is_dir() else None
        if st is None or (st.runs.empty and st.efficiency.empty):
            notes.append(f"table {name}: no records under {source}; kept as written")
            return match.group(0)
        return match["open"] + table.render(st) + match["close"]

    return _TABLE.sub(one, text), notes


def update(root: str | Path, *, check: bool = False) -> tuple[bool, list[str]]:
    """Render the README under `root`; (whether it was already up to date, notes). Writes it unless `check`."""
    path = Path(root) / README_NAME
    text = path.read_text(encoding="utf-8")
    rendered, notes = render(text, root)
    if rendered != text and not check:
        atomic_write_text(path, rendered)
    return rendered == text, notes


def main(argv: list[str] | None = None) -> int:
    """`python -m results.readme [--check]` from the repository root."""
    argv = sys.argv[1:] if argv is None else argv
    check = argv == ["--check"]
    if argv and not check:
        print("usage: python -m results.readme [--check]", file=sys.stderr)
        return 2
    current, notes = update(Path.cwd(), check=check)
    for note in notes:
        print(note, file=sys.stderr)
    if check and not current:
        print("README.md differs from its records; run `lra readme`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
