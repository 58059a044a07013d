"""GPU benchmark of the MiTA Triton kernels against SDPA and the torch reference, after checking on
the same GPU that the kernels match the reference.

    lra bench kernels                      # full grid (about 4-8 minutes on an H200)
    lra bench kernels --quick              # 1K-16K only (about 1-2 minutes)
    lra bench kernels --out bench_kernels.json --records lra_runs

Protocol: B=1, H=8, d=64, bf16, MiTA with m = k = 64, N in {1K, 4K, 16K, 64K, 256K} and 1M
(forward only). Series: `mita-triton` (the kernels), `mita-torch` (the reference), `sdpa-default`
(`F.scaled_dot_product_attention` with PyTorch's own backend choice: cuDNN on Hopper) and
`sdpa-flash` (flash backend). Times are the median (with p20/p80) of `triton.testing.do_bench`,
which flushes L2 between calls; calls predicted to take over a second are timed with one warm-up
and two event-bracketed calls instead. Forward runs without autograd; forward+backward calls
backward with a fixed random upstream gradient and fresh input gradients. Peak memory is
`torch.cuda.max_memory_allocated` during one separate call minus what was allocated before it (so
the inputs are excluded, the output and any gradients included).

Before timing: fp32 Triton vs the reference (forward <= 1e-4, gradients <= 1e-3, fla's relative
error ||a - b|| / ||b||), bf16 with the kernels' own top-k and routing held fixed against an fp32
computation of the same selection (forward <= 1e-2, gradients <= 2e-2), and a bitwise-repeatable
deterministic backward. A failed check stops the run before timing (``--time-anyway`` overrides).

After the cells: mita-triton again as CUDA graph replays (`MitaGraph`, forward and forward+backward,
1K-64K: the cost once shapes are fixed, without launch overhead, against the same run's eager SDPA),
the device launches and host syncs of one eager call at 4K (`LaunchLog`), and the per-kernel device
time of ``--profile`` lengths (the HBM-floor target uses the 64K forward's).

Cells whose predicted cost would overrun ``--budget-s`` are skipped and recorded as skipped, as are
SDPA-flash at 1M (quadratic: several seconds per call) and the torch reference at 1M (its gathers
need more memory than the card has). Outputs: a JSON summary (``--out``), a markdown summary beside
it (same name, .md) and, with ``--records DIR``, one efficiency record per measurement
(results/records.py, kind="efficiency", bench="attention").

The rooms: `protocol` (shape, series, targets, a cell), `checks` (`rel_err`, `fixed_selection_mita`,
`verify`), `measure` (the cells, graph replays, launches, profiles, and `run`), `report` (ratios,
targets, markdown, records) and `tuning` (`--tune`).
"""

from .checks import Check, fixed_selection_mita, rel_err, verify
from .measure import run
from .protocol import PASSES, SERIES, Cell
from .report import efficiency_records, markdown, summarise, write_outputs
from .tuning import TUNE_CONFIGS, tune, tune_and_write, tune_markdown

__all__ = [
    "PASSES",
    "SERIES",
    "TUNE_CONFIGS",
    "Cell",
    "Check",
    "efficiency_records",
    "fixed_selection_mita",
    "markdown",
    "rel_err",
    "run",
    "summarise",
    "tune",
    "tune_and_write",
    "tune_markdown",
    "verify",
    "write_outputs",
]
