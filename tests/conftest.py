"""Shared fixtures: the offline data (must exist: CI fails rather than skips) and one Ray
cluster per test session, which every simulated run joins through RAY_ADDRESS."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedsim.results.records import RoundRecord, Summary
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.sim import engine

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FEDSIM_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "MNIST" / "raw").is_dir():
        pytest.fail(f"offline test data not found at {DATA_DIR} (set FEDSIM_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def shakespeare_file(data_dir: Path) -> Path:
    path = data_dir / "shakespeare" / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.fail(f"offline test corpus not found at {path} (set FEDSIM_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """Start one Ray head for the session; every simulated run joins it via RAY_ADDRESS.

    ``--block`` keeps the head in a process group of its own, so teardown stops this
    cluster only (``ray stop`` would stop every Ray cluster on the machine).
    """
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="fedsim-ray-"))
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--num-cpus=2",
        "--num-gpus=0",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    head = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_port(port, head)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RAY_ADDRESS", address)
            yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_port(port: int, head: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"ray start exited with code {head.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"Ray head did not listen on port {port} within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RecordingReporter:
    """Collects what a run reports, instead of drawing it."""

    def __init__(self) -> None:
        self.rounds: list[RoundRecord] = []
        self.warnings: list[str] = []
        self.population = 0

    def started(self, scenario: Scenario, population: int, notes: object = ()) -> None:
        self.population = population

    def round_done(self, record: RoundRecord) -> None:
        self.rounds.append(record)

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def default_sigint() -> None:
    """A subprocess's ``preexec_fn``: Ctrl-C reaches the command even where this suite runs as a
    background job, whose children start with SIGINT ignored (and a command keeps it so)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def simulate(
    scenario_toml: str, out: Path, data_dir: Path | None = None, overrides: tuple[str, ...] = ()
) -> tuple[Summary, RecordingReporter]:
    """Run a scenario through the real Flower + Ray engine."""
    scenario = parse_scenario(scenario_toml, overrides)
    job = engine.prepare(scenario, out, str(data_dir) if data_dir else None)
    reporter = RecordingReporter()
    started = time.perf_counter()
    summary = engine.run(job, reporter)
    assert time.perf_counter() - started > 0
    return summary, reporter


@contextlib.contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """Writes past ``size`` bytes of any file fail (EFBIG) until the block ends, as on a full
    disk: the kernel's own failure, for root too, with no file system to mount."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the signal would end the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@contextlib.contextmanager
def another_process_locking(folder: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding ``folder``'s run lock (as a live run does) until the block ends."""
    script = "import sys; from pathlib import Path; from fedsim.results.runlock import RunLock\n"
    script += "lock = RunLock.take(Path(sys.argv[1]), 'test')\nprint('held', flush=True)\nsys.stdin.read()\n"
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower stamps a new message with the running task's identity; outside a run there is none."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)
