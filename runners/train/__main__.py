"""`python -m runners.train RUN_CONFIG.json` (also under torchrun): one run in this process.

The CPU's floating-point order is pinned before torch is imported (runners/cpu_pinning.py), as the
`lra` command does; the package's face (runners/train/__init__.py) imports no torch for that reason.
"""

import sys

from runners.cpu_pinning import apply_cpu_pinning

apply_cpu_pinning()

from runners.train.runner import main  # noqa: E402  (after the pinning, which must precede torch)

sys.exit(main())
