"""`lra bench attention|model|kernels` (README: Efficiency; library: runners/bench/: options.py (options,
grids), series.py, attention.py, model.py, kernels/).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..defaults import DEFAULT_RUNS_DIR
from ..specs import split_specs
from .common import (
    apply_options,
    attn_param_option,
    attn_params_of,
    device_option,
    plugin_option,
    user_errors,
    with_options,
)

# How each cell is measured; shared by `lra bench attention|model` and `lra sweep scaling`.
MEASUREMENT_OPTIONS = [
    device_option,
    click.option("--warmup", default=None, type=int, help="Untimed calls per measurement."),
    click.option("--repeats", default=None, type=int, help="Timed calls per measurement (median, p20, p80)."),
    click.option(
        "--time-budget",
        "time_budget_s",
        default=None,
        type=float,
        metavar="S",
        help="Seconds of timed calls per measurement; fewer repeats when calls are slow.",
    ),
    click.option(
        "--max-call-s",
        default=None,
        type=float,
        metavar="S",
        help="Skip a series' longer lengths once one call takes longer (0 = never).",
    ),
    click.option(
        "--memory-limit",
        "memory_limit_gb",
        default=None,
        type=float,
        metavar="GIB",
        help="CPU only: calls allocating more are recorded as OOM [default: half the free RAM; 0 = none].",
    ),
    click.option(
        "--resume",
        is_flag=True,
        help="Reuse the records of cells already in --out that were measured with the same device, "
        "settings, code and versions; continues a killed or time-limited run.",
    ),
    click.option(
        "--max-minutes",
        default=None,
        type=float,
        metavar="M",
        help="Start no new measurement after M minutes; the cells left are listed as not run "
        "(the same command with --resume measures them).",
    ),
    click.option("--quiet", is_flag=True, help="No progress bar or per-measurement lines."),
]
# The shape of one attention call; `lra bench attention` and `lra sweep scaling`.
ATTENTION_SHAPE_OPTIONS = [
    click.option("--heads", default=None, type=int, help="Heads H [default: 8; 4 in the CPU reduced grid]."),
    click.option(
        "--head-dim",
        default=None,
        type=int,
        help="Head dimension d [default: 64; 32 in the CPU reduced grid].",
    ),
    click.option(
        "--dtype",
        type=click.Choice(["float32", "float16", "bfloat16"]),
        default=None,
        help="[default: bfloat16 on CUDA, float32 on CPU]",
    ),
]


def bench_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options `lra bench attention` and `lra bench model` share."""
    options: list[Callable[..., Any]] = [
        click.option(
            "--attentions",
            default=None,
            metavar="A,B,...",
            help="Attentions to measure, names or name(key=value,...), e.g. 'full,mita(topk=64)' "
            "[default: all]; full attention, the reference, is always included.",
        ),
        attn_param_option("--attn-param mita.topk=64 --attn-param mita.backend=torch"),
        plugin_option,
        click.option(
            "--lengths",
            default=None,
            metavar="N,N,...",
            help="Sequence lengths, e.g. 1024,2048 or 1K,2K [default: the grid's].",
        ),
        click.option("--batch", default=None, type=int, help="Batch size [default: the grid's]."),
        click.option(
            "--quick/--full-grid",
            "quick",
            default=None,
            help="Reduced grid (few short lengths, small batch, few repeats) or the full one "
            "[default: reduced on CPU, full on CUDA].",
        ),
        *MEASUREMENT_OPTIONS,
        click.option(
            "--out",
            default=DEFAULT_RUNS_DIR,
            show_default=True,
            help="Results directory: records under OUT/efficiency/ (lra plot --runs OUT draws them).",
        ),
    ]
    return apply_options(fn, options)


def _bench_config(
    attentions: str | None, attn_params: tuple[str, ...], lengths: str | None, **kwargs: Any
) -> Any:
    """The `runners.bench.BenchConfig` of the parsed options (ValueError on bad lists)."""
    from runners.bench import BenchConfig, parse_lengths

    specs = split_specs(attentions or "")
    return BenchConfig(
        attentions=tuple(specs),
        attn_params=attn_params_of(attn_params, specs),
        lengths=parse_lengths(lengths) if lengths is not None else None,
        **kwargs,
    )


@click.group("bench")
def bench_group() -> None:
    """Efficiency: time and peak memory per attention, as records in the results store.

    \b
    lra bench attention   one attention call (forward, forward + backward) from 1K tokens up
    lra bench model       LRA Table 2: training steps/s and memory of the Text model at 1K-4K (16K)
    """


