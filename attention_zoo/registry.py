"""The attention registry: one decorator, one typed parameter dataclass per mechanism.

A mechanism is registered on its functional form::

    @dataclass(frozen=True)
    class TopkParams(AttentionParams):
        topk: int = 64

    @register("topk", TopkParams, summary="per-query top-k of the softmax scores")
    def topk_attention(q, k, v, *, key_padding_mask=None, topk): ...

`names()` lists the registered mechanisms, `get(name)` returns its `Mechanism` (the functional, the
parameter class, and a factory for the multi-head `nn.Module` the task models use), and
`Mechanism.params(**overrides)` validates user-supplied parameters: unknown names, wrong types and
out-of-range values raise `ValueError` naming the valid choices. Calling a `Mechanism` checks its
output against the contract (`Mechanism.check_output`), so a plugin returning, say, [B, N, H, d]
stops with a one-line error instead of being reshaped silently by the layer.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class AttentionParams:
    """Base class of every mechanism's parameter dataclass.

    Subclasses declare typed fields with defaults and may override `check()` to reject values
    that are well-typed but meaningless (a non-positive top-k, say). `check()` raises ValueError.
    """

    def check(self) -> None:
        """Reject out-of-range values. The default accepts everything well-typed."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _field_types(params_cls: type[AttentionParams]) -> dict[str, Any]:
    hints = typing.get_type_hints(params_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(params_cls)}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def coerce_value(name: str, value: Any, tp: Any) -> Any:
    """Coerce a parameter value (possibly a CLI string) to the declared field type, or raise."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise ValueError(f"parameter {name!r} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return coerce_value(name, value, args[0])
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"parameter {name!r} must be a bool (true/false); got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"parameter {name!r} must be an int; got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError(f"parameter {name!r} must be an int; got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"parameter {name!r} must be a float; got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"parameter {name!r} must be a string; got {value!r}")
    return value


@dataclass(frozen=True)
class Mechanism:
    """A registered attention mechanism.

    Attributes:
        name: registry name (`full`, `mita`, ...).
        fn: the functional form, `fn(q, k, v, *, key_padding_mask=None, **params)` with q, k, v of
            shape [B, H, N, d]; returns [B, H, N, d].
        params_cls: the typed parameter dataclass (defaults are the mechanism's defaults).
        summary: one line for `lra list attentions` and the README.
        keys_per_query: budget accounting, `keys_per_query(params, n)` -> keys each query attends.
        runtime_inputs: keyword-only inputs of `fn` that are not parameters but are supplied by the
            layer at call time: `training` (the module's mode), `dropout_p` (see
            `attention_dropout`) and the names of `module_parameters`.
        module_parameters: `module_parameters(params, num_heads, head_dim, max_length) -> {name: initial
            tensor}`; the layer owns these as learnable parameters and passes them to `fn` by name (e.g.
            MiTA's learned landmark queries, Linformer's projections). `max_length` is the longest
            sequence the layer will see (0 when the layer was built without one). Most mechanisms have none.
        module_buffers: the same for tensors the layer keeps as (saved, not learned) buffers and passes
            to `fn` by name, e.g. Performer's random features.
        shared_qk: the mechanism uses one projection for queries and keys (Reformer): the layer passes
            its query projection as the keys too.
        buffer_redraw_interval: `buffer_redraw_interval(params) -> int`: the layer redraws its
            `module_buffers` (a fresh call of that function) every this many training calls, 0 = never
            (Performer's `redraw_interval`).
        variants: parameter sets worth testing and listing besides the defaults (e.g. MiTA's landmark
            constructions); the zoo tests loop over them.
        padding_invariant: padding is removed, not zeroed: valid outputs equal the mechanism on the
            valid subsequence alone, so callers may drop padded tokens before calling (MoBA's blocks
            are positional, so for it only trailing padding may be dropped).
        plugin: the module that registered the mechanism when it is not part of this package (an
            attention plugin, see `attention_zoo.plugins`); None for the built-ins.
        attention_dropout: the mechanism forms attention probabilities and drops them when called
            with `dropout_p > 0` (its functional takes the keyword-only `dropout_p`, a runtime input;
            see `attention_zoo._dropout`). The layer passes its rate, in training mode, to these only;
            for the others (kernelized and low-rank mechanisms form no probabilities) it is a
            documented no-op.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    params_cls: type[AttentionParams]
    summary: str
    keys_per_query: Callable[[Any, int], int] | None = None
    runtime_inputs: tuple[str, ...] = ()
    module_parameters: Callable[[Any, int, int, int], dict[str, torch.Tensor]] | None = None
    variants: tuple[Mapping[str, Any], ...] = ()
    padding_invariant: bool = True
    module_buffers: Callable[[Any, int, int, int], dict[str, torch.Tensor]] | None = None
    shared_qk: bool = False
    buffer_redraw_interval: Callable[[Any], int] | None = None
    plugin: str | None = None
    attention_dropout: bool = False

    def params(self, **overrides: Any) -> AttentionParams:
        """Build and validate this mechanism's parameters from keyword overrides (strings allowed)."""
        types_ = _field_types(self.params_cls)
        unknown = sorted(set(overrides) - set(types_))
        if unknown:
            valid = ", ".join(types_) or "(none)"
            raise ValueError(
                f"attention {self.name!r} has no parameter {', '.join(map(repr, unknown))}; valid parameters: {valid}"
            )
        values = {key: coerce_value(key, value, types_[key]) for key, value in overrides.items()}
        try:
            params = self.params_cls(**values)
        except TypeError as err:  # a required field without default was not given
            raise ValueError(f"attention {self.name!r}: {err}") from None
        try:
            params.check()
        except ValueError as err:
            raise ValueError(f"attention {self.name!r}: {err}") from None
        return params

    def label(self, params: AttentionParams | None = None) -> str:
        """Name plus the parameters that differ from the defaults, e.g. `mita(num_landmarks=64,topk=64)`."""
        changed = self._changed(params)
        return f"{self.name}({','.join(changed)})" if changed else self.name

    def slug(self, params: AttentionParams | None = None) -> str:
        """`label` as a directory name: `mita-num_landmarks=64-topk=64`."""
        return "-".join([self.name, *self._changed(params)])

    def _changed(self, params: AttentionParams | None) -> list[str]:
        """`key=value` for each parameter of `params` (already validated) that differs from the
        dataclass's defaults, which are read as they are rather than validated again."""
        if params is None:
            return []
        defaults = self.params_cls().to_dict()
        return [f"{k}={v}" for k, v in params.to_dict().items() if v != defaults[k]]

    def parameter_help(self) -> str:
        """`name: type = default` for every parameter, comma separated."""
        parts = []
        for f, tp in zip(
            dataclasses.fields(self.params_cls), _field_types(self.params_cls).values(), strict=True
        ):
            parts.append(f"{f.name}: {_type_name(tp)} = {f.default!r}")
        return ", ".join(parts) if parts else "(no parameters)"

    def bind(self, params: AttentionParams) -> BoundMechanism:
        """This mechanism with `params` (its own dataclass, already validated: `params()`), ready to be
        called at every forward without validating or converting the parameters again."""
        if not isinstance(params, self.params_cls):
            raise ValueError(
                f"attention {self._who()} expects {self.params_cls.__name__}, got {type(params).__name__}"
            )
        return BoundMechanism(self, params, params.to_dict())

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        params: AttentionParams | Mapping[str, Any] | None = None,
        dropout_p: float = 0.0,
        **runtime: Any,
    ) -> torch.Tensor:
        """Apply the functional form with validated parameters (defaults where not given), then
        check its output (`check_output`).

        `runtime` holds the mechanism's `runtime_inputs` (e.g. `training`); others are an error.
        `dropout_p` is the attention-probability dropout rate (mechanisms with `attention_dropout`
        only; 0 calls the functional without it). A caller that calls it again and again with the
        same parameters (the multi-head layer) binds them once instead (`bind`).
        """
        if params is None:
            params = self.params()
        elif isinstance(params, Mapping):
            params = self.params(**params)
        unexpected = sorted(set(runtime) - set(self.runtime_inputs))
        if unexpected:
            raise ValueError(f"attention {self.name!r} takes no runtime input {unexpected}")
        if dropout_p:  # a runtime input of the mechanisms that have it
            if not self.attention_dropout:
                raise ValueError(
                    f"attention {self._who()} applies no attention-probability dropout; call it with dropout_p=0"
                )
            runtime = {**runtime, "dropout_p": dropout_p}
        return self.bind(params)(q, k, v, key_padding_mask=key_padding_mask, **runtime)

    def check_output(
        self,
        out: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        runtime: Mapping[str, Any] | None = None,
    ) -> None:
        """The output contract every mechanism (plugins included) is held to; `OutputContractError`
        (a ValueError, one line naming the mechanism) otherwise:

        * a tensor of shape [B, H, N, d_v] (q's first three axes, v's last);
        * q's dtype, or the autocast dtype while autocast is on for q's device;
        * finite wherever q, k, v and the tensor runtime inputs are all finite (non-finite inputs
          -- a diverging run -- pass through: the trainer skips and counts such steps). Checked
          per `FINITE_CHECK`.
        """
        if not isinstance(out, torch.Tensor):
            raise OutputContractError(
                f"attention {self._who()} returned {type(out).__name__}, not a tensor [B, H, N, d_v]"
            )
        expected = (*q.shape[:3], v.shape[-1])
        if tuple(out.shape) != expected:
            raise OutputContractError(
                f"attention {self._who()} returned shape {tuple(out.shape)}; the contract is "
                f"[B, H, N, d_v] = {expected}"
            )
        allowed = {q.dtype}
        if q.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(q.device.type):
            allowed.add(torch.get_autocast_dtype(q.device.type))
        if out.dtype not in allowed:
            raise OutputContractError(
                f"attention {self._who()} returned {out.dtype} for {q.dtype} inputs; return the inputs' dtype"
            )
        if _checks_finiteness(out) and not all_finite(out):
            inputs = [q, k, v, *(t for t in (runtime or {}).values() if isinstance(t, torch.Tensor))]
            if all(all_finite(t) for t in inputs):
                bad = int((~torch.isfinite(out)).sum())
                raise OutputContractError(
                    f"attention {self._who()} returned {bad} non-finite values of {out.numel()} from finite "
                    "inputs"
                )

    def _who(self) -> str:
        return f"{self.name!r}" + (f" (plugin {self.plugin})" if self.plugin else "")


class OutputContractError(ValueError):
    """A mechanism's output breaks the contract of `Mechanism.check_output` (shape, dtype, finiteness)."""


@dataclass(frozen=True)
class BoundMechanism:
    """A mechanism with its parameters bound (`Mechanism.bind`): what the multi-head layer calls at
    every forward. The parameters were validated when they were made and are passed as the keywords
    made once here; each call only runs the functional and checks its output (`check_output`).

    `runtime` of a call holds the mechanism's `runtime_inputs`, supplied by its caller (the layer
    passes exactly those the mechanism declares), `dropout_p` included for mechanisms with
    `attention_dropout`.
    """

    mechanism: Mechanism
    params: AttentionParams
    keywords: Mapping[str, Any]

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        **runtime: Any,
    ) -> torch.Tensor:
        out = self.mechanism.fn(q, k, v, key_padding_mask=key_padding_mask, **self.keywords, **runtime)
        self.mechanism.check_output(out, q, k, v, runtime)
        return out


