"""The zoo's checks of a mechanism as a public helper, for built-ins and plugins alike.

    from attention_zoo.testing import check_mechanism

    def test_myattn():
        check_mechanism("myattn", reference=my_dense_fp64_definition, params={"window": 4})

`check_mechanism` runs, in fp64 (the memory probe in fp32), these named checks (`CHECK_NAMES`):

* shape: the output has the input's shape for lengths 1, 7, 33, 100, with and without padding;
* dtype: float64 inputs give float64 outputs and float32 inputs float32 outputs;
* finite: the outputs are finite everywhere, padded positions included;
* determinism: two identical calls agree exactly (outside training);
* padding: the valid outputs and their gradients with padding equal the mechanism on the valid
  tokens alone, and padded tokens get zero gradient. Padding sits at random positions for
  `Mechanism.padding_invariant` mechanisms, at the end for positional ones;
* layer: in `MultiHeadAttention` every parameter gets a gradient and trailing padding leaves the
  valid outputs unchanged;
* gradients: analytic gradients of q, k, v match finite differences (N = 11, d = 4; gradcheck's
  fast mode, a random projection of the Jacobian);
* memory: no op builds a tensor of N^2/16 elements or more at N = `probe_length`, forward or backward
  (`allow_n_by_n=True` skips this for dense mechanisms such as full attention);
* reference (optional): the valid outputs match `reference(q, k, v, key_padding_mask, **params)`, a
  dense fp64 definition written independently of the mechanism; mechanisms with learned or fixed
  inputs (`module_parameters`, `module_buffers`) pass those by name too.

Failures raise AssertionError naming the mechanism, the check and the numbers. `mechanism_checks`
returns the same checks as steps and `run_checks` runs them one by one, reporting each as passed
(with its number), failed or skipped, for `lra check`; `SMOKE_CHECKS` is the fast subset that runs
before a plugin attention trains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .registry import AttentionParams, Mechanism, OutputContractError, get


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces (its element count, op and shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.where = ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() > self.largest:
                self.largest, self.where = t.numel(), f"{func} -> {list(t.shape)}"
        return out


class _Runner:
    """Calls one mechanism with fixed parameters, its runtime inputs made once per shape."""

    def __init__(self, mechanism: Mechanism, params: AttentionParams, device: torch.device) -> None:
        self.mechanism, self.params, self.device = mechanism, params, device
        self._inputs: dict[tuple[int, int, int, torch.dtype], dict[str, torch.Tensor]] = {}

    def tensors(
        self, heads: int, head_dim: int, max_length: int, dtype: torch.dtype
    ) -> dict[str, torch.Tensor]:
        """The mechanism's learned and fixed inputs (as a layer would own them), seeded."""
        key = (heads, head_dim, max_length, dtype)
        if key not in self._inputs:
            made: dict[str, torch.Tensor] = {}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                for factory in (self.mechanism.module_parameters, self.mechanism.module_buffers):
                    if factory is not None:
                        made.update(factory(self.params, heads, head_dim, max_length))
            self._inputs[key] = {n: t.to(self.device, dtype) for n, t in made.items()}
        return self._inputs[key]

    def __call__(self, q, k, v, mask, max_length: int) -> torch.Tensor:
        runtime: dict[str, Any] = dict(self.tensors(q.shape[1], q.shape[3], max_length, q.dtype))
        if "training" in self.mechanism.runtime_inputs:
            runtime["training"] = False
        if self.mechanism.shared_qk:
            k = q
        return self.mechanism(q, k, v, key_padding_mask=mask, params=self.params, **runtime)


CHECK_NAMES = (
    "shape",
    "dtype",
    "finite",
    "determinism",
    "padding",
    "layer",
    "gradients",
    "memory",
    "reference",
)
# What a plugin attention must pass before it trains: fast, and what a dense or float32-internal
# mechanism can pass too (no gradcheck, no memory probe).
SMOKE_CHECKS = ("shape", "dtype", "finite", "determinism", "padding", "layer")
# Checks whose failure makes the later ones meaningless (they all read outputs of the input's shape).
_BLOCKING = frozenset({"shape"})


