"""The top-level command: help lists every command group, `lra info` describes the installation."""

from __future__ import annotations

import torch
from click.testing import CliRunner

from runners import cli


def test_help_lists_every_command():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    for command in (
        "suite",
        "run",
        "leaderboard",
        "compare",
        "plot",
        "bench",
        "sweep",
        "swap",
        "data",
        "list",
        "info",
    ):
        assert f"  {command} " in result.output.split("Commands:")[1], command


def test_info_reports_versions_and_backends():
    result = CliRunner().invoke(cli.main, ["info"])
    assert result.exit_code == 0, result.output
    assert torch.__version__ in result.output
    assert "mita backends" in result.output and "full, agent, topk, moba, mita, mita_route" in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli.main, ["trian"])
    assert result.exit_code == 2 and "No such command" in result.output
