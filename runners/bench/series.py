"""What the efficiency benchmarks measure: series of (attention, parameters, backend), one line of a
table each, full attention (the reference of every ratio) first (`build_series`).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

import attention_zoo
from attention_zoo.plugins import provenance_of
from results.cost_tables import REFERENCE

from ..specs import parse_specs

# Backends that only run on CUDA (on CPU Triton needs its interpreter and FlexAttention runs an
# unfused eager form without backward: neither is a cost worth timing).
CUDA_ONLY_BACKENDS = frozenset({"triton", "flex"})
# Readable forms that the fast paths are tested against: timed only when the parameters name them.
REFERENCE_BACKENDS = frozenset({"reference"})
# The implementation behind mechanisms without a `backend` parameter.
IMPLEMENTATION = {"full": "sdpa"}


@dataclass(frozen=True)
class Series:
    """One line of a table: a mechanism with its parameters, run by one backend.

    `label` is the mechanism's label without the backend (which has its own field), so the
    plots' series names read `mita [torch]`, `mita [triton]`, `full [sdpa]`. `plugin` is the
    provenance of the plugin that registered the mechanism (None for a built-in), what its records
    carry.
    """

    mechanism: attention_zoo.Mechanism
    params: attention_zoo.AttentionParams
    backend: str
    label: str
    applicable: bool = True
    plugin: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.label} [{self.backend}]"

    @property
    def slug(self) -> str:
        return re.sub(
            r"[^A-Za-z0-9_.=,-]+", "-", f"{self.mechanism.slug(self.display_params())}-{self.backend}"
        )

    def display_params(self) -> attention_zoo.AttentionParams:
        """The parameters with the backend at its default (the backend has its own field)."""
        return _with_default_backend(self.mechanism, self.params)


def _with_default_backend(
    mechanism: attention_zoo.Mechanism, params: attention_zoo.AttentionParams
) -> attention_zoo.AttentionParams:
    values = params.to_dict()
    if "backend" not in values:
        return params
    default = mechanism.params().to_dict()["backend"]
    return dataclasses.replace(params, **{"backend": default})


def backend_choices(mechanism: attention_zoo.Mechanism) -> tuple[str, ...]:
    """The values of a mechanism's `backend` parameter other than "auto" and the readable references
    (empty if it has none)."""
    hints = typing.get_type_hints(mechanism.params_cls)
    if "backend" not in hints:
        return ()
    return tuple(b for b in typing.get_args(hints["backend"]) if b != "auto" and b not in REFERENCE_BACKENDS)


def build_series(
    attentions: Sequence[str], attn_params: dict[str, dict[str, Any]], device: torch.device
) -> list[Series]:
    """Every series to run, full attention first; CUDA-only backends on CPU are marked not applicable.

    `attentions` are names or specs with parameters, as `lra suite` takes them: "mita",
    "mita(topk=64)" (empty = every registered attention). `attn_params` apply to every spec of
    that name; a spec's own parameters win. A mechanism with a `backend` parameter runs once per
    backend (its readable reference only when named) unless the parameters name one. ValueError on
    unknown names or parameters.
    """
    specs = parse_specs(attentions or attention_zoo.names(), attn_params)
    if REFERENCE not in [name for name, _ in specs]:
        specs.insert(0, (REFERENCE, {}))
    series: dict[str, Series] = {}
    for name, given in specs:
        mechanism = attention_zoo.get(name)
        plugin = provenance_of(mechanism)
        validated = mechanism.params(**given)  # before anything runs
        backends = backend_choices(mechanism)
        if not backends:
            implementation = IMPLEMENTATION.get(name, "torch")
            one = Series(mechanism, validated, implementation, mechanism.label(validated), plugin=plugin)
            series.setdefault(one.name, one)
            continue
        chosen = [str(given["backend"])] if given.get("backend", "auto") != "auto" else list(backends)
        for backend in chosen:
            params = mechanism.params(**{**given, "backend": backend})
            applicable = device.type == "cuda" or backend not in CUDA_ONLY_BACKENDS
            label = mechanism.label(_with_default_backend(mechanism, params))
            one = Series(mechanism, params, backend, label, applicable, plugin)
            series.setdefault(one.name, one)
    return list(series.values())
