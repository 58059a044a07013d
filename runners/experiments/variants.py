"""`lra sweep s` / `lra sweep landmarks`: MiTA variants trained on one task with everything
else fixed (one `runners.suite` grid), with accuracy, cost and routing diagnostics.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import attention_zoo
from lra import tasks
from results.records import write_record

from .. import suite
from ..defaults import EXPERIMENTS_OUT
from .evaluation import DIAGNOSTIC_KEYS, EvalOptions, Evaluator, finite_mean
from .figures import (
    ExperimentResult,
    count_text,
    new_figure,
    percent_text,
    save_figure,
    suptitle,
    write_table,
)
from .runs import Echo, is_mita, load_run

# `lra sweep <name>`: the swept MiTA parameter and its default values.
VARIANT_SWEEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "s": ("num_routed", ("1", "2", "4")),
    "landmarks": ("landmarks", ("avgpool", "learned", "random", "kmeans")),
}


@dataclass(frozen=True)
class VariantSweepConfig:
    """Train one MiTA parameter at several values on one task, everything else fixed.

    Attributes:
        sweep: "s" (num_routed, experts per query) or "landmarks" (landmark construction).
        task: the task.
        values: the values of the swept parameter (empty = `VARIANT_SWEEPS` defaults).
        attention: "mita" or "mita_route".
        attn_params: the other parameters of the attention, fixed for every run.
        equal_budget: sweep "s" only: topk = max(1, topk // s), so the routed keys per query stay
            about constant (the official router_topk=2 code halves kv_topk the same way).
        preset, seeds, overrides, max_steps, jobs, device, data_dir, source: as for `lra suite`.
        diag_batches: validation batches for the routing diagnostics of each trained model (0 = none).
        out: experiments root; the runs go to `<out>/<sweep>/<task>/runs/...` (the suite layout).
    """

    sweep: str
    task: str
    values: tuple[str, ...] = ()
    attention: str = "mita"
    attn_params: dict[str, str] = field(default_factory=dict)
    equal_budget: bool = False
    preset: str = "quick"
    seeds: tuple[int, ...] = (0,)
    overrides: dict[str, str] = field(default_factory=dict)
    max_steps: int | None = None
    jobs: int = 1
    device: str = "auto"
    data_dir: str | None = None
    source: str | None = None
    diag_batches: int = 4
    out: str = EXPERIMENTS_OUT

    @property
    def parameter(self) -> str:
        if self.sweep not in VARIANT_SWEEPS:
            raise ValueError(f"unknown sweep {self.sweep!r}; valid sweeps: {', '.join(VARIANT_SWEEPS)}")
        return VARIANT_SWEEPS[self.sweep][0]


@dataclass
class SweepResult(ExperimentResult):
    """An `ExperimentResult` plus the per-value table, the runs without a result (run id, status,
    error) and the suite's exit code (1 when a run failed)."""

    failed: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    exit_code: int = 0


def variant_specs(cfg: VariantSweepConfig) -> list[tuple[str, str, str]]:
    """(value, attention spec for the suite, label) per swept value, validated by the registry."""
    tasks.get(cfg.task)
    parameter = cfg.parameter
    mechanism = attention_zoo.get(cfg.attention)
    if not is_mita(mechanism) or parameter not in {f.name for f in dataclasses.fields(mechanism.params_cls)}:
        mita_like = ", ".join(n for n in attention_zoo.names() if is_mita(attention_zoo.get(n)))
        raise ValueError(
            f"lra sweep {cfg.sweep} sweeps a MiTA parameter; --attention must be one of {mita_like}"
        )
    if parameter in cfg.attn_params:
        raise ValueError(f"--attn-param {parameter} is what this sweep varies; give its values with --values")
    if cfg.equal_budget and cfg.sweep != "s":
        raise ValueError("--equal-budget applies to lra sweep s only")
    if cfg.diag_batches < 0:
        raise ValueError(f"--diag-batches must be >= 0; got {cfg.diag_batches}")
    values = list(dict.fromkeys(v.strip() for v in (cfg.values or VARIANT_SWEEPS[cfg.sweep][1]) if v.strip()))
    if not values:
        raise ValueError(f"--values is empty; e.g. --values {','.join(VARIANT_SWEEPS[cfg.sweep][1])}")
    base = mechanism.params(**cfg.attn_params)
    out = []
    for value in values:
        given = {**cfg.attn_params, parameter: value}
        if cfg.equal_budget:
            routed = mechanism.params(**given).to_dict()["num_routed"]
            given["topk"] = str(max(1, base.to_dict()["topk"] // routed))
        params = mechanism.params(**given)
        spec = f"{mechanism.name}({','.join(f'{k}={v}' for k, v in given.items())})"
        out.append((value, spec, mechanism.label(params)))
    return out


def sweep_variants(
    cfg: VariantSweepConfig, *, echo: Echo = print, command: Sequence[str] | None = None
) -> SweepResult:
    """Train every value of the swept parameter (one `runners.suite` grid in
    `<out>/<sweep>/<task>`; finished runs are reused, interrupted ones resume), then collect the
    routing diagnostics of each finished run's best checkpoint on `diag_batches` validation batches
    (torch backend) into eval records, and write `sweep-<sweep>.{md,csv,png}` there: accuracy
    (mean ± std over seeds), keys per query, parameters, throughput and the diagnostics per value.

    `command` replaces the training command (`runners.suite.run_suite`).
    """
    specs = variant_specs(cfg)
    where = Path(cfg.out) / cfg.sweep / cfg.task
    suite_cfg = suite.SuiteConfig(
        tasks=(cfg.task,),
        attentions=tuple(spec for _, spec, _ in specs),
        seeds=tuple(cfg.seeds),
        preset=cfg.preset,
        out=str(where),
        jobs=cfg.jobs,
        overrides=dict(cfg.overrides),
        max_steps=cfg.max_steps,
        device=cfg.device,
        data_dir=cfg.data_dir,
        source=cfg.source,
    )
    outcome = suite.run_suite(suite_cfg, command=command, echo=echo, reports=False)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for _, _, label in specs}
    failed = []
    for item in outcome.outcomes:
        record = item.record or {}
        status = record.get("status") if item.status == "skipped" else item.status
        if status in ("ok", "diverged"):
            runs.setdefault(item.cell.label, []).append({"record": record, "run_dir": item.cell.run_dir})
        if status != "ok":
            error = item.error or record.get("error") or "no record"
            failed.append(f"{item.cell.run_id}: {status} ({error})")
    evals = _variant_diagnostics(cfg, runs, where, echo) if cfg.diag_batches else []
    frame = variant_frame(cfg, specs, runs, evals)
    markdown = variant_markdown(cfg, frame, failed)
    stem = where / f"sweep-{cfg.sweep}"
    paths = write_table(frame, markdown, stem)
    paths.append(plot_variants(cfg, frame, runs, stem.with_suffix(".png")))
    return SweepResult(evals, markdown, paths, failed=failed, table=frame, exit_code=outcome.exit_code)


def _variant_diagnostics(
    cfg: VariantSweepConfig, runs: Mapping[str, list[dict[str, Any]]], where: Path, echo: Echo
) -> list[dict[str, Any]]:
    """One eval record (split val, `diag_batches` batches) with diagnostics per finished run."""
    evaluator = Evaluator(
        EvalOptions(
            split="val", device=cfg.device, data_dir=cfg.data_dir, diag_batches=cfg.diag_batches, quiet=True
        )
    )
    records = []
    for entries in runs.values():
        for entry in entries:
            if entry["record"].get("status") != "ok":
                continue
            run = load_run(entry["run_dir"], checkpoint="best", data_dir=cfg.data_dir)
            model, missing, unused = evaluator.model(run, run.mechanism, run.params)
            limit = cfg.diag_batches * evaluator.batch_size(run)
            result = evaluator.evaluate(run, model, limit=limit)
            record = evaluator.record(cfg.sweep, run, run.mechanism, run.params, result, missing, unused)
            write_record(where / "diagnostics" / run.tag / "best-val.json", record)
            records.append(record)
            diag = result.diagnostics or {}
            echo(
                f"{run.run_id}: load entropy {diag.get('load_entropy', float('nan')):.3f}, pruned "
                f"{percent_text(diag.get('pruned_fraction'))}%, overlap {percent_text(diag.get('overlap'))}% "
                f"({result.n_examples} val examples)"
            )
    return records


def variant_frame(
    cfg: VariantSweepConfig,
    specs: Sequence[tuple[str, str, str]],
    runs: Mapping[str, list[dict[str, Any]]],
    evals: Sequence[dict[str, Any]],
) -> pd.DataFrame:
    """One row per swept value: accuracy over the seeds that finished ok, cost, diagnostics."""
    by_run = {r["run_id"]: r for r in evals}
    rows = []
    for value, _, label in specs:
        entries = runs.get(label, [])
        ok = [e["record"] for e in entries if e["record"].get("status") == "ok"]
        diags = [(by_run.get(r["run_id"]) or {}).get("diagnostics") or {} for r in ok]
        test = [r["test_acc"] for r in ok if r.get("test_acc") is not None]
        row = {
            cfg.parameter: value,
            "attention_label": label,
            "seeds_ok": len(ok),
            "seeds": len(cfg.seeds),
            "diverged": sum(e["record"].get("status") == "diverged" for e in entries),
            "test_acc": finite_mean(test) if test else float("nan"),
            "test_acc_std": float(pd.Series(test).std()) if len(test) > 1 else float("nan"),
            "best_val_acc": finite_mean([r.get("best_val_acc") for r in ok]),
            "chance_acc": finite_mean([r.get("chance_acc") for r in ok]),
            "keys_per_query": ok[0].get("keys_per_query") if ok else None,
            "seq_len": ok[0].get("seq_len") if ok else None,
            "params": ok[0].get("params") if ok else None,
            "train_tokens_per_s": finite_mean([r.get("train_tokens_per_s") for r in ok]),
            "train_steps_per_s": finite_mean([r.get("train_steps_per_s") for r in ok]),
        }
        row.update({key: finite_mean([d.get(key) for d in diags]) for key in DIAGNOSTIC_KEYS})
        row["test_acc_per_seed"] = json.dumps([r.get("test_acc") for r in ok])
        rows.append(row)
    return pd.DataFrame(rows)


def variant_markdown(cfg: VariantSweepConfig, frame: pd.DataFrame, failed: Sequence[str]) -> str:
    def acc(row: Any) -> str:
        if not row["seeds_ok"]:
            return "diverged" if row["diverged"] else "–"
        text = percent_text(row["test_acc"], 2)
        return text + (f" ± {100 * row['test_acc_std']:.2f}" if row["seeds_ok"] > 1 else "")

    table = pd.DataFrame(
        {
            cfg.parameter: frame[cfg.parameter],
            "attention": frame["attention_label"],
            "test acc (%)": [acc(row) for _, row in frame.iterrows()],
            "seeds": [f"{a}/{b}" for a, b in zip(frame["seeds_ok"], frame["seeds"], strict=True)],
            "keys/query": [count_text(v) for v in frame["keys_per_query"]],
            "params": [count_text(v) for v in frame["params"]],
            "tokens/s": ["–" if pd.isna(v) else f"{v:,.0f}" for v in frame["train_tokens_per_s"]],
            "load entropy": ["–" if pd.isna(v) else f"{v:.3f}" for v in frame["load_entropy"]],
            "max load (%)": [percent_text(v) for v in frame["load_max"]],
            "pruned (%)": [percent_text(v) for v in frame["pruned_fraction"]],
            "overlap (%)": [percent_text(v) for v in frame["overlap"]],
        }
    )
    chance = frame["chance_acc"].dropna()
    what = {"s": "experts per query (num_routed)", "landmarks": "landmark construction"}[cfg.sweep]
    lines = [
        f"## {cfg.task}: MiTA {what}, everything else fixed (preset {cfg.preset})",
        "",
        "Test accuracy of the best-validation checkpoint, mean ± std over the seeds that finished"
        + (f"; chance {percent_text(float(chance.iloc[0]))}%" if len(chance) else "")
        + ". keys/query at the task's length; tokens/s: training throughput. Routing diagnostics of each "
        f"trained model on {cfg.diag_batches} validation batches, mean over layers and seeds: load entropy "
        "(1 = balanced experts), max load (share of queries on the busiest expert), pruned (keys no expert "
        "selects), overlap (share of a query's own full-attention top-k it attends)."
        + (" With --equal-budget, topk = topk // s." if cfg.equal_budget else ""),
        "",
        table.to_markdown(index=False, disable_numparse=True),
    ]
    if failed:
        lines += ["", "Runs without a result:", *(f"- {line}" for line in failed)]
    return "\n".join(lines).rstrip() + "\n"


def plot_variants(
    cfg: VariantSweepConfig, frame: pd.DataFrame, runs: Mapping[str, list[dict[str, Any]]], path: Path
) -> Path:
    """Accuracy per value (bars: mean, dots: seeds, dashed: chance) and the routing diagnostics."""
    diag_keys = [k for k in DIAGNOSTIC_KEYS if frame[k].notna().any()]
    fig, axes = new_figure(5.5 + (5.5 if diag_keys else 0) + 0.3 * len(frame), 4.5, 2 if diag_keys else 1)
    values = [str(v) for v in frame[cfg.parameter]]
    ax = axes[0]
    ax.bar(range(len(values)), frame["test_acc"] * 100, color="tab:blue", alpha=0.8)
    for i, label in enumerate(frame["attention_label"]):
        seeds = [
            e["record"]["test_acc"] for e in runs.get(label, []) if e["record"].get("test_acc") is not None
        ]
        ax.scatter([i] * len(seeds), [100 * s for s in seeds], color="black", s=12, zorder=3)
    chance = frame["chance_acc"].dropna()
    if len(chance):
        ax.axhline(
            float(chance.iloc[0]) * 100, color="black", linestyle="dashed", linewidth=1, label="chance"
        )
        ax.legend(fontsize="small")
    ax.set_xticks(range(len(values)), values)
    ax.set_xlabel(cfg.parameter)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("accuracy (bars: mean, dots: seeds)")
    if diag_keys:
        ax = axes[1]
        width = 0.8 / len(diag_keys)
        for j, key in enumerate(diag_keys):
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(values))]
            label = "load entropy (normalised, x100)" if key == "load_entropy" else key.replace("_", " ")
            ax.bar(xs, frame[key] * 100, width, label=label)
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(cfg.parameter)
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
        ax.set_title(f"routing diagnostics ({cfg.diag_batches} validation batches)")
        ax.legend(fontsize="x-small")
    suptitle(fig, f"{cfg.task}: MiTA {cfg.parameter} sweep, preset {cfg.preset}")
    return save_figure(fig, path)
