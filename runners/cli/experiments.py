"""`lra sweep mk|scaling|s|landmarks` and `lra swap` (README: MiTA experiments; library:
runners/experiments/).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from ..defaults import EXPERIMENTS_OUT
from ..specs import check_attn_params, parse_key_values, parse_seeds, split_specs
from .bench import ATTENTION_SHAPE_OPTIONS, MEASUREMENT_OPTIONS
from .common import (
    UserError,
    apply_options,
    attn_param_option,
    attn_params_of,
    data_dir_option,
    device_option,
    echo_unless,
    plugin_option,
    preset_option,
    report,
    training_options,
    user_errors,
    with_options,
)


def eval_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of commands that evaluate trained checkpoints (`lra sweep mk`, `lra swap`)."""
    options: list[Callable[..., Any]] = [
        click.option(
            "--split",
            type=click.Choice(["test", "val"]),
            default="test",
            show_default=True,
            help="Split to evaluate on.",
        ),
        click.option(
            "--checkpoint",
            type=click.Choice(["best", "last"]),
            default="best",
            show_default=True,
            help="best: the best-validation checkpoint (what the PyTorch lineage tests); last: the end of "
            "training (what LRA tests).",
        ),
        click.option(
            "--limit",
            default=0,
            type=int,
            help="Evaluate N examples of the split only (a fixed random subset; 0 = all).",
        ),
        click.option(
            "--batch-size",
            default=0,
            type=int,
            help="Examples per forward [default: the run's evaluation batch].",
        ),
        click.option(
            "--diag-batches",
            default=0,
            type=int,
            metavar="N",
            help="Also record MiTA's routing diagnostics (expert load, pruned fraction, overlap with "
            "full-attention top-k) on N batches of the split.",
        ),
        device_option,
        data_dir_option("Data root, if the run's data moved [default: where the run found them]."),
        click.option(
            "--out",
            default=EXPERIMENTS_OUT,
            show_default=True,
            type=click.Path(file_okay=False),
            help="Experiments root: records, tables (.md, .csv) and figures (.png) below it.",
        ),
        click.option("--quiet", is_flag=True, help="No progress bar or per-evaluation lines."),
        plugin_option,
    ]
    return apply_options(fn, options)


def _eval_config(**kwargs: Any) -> Any:
    from runners.experiments import EvalOptions

    return EvalOptions(**kwargs)


@click.group("sweep")
def sweep_group() -> None:
    """MiTA experiments: evaluate at other (m, k), time against N, train variants.

    \b
    lra sweep mk --run DIR --grid m=8,16,32,64 k=8,16,32,64   one checkpoint at other (m, k), no retraining
    lra sweep scaling                                        forward / forward+backward time against N
    lra sweep s --task listops --values 1,2,4                train MiTA with s routed experts per query
    lra sweep landmarks --task listops                       train each landmark construction
    """


@sweep_group.command("mk")
@click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory of a run trained with MiTA (lra run --run-dir, or OUT/runs/<task>/<attention>/<seed>).",
)
@click.option(
    "--grid",
    "grid",
    multiple=True,
    metavar="AXIS=VALUES",
    help="Grid axes m (num_landmarks) and k (topk): --grid m=8,16,32,64 k=8,16,32,64 [default: that "
    "grid; m fixed at the trained value for learned landmarks].",
)
@click.argument("grid_rest", nargs=-1, metavar="")
@click.option(
    "--include-trained/--no-include-trained",
    default=True,
    show_default=True,
    help="Add the trained m and k to the axes, so the run's own configuration is the reference cell.",
)
@eval_options
@user_errors
def sweep_mk_command(
    run_dir: str, grid: tuple[str, ...], grid_rest: tuple[str, ...], include_trained: bool, **options: Any
) -> None:
    """Evaluate a trained MiTA checkpoint at other (m, k) without retraining ("train small, infer large").

    \b
    One eval record per (m, k) and a table and heat map of accuracy over the grid, trained cell marked,
    under OUT/mk/<task>/<run>/. Every other MiTA parameter stays as trained.
    Example: lra sweep mk --run lra_runs/runs/listops/mita-num_landmarks=8-topk=8/0 --grid m=8,16,32,64 k=8,16,32,64
    """
    from runners.experiments import parse_grid, sweep_mk

    items = grid + grid_rest
    parsed = parse_grid(items) if items else None
    result = sweep_mk(
        run_dir,
        parsed,
        _eval_config(**options),
        include_trained=include_trained,
        echo=echo_unless(options["quiet"]),
    )
    report(result)


