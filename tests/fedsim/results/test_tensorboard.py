"""TensorBoard logs: each round's metrics as scalars, read back from the event files."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fedsim.results.records import RoundRecord
from fedsim.results.tensorboard import FOLDER, TensorBoardLog


def test_every_round_is_written_as_scalars_by_round(tmp_path: Path) -> None:
    log = TensorBoardLog(tmp_path)
    for k in (1, 2):
        record = RoundRecord(k, 0.5 + 0.1 * k, 1.0 / k, 0.9, None, None, 10, 0, 2.0, 0.5, 1000 * k, 500)
        log.write(RoundRecord(**{**record.__dict__, "epsilon": 0.5 * k, "extra": {"tau_eff": 3.0 * k}}))
    log.close()
    events = EventAccumulator(str(tmp_path / FOLDER))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "eval/accuracy",
        "eval/loss",
        "train/loss",
        "time/round_s",
        "bytes/sent",
        "privacy/epsilon",
    } <= scalars
    assert "federated/accuracy" not in scalars  # never evaluated: nothing written
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("eval/accuracy")] == [(1, 0.6), (2, 0.7)]
    assert [e.value for e in events.Scalars("strategy/tau_eff")] == [3.0, 6.0]
    assert [e.value for e in events.Scalars("bytes/sent")] == [1000.0, 2000.0]
