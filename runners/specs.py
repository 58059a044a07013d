"""Attention specs, attention parameters and seeds on the command line: one grammar for every command.

::

    SPEC   := NAME | NAME(KEY=VALUE,...)      full   mita   mita(num_landmarks=64,topk=64)
    SPECS  := SPEC[,SPEC,...]                 full,mita(num_landmarks=64,topk=64),agent
    PARAM  := [NAME.]KEY=VALUE                --attn-param mita.topk=64   (repeatable)
    SEEDS  := N | N-M, comma-separated        0   0,1,2   0-4   0-2,7

A comma inside parentheses belongs to its spec. `--attn-param` sets a parameter of every spec of
that name; `NAME.` may be left out when the command names a single attention. A spec's own
parameters win over `--attn-param`. Values stay strings while parsing: `attention_spec` then turns a
name and its parameters into the one typed object every command carries down to its records (an
`AttentionSpec`: the mechanism, its validated parameter dataclass, the label, the plugin), so that a
bad key or value is reported by the mechanism that owns it, once. Every error is a one-line
ValueError naming the fix.

Torch-free at import: parsing a command line imports no torch (`attention_spec` imports the zoo).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attention_zoo import AttentionParams, Mechanism

Spec = tuple[str, dict[str, str]]
# name -> {key: value}, as --attn-param gives them
AttnParams = dict[str, dict[str, str]]

_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")
EXAMPLE_SPEC = "mita(topk=64)"
EXAMPLE_PARAM = "mita.topk=64"


def parse_spec(spec: str) -> Spec:
    """`mita(num_landmarks=64,topk=64)` -> ("mita", {"num_landmarks": "64", "topk": "64"})."""
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(
            f"malformed attention {spec!r}; write a name or name(key=value,...), e.g. {EXAMPLE_SPEC}"
        )
    name, inner = match.group(1), match.group(2)
    params: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (inner or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"malformed attention parameter {item!r} in {spec!r}; write key=value")
        params[key.strip()] = value.strip()
    return name, params


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list, keeping commas inside parentheses: 'full,mita(a=1,b=2)'."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        depth += (char == "(") - (char == ")")
        current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_key_values(values: Iterable[str], option: str) -> dict[str, str]:
    """`key=value` pairs of a repeated option (`--set model.layers=3`); the last of a key wins."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def parse_attn_params(values: Iterable[str], names: Sequence[str] = ()) -> AttnParams:
    """Repeated `[NAME.]KEY=VALUE` -> {name: {key: value}}; `names` are the attentions the command
    runs (a bare `KEY=VALUE` belongs to the only one). Names are checked by `check_attn_params`."""
    names = list(dict.fromkeys(names))
    out: AttnParams = {}
    for item in values:
        target, sep, value = item.partition("=")
        name, dot, key = target.strip().rpartition(".")
        if not sep or not key or (dot and not name):
            raise ValueError(f"--attn-param expects [NAME.]KEY=VALUE (e.g. {EXAMPLE_PARAM}); got {item!r}")
        if not dot:
            if len(names) != 1:
                raise ValueError(
                    f"--attn-param expects NAME.KEY=VALUE (e.g. {EXAMPLE_PARAM}): {item!r} is ambiguous "
                    "unless exactly one attention is named"
                )
            name = names[0]
        out.setdefault(name, {})[key] = value.strip()
    return out


def check_attn_params(attn_params: Mapping[str, Mapping[str, object]], names: Iterable[str]) -> None:
    """Every name (of the specs and of `attn_params`) is registered, and `attn_params` name only
    attentions that run."""
    import attention_zoo  # here, so that parsing alone (the command line) does not import torch

    selected = set(names)
    for name in [*selected, *attn_params]:
        attention_zoo.get(name)  # ValueError listing the registered attentions
    for name in attn_params:
        if name not in selected:
            raise ValueError(
                f"--attn-param names attention {name!r}, which is not among the attentions run "
                f"({', '.join(sorted(selected))}); add it to the attentions or drop the parameter"
            )


def parse_specs(
    specs: Iterable[str], attn_params: Mapping[str, Mapping[str, object]] | None = None
) -> list[tuple[str, dict[str, object]]]:
    """Specs -> [(name, parameters)] with `attn_params` of that name under the spec's own; names
    checked (`check_attn_params`). Values are not yet validated: `attention_spec` does that."""
    attn_params = attn_params or {}
    parsed = [parse_spec(spec) for spec in specs]
    check_attn_params(attn_params, [name for name, _ in parsed])
    return [(name, {**attn_params.get(name, {}), **inline}) for name, inline in parsed]


def parse_attentions(specs: Sequence[str], attn_param_values: Iterable[str] = ()) -> list[Spec]:
    """A command's attention specs and its repeated `--attn-param [NAME.]KEY=VALUE` values, each
    parsed once -> [(name, parameters)], a spec's own parameters over `--attn-param`; names checked."""
    parsed = [parse_spec(spec) for spec in specs]
    attn_params = parse_attn_params(attn_param_values, [name for name, _ in parsed])
    check_attn_params(attn_params, [name for name, _ in parsed])
    return [(name, {**attn_params.get(name, {}), **inline}) for name, inline in parsed]


@dataclass(frozen=True)
class AttentionSpec:
    """One attention as a run, a bench series or an evaluation carries it from the command line to its
    record, resolved once by `attention_spec` and never parsed, validated or labelled again.

    Attributes:
        mechanism: the registered mechanism (`attention_zoo.get(name)`).
        params: its parameter dataclass, validated (defaults filled in).
        label: the name plus the parameters that differ from the defaults (`Mechanism.label`):
            `mita(num_landmarks=64,topk=64)`, what runs are grouped and tabulated by.
        slug: the label as a directory name (`Mechanism.slug`).
        plugin: the provenance of the plugin that registered the mechanism (`PluginInfo.to_dict()`),
            None for a built-in or a mechanism a script registered.
    """

    mechanism: Mechanism
    params: AttentionParams
    label: str
    slug: str
    plugin: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.mechanism.name


def attention_spec(name: str, params: Mapping[str, object] | None = None) -> AttentionSpec:
    """The `AttentionSpec` of attention `name` with `params` (strings are converted by the
    mechanism's dataclass); ValueError (one line, from the registry) for an unknown name, key or value."""
    import attention_zoo  # here, so that parsing alone (the command line) does not import torch
    from attention_zoo.plugins import provenance_of

    mechanism = attention_zoo.get(name)
    validated = mechanism.params(**dict(params or {}))
    return AttentionSpec(
        mechanism=mechanism,
        params=validated,
        label=mechanism.label(validated),
        slug=mechanism.slug(validated),
        plugin=provenance_of(mechanism),
    )


def parse_seeds(text: str) -> tuple[int, ...]:
    """`0,1,2` or `0-2` (or a mix, `0-2,7`) -> (0, 1, 2, ...), duplicates removed, order kept."""
    seeds: list[int] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        first, dash, last = item.partition("-")
        try:
            seeds += list(range(int(first), int(last) + 1)) if dash else [int(item)]
        except ValueError:
            raise ValueError(f"--seeds expects integers or ranges like 0,1,2 or 0-4; got {item!r}") from None
    if not seeds:
        raise ValueError("--seeds is empty; pass e.g. --seeds 0 or --seeds 0-2")
    return tuple(dict.fromkeys(seeds))
