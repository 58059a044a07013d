"""Compile the MiTA Triton kernels for a GPU target on a machine without a GPU.

The CPU interpreter proves the arithmetic but accepts programs the GPU compiler rejects (tl.dot
sides under 16, mismatched layouts or dtypes) and says nothing about register pressure. This check
runs what the GPU would run up to machine code:

    python -m attention_zoo.mita.triton_compile_check            # sm_90 (H100 / H200)
    python -m attention_zoo.mita.triton_compile_check --arch 80 --quick

1. A child process with TRITON_INTERPRET=1 runs forward+backward passes of representative shapes
   (the benchmark's bf16 d=64 m=k=64 at full block sizes, d=128, fp32, masks, route-only, several
   landmark chunks, the deterministic backward) and records every kernel launch: argument dtypes,
   constexprs, num_warps. bf16 runs as fp16 there (the interpreter's bf16 is broken); each fp16
   launch is compiled as bf16 too.
2. A child process without the interpreter compiles each distinct launch with `triton.compile`
   for the target and reads registers and spill bytes from `ptxas -v`.

Prints one line per compiled kernel; exits 1 if any fails to compile. Compiling is CPU-bound:
minutes for the full set, about a minute with --quick.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import click

# (B, H, N, d, m, k, masked, shared, dtype, deterministic); blocks are forced to their configured sizes.
CASES: list[tuple[Any, ...]] = [
    (1, 1, 80, 64, 64, 64, False, True, "float16", False),
    (1, 1, 80, 64, 64, 64, False, True, "float16", True),
    (1, 1, 80, 128, 64, 64, True, True, "float16", False),
    (1, 1, 80, 64, 64, 64, True, False, "float16", False),
    (1, 1, 80, 64, 64, 64, True, True, "float32", False),
    (1, 1, 80, 32, 200, 64, False, True, "float16", False),
    (1, 1, 80, 16, 100, 128, True, True, "float32", False),
    (1, 1, 300, 64, 8, 8, True, True, "float16", False),  # one-stage top-k over 300 scores
]
# The selection kernel's long-sequence paths, forced at small N by a short in-register row
# (KernelConfig changes as an 11th field): a first stage over group maxima in the kernel with
# streamed candidates, and a first stage from torch.topk.
SELECTION_CASES = [
    (1, 1, 300, 64, 8, 8, False, True, "float16", False, {"select_row": 16}),
    (1, 1, 300, 64, 8, 8, True, True, "float16", False, {"select_row": 16, "group": 4}),
]
CASES += SELECTION_CASES
QUICK_CASES = [CASES[0], CASES[2], *SELECTION_CASES]
_DTYPE_NAMES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "int32": "i32", "int64": "i64",
                "uint8": "u8", "bool": "i1"}  # fmt: skip


@contextlib.contextmanager
def _full_blocks() -> Iterator[None]:
    """Blocks at their configured size whatever N, m and k (the GPU shapes of long sequences)."""
    from . import triton_common

    original = triton_common.pow2_block
    triton_common.pow2_block = lambda n, cap, floor=16: max(floor, cap)
    try:
        yield
    finally:
        triton_common.pow2_block = original


def record(cases: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Run the cases through the interpreter; the distinct launches as [module, kernel, signature,
    constexprs, options]. Needs TRITON_INTERPRET=1 set before triton was imported."""
    import torch
    from triton.runtime import interpreter

    from . import triton_common
    from .triton_ops import mita_triton

    launches: dict[str, list[Any]] = {}
    original = interpreter.InterpretedFunction.run

    def run(self: Any, *args: Any, grid: Any, warmup: bool, **kwargs: Any) -> Any:
        values = dict(zip(self.arg_names, args, strict=False))
        values.update({k: v for k, v in kwargs.items() if k in self.arg_names})
        signature, constexprs = {}, {}
        for name in self.arg_names:
            value = values[name]
            if "constexpr" in str(self.fn.__annotations__.get(name, "")):
                constexprs[name] = value
            elif isinstance(value, torch.Tensor):
                signature[name] = "*" + _DTYPE_NAMES[str(value.dtype).removeprefix("torch.")]
            elif isinstance(value, bool):
                signature[name] = "i1"
            elif isinstance(value, int):
                signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            else:
                signature[name] = "fp32"
        options = {k: v for k, v in kwargs.items() if k in ("num_warps", "num_stages")}
        entry = [self.fn.__module__, self.fn.__name__, signature, constexprs, options]
        launches[json.dumps(entry, sort_keys=True)] = entry
        return original(self, *args, grid=grid, warmup=warmup, **kwargs)

    interpreter.InterpretedFunction.run = run
    try:
        with _full_blocks():
            for batch, heads, n, d, m, k, masked, shared, dtype, deterministic, *changes in cases:
                old_config = triton_common.set_config(**(changes[0] if changes else {}))
                gen = torch.Generator().manual_seed(n + d)
                q, kk, v = (
                    torch.randn(batch, heads, n, d, generator=gen).to(getattr(torch, dtype)).requires_grad_()
                    for _ in range(3)
                )
                mask = None
                if masked:
                    mask = torch.rand(batch, n, generator=gen) > 0.3
                    mask[:, 0] = True
                try:
                    mita_triton(q, kk, v, mask, m, k, shared, deterministic=deterministic).sum().backward()
                    with torch.no_grad():
                        mita_triton(q, kk, v, mask, m, k, shared)
                finally:
                    triton_common.CONFIG = old_config
    finally:
        interpreter.InterpretedFunction.run = original
    return list(launches.values())


