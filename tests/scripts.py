"""The operations scripts of scripts/ (outside the installed package), for the tests that call them:
their paths, and a Python script loaded from its file as the shell script runs it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
GPU_CHECKS = SCRIPTS / "gpu_checks.sh"


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (its `main` and helpers), loaded once per pytest run."""
    module_name = f"scripts_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"no script {name}.py in {SCRIPTS}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before running it: dataclasses look their module up
    spec.loader.exec_module(module)
    return module
