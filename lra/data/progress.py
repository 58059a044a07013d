"""Progress bars and worker processes for long data steps (generation, decoding)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)`, disabled when stderr is not a terminal or `$LRA_PROGRESS=0`."""
    disable = True if os.environ.get("LRA_PROGRESS", "1") == "0" else None
    return tqdm(iterable, disable=disable, dynamic_ncols=True, leave=False, **kwargs)


def worker_context() -> multiprocessing.context.BaseContext:
    """Start method of data worker processes: fork where available (the workers run only
    Python, numpy and Pillow, and fork works from scripts read on stdin), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def default_workers() -> int:
    """Worker processes of a data step when none are asked for: every core this process may use.
    The generators' output does not depend on the number of workers."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1
