"""runners.train's face: every name it lists resolves to its module's object, and importing it imports
no torch, so that `python -m runners.train` pins the CPU's floating-point order before torch loads
(runners/train/__main__.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import runners.train

REPO = Path(__file__).resolve().parents[1]


def test_every_listed_name_is_its_modules_object():
    assert sorted(runners.train.__all__) == sorted(runners.train._EXPORTS)
    for name, module in runners.train._EXPORTS.items():
        assert getattr(runners.train, name) is getattr(
            importlib.import_module(f"runners.train.{module}"), name
        )


def test_importing_the_package_imports_no_torch():
    probe = "import sys, runners.train; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_python_m_runners_train_without_a_config_is_a_usage_line():
    done = subprocess.run(
        [sys.executable, "-m", "runners.train"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and done.stderr.strip() == "usage: python -m runners.train RUN_CONFIG.json"
