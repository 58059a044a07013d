"""Count the device launches and catch the host synchronisations of a piece of code.

`LaunchLog` is a context manager: every Triton kernel launch (compiled, or interpreted under
TRITON_INTERPRET=1) and every torch operator that runs a device kernel is appended to `launches`;
operators that make the host wait for the device (`.item()`, `bool(tensor)`, `nonzero`, a copy to
the CPU, ...) are appended to `syncs`. It works on the CPU too, where the same code path runs with
the same operators, so the launch budget and the absence of host syncs (what CUDA graph capture
and `torch.compile` need) are testable without a GPU:

    with LaunchLog() as log:
        mita_triton(q, k, v, None, 64, 64)
    assert len(log.launches) <= 5 and not log.syncs
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

# Operators that only allocate or describe memory: no kernel runs.
_NO_KERNEL = frozenset(
    {"empty", "empty_strided", "empty_like", "lift_fresh", "resize_", "set_", "_reshape_alias"}
)
# Operators whose result the host must wait for (data-dependent shapes or values read on the host).
_SYNC = frozenset(
    {
        "_local_scalar_dense",  # .item(), bool(t), int(t), float(t)
        "nonzero",
        "masked_select",
        "_unique",
        "_unique2",
        "unique_dim",
        "unique_consecutive",
        "repeat_interleave",
        "equal",
        "is_nonzero",
    }
)


def _triton_functions() -> list[type]:
    """The classes whose `run` launches a Triton kernel: compiled and interpreted."""
    classes = []
    try:
        from triton.runtime.jit import JITFunction

        classes.append(JITFunction)
        from triton.runtime.interpreter import InterpretedFunction

        classes.append(InterpretedFunction)
    except ImportError:
        pass
    return classes


class LaunchLog(TorchDispatchMode):
    """Records `launches` (["triton:<kernel>" | "torch:<op>"]) and host `syncs` made inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.launches: list[str] = []
        self.syncs: list[str] = []
        self._saved: list[tuple[Any, str, Any]] = []
        self._in_triton = False

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        out = func(*args, **kwargs)
        if name in _SYNC:
            self.syncs.append(name)
        elif name in ("_to_copy", "copy_") and _device_to_host(args, kwargs, out):
            self.syncs.append(f"{name} to the host")
        elif not (func.is_view or name in _NO_KERNEL):
            self.launches.append(f"torch:{name}")
        return out

    def _patch(self, owner: Any, attr: str, wrapper: Any) -> None:
        original = getattr(owner, attr)
        self._saved.append((owner, attr, original))
        setattr(owner, attr, wrapper(original))

    def __enter__(self) -> LaunchLog:
        log = self

        def run(original: Any) -> Any:
            def launch(fn: Any, *args: Any, **kwargs: Any) -> Any:
                if kwargs.get("warmup"):
                    return original(fn, *args, **kwargs)
                log.launches.append(f"triton:{fn.fn.__name__}")
                log._in_triton = True
                try:  # the launcher's own tensor handling (the interpreter's copies) is not the caller's
                    with _disable_current_modes():
                        return original(fn, *args, **kwargs)
                finally:
                    log._in_triton = False

            return launch

        def host_read(original: Any) -> Any:
            def read(t: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
                if not log._in_triton:
                    log.syncs.append(original.__name__)
                return original(t, *args, **kwargs)

            return read

        for cls in _triton_functions():
            self._patch(cls, "run", run)
        # On the CPU these read memory directly, without an operator the dispatch mode would see.
        for attr in ("tolist", "numpy"):
            self._patch(torch.Tensor, attr, host_read)
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        while self._saved:
            owner, attr, original = self._saved.pop()
            setattr(owner, attr, original)


def _device_to_host(args: tuple, kwargs: dict, out: Any) -> bool:
    """A copy from an accelerator tensor into CPU memory (the host waits for it)."""
    sources = [a for a in args if isinstance(a, torch.Tensor)]
    targets = [out] if isinstance(out, torch.Tensor) else []
    return any(s.device.type != "cpu" for s in sources) and any(t.device.type == "cpu" for t in targets)
