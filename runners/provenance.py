"""Where a record comes from: code version, package versions, code hash, UTC time, configuration identity.

Torch-free, so that any module (and `lra info`) can stamp records without importing the training
loop. File and directory names made from labels use `lra.io.slug` (one character set everywhere).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

# The packages whose code decides what is measured (the command line only parses options).
CODE_PACKAGES = ("attention_zoo", "lra", "runners", "results")
_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str | None:
    """The commit of this checkout (`-dirty` when tracked files changed), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def installed_version(package: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def code_hash(root: Path | None = None) -> str:
    """sha256 prefix of every .py file of the packages under `root` (default: this checkout or
    installation), paths and bytes: equal iff the code is."""
    root = root or _ROOT
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def utc_now() -> str:
    """The current UTC time as ISO 8601 to the second: `2026-01-01T12:00:00+00:00`."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def config_hash(config: Mapping[str, Any]) -> str:
    """The identity of a resolved configuration: sha256 prefix of its canonical JSON (keys sorted)."""
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