# When `Mechanism.check_output` checks finiteness: "auto" for outputs the host reads without a device
# synchronisation (CPU tensors), "always" (on a GPU it then synchronises at every attention call),
# "never". Never while compiling or capturing a CUDA graph. Its cost is one sum over the output;
# the inputs are only inspected when that sum is not finite. Environment: LRA_CHECK_FINITE.
FINITE_CHECK: str = os.environ.get("LRA_CHECK_FINITE", "auto")
_FINITE_CHECK_MODES = ("auto", "always", "never")


def _checks_finiteness(out: torch.Tensor) -> bool:
    if FINITE_CHECK not in _FINITE_CHECK_MODES:
        raise ValueError(f"LRA_CHECK_FINITE={FINITE_CHECK!r} is not one of {', '.join(_FINITE_CHECK_MODES)}")
    if FINITE_CHECK == "never" or not out.is_floating_point() or torch.compiler.is_compiling():
        return False
    if out.is_cuda and torch.cuda.is_current_stream_capturing():
        return False
    return FINITE_CHECK == "always" or out.device.type == "cpu"


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element of t is finite: one sum (non-finite values propagate into it), and the
    elementwise test only when the sum is not finite (it may overflow from finite values)."""
    if not t.is_floating_point():
        return True
    if bool(torch.isfinite(t.sum(dtype=torch.promote_types(t.dtype, torch.float32)))):
        return True
    return bool(torch.isfinite(t).all())


_REGISTRY: dict[str, Mechanism] = {}

# The plugin module `plugins.load_plugins` is importing; its registrations are marked with it.
_loading_plugin: str | None = None
# Entry-point and LRA_PLUGINS plugins are imported at the first use of the registry, not at import.
_plugins_autoloaded = False


class NameClashError(ValueError):
    """A mechanism name registered twice (a plugin may neither reuse a built-in's name nor another plugin's)."""


def _registering_module(depth: int) -> str | None:
    """The plugin behind a `register` call: the module being loaded as a plugin, else the calling module
    when it lies outside this package (None for the built-ins)."""
    if _loading_plugin is not None:
        return _loading_plugin
    caller = sys._getframe(depth).f_globals.get("__name__", "")
    package = __name__.rpartition(".")[0]
    return None if caller == package or caller.startswith(package + ".") else caller


def _origin(mechanism: Mechanism) -> str:
    if mechanism.plugin is None:
        return f"the built-in {mechanism.name!r} ({mechanism.fn.__module__})"
    return f"{mechanism.name!r} of plugin {mechanism.plugin}"


def register(
    name: str,
    params_cls: type[AttentionParams],
    *,
    summary: str,
    keys_per_query: Callable[[Any, int], int] | None = None,
    runtime_inputs: tuple[str, ...] = (),
    module_parameters: Callable[[Any, int, int, int], dict[str, torch.Tensor]] | None = None,
    variants: tuple[Mapping[str, Any], ...] = (),
    padding_invariant: bool = True,
    module_buffers: Callable[[Any, int, int, int], dict[str, torch.Tensor]] | None = None,
    shared_qk: bool = False,
    buffer_redraw_interval: Callable[[Any], int] | None = None,
    attention_dropout: bool = False,
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Register a functional attention under `name` with its parameter dataclass.

    The function's keyword-only parameters must be exactly `key_padding_mask`, the dataclass
    fields and the declared `runtime_inputs`, so the three can never drift apart.
    `attention_dropout=True` declares attention-probability dropout: `dropout_p` joins the runtime
    inputs (declaring `dropout_p` as a runtime input sets the flag too).
    """
    attention_dropout = attention_dropout or "dropout_p" in runtime_inputs
    if attention_dropout and "dropout_p" not in runtime_inputs:
        runtime_inputs = (*runtime_inputs, "dropout_p")

    if not (dataclasses.is_dataclass(params_cls) and issubclass(params_cls, AttentionParams)):
        raise TypeError(f"{params_cls!r} must be a dataclass deriving from AttentionParams")
    plugin = _registering_module(2)

    def decorator(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in _REGISTRY:  # never replaced: a plugin cannot change what a built-in name means
            new = f"plugin {plugin}" if plugin is not None else fn.__module__
            raise NameClashError(
                f"attention {name!r} from {new} clashes with {_origin(_REGISTRY[name])}; "
                "register it under another name"
            )
        sig = inspect.signature(fn)
        kwonly = [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        fields = [f.name for f in dataclasses.fields(params_cls)]
        if "key_padding_mask" not in kwonly or sorted(set(kwonly) - {"key_padding_mask"}) != sorted(
            fields + list(runtime_inputs)
        ):
            raise TypeError(
                f"{fn.__name__}: keyword-only parameters {kwonly} must be key_padding_mask plus the "
                f"fields of {params_cls.__name__} {fields} plus the runtime inputs {list(runtime_inputs)}"
            )
        mechanism = Mechanism(
            name,
            fn,
            params_cls,
            summary,
            keys_per_query,
            tuple(runtime_inputs),
            module_parameters,
            tuple(variants),
            padding_invariant,
            module_buffers,
            shared_qk,
            buffer_redraw_interval,
            plugin,
            attention_dropout,
        )
        for variant in variants:  # fail at import time, not in a user's run
            mechanism.params(**variant)
        _REGISTRY[name] = mechanism
        return fn

    return decorator


# Set by `attention_zoo.plugins` when the package is imported (the registry does not import it).
_first_use_hook: Callable[[], object] | None = None


def _autoload_plugins() -> None:
    """Import the entry-point and LRA_PLUGINS plugins once, at the first use of the registry."""
    global _plugins_autoloaded
    if _plugins_autoloaded or _first_use_hook is None:
        return
    _plugins_autoloaded = True  # set first: a plugin may itself use the registry while it loads
    try:
        _first_use_hook()
    except BaseException:
        _plugins_autoloaded = False  # a broken plugin fails every use until it is fixed, never silently
        raise


def names() -> list[str]:
    """Registered mechanism names, in registration order (built-ins first, then plugins)."""
    _autoload_plugins()
    return list(_REGISTRY)


def get(name: str) -> Mechanism:
    """The registered mechanism `name`; ValueError listing the valid names otherwise."""
    _autoload_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown attention {name!r}; valid attentions: {', '.join(_REGISTRY)} "
            "(a plugin's attention needs its module: --plugin MODULE or LRA_PLUGINS=MODULE)"
        ) from None


def variants() -> list[tuple[str, dict[str, Any]]]:
    """(name, params) of every mechanism's defaults and its declared variants, for tests and listings."""
    _autoload_plugins()
    out: list[tuple[str, dict[str, Any]]] = []
    for name, mechanism in _REGISTRY.items():
        out.append((name, {}))
        out.extend((name, dict(v)) for v in mechanism.variants)
    return out
