"""Published LRA accuracies shipped with the package (`results/published.csv`).

Rows from three papers, each labelled with its paper, table and protocol, and with the registry
name of the mechanism it corresponds to (`attention`):

* the LRA paper's Table 1 (JAX, released LRA configs): the Transformer and every baseline row;
* the Nyströmformer paper's Table 3 (PyTorch small-model protocol);
* the Skyformer paper's Table 1 (same lineage, mean of 3 seeds).

The protocol text notes where a paper's mechanism differs from ours (the LRA JAX "Performer" is
ReLU-feature linear attention on four tasks, for one).

They are reference points for orientation only: other code, other data (the real LRA release)
and other training budgets. Tables show them in a separate block and never average them with
measured runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from . import order as order_

PUBLISHED_CSV = Path(__file__).with_name("published.csv")
# Every other column of the file is a task (its registry name).
DESCRIPTION_COLUMNS = ("model", "attention", "avg", "avg_over", "source", "protocol")


def load_published() -> pd.DataFrame:
    """The published rows: model, attention, one column per task (accuracy in % as text, 'FAIL',
    or empty when not reported), avg, avg_over, source, protocol."""
    table = pd.read_csv(PUBLISHED_CSV, dtype=str, keep_default_na=False)
    missing = [c for c in ("model", "source", "protocol") if c not in table.columns]
    if missing:
        raise ValueError(f"{PUBLISHED_CSV}: missing columns {', '.join(missing)}")
    if not any(c not in DESCRIPTION_COLUMNS for c in table.columns):
        raise ValueError(f"{PUBLISHED_CSV}: no task columns")
    return table


def task_columns(published: pd.DataFrame) -> list[str]:
    """The task columns of the published table, in the task registry's order (others after, by name)."""
    tasks = [c for c in published.columns if c not in DESCRIPTION_COLUMNS]
    return order_.registry_order().sort_tasks(tasks)


def published_for(published: pd.DataFrame, attentions: Iterable[str]) -> pd.DataFrame:
    """The published rows of the given registry names (column `attention`), in file order."""
    return published[published["attention"].isin(set(attentions))].reset_index(drop=True)
