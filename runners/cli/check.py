"""`lra check` (README: Bring your own attention; library: runners/plugin_checks.py, attention_zoo/testing.py)."""

from __future__ import annotations

import sys

import click

from ..specs import parse_specs
from .common import (
    PLUGIN_MODULES_KEY,
    UserError,
    attn_param_option,
    attn_params_of,
    plugin_option,
    user_errors,
)


@click.command("check")
@plugin_option
@click.option(
    "--attention",
    "attentions",
    multiple=True,
    metavar="SPEC",
    help="Attention to check, a name or name(key=value,...), repeatable [default: every attention the "
    "--plugin modules register].",
)
@attn_param_option("--attn-param window=4")
@click.option(
    "--smoke", is_flag=True, help="Only the fast subset that runs before a plugin attention trains."
)
@click.option(
    "--dense", is_flag=True, help="Skip the memory check: the attention forms N x N scores by design."
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Where the checks run (in float64).",
)
@user_errors
def check_command(
    attentions: tuple[str, ...], attn_params: tuple[str, ...], smoke: bool, dense: bool, device: str
) -> None:
    """The attention contract, one line per check: output shape and dtype, finite outputs,
    determinism, padding (outputs and gradients), the multi-head layer, gradients against finite
    differences, and no N x N tensor. Exit code 2 when a check fails.

    \b
    lra check --plugin windowed_landmarks
    lra check --plugin windowed_landmarks --attention 'windowed_landmarks(window=4)'
    lra check --attention mita
    """
    from attention_zoo.plugins import loaded_plugins
    from runners.plugin_checks import check_attention
    from runners.specs import attention_spec

    specs = list(attentions)
    if not specs:
        modules = click.get_current_context().meta.get(PLUGIN_MODULES_KEY, ())
        if not modules:
            raise UserError("name a plugin (--plugin MODULE) or an attention (--attention NAME) to check")
        specs = [m for info in loaded_plugins() if info.module in modules for m in info.mechanisms]
    parsed = parse_specs(specs, attn_params_of(attn_params, specs))
    failed = 0
    for name, params in parsed:
        attention = attention_spec(name, params)
        label, plugin = attention.label, attention.mechanism.plugin
        origin = f" (plugin: {plugin})" if plugin else ""
        click.echo(f"{label}{origin}" + (" -- smoke checks" if smoke else ""))
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for result in check_attention(name, params, smoke=smoke, dense=dense, device=device):
            counts[result.status] += 1
            mark = {"pass": "pass", "fail": "FAIL", "skip": "skip"}[result.status]
            click.echo(f"  {mark}  {result.name:<12} {result.detail}")
        summary = f"{counts['pass']} passed, {counts['fail']} failed" + (
            f", {counts['skip']} skipped" if counts["skip"] else ""
        )
        click.echo(f"{label}: {summary}")
        failed += counts["fail"] > 0
    if failed:
        sys.exit(2)
