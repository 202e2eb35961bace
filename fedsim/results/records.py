"""What a run records: one :class:`RoundRecord` per round (a row of ``metrics.jsonl``) and
the :class:`Summary` of them all (``summary.json``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from fedsim.results import per_client
from fedsim.results.per_client import ClientOutcome
from fedsim.scenario.sections import Scenario


@dataclass(frozen=True)
class RoundRecord:
    """One line of ``metrics.jsonl``; accuracy and loss are None on rounds not evaluated."""

    round: int
    accuracy: float | None  # centralized evaluation on the held-out test set
    loss: float | None
    train_loss: float | None  # clients' mean local training loss, weighted by examples
    fed_accuracy: float | None  # federated evaluation: global model on clients' local data
    fed_loss: float | None
    clients_sampled: int
    clients_failed: int
    round_time_s: float  # training and aggregation
    eval_time_s: float  # centralized and federated evaluation
    # Model arrays (ArrayRecords) in the round's messages, training and evaluation; the
    # defaults read rows written before these were recorded.
    bytes_sent: int = 0  # server -> clients, counted once per receiving client
    bytes_received: int = 0  # clients -> server
    # Why clients failed (fedsim/sim/failures.py), adding up to clients_failed; over all the
    # round's attempts, as are clients_sampled and the bytes.
    clients_raised: int = 0
    clients_crashed: int = 0
    clients_out_of_memory: int = 0
    clients_timed_out: int = 0
    clients_rejected: int = 0
    stragglers: int = 0  # sampled clients that ran fewer epochs ([stragglers])
    retries: int = 0  # attempts re-run below strategy.min_train_clients (faults.round_retries)
    simulated_time_s: float = 0.0  # the round's virtual seconds: its clients' tasks (strategies/clock.py)
    virtual_time_s: float = 0.0  # the virtual clock when the round's aggregation finished
    clients_late: int = 0  # replies after the round's deadline or over-selection's first ones: not aggregated
    # [privacy]: epsilon spent through this round at delta (strategies/accounting.py); else None.
    epsilon: float | None = None
    delta: float | None = None
    # Wall-clock from the command's start to the end of this round's evaluation, earlier
    # sessions of a resumed run included: time to accuracy (None in rows written before).
    elapsed_s: float | None = None
    # Clients that delivered a trained model, per Ray node that trained them ("<node id's first
    # 8 hex digits>@<IP>", fedsim/sim/nodes.py); empty on SuperNodes, which name no node.
    client_nodes: dict[str, int] = field(default_factory=dict)
    # Other metrics the strategy's aggregates returned (fedsim/sim/rounds.py: strategy_metrics),
    # written as keys of the row beside these fields.
    extra: dict[str, float] = field(default_factory=dict)
    # Per-client evaluation's outcomes ([evaluation] clients): a line of clients.jsonl, not of
    # metrics.jsonl, which gets their statistics (``extra``'s client_acc_*, fedsim/results/per_client.py).
    clients: tuple[ClientOutcome, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls)) - {"clients"}

    def row(self) -> dict[str, Any]:
        """The record as one line of ``metrics.jsonl``: its fields, then ``extra``'s keys."""
        row = asdict(dataclasses.replace(self, clients=()))
        extra = row.pop("extra")
        del row["clients"]
        return {**row, **extra}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RoundRecord:
        """A line of ``metrics.jsonl``; numbers under other names are a strategy's own metrics."""
        known = cls.field_names() - {"extra"}
        extra = {k: v for k, v in row.items() if k not in known and isinstance(v, int | float)}
        return cls(**{k: v for k, v in row.items() if k in known}, extra=extra)


@dataclass(frozen=True)
class Summary:
    name: str
    status: Literal["completed", "failed"]
    rounds_completed: int
    final_accuracy: float | None
    best_accuracy: float | None
    best_round: int | None
    target_accuracy: float | None
    round_reached_target: int | None
    wall_time_s: float
    time_to_target_s: float | None = None  # from the command's start to the evaluation reaching it
    error: str | None = None
    bytes_sent: int = 0  # over all rounds
    bytes_received: int = 0
    clients_failed: int = 0  # over all rounds
    simulated_time_s: float = 0.0  # over all rounds
    virtual_time_s: float = 0.0  # the virtual clock at the last round's end
    virtual_time_to_target_s: float | None = None  # the virtual clock at the evaluation reaching the target
    epsilon: float | None = None  # [privacy]: spent by the whole run, at delta
    delta: float | None = None
    noise_multiplier: float | None = None  # as used (calibrated, for noise_multiplier = "auto")
    privacy_stop: str | None = None  # why training stopped early to stay within target_epsilon
    # The last per-client evaluation's statistics (client_acc_*, personal_acc_*, clients_evaluated).
    clients: dict[str, float] | None = None


def summarize(
    scenario: Scenario,
    records: Sequence[RoundRecord],
    wall_time_s: float,
    error: str | None = None,
    privacy_stop: str | None = None,
    epsilon: float | None = None,
) -> Summary:
    """The run's summary; ``epsilon`` (privacy spent) defaults to the last round's."""
    evaluated = [r for r in records if r.accuracy is not None]
    best = max(evaluated, key=lambda r: r.accuracy or 0.0, default=None)
    target = scenario.evaluation.target_accuracy
    reached = next((r for r in evaluated if scenario.evaluation.reached(r.accuracy)), None)
    return Summary(
        name=scenario.name,
        status="failed" if error else "completed",
        rounds_completed=len(records),
        final_accuracy=evaluated[-1].accuracy if evaluated else None,
        best_accuracy=best.accuracy if best else None,
        best_round=best.round if best else None,
        target_accuracy=target,
        round_reached_target=reached.round if reached else None,
        wall_time_s=round(wall_time_s, 3),
        time_to_target_s=reached.elapsed_s if reached else None,
        error=error,
        bytes_sent=sum(r.bytes_sent for r in records),
        bytes_received=sum(r.bytes_received for r in records),
        clients_failed=sum(r.clients_failed for r in records),
        simulated_time_s=round(sum(r.simulated_time_s for r in records), 3),
        virtual_time_s=records[-1].virtual_time_s if records else 0.0,
        virtual_time_to_target_s=reached.virtual_time_s if reached else None,
        clients=per_client.final([r.extra for r in records]),
        **_privacy(scenario, records, privacy_stop, epsilon),
    )


def _privacy(
    scenario: Scenario, records: Sequence[RoundRecord], stop: str | None, epsilon: float | None
) -> dict[str, Any]:
    privacy = scenario.privacy
    if privacy is None:
        return {}
    if epsilon is None:
        epsilon = records[-1].epsilon if records else 0.0
    noise = privacy.noise_multiplier
    # `fedsim submit` holds the scenario as sent; the server resolved delta and recorded it per round.
    delta = privacy.delta if privacy.delta is not None else next((r.delta for r in records), None)
    return {
        "epsilon": epsilon,
        "delta": delta,
        "noise_multiplier": None if isinstance(noise, str) else noise,
        "privacy_stop": stop,
    }