def compile_all(launches: list[list[Any]], arch: int) -> list[dict[str, Any]]:
    """Compile each launch (and a bf16 twin of each fp16 launch) for sm_<arch>; one result each."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas
    from triton.compiler import ASTSource

    twins = [
        [mod, name, {k: "*bf16" if t == "*fp16" else t for k, t in sig.items()}, consts, opts]
        for mod, name, sig, consts, opts in launches
        if "*fp16" in sig.values()
    ]
    ptxas = get_ptxas(arch).path
    results = []
    for mod, name, sig, consts, opts in launches + twins:
        fn = getattr(importlib.import_module(mod), name)
        dtype = next((t[1:] for t in sig.values() if t in ("*fp16", "*bf16", "*fp32")), "?")
        shape = {k: v for k, v in consts.items() if k.isupper() and k != "PRECISION"}
        result: dict[str, Any] = {"kernel": name, "dtype": dtype, "constexprs": shape, **opts}
        source = ASTSource(
            fn=fn,
            signature={**sig, **dict.fromkeys(consts, "constexpr")},
            constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()},
        )
        try:
            compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=opts)
        except Exception as err:  # reported, then the exit code says it failed
            result["error"] = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            results.append(result)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "kernel.ptx")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(compiled.asm["ptx"])
            arch_flag = f"-arch=sm_{arch}a" if arch >= 90 else f"-arch=sm_{arch}"
            report = subprocess.run(
                [ptxas, arch_flag, "-v", path, "-o", os.devnull], capture_output=True, text=True, check=False
            ).stderr
        registers = re.findall(r"Used (\d+) registers", report)
        spills = re.findall(r"(\d+) bytes spill stores", report)
        result["registers"] = int(registers[0]) if registers else None
        result["spill_bytes"] = int(spills[0]) if spills else None
        result["shared_bytes"] = compiled.metadata.shared
        results.append(result)
    return results


def _child(stage: str, *args: str, interpret: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    cmd = [sys.executable, "-m", "attention_zoo.mita.triton_compile_check", stage, *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} step failed:\n{done.stderr.strip()}")
    return done.stdout


def check(arch: int = 90, quick: bool = False) -> list[dict[str, Any]]:
    """Record the launches in an interpreter child, compile them in a plain child; the results."""
    with tempfile.TemporaryDirectory() as tmp:
        launches = os.path.join(tmp, "launches.json")
        _child("--record", launches, *(["--quick"] if quick else []), interpret=True)
        return json.loads(_child("--compile", launches, "--arch", str(arch), interpret=False))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--arch", default=90, show_default=True, help="CUDA compute capability (90 = H100 / H200).")
@click.option("--quick", is_flag=True, help="Only the benchmark shape and d=128.")
@click.option("--record", "record_to", default=None, hidden=True)
@click.option("--compile", "compile_from", default=None, hidden=True)
def main(arch: int, quick: bool, record_to: str | None, compile_from: str | None) -> None:
    """Compile every MiTA kernel launch for sm_<arch> without a GPU; report registers and spills."""
    if record_to is not None:
        with open(record_to, "w", encoding="utf-8") as fh:
            json.dump(record(QUICK_CASES if quick else CASES), fh)
        return
    if compile_from is not None:
        with open(compile_from, encoding="utf-8") as fh:
            click.echo(json.dumps(compile_all(json.load(fh), arch)))
        return
    results = check(arch, quick)
    failed = [r for r in results if "error" in r]
    for r in sorted(
        results, key=lambda r: (r["kernel"], r["dtype"], json.dumps(r["constexprs"], sort_keys=True))
    ):
        status = f"FAILED: {r['error']}" if "error" in r else (
            f"regs {r['registers']:>3}  spill {r['spill_bytes']:>5} B  smem {r['shared_bytes']:>6} B"
        )  # fmt: skip
        shape = " ".join(f"{k}={v}" for k, v in sorted(r["constexprs"].items()))
        click.echo(f"{r['kernel']:<24} {r['dtype']:<5} warps {r.get('num_warps', '-')}  {status}  {shape}")
    click.echo(f"{len(results)} kernel compilations for sm_{arch}, {len(failed)} failed")
    if failed:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
