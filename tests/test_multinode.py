"""A real Ray cluster of two nodes on this machine: ``ray start --head`` with 1 CPU, then
``ray start --address`` with 1 CPU, as on two machines.  ``fedsim run`` joins it through
RAY_ADDRESS with ``resources.client_cpus = 1``, so Ray places one client actor on each node.

Its data exist only for the driver: the loader (written below, next to the scenario)
deletes its data root once it has read it, so no node's workers find the root, as on a
cluster whose other machines never had it.  They train on the copy the driver shipped
through Ray's object store (fedsim/data/object_store.py), and every round's ``client_nodes``
says which node trained how many clients.

The cluster is this module's own, not the session's (tests/conftest.py): every process its
two ``ray start`` commands and the run start is gone afterwards, which the teardown checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedsim.results.run_dir import read_metrics
from tests.conftest import REPO

pytestmark = pytest.mark.engine

RAY = str(Path(sys.executable).with_name("ray"))

LOADER = '''
"""Points that only the driver's machine has: read once from the data root, which then goes."""

import shutil

import numpy as np

import fedsim


def load(root):
    if root is None:
        raise FileNotFoundError("points.npz needs a data root")
    with np.load(root / "points.npz") as points:
        train, test = (points["x_train"], points["y_train"]), (points["x_test"], points["y_test"])
    shutil.rmtree(root)
    return fedsim.Dataset(train=train, test=test)
'''

SCENARIO = """
name = "two_nodes"
seed = 0
rounds = 2

[data]
dataset = "vanishing:load"
partition = "iid"
num_clients = 4

[model]
name = "logreg"

[client]
local_epochs = 1
batch_size = 16
lr = 0.1

[strategy]
name = "fedavg"
fraction_train = 1.0  # 4 clients a round, for the 2 client actors, one per node

[resources]
client_cpus = 1
"""


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[str]:
    """The head's address, once both nodes have registered; afterwards, every process gone."""
    temp = Path(tempfile.mkdtemp(prefix="fedsim-2nodes-"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    head = [f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false"]
    head += [f"--ray-client-server-port={_free_port()}"]  # not the default's: another cluster may hold it
    started: list[Node] = []
    try:
        for arguments in (["--head", *head], [f"--address={address}"]):
            started.append(Node([*arguments, f"--dashboard-agent-listen-port={_free_port()}", *common]))
            started[-1].wait_started()
        _wait_for_nodes(address, 2)
        yield address
    finally:
        _stop([node.process for node in started])
        shutil.rmtree(temp, ignore_errors=True)


class Node:
    """``ray start`` in a process group of its own (Ray's processes and workers join it),
    its output read as it comes, so that the pipe never fills."""

    def __init__(self, arguments: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # not the session's cluster
        self.process = subprocess.Popen(
            [RAY, "start", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.output: list[str] = []
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "Ray runtime started" in line:  # `ray start` says so, then blocks
                self.started.set()

    def wait_started(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.started.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                said = "".join(self.output[-20:])
                pytest.fail(f"ray start did not start (exit code {self.process.poll()}):\n{said}")


def _wait_for_nodes(address: str, count: int, timeout: float = 60) -> None:
    """Until the cluster counts ``count`` live nodes (Flower sizes its actor pool on them)."""
    script = (
        "import sys, time, ray\n"
        "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
        "deadline = time.monotonic() + float(sys.argv[3])\n"
        "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]) and time.monotonic() < deadline:\n"
        "    time.sleep(0.2)\n"
        "print(sum(n['Alive'] for n in ray.nodes()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, address, str(count), str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    assert done.stdout.strip() == str(count), done.stdout + done.stderr


def _stop(started: list[subprocess.Popen[str]]) -> None:
    """Stop each node's process group; fail if any of its processes is still there after 30 s."""
    for node in started:
        os.killpg(node.pid, signal.SIGTERM)
    left = [node.pid for node in started if not _gone(node, timeout=30)]
    for pgid in left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    assert not left, f"processes of `ray start` (process groups {left}) outlived the cluster"


def _gone(node: subprocess.Popen[str], timeout: float) -> bool:
    """Whether ``node``'s process group empties within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node.poll()  # reap the group's leader: a zombie still counts as one of its processes
        try:
            os.killpg(node.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data_root(folder: Path) -> Path:
    """Four clients' worth of separable points, for the loader above."""
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (3, 8))
    y = rng.integers(0, 3, 600)
    x = (centers[y] + rng.normal(0, 1, (600, 8))).astype(np.float32)
    root = folder / "data"
    root.mkdir()
    np.savez(root / "points.npz", x_train=x[:480], y_train=y[:480], x_test=x[480:], y_test=y[480:])
    return root


# The cohort engine sends one message per group, to one worker: groups of 2 keep both busy.
ENGINES = {
    "per-client": ["--set", "resources.engine=per_client"],
    "cohort": ["--set", "resources.engine=cohort", "--set", "resources.cohort_size=2"],
}


@pytest.mark.parametrize("engine", ENGINES)
def test_clients_train_on_both_nodes_with_data_only_the_driver_had(
    two_nodes: str, tmp_path: Path, engine: str
) -> None:
    (tmp_path / "vanishing.py").write_text(LOADER)
    scenario = tmp_path / "two_nodes.toml"
    scenario.write_text(SCENARIO)
    root, out = _data_root(tmp_path), tmp_path / "run"
    env = {**os.environ, "RAY_ADDRESS": two_nodes, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "fedsim", "run", str(scenario), "--out", str(out)]
    command += ["--data-dir", str(root), *ENGINES[engine]]
    run = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = run.communicate(timeout=300)  # a bound against hanging, not a speed check
    finally:
        run.kill()
        assert _gone(run, timeout=30)  # the driver left no process behind
    assert run.returncode == 0, stderr[-3000:]
    assert not root.exists()  # the driver read it and it went: the workers had only the shipped copy
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["clients_failed"] == 0
    rows = read_metrics(out)
    for row in rows:  # every delivering client counted once, on the node that trained it
        assert sum(row["client_nodes"].values()) == row["clients_sampled"] == 4
    nodes = {name for row in rows for name in row["client_nodes"]}
    assert len(nodes) == 2 and len({name.split("@")[0] for name in nodes}) == 2, nodes
    assert "on 2 Ray nodes" in stderr  # the console's round lines say it too
