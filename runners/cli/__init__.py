"""`lra`: the command line of the LRA arena -- a thin click layer over library functions.

Every command parses and validates its options, then calls one library function. Bad input ends
with a one-line `Error: ...` naming the problem and the fix, and exit code 2 (no traceback).
The commands live in one module per README section (`data`, `run`, `suite`, `results`, `bench`,
`experiments`, `check`, plus `info`); `common` holds what they share. The console script `lra` and
the checkout's `python cli.py` are `main` (the CPU pinning applied by it, before torch is imported).
"""

from __future__ import annotations

import click

from ..cpu_pinning import apply_cpu_pinning, opt_out
from . import bench, check, data, experiments, info, results, run, suite
from .common import plugin_warnings_as_lines

# Commands that measure speed rather than results: the CPU pinning would make them slower, unevenly.
UNPINNED_COMMANDS = ("bench",)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="lra-arena", prog_name="lra")
@click.option(
    "--cpu-pin/--no-cpu-pin",
    default=True,
    show_default=True,
    help="Pin the instruction sets of the CPU math libraries (ATen AVX2, oneDNN AVX2, MKL's compatible "
    "branch) so that CPU runs give the same numbers on other machines; --no-cpu-pin (or LRA_CPU_PIN=0) "
    "is faster. Runs record which (README: Reliability). `lra bench` is never pinned.",
)
@click.pass_context
def main(ctx: click.Context, cpu_pin: bool) -> None:
    """LRA arena: which attention for long sequences, at what accuracy and what cost.

    \b
    lra suite --preset quick   every attention on generated ListOps + Pathfinder, then the leaderboard
    lra run                    train one task with one attention
    lra leaderboard / compare / plot   tables and figures from result records
    lra report                 one self-contained HTML page of the results
    lra bench attention|model|kernels   speed and memory against sequence length
    lra sweep mk|s|landmarks|scaling, lra swap   MiTA experiments
    lra data generate|prepare|info               task data
    lra check --plugin MODULE                    the attention contract, one line per check
    lra list attentions|tasks                    what is registered
    lra info                                     versions, devices, backends, data locations
    """
    # First, before any command imports torch: the libraries read these variables when they first run.
    # `lra bench` measures speed, which the pinning (MKL's SSE2 branch) would distort: never pinned.
    if cpu_pin and ctx.invoked_subcommand not in UNPINNED_COMMANDS:
        apply_cpu_pinning()
    elif not cpu_pin:
        opt_out()
    plugin_warnings_as_lines()


for command in (
    suite.suite_command,
    run.run_command,
    results.leaderboard_command,
    results.compare_command,
    results.plot_command,
    results.report_command,
    results.readme_command,
    bench.bench_group,
    experiments.sweep_group,
    experiments.swap_command,
    data.data_group,
    check.check_command,
    info.list_group,
    info.info_command,
):
    main.add_command(command)
