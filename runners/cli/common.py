"""What every command shares: one-line usage errors, the shared options (--plugin, --data-dir, --device,
--preset, --attn-param, the training options) and how results are printed.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import click

from ..specs import parse_attn_params, parse_spec


class UserError(click.UsageError):
    """A problem with the user's input: printed as one line, exit code 2."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's ValueError / OSError (a missing file, a file where a folder should be, no
    permission, a full disk) / KeyError into a one-line usage error (exit code 2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError, KeyError) as err:
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise UserError(message.splitlines()[0] if message else type(err).__name__) from None

    return wrapper


PLUGIN_MODULES_KEY = "lra.plugin_modules"


def _load_plugin_modules(ctx: click.Context, param: click.Parameter, modules: tuple[str, ...]) -> None:
    """Import the entry-point, LRA_PLUGINS and --plugin plugins before any other option is parsed (an
    attention name of a plugin is then known); a failure is a one-line usage error."""
    from attention_zoo.plugins import PluginError, load_plugins

    ctx.meta[PLUGIN_MODULES_KEY] = modules  # which modules this command named (`lra check` reads it)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            load_plugins(modules)
        except PluginError as err:
            raise UserError(str(err).splitlines()[0]) from None
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)


def plugin_warnings_as_lines() -> None:
    """Show attention-plugin warnings (registers nothing, changed since a run recorded it) as one
    `warning: ...` line on stderr; other warnings as Python shows them."""
    previous = warnings.showwarning
    if getattr(previous, "plugin_lines", False):
        return

    def show(
        message: Any,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if category.__name__ == "PluginWarning":  # by name: importing the plugins module imports torch
            click.echo(f"warning: {message}", err=True)
        else:
            previous(message, category, filename, lineno, file, line)

    show.plugin_lines = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def _trust_recorded_plugins(ctx: click.Context, param: click.Parameter, trust: bool) -> None:
    """`--trust-recorded-plugins`: let records import the plugins they name, here and in children."""
    if trust:
        from attention_zoo.plugins import TRUST_RECORDED_ENV_VAR

        os.environ[TRUST_RECORDED_ENV_VAR] = "1"


def plugin_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--plugin MODULE`, repeatable: import an attention plugin (README, "Bring your own attention");
    and `--trust-recorded-plugins`: import the plugins that run or suite records name."""
    fn = click.option(
        "--trust-recorded-plugins",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_trust_recorded_plugins,
        help="Import the attention plugins that the run or suite records read here name (config.json, "
        "suite.json), without naming each with --plugin. Without it, records never import code.",
    )(fn)
    return click.option(
        "--plugin",
        "plugins",
        multiple=True,
        metavar="MODULE",
        expose_value=False,
        is_eager=True,
        callback=_load_plugin_modules,
        help="Import an attention plugin module first (repeatable; also LRA_PLUGINS=mod1,mod2 and the "
        "'lra.attentions' entry points). Runs record it and their child processes import it too.",
    )(fn)


def attn_param_option(example: str) -> Callable[..., Any]:
    """`--attn-param [NAME.]KEY=VALUE`, repeatable (grammar: README, "Attention specs")."""
    return click.option(
        "--attn-param",
        "attn_params",
        multiple=True,
        metavar="[NAME.]KEY=VALUE",
        help=f"Attention parameter for every spec of that name, repeatable; NAME. may be left out when one "
        f'attention is named; a spec\'s own values win. Example: {example}. Grammar: README, "Attention specs".',
    )


def attn_params_of(values: tuple[str, ...], specs: list[str]) -> dict[str, dict[str, str]]:
    """The --attn-param values for the attention `specs` a command runs, as {name: {key: value}}."""
    return parse_attn_params(values, [parse_spec(spec)[0] for spec in specs])


def apply_options(fn: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    """Decorate `fn` with click options, listed in the order they should appear in --help."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def with_options(options: list[Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`apply_options` as a decorator: @with_options(SHARED_OPTIONS)."""
    return lambda fn: apply_options(fn, options)


device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto = CUDA when available.",
)


def data_dir_option(
    help_text: str = "Data root (default $LRA_DATA_DIR or ./lra_data).",
) -> Callable[..., Any]:
    """`--data-dir`: where task data live."""
    return click.option("--data-dir", default=None, help=help_text)


def preset_option(default: str) -> Callable[..., Any]:
    return click.option(
        "--preset", default=default, show_default=True, help="Preset: tiny, quick, pytorch or lra."
    )


def training_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How runs are configured beyond the preset; shared by `lra run`, `lra suite` and the sweeps."""
    return apply_options(
        fn,
        [
            click.option(
                "--set",
                "overrides",
                multiple=True,
                metavar="KEY=VALUE",
                help="Override a preset field, repeatable: --set model.layers=3 --set train.lr=1e-3.",
            ),
            click.option(
                "--max-steps", default=None, type=int, help="Total optimizer steps (the schedule follows)."
            ),
            device_option,
            data_dir_option(),
            click.option(
                "--source", default=None, help="Data source (e.g. generated, lra_release, hf, tfds)."
            ),
        ],
    )


log_option = click.option(
    "--log",
    "log",
    multiple=True,
    type=click.Choice(["tensorboard"]),
    help="Log the training curves: tensorboard writes <run-dir>/tensorboard/ (tensorboard --logdir OUT "
    "shows the runs by task and attention; pip install 'lra-arena[tensorboard]'). Off by default.",
)


def echo_unless(quiet: bool) -> Callable[[str], None]:
    return (lambda _: None) if quiet else (lambda line: click.echo(line, err=True))


def report(result: Any) -> None:
    click.echo(result.markdown)
    for path in result.paths:
        click.echo(f"wrote {path}")