@dataclass(frozen=True)
class Check:
    """One named check of a mechanism: `run()` returns what was measured (one line, with the number)
    and raises AssertionError naming the mechanism, the check and the numbers when it fails."""

    name: str
    run: Callable[[], str]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: "pass" with what was measured, "fail" with why, or "skip"."""

    name: str
    status: Literal["pass", "fail", "skip"]
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def mechanism_checks(
    name: str,
    reference: Callable[..., torch.Tensor] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    lengths: Sequence[int] = (1, 7, 33, 100),
    head_dim: int = 8,
    allow_n_by_n: bool = False,
    probe_length: int = 4096,
    gradcheck: bool = True,
    atol: float = 1e-9,
    rtol: float = 1e-7,
    seed: int = 0,
    device: str | torch.device = "cpu",
    only: Iterable[str] | None = None,
) -> list[Check]:
    """The checks `check_mechanism` runs (same arguments), as named steps in `CHECK_NAMES` order;
    `only` keeps those names (e.g. `SMOKE_CHECKS`). ValueError for parameters the mechanism rejects
    or an unknown check name."""
    mechanism = get(name)
    run = _Runner(mechanism, mechanism.params(**dict(params or {})), torch.device(device))
    label = f"check_mechanism({mechanism.label(run.params)!r})"
    gen = torch.Generator().manual_seed(seed)
    steps = {
        "shape": lambda: _check_shape(run, label, lengths, head_dim, gen),
        "dtype": lambda: _check_dtype(run, label, head_dim, gen),
        "finite": lambda: _check_finite(run, label, lengths, head_dim, gen),
        "determinism": lambda: _check_determinism(run, label, head_dim, gen),
        "padding": lambda: _check_padding(run, label, head_dim, gen, atol, rtol),
        "layer": lambda: _check_layer(run, label, gen),
    }
    if gradcheck:
        steps["gradients"] = lambda: _check_gradients(run, label, gen)
    if not allow_n_by_n:
        steps["memory"] = lambda: _check_memory(run, label, probe_length, gen)
    if reference is not None:
        steps["reference"] = lambda: _check_reference(
            run, reference, label, lengths, head_dim, gen, atol, rtol
        )
    wanted = set(CHECK_NAMES if only is None else only)
    unknown = sorted(wanted - set(CHECK_NAMES))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; valid checks: {', '.join(CHECK_NAMES)}")
    return [Check(step, fn) for step, fn in steps.items() if step in wanted]


def run_checks(checks: Iterable[Check]) -> Iterator[CheckResult]:
    """Run `checks` in order, yielding each outcome as it finishes. A failed check does not stop the
    others, except "shape", after which the rest are skipped (they all read outputs of the input's
    shape); an exception other than AssertionError is a failure with its one-line message."""
    blocked = None
    for check in checks:
        if blocked is not None:
            yield CheckResult(check.name, "skip", f"needs the {blocked} check to pass")
            continue
        try:
            detail = check.run()
        except (AssertionError, OutputContractError) as err:  # the contract's own one-line message
            yield CheckResult(check.name, "fail", str(err).splitlines()[0] if str(err) else "AssertionError")
        except Exception as err:  # a crash inside the mechanism is a failed check, reported in one line
            message = str(err).strip().splitlines()
            yield CheckResult(check.name, "fail", f"{type(err).__name__}: {message[0] if message else ''}")
        else:
            yield CheckResult(check.name, "pass", detail)
            continue
        if check.name in _BLOCKING:
            blocked = check.name


def check_mechanism(
    name: str,
    reference: Callable[..., torch.Tensor] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    lengths: Sequence[int] = (1, 7, 33, 100),
    head_dim: int = 8,
    allow_n_by_n: bool = False,
    probe_length: int = 4096,
    gradcheck: bool = True,
    atol: float = 1e-9,
    rtol: float = 1e-7,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> None:
    """Run the zoo's checks on the registered mechanism `name` (see the module docstring).

    Args:
        name: registry name (load a plugin first: `attention_zoo.load_plugins([...])`).
        reference: dense fp64 definition `reference(q, k, v, key_padding_mask, **params)` to compare
            the valid outputs against; q, k, v are [B, H, N, d], the mask [B, N] bool (True = real) or None.
        params: the mechanism's parameters (defaults otherwise); pick values smaller than the lengths
            so that selections and windows are exercised.
        lengths: sequence lengths of the shape and reference checks (keep odd ones).
        head_dim: d of those checks.
        allow_n_by_n: skip the memory check (dense mechanisms, e.g. full attention).
        probe_length: N of the memory check.
        gradcheck: run `torch.autograd.gradcheck` (off for mechanisms without gradients).
        atol, rtol: tolerances of the fp64 comparisons.
        seed: seed of the random inputs.
        device: where the checks run.

    Raises AssertionError naming the first failed check, ValueError for parameters the mechanism rejects.
    """
    checks = mechanism_checks(
        name,
        reference,
        params=params,
        lengths=lengths,
        head_dim=head_dim,
        allow_n_by_n=allow_n_by_n,
        probe_length=probe_length,
        gradcheck=gradcheck,
        atol=atol,
        rtol=rtol,
        seed=seed,
        device=device,
    )
    try:
        for check in checks:
            check.run()
    except OutputContractError as err:  # the registry's own check fired first: same report
        raise AssertionError(f"check_mechanism({name!r}): {err}") from None


def _inputs(run: _Runner, batch: int, heads: int, n: int, d: int, gen, dtype=torch.float64):
    return [torch.randn(batch, heads, n, d, generator=gen, dtype=dtype).to(run.device) for _ in range(3)]


def _mask(run: _Runner, batch: int, n: int, gen) -> torch.Tensor:
    """Random padding for padding-invariant mechanisms, trailing padding (random lengths) otherwise."""
    if run.mechanism.padding_invariant:
        mask = torch.rand(batch, n, generator=gen) > 0.4
        mask[torch.arange(batch), torch.randint(n, (batch,), generator=gen)] = True
    else:
        valid = torch.randint(1, n + 1, (batch,), generator=gen)
        mask = torch.arange(n)[None, :] < valid[:, None]
    return mask.to(run.device)


def _lengths_text(lengths: Sequence[int]) -> str:
    return "N=" + ",".join(str(n) for n in lengths)


def _check_shape(run: _Runner, label: str, lengths: Sequence[int], d: int, gen) -> str:
    for n in lengths:
        for masked in (False, True):
            q, k, v = _inputs(run, 2, 2, n, d, gen)
            mask = _mask(run, 2, n, gen) if masked else None
            out = run(q, k, v, mask, n)
            where = f"N={n}, {'padded' if masked else 'unpadded'}"
            assert isinstance(out, torch.Tensor) and out.shape == q.shape, (
                f"{label}: output shape {tuple(getattr(out, 'shape', ()))} != input shape {tuple(q.shape)} ({where})"
            )
    return f"output [B, H, N, d] = input's at {_lengths_text(lengths)}, with and without padding"


def _check_dtype(run: _Runner, label: str, d: int, gen) -> str:
    for dtype in (torch.float64, torch.float32):
        q, k, v = _inputs(run, 1, 2, 7, d, gen, dtype=dtype)
        out = run(q, k, v, None, 7)
        assert out.dtype == dtype, f"{label}: output dtype {out.dtype} != input dtype {dtype} (N=7)"
    return "float64 -> float64, float32 -> float32"


def _check_finite(run: _Runner, label: str, lengths: Sequence[int], d: int, gen) -> str:
    for n in lengths:
        for masked in (False, True):
            q, k, v = _inputs(run, 2, 2, n, d, gen)
            mask = _mask(run, 2, n, gen) if masked else None
            bad = int((~torch.isfinite(run(q, k, v, mask, n))).sum())
            assert bad == 0, (
                f"{label}: {bad} non-finite outputs (N={n}, {'padded' if masked else 'unpadded'}; "
                "padded positions included)"
            )
    return f"0 non-finite outputs at {_lengths_text(lengths)}, padded positions included"


def _check_determinism(run: _Runner, label: str, d: int, gen) -> str:
    q, k, v = _inputs(run, 1, 2, 7, d, gen, dtype=torch.float32)
    first, second = run(q, k, v, None, 7), run(q, k, v, None, 7)
    difference = (first - second).abs().max().item()
    assert torch.equal(first, second), (
        f"{label}: two identical calls gave different outputs (max difference {difference:.3g}); outside "
        "training a mechanism must be deterministic (draw random features once, as module_buffers)"
    )
    return "max difference 0 between two identical calls"


def _check_layer(run: _Runner, label: str, gen) -> str:
    """In the multi-head layer the task models use: every parameter gets a gradient, trailing padding
    leaves the valid outputs unchanged."""
    from .module import MultiHeadAttention

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layer = MultiHeadAttention(16, 2, attention=run.mechanism.name, params=run.params, max_length=21)
    layer = layer.double().to(run.device).eval()
    x = torch.randn(3, 21, 16, generator=gen, dtype=torch.float64).to(run.device)
    mask = torch.ones(3, 21, dtype=torch.bool, device=run.device)
    mask[1, 15:] = False
    out = layer(x, key_padding_mask=mask)
    out.sum().backward()
    missing = [name for name, p in layer.named_parameters() if p.grad is None]
    assert not missing, f"{label}: in MultiHeadAttention, parameters {missing} get no gradient"
    short = layer(x[1:2, :15])
    error = (out[1:2, :15] - short).abs().max().item()
    assert torch.allclose(out[1:2, :15], short, rtol=1e-7, atol=1e-9), (
        f"{label}: in MultiHeadAttention, trailing padding changes the valid outputs (max error {error:.3g})"
    )
    return f"every parameter gets a gradient; trailing padding changes valid outputs by {error:.3g}"


def _check_padding(run: _Runner, label: str, d: int, gen, atol: float, rtol: float) -> str:
    n_valid, n_total = 37, 64
    if run.mechanism.padding_invariant:
        positions = torch.randperm(n_total, generator=gen)[:n_valid].sort().values
        kind = "random"
    else:
        positions, kind = torch.arange(n_valid), "trailing"
    mask = torch.zeros(1, n_total, dtype=torch.bool)
    mask[0, positions] = True
    small = _inputs(run, 1, 2, n_valid, d, gen)
    big = [5 * t for t in _inputs(run, 1, 2, n_total, d, gen)]  # large padded values show any leak
    for s, b in zip(small, big, strict=True):
        b[:, :, positions.to(run.device)] = s
    small = [t.requires_grad_() for t in small]
    big = [t.requires_grad_() for t in big]
    positions, mask = positions.to(run.device), mask.to(run.device)
    out_small = run(small[0], small[1], small[2], None, n_total)
    out_big = run(big[0], big[1], big[2], mask, n_total)[:, :, positions]
    error = (out_big - out_small).abs().max().item()
    assert torch.allclose(out_big, out_small, rtol=rtol, atol=atol), (
        f"{label}: {kind} padding changes the valid outputs (max error {error:.3g}, {n_total - n_valid} of "
        f"{n_total} tokens padded): padding must be removed, not zeroed"
    )
    upstream = torch.randn(out_small.shape, generator=gen, dtype=out_small.dtype).to(run.device)
    grads_small = torch.autograd.grad(out_small, small, upstream, allow_unused=True)
    grads_big = torch.autograd.grad(out_big, big, upstream, allow_unused=True)
    padded = torch.ones(n_total, dtype=torch.bool, device=run.device)
    padded[positions] = False
    grad_error = 0.0
    for which, g_small, g_big in zip("qkv", grads_small, grads_big, strict=True):
        if g_small is None and g_big is None:
            continue
        g_small = torch.zeros_like(small[0]) if g_small is None else g_small
        g_big = torch.zeros_like(big[0]) if g_big is None else g_big
        leak = g_big[:, :, padded].abs().max().item()
        assert leak == 0, (
            f"{label}: padded tokens influence valid outputs (gradient {leak:.3g} on padded {which})"
        )
        error_g = (g_big[:, :, positions] - g_small).abs().max().item()
        assert torch.allclose(g_big[:, :, positions], g_small, rtol=rtol, atol=atol), (
            f"{label}: {kind} padding changes the gradients of {which} (max error {error_g:.3g})"
        )
        grad_error = max(grad_error, error_g)
    return (
        f"{kind} padding ({n_total - n_valid} of {n_total} tokens): outputs differ by {error:.3g}, gradients by "
        f"{grad_error:.3g}, padded tokens' gradients 0"
    )


def _check_gradients(run: _Runner, label: str, gen) -> str:
    n = 11
    for masked in (False, True):
        q, k, v = (t.requires_grad_() for t in _inputs(run, 1, 2, n, 4, gen))
        mask = _mask(run, 1, n, gen) if masked else None
        try:
            torch.autograd.gradcheck(
                lambda q_, k_, v_, mask=mask: run(q_, k_, v_, mask, n),
                (q, k, v),
                eps=1e-6,
                atol=1e-7,
                fast_mode=True,
            )
        except RuntimeError as err:  # GradcheckError: the first line names the output and input
            first = str(err).strip().splitlines()[0]
            raise AssertionError(
                f"{label}: gradients do not match finite differences (N={n}, "
                f"{'padded' if masked else 'unpadded'}): {first}"
            ) from None
    return f"match finite differences at N={n}, with and without padding (gradcheck fast mode, atol 1e-07)"


def _check_memory(run: _Runner, label: str, n: int, gen) -> str:
    q, k, v = _inputs(run, 1, 1, n, 4, gen, dtype=torch.float32)
    mask = _mask(run, 1, n, gen)
    q.requires_grad_()
    with LargestTensor() as probe:
        run(q, k, v, mask, n).sum().backward()
    assert probe.largest < n * n // 16, (
        f"{label}: built a tensor of {probe.largest} elements at N={n} ({probe.where}), N^2/16 or more; "
        "a dense mechanism passes allow_n_by_n=True"
    )
    return f"largest tensor {probe.largest} elements at N={n}, under N^2/16 = {n * n // 16}"


def _check_reference(
    run: _Runner,
    reference: Callable[..., torch.Tensor],
    label: str,
    lengths: Sequence[int],
    d: int,
    gen,
    atol: float,
    rtol: float,
) -> str:
    worst = 0.0
    for n in lengths:
        for masked in (False, True):
            q, k, v = _inputs(run, 2, 2, n, d, gen)
            mask = _mask(run, 2, n, gen) if masked else None
            out = run(q, k, v, mask, n)
            tensors = run.tensors(2, d, n, q.dtype)
            keys = q if run.mechanism.shared_qk else k
            expected = reference(q, keys, v, mask, **run.params.to_dict(), **tensors)
            assert expected.shape == out.shape, (
                f"{label}: the reference returned shape {tuple(expected.shape)}"
            )
            valid = torch.ones(2, n, dtype=torch.bool, device=run.device) if mask is None else mask
            sel = valid[:, None, :, None].expand_as(out)
            error = (out[sel] - expected[sel]).abs().max().item()
            assert torch.allclose(out[sel], expected[sel], rtol=rtol, atol=atol), (
                f"{label}: differs from the reference by {error:.3g} (N={n}, "
                f"{'padded' if masked else 'unpadded'}; atol {atol:g}, rtol {rtol:g})"
            )
            worst = max(worst, error)
    return f"valid outputs differ from the reference by {worst:.3g} at {_lengths_text(lengths)}"
