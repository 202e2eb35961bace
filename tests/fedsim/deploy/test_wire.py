"""The ServerApp's tagged log lines survive Flower's log stream and give back the same records."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys

import pytest

from fedsim.deploy import wire
from fedsim.results.records import RoundRecord
from tests.conftest import REPO

RECORD = RoundRecord(
    round=2,
    accuracy=0.6644144144144144,
    loss=0.854060748675922,
    train_loss=None,
    fed_accuracy=None,
    fed_loss=None,
    clients_sampled=3,
    clients_failed=1,
    round_time_s=18.123456,
    eval_time_s=0.05,
)


def test_a_round_event_gives_back_the_identical_record() -> None:
    line = wire.encode("round", dataclasses.asdict(RECORD))
    event = wire.decode("\x1b[92mINFO \x1b[0m: " + line)  # Flower may prefix and colour a line
    assert event is not None and event.kind == "round"
    assert event.record() == RECORD


@pytest.mark.parametrize(
    "line", ["round   2  acc 0.6644", "fedsim-event {not json", 'fedsim-event {"kind": "round"}', ""]
)
def test_other_lines_are_not_events(line: str) -> None:
    assert wire.decode(line) is None


def test_the_reporter_logs_readable_lines_and_events(caplog: pytest.LogCaptureFixture) -> None:
    reporter = wire.StreamReporter()
    with caplog.at_level(logging.INFO, logger="fedsim"):
        reporter.round_done(RECORD)
        reporter.warn("round 2: 1 of 3 clients failed")
        reporter.failed("round 3: 0 of 3 sampled clients replied")
        reporter.done()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("round   2  acc 0.6644")
    events = [e for e in map(wire.decode, lines) if e is not None]
    assert [e.kind for e in events] == ["round", "warn", "failed", "done"]
    assert events[2].data == {"text": "round 3: 0 of 3 sampled clients replied"}


def test_loading_the_apps_leaves_the_root_logger_alone() -> None:
    """A root handler (Opacus adds one on import) would print every event line twice."""
    code = "import logging, fedsim.sim.engine, clients.app; print(len(logging.root.handlers))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "0"
