"""Range checks of a run's numbers, before anything runs: one line naming the setting and the fix.

`lra.presets.validate` checks how the preset's settings fit together; this adds what holds for
every number of a run: floats finite (``--set train.lr=inf`` or ``nan`` never reaches the
optimizer), non-negative, and the few with tighter bounds (Adam's betas and epsilon); integers
non-negative and within 64 bits (``data.seq_len=-1``); the seed within what every generator it
seeds accepts; `--max-steps` and `--checkpoint-every` at least 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from lra.presets import Preset

SEED_LIMIT = 2**32  # NumPy's global generator takes seeds below 2**32
INT_LIMIT = 2**63  # what a torch int64 (and a C long) holds


def check_seed(seed: Any) -> None:
    """ValueError unless `seed` is an integer in [0, 2**32)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be an integer from 0 to {SEED_LIMIT - 1}; got {seed!r}")


def check_run_options(max_steps: int | None, checkpoint_every: int | None) -> None:
    """ValueError unless the explicit step options are integers >= 1 (None = the preset's)."""
    for option, value in (("--max-steps", max_steps), ("--checkpoint-every", checkpoint_every)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < INT_LIMIT:
            raise ValueError(f"{option} must be a whole number of steps >= 1; got {value!r}")


# Bounds tighter than "finite and >= 0": setting -> (low, high, whether low is allowed, whether high is)
_BOUNDS: dict[str, tuple[float, float, bool, bool]] = {
    "train.beta1": (0.0, 1.0, True, False),
    "train.beta2": (0.0, 1.0, True, False),
    "train.eps": (0.0, math.inf, False, False),
    "train.lr": (0.0, math.inf, False, False),
}


def check_preset_numbers(preset: Preset) -> None:
    """ValueError (one line, the setting and its value) for a non-finite or out-of-range number."""
    for section in ("model", "train", "data"):
        config = getattr(preset, section)
        for item in dataclasses.fields(config):
            key, value = f"{section}.{item.name}", getattr(config, item.name)
            if isinstance(value, bool):
                continue
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise ValueError(f"{key} must be a finite number; got {value}")
                if value < 0:
                    raise ValueError(f"{key} must be >= 0; got {value}")
                if key in _BOUNDS:
                    low, high, low_ok, high_ok = _BOUNDS[key]
                    if (
                        value < low
                        or (value == low and not low_ok)
                        or value > high
                        or (value == high and not high_ok)
                    ):
                        interval = f"{'[' if low_ok else '('}{low:g}, {high:g}{']' if high_ok else ')'}"
                        raise ValueError(f"{key} must be in {interval}; got {value}")
            elif isinstance(value, int) and not 0 <= value < INT_LIMIT:
                raise ValueError(f"{key} must be an integer from 0 to 2**63 - 1; got {value}")