@sweep_group.command("scaling")
@click.option(
    "--attentions",
    default=None,
    metavar="A,B,...",
    help="Attentions, names or name(key=value,...) [default: every registered one; MiTA once per "
    "backend]; full attention, the reference, is always included.",
)
@attn_param_option("--attn-param mita.topk=64")
@plugin_option
@click.option(
    "--lengths",
    default=None,
    metavar="2^A..2^B",
    help="Sequence lengths: 2^10..2^20, 2^10,2^14 or 1K,4K [default: 2^10..2^20 on CUDA, 2^10..2^12 on CPU].",
)
@click.option("--batch", default=None, type=int, help="Batch size B [default: 1].")
@with_options([*ATTENTION_SHAPE_OPTIONS, *MEASUREMENT_OPTIONS])
@click.option(
    "--out",
    default=EXPERIMENTS_OUT,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Experiments root: efficiency records under OUT/scaling/efficiency/, table and figure in OUT/scaling/.",
)
@user_errors
def sweep_scaling_command(
    attentions: str | None, attn_params: tuple[str, ...], lengths: str | None, out: str, **options: Any
) -> None:
    """Forward and forward + backward time of every attention against N, log-log (the wall-clock figure).

    \b
    Measured by `lra bench attention` (same records, same method) as far as memory allows; adds the
    length from which each attention is faster than full attention, and the figure.
    Example: lra sweep scaling --device cuda --lengths 2^10..2^20 --attentions full,mita,agent
    """
    from runners.bench import BenchConfig
    from runners.experiments import parse_scaling_lengths, sweep_scaling

    specs = split_specs(attentions or "")
    cfg = BenchConfig(
        attentions=tuple(specs),
        attn_params=attn_params_of(attn_params, specs),
        lengths=parse_scaling_lengths(lengths) if lengths is not None else None,
        out=f"{out}/scaling",
        **options,
    )
    report(sweep_scaling(cfg, echo=echo_unless(options["quiet"])))


