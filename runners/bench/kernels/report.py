"""The kernel benchmark's report: ratios against SDPA and the reference, the targets met or not
(`summarise`), the markdown summary (`markdown`), and the efficiency records of its cells
(`efficiency_records`, the same store as `lra bench attention`), all written by `write_outputs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lra.io import atomic_write_json, atomic_write_text
from results.costs import time_spread
from results.records import SCHEMA_VERSION, write_record

from ..records import new_call_id
from .protocol import (
    BATCH,
    FLOOR_LENGTH,
    FLOOR_LIMIT,
    HEAD_DIM,
    HEADS,
    LAUNCH_BUDGET,
    NUM_LANDMARKS,
    PASSES,
    SERIES,
    TARGETS,
    TOPK,
    Cell,
    floor_ms,
    format_value,
)


def summarise(
    cells: list[Cell],
    bandwidth_gbps: float | None,
    graph: dict[str, dict[int, float | None]] | None = None,
    device_ms: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Ratios per (pass, N) and the targets, from the measured cells; `graph` adds the CUDA graph
    replays ({pass: {N: ms}}) against the same run's eager SDPA, `device_ms` the profiled device
    time per call ({"forward N=65536": ms}) for the HBM floor target."""
    graph = graph or {}
    by_key = {(c.series, c.pass_, c.seq_len): c for c in cells}

    def measured(series: str, pass_: str, n: int) -> tuple[float, int | None] | None:
        """(median ms, peak bytes) of a cell that measured ok, else None."""
        cell = by_key.get((series, pass_, n))
        if cell is None or cell.status != "ok" or cell.median_ms is None:
            return None
        return cell.median_ms, cell.peak_memory_bytes

    rows = []
    for pass_ in PASSES:
        for n in sorted({c.seq_len for c in cells if c.pass_ == pass_}):
            mita = measured("mita-triton", pass_, n)
            row: dict[str, Any] = {"pass": pass_, "seq_len": n}
            for other in ("sdpa-default", "sdpa-flash", "mita-torch"):
                base = measured(other, pass_, n)
                row[f"speedup_vs_{other}"] = base[0] / mita[0] if mita and base else None
                row[f"memory_vs_{other}"] = (
                    mita[1] / base[1] if mita and base and base[1] and mita[1] is not None else None
                )
            row["x_floor"] = mita[0] / floor_ms(pass_, n, bandwidth_gbps) if mita and bandwidth_gbps else None
            replay, sdpa = graph.get(pass_, {}).get(n), measured("sdpa-default", pass_, n)
            row["graph_ms"] = replay
            row["graph_speedup_vs_sdpa-default"] = sdpa[0] / replay if replay and sdpa else None
            rows.append(row)
    ratio = {(r["pass"], r["seq_len"]): r for r in rows}
    targets = []
    for pass_, n, minimum in TARGETS:
        value = ratio.get((pass_, n), {}).get("speedup_vs_sdpa-default")
        targets.append({"target": f"{pass_} >= {minimum:g}x SDPA at N={n}", "value": value,
                        "met": None if value is None else value >= minimum})  # fmt: skip
    memory = [r["memory_vs_sdpa-default"] for r in rows if r["memory_vs_sdpa-default"] is not None]
    targets.append({"target": "peak memory <= SDPA's at every N", "value": max(memory) if memory else None,
                    "met": None if not memory else max(memory) <= 1.0})  # fmt: skip
    for pass_, n, minimum in TARGETS:
        value = ratio.get((pass_, n), {}).get("graph_speedup_vs_sdpa-default")
        if value is not None:
            targets.append({"target": f"{pass_} >= {minimum:g}x SDPA at N={n} (CUDA graph replay)",
                            "value": value, "met": value >= minimum})  # fmt: skip
    floor_value = None
    device = (device_ms or {}).get(f"forward N={FLOOR_LENGTH}")
    if device and bandwidth_gbps:
        floor_value = device / floor_ms("forward", FLOOR_LENGTH, bandwidth_gbps)
    else:
        floor_value = ratio.get(("forward", FLOOR_LENGTH), {}).get("x_floor")
    targets.append({"target": f"forward within {FLOOR_LIMIT:g}x of the HBM floor at N={FLOOR_LENGTH} "
                    + ("(profiled device time)" if device else "(median call)"),
                    "value": floor_value,
                    "met": None if floor_value is None else floor_value <= FLOOR_LIMIT})  # fmt: skip
    return {"ratios": rows, "targets": targets}