@bench_group.command("attention")
@bench_options
@with_options(ATTENTION_SHAPE_OPTIONS)
@user_errors
def bench_attention_command(**kwargs: Any) -> None:
    """Forward and forward + backward time and peak memory of every attention (and each of its backends).

    \b
    Inputs are random q, k, v of shape [B, H, N, d]. Full grid: N = 1K..1M on CUDA, 256..8K on CPU.
    Writes one record per measurement and a table of ratios to full attention (.md, .csv), printed too.
    Example: lra bench attention --attentions full,mita --lengths 1K,4K,16K --dtype bfloat16
    """
    from runners.bench import bench_attention

    rows, markdown = bench_attention(_bench_config(**kwargs))
    _echo_tables(rows, markdown)


@bench_group.command("model")
@bench_options
@click.option(
    "--compile",
    "compile",
    default=None,
    flag_value="reduce-overhead",
    is_flag=False,
    metavar="[MODE]",
    help="Train the model under torch.compile (every attention alike); MODE "
    "defaults to reduce-overhead (CUDA graphs; on CPU inductor without graphs). Recorded in the "
    "records and their directory name.",
)
@user_errors
def bench_model_command(**kwargs: Any) -> None:
    """LRA Table 2: training steps/s and peak memory of the Text task model, relative to full attention.

    \b
    The released LRA Text config (4 layers, 256-d, 4 heads, MLP 1024), batch 32 or the largest
    power-of-two fraction of it that fits, at N = 1K, 2K, 3K, 4K, 8K, 16K on CUDA.
    Example: lra bench model --attentions full,mita --lengths 1K,2K,3K,4K --batch 32
    """
    from runners.bench import bench_model

    rows, markdown = bench_model(_bench_config(**kwargs))
    _echo_tables(rows, markdown)


def _echo_tables(rows: list[dict[str, Any]], markdown: str) -> None:
    """The tables, then one warning line on stderr when some of their ratios are unreliable."""
    from results.cost_tables import warning_line

    click.echo(markdown)
    warning = warning_line(rows)
    if warning:
        click.echo(warning, err=True)


@bench_group.command("kernels")
@click.option("--quick", is_flag=True, help="Only N = 1K, 4K, 16K (a smoke run of a minute or two).")
@click.option("--out", default="bench_kernels.json", show_default=True, type=click.Path(dir_okay=False),
              help="JSON summary; the markdown summary goes beside it with the suffix .md.")  # fmt: skip
@click.option("--records", "records_dir", default=None, metavar="DIR", type=click.Path(file_okay=False),
              help="Also write one efficiency record per measurement under DIR/efficiency/kernels/.")  # fmt: skip
@click.option("--budget-s", default=420.0, show_default=True, type=float,
              help="Skip cells whose predicted cost would take the run past this many seconds.")  # fmt: skip
@click.option("--time-anyway", is_flag=True, help="Time even if a correctness check fails.")
@click.option("--profile", "profile_lengths", default="65536", show_default=True, metavar="N,N,...",
              help="Lengths at which to list device time per kernel (torch.profiler); '' for none.")  # fmt: skip
@click.option("--tune", "tune_lengths", default="", metavar="N,N,...",
              help="Instead of the benchmark: time each KernelConfig change of TUNE_CONFIGS at these lengths.")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench_kernels_command(
    quick: bool,
    out: str,
    records_dir: str | None,
    budget_s: float,
    time_anyway: bool,
    profile_lengths: str,
    tune_lengths: str,
    quiet: bool,
) -> None:
    """MiTA's Triton kernels against SDPA and the torch reference: correctness, then time and memory (CUDA).

    \b
    Checks forward and gradients on the GPU, then times forward and forward + backward of
    mita-triton, SDPA (default and flash) and mita-torch from 1K to 1M tokens, with a per-kernel
    profile; --tune times each KernelConfig change instead.
    Example: lra bench kernels --quick --out bench_kernels.json
    """
    from runners.bench.kernels import markdown, run, tune_and_write, write_outputs

    parsed = {}
    for option, text in (("--profile", profile_lengths), ("--tune", tune_lengths)):
        try:
            parsed[option] = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
        except ValueError:
            click.echo(
                f"Error: {option} takes comma-separated integers, e.g. 65536,262144; got {text!r}", err=True
            )
            sys.exit(2)
    lengths = parsed["--profile"]
    try:
        if parsed["--tune"]:
            click.echo(tune_and_write(parsed["--tune"], budget_s, Path(out), progress=not quiet))
            return
        report, passed = run(quick, budget_s, time_anyway, progress=not quiet, profile_lengths=lengths)
    except ValueError as err:
        click.echo(f"Error: {str(err).splitlines()[0]}", err=True)
        sys.exit(2)
    write_outputs(report, Path(out), Path(records_dir) if records_dir else None)
    click.echo(markdown(report))
    click.echo(f"Wrote {out} and {Path(out).with_suffix('.md')} in {report['total_s']:.0f} s.")
    if not passed:
        click.echo("Error: a correctness check failed (see the table above).", err=True)
        sys.exit(1)
