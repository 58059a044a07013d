"""Efficiency benchmarks: the cost side of "which attention, at what accuracy and what cost".

Two benchmarks write efficiency records (results/records.py, ``kind="efficiency"``) into the same
results store as the training runs, one JSON file per measurement::

    <out>/efficiency/<bench>/<device>/<config>/<attention slug>-<backend>/<pass>-N<length>.json

* `bench_attention` (``lra bench attention``, runners/bench/attention.py) -- one attention call on
  random q, k, v of shape [B, H, N, d]: ``forward`` (under `torch.no_grad`) and ``forward_backward``
  (forward plus the gradients of q, k and v for a random output gradient), time and peak memory,
  for every selected attention and every backend of it that applies (torch everywhere;
  FlexAttention and Triton on CUDA only; the readable `reference` forms only when named), at
  lengths from 1K up to the largest that fits. Peak memory is what the call allocates beyond its
  inputs.
* `bench_model` (``lra bench model``, runners/bench/model.py) -- the LRA Table-2 protocol: one
  training step (forward, backward, AdamW) of the Text task model of the released LRA config
  (4 layers, 256-d, 4 heads, MLP 1024, byte vocabulary, 2 classes) on random tokens, batch 32 or,
  where that runs out of memory, the largest power-of-two fraction of it that fits. Steps/s and
  peak memory of the whole step (weights, optimizer state, gradients, activations and inputs).

Once a series (attention x backend x pass) runs out of memory at some length, its longer lengths
are recorded as ``oom`` ("skipped: ...") without being tried; once its median call is slower than
`max_call_s`, its longer lengths are skipped (listed in the tables, not recorded). Both write a
markdown table and a CSV with ratios against full attention (speed-up = full time / time, per
example; memory ratio = memory / full memory) beside the records (runners/bench/tables.py), and
return the markdown.

Long grids survive being stopped. Every record is written (atomically) as soon as its cell is
measured, so a killed run keeps what it finished; with `resume`, a cell whose record is already in
the store and was measured with the same device, shape, settings, code (`code_hash`) and versions
is read back instead of measured again (`reusable_record`, runners/bench/records.py).
`max_minutes` starts no new measurement after that many minutes: the remaining cells appear in the
tables as "not run", and the same command with `resume` measures them.

On CPU the reduced grid is the default (`quick`): a few short lengths, a small batch, few repeats.

The rooms: `options` (BenchConfig, the grids), `series` (what is measured), `records` (records,
resume, progress), `attention` and `model` (the two benchmarks), `tables`, `timing` (one call's time
and peak memory), and `kernels/` (`lra bench kernels`: the MiTA Triton kernels against SDPA, with the
kernel-check helpers the kernel tests import).
"""

from .attention import bench_attention
from .model import bench_model
from .options import GRIDS, BenchConfig, Grid, parse_lengths, resolve_grid
from .series import Series, build_series

__all__ = [
    "GRIDS",
    "BenchConfig",
    "Grid",
    "Series",
    "bench_attention",
    "bench_model",
    "build_series",
    "parse_lengths",
    "resolve_grid",
]
