"""Every client's outcome: one evaluated round's per-client results, their distribution, and
``clients.jsonl``, the run folder's file of them.

Each client counts once, whatever its size: a federation that serves its large clients well and
its small ones badly shows it here, where the weighted ``fed_accuracy`` hides it.  The statistics
are those q-FFL reports (Li et al. 2020, "Fair Resource Allocation in Federated Learning",
Table 1): the average, the worst and best 10 % (the mean of the ``ceil(n / 10)`` lowest and
highest accuracies) and the spread; plus percentiles (NumPy's linear interpolation) and the
standard deviation over clients (population, ``ddof = 0``).

A row of ``clients.jsonl`` is one evaluated round: ``{"round": r, "clients": {id: {...}}}`` with
each client's ``accuracy``, ``loss`` and ``samples``, and under a personalization algorithm its
``personal_accuracy`` and ``personal_loss`` (the client's own model on the same samples).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLIENTS_FILE = "clients.jsonl"
GLOBAL, PERSONAL = "client_acc", "personal_acc"  # the prefixes of the rows' statistics
COUNT = "clients_evaluated"


@dataclass(frozen=True)
class ClientOutcome:
    """One client's evaluation on its own test samples."""

    partition: int
    accuracy: float  # the global model's
    loss: float
    samples: int
    personal_accuracy: float | None = None  # its own model's, under a personalization algorithm
    personal_loss: float | None = None

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "partition" and v is not None}


def distribution(accuracies: Sequence[float], prefix: str = GLOBAL) -> dict[str, float]:
    """``prefix_mean``, ``_std``, ``_p10``, ``_p50``, ``_p90``, ``_worst10`` and ``_best10`` of the
    clients' accuracies, each client counted once; empty for no clients."""
    if not len(accuracies):
        return {}
    values = np.sort(np.asarray(accuracies, dtype=np.float64))
    tail = math.ceil(len(values) / 10)  # 10 % of the clients, at least one
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    stats = {
        "mean": values.mean(),
        "std": values.std(),
        "p10": p10,
        "p50": p50,
        "p90": p90,
        "worst10": values[:tail].mean(),
        "best10": values[-tail:].mean(),
    }
    return {f"{prefix}_{name}": float(value) for name, value in stats.items()}


def statistics(outcomes: Sequence[ClientOutcome]) -> dict[str, float]:
    """A round's row keys: the global model's distribution over clients, the personal models'
    where there are any, and how many clients were evaluated."""
    personal = [o.personal_accuracy for o in outcomes if o.personal_accuracy is not None]
    return {
        **distribution([o.accuracy for o in outcomes], GLOBAL),
        **distribution(personal, PERSONAL),
        COUNT: float(len(outcomes)),
    }


def final(rows: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """The last evaluated round's statistics, of rows (``metrics.jsonl``'s, or records' ``extra``,
    which holds them); None if no round evaluated clients."""
    for row in reversed(rows):
        if row.get(COUNT):
            return {k: float(v) for k, v in row.items() if k == COUNT or _is_statistic(k)}
    return None


def _is_statistic(key: str) -> bool:
    return key.startswith((f"{GLOBAL}_", f"{PERSONAL}_"))


def line(server_round: int, outcomes: Sequence[ClientOutcome]) -> str:
    """The round's row of ``clients.jsonl``, clients in partition order."""
    ordered = sorted(outcomes, key=lambda o: o.partition)
    return json.dumps({"round": server_round, "clients": {str(o.partition): o.row() for o in ordered}})


def read(run_dir: Path) -> list[tuple[int, list[ClientOutcome]]]:
    """``clients.jsonl``'s complete rows: (round, its clients' outcomes); none if there is no file."""
    path = run_dir / CLIENTS_FILE
    if not path.is_file():
        return []
    rows = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(text)
        except json.JSONDecodeError:  # a last row cut short by a kill
            continue
        outcomes = [ClientOutcome(int(p), **values) for p, values in row["clients"].items()]
        rows.append((int(row["round"]), outcomes))
    return rows


def cut(path: Path, rounds: int) -> None:
    """Keep the complete rows of rounds up to ``rounds`` (a resumed run's), rewritten in place."""
    if not path.is_file():
        return
    kept = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            continue
        if int(row["round"]) <= rounds:
            kept.append(text + "\n")
    path.write_text("".join(kept), encoding="utf-8")
