"""When a measured cost can be trusted: the one rule the bench tables, the frontier and the report apply.

A timing record (``kind="efficiency"``) is *unreliable* when

* its timed calls spread too much: p80 / p20 above `MAX_TIME_SPREAD` (1.5), or
* other processes kept more than `MAX_OTHER_LOAD` (half) of the machine's CPU cores busy while it was
  measured (`other_cpu_load`, CPU steal of a virtual machine included; runners/bench/timing.py).

A ratio of two records (an attention's speed relative to full attention) is unreliable when either
record is. Ratios are formed only between records of one bench call (`bench_call_id`: one `lra
bench` invocation, on one machine; `--resume` continues the call whose records it reuses), never
across calls. Records written before these fields existed have no call id and no load: their spread
is computed from p20 and p80, their load is unknown (not a reason to mark them).

No torch import: this reads records only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_TIME_SPREAD = 1.5
MAX_OTHER_LOAD = 0.5
# What "unreliable" means, in the words of tables, captions and warnings.
RULE = (
    f"p80/p20 of the timed calls above {MAX_TIME_SPREAD:g}, or other processes using more than "
    f"{MAX_OTHER_LOAD:.0%} of the machine's CPU cores while it was measured"
)
MARK = "†"

# Optional fields of efficiency records (absent from records written before them; None where unknown).
TIMING_FIELDS: dict[str, str] = {
    "bench_call_id": "id of the `lra bench` invocation that measured it (UTC time + random suffix); ratios "
    "are formed only between records of one call",
    "time_spread": "p80 / p20 of the timed calls (1 = all alike)",
    "other_cpu_load": "fraction of all CPU cores other processes kept busy during the measurement (CPU steal "
    "included), None when unknown",
    "cpu_steal": "fraction of all CPU cores stolen by the hypervisor during the measurement",
    "load_per_core_before": "1-minute load average / cores before the measurement (this process included)",
    "load_per_core_after": "the same after it",
    "cpu_cores": "CPU cores of the machine",
}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def time_spread(p20_ms: Any, p80_ms: Any) -> float | None:
    """p80 / p20, the relative spread of a measurement's timed calls; None where either is missing."""
    p20, p80 = _number(p20_ms), _number(p80_ms)
    if p20 is None or p80 is None or not p20 > 0:
        return None
    return p80 / p20


def unreliable_reason(record: Mapping[str, Any]) -> str | None:
    """Why a timing record is unreliable under `RULE` ("p80/p20 = 38.0", "others used 83% of the
    cores", or both), None when it is not (or has no measurement)."""
    if record.get("status") != "ok":
        return None
    reasons = []
    spread = time_spread(record.get("time_ms_p20"), record.get("time_ms_p80"))
    if spread is not None and spread > MAX_TIME_SPREAD:
        reasons.append(f"p80/p20 = {spread:.2g}" if spread < 10 else f"p80/p20 = {spread:.0f}")
    load = _number(record.get("other_cpu_load"))
    if load is not None and load > MAX_OTHER_LOAD:
        reasons.append(f"others used {load:.0%} of the cores")
    return ", ".join(reasons) or None


def ratio_reason(record: Mapping[str, Any], reference: Mapping[str, Any]) -> str | None:
    """Why the ratio of `record` to `reference` (full attention's) is unreliable, or None."""
    mine, theirs = unreliable_reason(record), unreliable_reason(reference)
    parts = [mine] if mine else []
    if theirs:
        parts.append(f"full attention: {theirs}")
    return "; ".join(parts) or None


def unreliable_warning(count: int, total: int, what: str = "ratios to full attention") -> str | None:
    """The one line that warns about unreliable ratios (None when there are none)."""
    if not count:
        return None
    return (
        f"warning: {count} of {total} {what} are unreliable ({MARK}: {RULE}); measure them on a quiet "
        "machine before publishing them"
    )