def variant_sweep_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options `lra sweep s` and `lra sweep landmarks` share (training as in `lra suite`)."""
    options: list[Callable[..., Any]] = [
        click.option("--task", required=True, help="Task to train on (lra list tasks)."),
        click.option("--values", default=None, help="Comma-separated values of the swept parameter."),
        click.option("--attention", default="mita", show_default=True, help="mita or mita_route."),
        attn_param_option("--attn-param num_landmarks=64 (the other parameters, fixed for every run)"),
        plugin_option,
        preset_option("quick"),
        click.option("--seeds", default="0", show_default=True, help="Seeds: 0,1,2 or 0-2."),
        training_options,
        click.option(
            "--jobs",
            default=1,
            show_default=True,
            type=int,
            help="Runs in parallel (cores split between them).",
        ),
        click.option(
            "--diag-batches",
            default=4,
            show_default=True,
            type=int,
            help="Validation batches for the routing diagnostics of each trained model (0 = none).",
        ),
        click.option(
            "--out",
            default=EXPERIMENTS_OUT,
            show_default=True,
            type=click.Path(file_okay=False),
            help="Experiments root: runs, records, table and figure under OUT/<sweep>/<task>/.",
        ),
    ]
    return apply_options(fn, options)


def _variant_sweep(
    sweep: str,
    values: str | None,
    attn_params: tuple[str, ...],
    seeds: str,
    overrides: tuple[str, ...],
    **options: Any,
) -> None:
    from runners.experiments import VariantSweepConfig, sweep_variants

    attention = options["attention"]
    fixed = attn_params_of(attn_params, [attention])
    check_attn_params(fixed, [attention])
    cfg = VariantSweepConfig(
        sweep=sweep,
        values=tuple(split_specs(values or "")),
        attn_params=fixed.get(attention, {}),
        seeds=parse_seeds(seeds),
        overrides=parse_key_values(overrides, "--set"),
        **options,
    )
    try:
        result = sweep_variants(cfg, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("\nInterrupted; the same command resumes where the runs stopped.", err=True)
        sys.exit(130)
    report(result)
    if result.exit_code:
        click.echo(
            "some runs failed (see the list above and each run's log.txt); re-run to retry them", err=True
        )
    sys.exit(result.exit_code)


@sweep_group.command("s")
@variant_sweep_options
@click.option(
    "--equal-budget",
    is_flag=True,
    help="topk = topk // s, so the routed keys per query stay about constant (as the official s=2 code).",
)
@user_errors
def sweep_s_command(**options: Any) -> None:
    """Train MiTA with s = 1, 2, 4 routed experts per query (num_routed), everything else fixed.

    \b
    Table and figure: accuracy (mean ± std over seeds), keys per query, parameters, throughput, and the
    routing diagnostics of each trained model. Finished runs are reused when the command is repeated.
    Example: lra sweep s --task listops --values 1,2,4 --preset quick --seeds 0-2
    """
    _variant_sweep("s", **options)


@sweep_group.command("landmarks")
@variant_sweep_options
@user_errors
def sweep_landmarks_command(**options: Any) -> None:
    """Train MiTA with each landmark construction (avgpool, learned, random, kmeans), everything else fixed.

    \b
    Table and figure as `lra sweep s`. Values: avgpool, learned, avgpool+learned, random, kmeans.
    Example: lra sweep landmarks --task listops --values avgpool,learned,random,kmeans --seeds 0-2
    """
    _variant_sweep("landmarks", equal_budget=False, **options)


@click.command("swap")
@click.option(
    "--run",
    "run_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="One run directory: its checkpoint evaluated with each --attention.",
)
@click.option(
    "--runs",
    "runs_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="A directory of finished runs of one task (e.g. a suite's --out): the train x eval matrix.",
)
@click.option(
    "--task", default=None, help="With --runs: the task whose runs to use (needed when there are several)."
)
@click.option(
    "--attention",
    "attentions",
    multiple=True,
    metavar="A[,B,...]",
    help="Attention(s) to evaluate with, names or name(key=value,...), repeatable or comma-separated "
    "[with --runs, default: the attentions the runs were trained with].",
)
@attn_param_option("--attn-param mita.num_landmarks=64")
@eval_options
@user_errors
def swap_command(
    run_dir: str | None,
    runs_dir: str | None,
    task: str | None,
    attentions: tuple[str, ...],
    attn_params: tuple[str, ...],
    **options: Any,
) -> None:
    """Evaluate checkpoints trained with one attention using another (weights transfer: MiTA adds no parameters).

    An evaluation attention's parameters start from the budget of the run's preset (as `lra suite`
    trains that attention), then --attn-param and the spec's own values.

    \b
    Parameters an evaluation attention needs and the checkpoint lacks (learned landmark queries) are
    initialised with the run's seed, and listed; checkpoint parameters it does not use are listed as dropped.
    lra swap --run lra_runs/runs/listops/full/0 --attention mita --attn-param num_landmarks=64
    lra swap --run DIR --attention 'mita(topk=16),mita(topk=64),agent'
    lra swap --runs lra_runs --task listops                      # matrix over every finished run
    """
    from runners.experiments import resolve_attentions, swap_matrix, swap_run

    if (run_dir is None) == (runs_dir is None):
        raise UserError(
            "give exactly one of --run DIR (one checkpoint) or --runs DIR (the matrix over its runs)"
        )
    if task is not None and run_dir is not None:
        raise UserError("--task selects runs under --runs; with --run the task is the run's own")
    specs = [spec for text in attentions for spec in split_specs(text)]
    if attn_params and not specs:
        raise UserError(
            "--attn-param sets parameters of an --attention; give the attention too, e.g. --attention mita"
        )
    params = attn_params_of(attn_params, specs)
    resolve_attentions(specs, params)  # bad names and parameters fail here, before any run is loaded
    opts, echo = _eval_config(**options), echo_unless(options["quiet"])
    if run_dir is not None:
        result = swap_run(run_dir, specs, opts, attn_params=params, echo=echo)
    else:
        assert runs_dir is not None  # exactly one of the two, checked above
        result = swap_matrix(runs_dir, specs or None, opts, attn_params=params, task=task, echo=echo)
    report(result)
