"""`python cli.py ...` from a checkout and the installed `lra ...` are one program: the same `main`, the
same help, the same CPU pinning applied before torch is imported, and `cli` is never installed as a
top-level module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runners.cpu_pinning import CPU_PINS, OPT_OUT_ENV

REPO = Path(__file__).resolve().parents[1]


def _lra() -> str:
    """The console script `lra` of this Python's environment."""
    found = shutil.which("lra", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        pytest.skip("the console script `lra` is not installed here (pip install -e .)")
    return found


def _clean_env() -> dict[str, str]:
    """This environment without any CPU pin or opt-out, with the checkout's packages importable."""
    env = {k: v for k, v in os.environ.items() if k not in CPU_PINS and k != OPT_OUT_ENV}
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))}


def _both(*args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    def call(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=REPO, env=_clean_env(), capture_output=True, text=True, check=False)

    return call([sys.executable, "cli.py", *args]), call([_lra(), *args])


@pytest.mark.parametrize("args", [("--help",), ("run", "--help"), ("bench", "--help"), ("nonsense",)])
def test_python_cli_py_and_lra_print_the_same(args):
    checkout, installed = _both(*args)
    assert checkout.returncode == installed.returncode
    assert (checkout.stdout, checkout.stderr) == (installed.stdout, installed.stderr)
    assert "Usage: lra" in checkout.stdout + checkout.stderr


@pytest.mark.e2e
def test_python_cli_py_pins_the_cpu_as_lra_does():
    checkout, installed = _both("info")
    assert checkout.returncode == installed.returncode == 0, checkout.stderr + installed.stderr
    assert checkout.stdout == installed.stdout
    for name, value in CPU_PINS.items():
        assert f"${name}" in checkout.stdout and value in checkout.stdout


def test_cli_py_is_the_packages_main_and_imports_no_torch():
    probe = "import sys, cli, runners.cli; assert cli.main is runners.cli.main; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=_clean_env(), capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_cli_is_not_installed_as_a_top_level_module():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    assert "py-modules" not in setuptools
    assert all(not pattern.startswith("cli") for pattern in setuptools["packages"]["find"]["include"])
    assert config["project"]["scripts"]["lra"] == "runners.cli:main"
