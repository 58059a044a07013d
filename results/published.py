"""Published LRA accuracies shipped with the package (`results/published.csv`).

Rows labelled with their paper and protocol. Three softmax-attention rows:

* the LRA paper's Table 1 Transformer (JAX, released LRA configs);
* the Nyströmformer paper's Table 3 standard softmax row (PyTorch small-model protocol);
* the Skyformer paper's Table 1 self-attention row (same lineage, mean of 3 seeds);

and, for the sparsity-pattern baselines (local, Sparse Transformer, Longformer, Reformer, Sinkhorn,
Synthesizer, BigBird), their LRA Table 1 rows and the Skyformer Table 1 rows of BigBird and Reformer;
the `attention` column names the registry mechanism, the protocol column what the paper ran.

They are reference points for orientation only: other code, other data (the real LRA release)
and other training budgets. Tables show them in a separate block and never average them with
measured runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PUBLISHED_CSV = Path(__file__).with_name("published.csv")
TASK_COLUMNS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")


def load_published() -> pd.DataFrame:
    """The published rows: model, attention, one column per task (accuracy in % as text, 'FAIL',
    or empty when not reported), avg, avg_over, source, protocol."""
    table = pd.read_csv(PUBLISHED_CSV, dtype=str, keep_default_na=False)
    missing = [c for c in ("model", "source", "protocol", *TASK_COLUMNS) if c not in table.columns]
    if missing:
        raise ValueError(f"{PUBLISHED_CSV}: missing columns {', '.join(missing)}")
    return table