def markdown(report: dict[str, Any]) -> str:
    """The human-readable summary (tables of times, memory, ratios, targets and checks)."""
    env = report["environment"]
    lines = [
        "# MiTA Triton kernels vs SDPA",
        "",
        f"{env['device']}, torch {env['torch_version']}, triton {env['triton_version']}, commit {env['git_commit']}; "
        f"B={BATCH}, H={HEADS}, d={HEAD_DIM}, bf16, m=k={NUM_LANDMARKS}; command `{env['command']}`.",
        f"Copy bandwidth {format_value(report.get('copy_bandwidth_gbps'), '.0f')} GB/s (used for the HBM floor).",
        "",
        "## Correctness (before timing)",
        "",
        "| check | value | limit | ok |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c['name']} | {c['value']:.3g} | {c['limit']:.3g} | {'yes' if c['ok'] else '**NO**'} |"
              for c in report["verification"]]  # fmt: skip
    cells = {(c["series"], c["pass_"], c["seq_len"]): c for c in report["cells"]}
    ratios = {(r["pass"], r["seq_len"]): r for r in report["ratios"]}
    for pass_ in PASSES:
        lengths = sorted({c["seq_len"] for c in report["cells"] if c["pass_"] == pass_})
        if not lengths:
            continue
        lines += ["", f"## {pass_.replace('_', '+')}: median ms (peak MiB)", ""]
        lines.append("| N | " + " | ".join(SERIES) + " | vs sdpa-default | vs sdpa-flash | x HBM floor |")
        lines.append("|---" * (len(SERIES) + 4) + "|")
        for n in lengths:
            entries = []
            for series in SERIES:
                c = cells.get((series, pass_, n))
                if c is None:
                    entries.append("–")
                elif c["status"] == "ok":
                    entries.append(f"{c['median_ms']:.3g} ({(c['peak_memory_bytes'] or 0) / 2**20:.0f})")
                else:
                    entries.append(f"{c['status']}: {c['error'] or ''}".strip())
            r = ratios.get((pass_, n), {})
            lines.append(
                f"| {n} | " + " | ".join(entries) + f" | {format_value(r.get('speedup_vs_sdpa-default'))}x | "
                f"{format_value(r.get('speedup_vs_sdpa-flash'))}x | {format_value(r.get('x_floor'))} |"
            )
    for key, rows in (report.get("kernel_breakdown") or {}).items():
        total = sum(r["ms_per_call"] for r in rows)
        lines += ["", f"### mita-triton {key}: device time per kernel (torch.profiler), {total:.3g} ms in all",
                  "", "| kernel | ms per call | launches per call | share |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| `{r['kernel']}` | {r['ms_per_call']:.4g} | {r['launches_per_call']:g} | "
                  f"{r['ms_per_call'] / total:.0%} |" for r in rows]  # fmt: skip
    graph_rows = [r for r in report["ratios"] if r.get("graph_ms") is not None]
    if graph_rows:
        lines += ["", "## mita-triton replayed from a CUDA graph (`MitaGraph`), against eager SDPA", "",
                  "| pass | N | graph replay ms | eager ms | vs sdpa-default |", "|---|---|---|---|---|"]  # fmt: skip
        for r in graph_rows:
            eager = cells.get(("mita-triton", r["pass"], r["seq_len"]), {}).get("median_ms")
            lines.append(f"| {r['pass'].replace('_', '+')} | {r['seq_len']} | {format_value(r['graph_ms'])} | "
                         f"{format_value(eager)} | {format_value(r.get('graph_speedup_vs_sdpa-default'))}x |")  # fmt: skip
    for pass_, count in (report.get("launches") or {}).items():
        lines += ["", f"Device launches per eager {pass_.replace('_', '+')} call at N=4096: {count['launches']} "
                  f"(budget {LAUNCH_BUDGET[pass_]}), host syncs: {len(count['host_syncs'])}; "
                  + ", ".join(f"`{k}`" for k in count["kernels"])]  # fmt: skip
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    for t in report["targets"]:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {format_value(t['value'])} | {met} |")
    return "\n".join(lines) + "\n"


def efficiency_records(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One kind="efficiency", bench="attention" record per attempted cell (skips live in the summary)."""
    env = report["environment"]
    call_id = env.get("bench_call_id") or new_call_id()  # one call: the report's cells form ratios together
    records = []
    for c in report["cells"]:
        if c["status"] == "skipped":
            continue
        mita = c["series"].startswith("mita")
        params = {"num_landmarks": NUM_LANDMARKS, "topk": TOPK} if mita else {}
        backend = c["series"].removeprefix("mita-")
        if mita:
            params["backend"] = backend
        median = c["median_ms"]
        records.append({
            "schema_version": SCHEMA_VERSION,
            "kind": "efficiency",
            "bench": "attention",
            "attention": "mita" if mita else "full",
            "attention_params": params,
            "attention_label": f"mita(num_landmarks={NUM_LANDMARKS},topk={TOPK})" if mita else "full",
            "backend": backend,
            "pass": c["pass_"],
            "seq_len": c["seq_len"],
            "batch": BATCH,
            "heads": HEADS,
            "head_dim": HEAD_DIM,
            "dtype": "bfloat16",
            "device": env["device"],
            "status": c["status"],
            "error": c["error"],
            "time_ms_median": median,
            "time_ms_p20": c["p20_ms"],
            "time_ms_p80": c["p80_ms"],
            "steps_per_s": 1000.0 / median if median else None,
            "peak_memory_bytes": c["peak_memory_bytes"],
            "repeats": c["repeats"],
            "time_method": c["method"],
            "memory_method": "cuda-allocator",
            "torch_version": env["torch_version"],
            "triton_version": env["triton_version"],
            "git_commit": env["git_commit"],
            "measured_at": c["measured_at"],
            "bench_call_id": call_id,
            "time_spread": time_spread(c["p20_ms"], c["p80_ms"]),
        })  # fmt: skip
    return records


def write_outputs(report: dict[str, Any], out: Path, records_dir: Path | None) -> None:
    atomic_write_json(out, report)
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    if records_dir is not None:
        device = "".join(ch if ch.isalnum() else "-" for ch in report["environment"]["device"])
        for rec in efficiency_records(report):
            path = (
                records_dir
                / "efficiency"
                / "kernels"
                / device
                / rec["backend"]
                / f"{rec['pass']}-N{rec['seq_len']}.json"
            )
            write_record(path, rec)
