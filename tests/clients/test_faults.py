"""The ClientApp acting out its part of the round's plan: failing, crashing, straggling."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message

from clients import app
from clients.faults import CRASH_EXIT_CODE, InjectedFailure, act_out
from fedsim import protocol as keys
from fedsim.scenario.files import parse_scenario
from tests.clients.test_app import initial_model, message, node, reply_model, scenario_toml
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("task_identity")


def with_config(msg: Message, **extra: int | str) -> Message:
    config = msg.content.config_records[keys.CONFIG]
    msg.content[keys.CONFIG] = ConfigRecord({**config, **extra})
    return msg


def test_a_client_told_to_fail_raises_and_one_told_nothing_trains() -> None:
    act_out("")
    with pytest.raises(InjectedFailure, match=r"faults\.failure_rate"):
        act_out("fail")
    with pytest.raises(ValueError, match="unknown fault 'jam'"):
        act_out("jam")
    told = with_config(message(scenario_toml(), initial_model(), 1), **{keys.FAULT: "fail"})
    with pytest.raises(InjectedFailure):
        app.train(told, node(0))


def test_a_client_told_to_crash_ends_its_process_at_once() -> None:
    code = "from clients.faults import act_out; act_out('crash'); print('still here')"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == CRASH_EXIT_CODE
    assert "still here" not in done.stdout and "Traceback" not in done.stderr


def test_a_straggler_runs_the_epochs_its_message_names() -> None:
    x = initial_model()
    three = parse_scenario(scenario_toml(), ("client.local_epochs=3",)).to_toml()
    one = parse_scenario(scenario_toml(), ("client.local_epochs=1",)).to_toml()
    full = reply_model(app.train(message(three, x, 2), node(3)))
    straggling = reply_model(app.train(with_config(message(three, x, 2), **{keys.LOCAL_EPOCHS: 1}), node(3)))
    one_epoch = reply_model(app.train(message(one, x, 2), node(3)))
    for k in x:
        assert np.array_equal(straggling[k], one_epoch[k])  # the same shuffles, one epoch of them
    assert not np.array_equal(straggling["1.weight"], full["1.weight"])
