"""`lra`: the command line of the LRA arena -- a thin click layer over library functions.

Every command parses and validates its options, then calls one library function. Bad input ends
with a one-line `Error: ...` naming the problem and the fix, and exit code 2 (no traceback).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

# ---------------------------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------------------------


class UserError(click.UsageError):
    """A problem with the user's input: printed as one line, exit code 2."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's ValueError / FileNotFoundError into a one-line usage error (exit code 2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError, KeyError) as err:
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise UserError(message.splitlines()[0] if message else type(err).__name__) from None

    return wrapper


def parse_key_values(values: tuple[str, ...], option: str) -> dict[str, str]:
    """`key=value` pairs from a repeated option; a malformed one is a usage error."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="lra-arena", prog_name="lra")
def main() -> None:
    """LRA arena: which attention for long sequences, at what accuracy and what cost.

    \b
    lra run         train one task with one attention
    lra suite       run task x attention x seed grids and build the leaderboard
    lra list        the registered attentions and tasks
    """


# ---------------------------------------------------------------------------------------------
# lra list / lra info
# ---------------------------------------------------------------------------------------------


@main.group("list")
def list_group() -> None:
    """List what is registered."""


@list_group.command("attentions")
def list_attentions() -> None:
    """Registered attention mechanisms with their parameters."""
    import attention_zoo

    for name in attention_zoo.names():
        mech = attention_zoo.get(name)
        click.echo(f"{name:<12} {mech.summary}")
        click.echo(f"{'':<12} params: {mech.parameter_help()}")


# ---------------------------------------------------------------------------------------------
# lra data: generate / prepare / info   (library: lra/data, lra/tasks)
# ---------------------------------------------------------------------------------------------

# [section: data]

# ---------------------------------------------------------------------------------------------
# lra run   (library: runners/train.py)
# ---------------------------------------------------------------------------------------------

# [section: run]

# ---------------------------------------------------------------------------------------------
# lra suite / leaderboard / compare / plot   (library: runners/suite.py, results/)
# ---------------------------------------------------------------------------------------------

# [section: suite]

# ---------------------------------------------------------------------------------------------
# lra bench   (library: runners/bench.py)
# ---------------------------------------------------------------------------------------------

# [section: bench]

# ---------------------------------------------------------------------------------------------
# lra sweep / swap: MiTA experiments   (library: runners/experiments.py)
# ---------------------------------------------------------------------------------------------

# [section: experiments]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
