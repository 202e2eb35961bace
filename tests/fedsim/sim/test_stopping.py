"""The first Ctrl-C or SIGTERM stops cleanly, a second at once: in a real process, with real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from fedsim.sim import stopping
from tests.conftest import REPO

# A stand-in for a run: it stops on the first signal, then takes long to clean up.
SLOW_CLEANUP = """
import signal, sys, time
from fedsim.sim import stopping
with stopping.handled():
    try:
        print("ready", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("stopping", stopping.received(), flush=True)
        time.sleep(float(sys.argv[1]))  # Ray shutting down, or hanging
        print("cleaned up", flush=True)
print("handlers back", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


def start(cleanup_s: float, ignore_sigint: bool = False) -> subprocess.Popen[str]:
    def before() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.default_int_handler)

    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLEANUP, str(cleanup_s)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=before,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_stops_after_the_cleanup_and_gives_the_handlers_back(sent: signal.Signals) -> None:
    process = start(0.2)
    process.send_signal(sent)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and err == ""
    assert out.splitlines() == [f"stopping {int(sent)}", "cleaned up", "handlers back True"]


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_exits_at_once_with_one_line(second: signal.Signals) -> None:
    process = start(60)
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None and process.stdout.readline() == "stopping 2\n"
    sent = time.monotonic()
    process.send_signal(second)
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 2
    assert process.returncode == 128 + second
    assert err == f"fedsim: {second.name} again: stopped at once; what was saved is kept\n"
    assert "cleaned up" not in out


def test_a_sigint_ignored_at_the_start_stays_ignored() -> None:
    process = start(0.2, ignore_sigint=True)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert process.poll() is None  # `nohup ... &`: Ctrl-C in the terminal is not for it
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert out.splitlines()[0] == "stopping 15"


def test_exit_codes_are_the_shells() -> None:
    assert stopping.exit_code(signal.SIGINT) == 130 and stopping.exit_code(signal.SIGTERM) == 143
