"""The ServerApp's progress as log lines that ``fedsim submit`` reads back.

On Flower's deployment engine the ServerApp runs on the SuperLink's machine; the
only channel back to the submitter is the run's log, which ``flwr run --stream``
prints.  So besides its human-readable lines the ServerApp logs one tagged JSON
line per event; the submitter rebuilds the run folder from the ``round`` events
(the same records, at full precision, that the ServerApp appends to its own
``metrics.jsonl``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from fedsim.results.progress import LogReporter
from fedsim.results.records import RoundRecord
from fedsim.scenario.sections import Scenario

TAG = "fedsim-event "
Kind = Literal["results", "started", "round", "warn", "failed", "done"]


@dataclasses.dataclass(frozen=True)
class Event:
    kind: Kind
    data: dict[str, Any]

    def record(self) -> RoundRecord:
        return RoundRecord(**self.data)


def encode(kind: Kind, data: dict[str, Any]) -> str:
    return TAG + json.dumps({"kind": kind, "data": data})


def decode(line: str) -> Event | None:
    """The event on a log line, or None for any other line (Flower may prefix or colour it)."""
    start = line.find(TAG)
    if start < 0:
        return None
    try:
        payload = json.loads(line[start + len(TAG) :])
        return Event(payload["kind"], dict(payload["data"]))
    except (ValueError, KeyError, TypeError):
        return None


class StreamReporter(LogReporter):
    """LogReporter's lines plus the tagged events, for the ServerApp under ``flwr run``."""

    log = logging.getLogger("fedsim")

    def results(self, path: Path) -> None:
        self.log.info("results: %s", path)
        self._emit("results", {"path": str(path)})

    def started(self, scenario: Scenario, population: int, notes: Sequence[str] = ()) -> None:
        super().started(scenario, population, notes)
        self._emit("started", {"population": population})

    def round_done(self, record: RoundRecord) -> None:
        super().round_done(record)
        self._emit("round", dataclasses.asdict(record))

    def warn(self, text: str) -> None:
        super().warn(text)
        self._emit("warn", {"text": text})

    def failed(self, text: str) -> None:
        self._emit("failed", {"text": text})

    def done(self) -> None:
        self._emit("done", {})

    def _emit(self, kind: Kind, data: dict[str, Any]) -> None:
        self.log.info("%s", encode(kind, data))
