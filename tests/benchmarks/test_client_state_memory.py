"""The client-state memory benchmark runs and counts every client's state."""

from __future__ import annotations

import json
import sys

import pytest

from benchmarks import client_state_memory


def test_every_client_ends_with_a_state_and_the_totals_add_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["x", "--clients", "40", "--params", "256", "--per-round", "7"])
    client_state_memory.main()
    result = json.loads(capsys.readouterr().out)
    assert result["clients_with_state"] == 40
    assert result["states_total_mb"] == round(40 * 256 * 4 / 2**20, 1)
    assert result["on_disk_mb"] >= result["states_total_mb"]
