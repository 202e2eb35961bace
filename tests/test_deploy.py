"""End to end on Flower's deployment engine: a real SuperLink and SuperNodes on 127.0.0.1, TLS on.

Every process a test starts, directly or below `fedsim`, is recorded by PID while it
runs and must be gone afterwards; a test that fails stops them by PID itself.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from fedsim.deploy import certs
from fedsim.deploy.flower import (
    CONNECTED,
    ClientTls,
    SuperLinkOptions,
    SuperNodeOptions,
    flower_env,
    flwr,
    free_port,
    register_commands,
    superlink_answers,
    write_connection,
)
from fedsim.deploy.launch import LaunchOptions, launch
from fedsim.deploy.processes import ProcessGroup, descendants, is_alive
from fedsim.results.records import RoundRecord
from fedsim.results.run_dir import read_metrics
from fedsim.scenario.files import parse_scenario
from tests.conftest import REPO, RecordingReporter, default_sigint, simulate

pytestmark = pytest.mark.engine

QUICKSTART = REPO / "scenarios" / "quickstart.toml"
TIMEOUT_S = 600.0


class Watched:
    """A `fedsim` subprocess whose process tree is recorded, PID by PID, while it runs."""

    def __init__(self, args: list[str], log: Path, temp: Path, cwd: Path) -> None:
        env = {**os.environ, "TMPDIR": str(temp)}  # its work folders land here, to be checked
        with open(log, "wb") as stream:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "fedsim", *args],
                stdout=stream,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                preexec_fn=default_sigint,
            )
        self.log = log
        self.pids = {self.popen.pid}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop_leftovers(self) -> None:
        """Only if a test failed midway: stop what is still running, by PID."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            self.popen.wait(60)
        for pid in self.pids:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)


class Fleet:
    """The `fedsim` commands a test starts; waiting on one records the trees of all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.temp = folder / "tmp"
        self.temp.mkdir()
        self.started: list[Watched] = []

    def start(self, *args: str, cwd: Path = REPO) -> Watched:
        cwd.mkdir(exist_ok=True)
        log = self.folder / f"fedsim-{len(self.started)}.log"
        self.started.append(Watched(list(args), log, self.temp, cwd))
        return self.started[-1]

    def wait(self, process: Watched, until: Callable[[], bool] = lambda: False) -> int | None:
        """Record every tree until ``process`` exits (its code) or ``until`` holds (None)."""
        deadline = time.monotonic() + TIMEOUT_S
        while process.popen.poll() is None:
            for each in self.started:
                each.pids |= descendants(each.popen.pid)
            if until():
                return None
            assert time.monotonic() < deadline, f"fedsim still running after {TIMEOUT_S:.0f} s"
            time.sleep(0.2)
        return process.popen.returncode

    def left_running(self) -> list[int]:
        return [pid for each in self.started for pid in each.pids if is_alive(pid)]

    def left_files(self) -> list[Path]:
        return list(self.temp.glob("fedsim-*"))  # Flower homes, keys, logs of our commands


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    commands = Fleet(tmp_path)
    yield commands
    for process in commands.started:
        process.stop_leftovers()


def test_launch_with_fedsim_certs_runs_a_users_algorithm_as_the_simulation_and_leaves_no_process(
    tmp_path: Path, fleet: Fleet, ray_cluster: str
) -> None:
    """examples/error_feedback, a user's plug-in with client state: each SuperNode keeps its
    client's residual in its own state, the simulation in the server's store; every client trains
    every round, so each round after the first starts from the state the last one left, and both
    give the same rows.  `fedsim launch` lets its own SuperNodes import the scenario's plug-ins."""
    cert_dir = tmp_path / "certs"
    assert fleet.wait(fleet.start("certs", str(cert_dir), "--host", "127.0.0.1")) == 0
    scenario = REPO / "examples" / "error_feedback" / "scenario.toml"
    overrides = ["rounds=3", "data.params.devices=3", "strategy.fraction_train=1.0"]
    out = tmp_path / "run"
    args = ["launch", str(scenario), "--clients", "3", "--certs", str(cert_dir), "--out", str(out)]
    run = fleet.start(*args, *(a for o in overrides for a in ("--set", o)))
    assert fleet.wait(run) == 0, run.output()
    assert f"fedsim: launch: TLS on (certificates in {cert_dir}), SuperNodes authenticated" in run.output()
    assert len(run.pids) >= 8  # fedsim, SuperLink + SuperExec + ServerApp, 3 x (SuperNode + SuperExec), ...
    assert not fleet.left_running() and not fleet.left_files()

    expected = {"scenario.toml", "metrics.jsonl", "summary.json", "model.pt", "checkpoint", ".lock"}
    assert {p.name for p in out.iterdir()} == expected
    rows = read_metrics(out)
    assert [r["round"] for r in rows] == [1, 2, 3] and all(r["residual_norm"] > 0 for r in rows)
    assert set(rows[0]) == RoundRecord.field_names() - {"extra"} | {"residual_norm"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 3

    simulate(
        scenario.read_text(), tmp_path / "sim", overrides=(f"python_path=['{scenario.parent}']", *overrides)
    )
    metrics = ("accuracy", "loss", "train_loss", "residual_norm", "clients_sampled", "clients_failed")
    assert [[r[k] for k in metrics] for r in rows] == [
        [r[k] for k in metrics] for r in read_metrics(tmp_path / "sim")
    ]


def test_server_clients_and_submit_as_on_separate_machines_an_extra_node_left_idle(
    tmp_path: Path, fleet: Fleet
) -> None:
    folder = tmp_path / "certs"
    certs.generate(folder, ["127.0.0.1"], nodes=3)
    port, control = free_port(), free_port()
    address, ca = f"127.0.0.1:{port}", str(folder / certs.CA_CERT)
    keys = [str(folder / f"node-{k}.pub") for k in (0, 1, 2)]
    server = fleet.start(
        *("server", "--port", str(port), "--control-address", f"127.0.0.1:{control}"),
        *("--certs", str(folder), "--node-keys", *keys),
        cwd=tmp_path / "srv",
    )
    # Node 2 holds partition 1 too: an extra (or stale) node that used to fail every run.
    clients = [
        fleet.start(
            *("client", "--superlink", address, "--root-certificates", ca),
            *("--auth-key", str(folder / f"node-{k}.key"), "--partition-id", str(min(k, 1))),
            *("--num-partitions", "2"),
        )
        for k in (0, 1, 2)
    ]
    out = tmp_path / "here"
    submit = fleet.start(
        *("submit", str(QUICKSTART), "--superlink", f"127.0.0.1:{control}", "--root-certificates", ca),
        *("--set", "data.params.devices=2", "--set", "rounds=2", "--out", str(out)),
    )
    assert fleet.wait(submit) == 0, submit.output() + server.output()
    # Whether it had answered (partition 1 is taken) or was still starting, it got no work.
    assert len(re.findall(r"warning: node \d+ left idle: ", submit.output())) == 1, submit.output()

    # The submitter rebuilt the folder from the streamed events; the server kept the model.
    assert {p.name for p in out.iterdir()} == {"scenario.toml", "metrics.jsonl", "summary.json", ".lock"}
    (server_copy,) = (tmp_path / "srv" / "runs").iterdir()
    assert f"on the SuperLink's machine: {server_copy}" in submit.output().replace("\n", "")
    assert (server_copy / "model.pt").is_file()
    assert read_metrics(out) == read_metrics(server_copy)
    assert (out / "scenario.toml").read_text() == (server_copy / "scenario.toml").read_text()
    mine, theirs = (json.loads((d / "summary.json").read_text()) for d in (out, server_copy))
    assert mine["status"] == "completed" and mine["final_accuracy"] == theirs["final_accuracy"]

    for process in (server, *clients):  # as a service manager would stop them
        process.popen.send_signal(signal.SIGTERM)
        assert fleet.wait(process) == 143, process.output()
    assert not fleet.left_running() and not fleet.left_files()


EVIL_APP = {
    "pyproject.toml": """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
[project]
name = "evil"
version = "1.0.0"
description = "runs its own code on the server"
license = "Apache-2.0"
dependencies = []
[tool.hatch.build.targets.wheel]
packages = ["."]
[tool.flwr.app]
publisher = "evil"
[tool.flwr.app.components]
serverapp = "evil.apps:server"
clientapp = "evil.apps:client"
[tool.flwr.app.config]
marker = ""
""",
    "evil/__init__.py": "",
    "evil/apps.py": """
from pathlib import Path
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp
server = ServerApp()
client = ClientApp()
@server.main()
def main(grid, context):
    Path(context.run_config["marker"]).write_text("ran on the server")
""",
}


def listening(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (Linux's /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.add(str(ipaddress.IPv4Address(raw[::-1])))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(str(ipaddress.IPv6Address(words)))
    return found


def test_holders_of_the_address_and_ca_can_neither_register_nodes_nor_run_code(
    tmp_path: Path, fleet: Fleet
) -> None:
    """What a client machine holds (the SuperLink's address, ca.crt) no longer takes over the federation."""
    folder = tmp_path / "certs"
    certs.generate(folder, ["127.0.0.1"], nodes=1)
    certs.write_node_key(tmp_path / "stranger.key", tmp_path / "stranger.pub")
    port, control = free_port(), free_port()
    address, ca = f"127.0.0.1:{port}", folder / certs.CA_CERT
    server = fleet.start(
        *("server", "--port", str(port), "--control-address", f"127.0.0.1:{control}"),
        *("--certs", str(folder), "--node-keys", str(folder / "node-0.pub")),
        cwd=tmp_path / "srv",
    )
    assert fleet.wait(server, until=lambda: "Runtime API" in server.output()) is None, server.output()
    assert f"Fleet API (SuperNodes)        127.0.0.1:{port}" in server.output()
    assert f"Control API (flwr, submit)    127.0.0.1:{control}  loopback only" in server.output()
    assert listening(control) == {"127.0.0.1"}  # unreachable from any other machine

    attacker = tmp_path / "home-attacker"
    write_connection(attacker, address, ClientTls(ca))
    for path, text in EVIL_APP.items():
        (tmp_path / "app" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "app" / path).write_text(text)
    marker = tmp_path / "PWNED"
    attempts = {
        "register": flwr("supernode", "register", str(tmp_path / "stranger.pub"), "fedsim"),
        "run": flwr("run", str(tmp_path / "app"), "fedsim", "--run-config", f'marker="{marker}"'),
    }
    for name, argv in attempts.items():
        done = subprocess.run(argv, env=flower_env(attacker), capture_output=True, text=True, timeout=300)
        assert done.returncode != 0 and "403 Forbidden" in done.stdout + done.stderr, (name, done.stdout)

    # The operator, on the server machine, sees only the node it registered.
    admin = tmp_path / "home-admin"
    write_connection(admin, f"127.0.0.1:{control}", ClientTls(ca))
    listing = subprocess.run(
        flwr("supernode", "ls", "fedsim", "--format", "json"),
        env=flower_env(admin),
        capture_output=True,
        text=True,
    )
    assert len(json.loads(listing.stdout[listing.stdout.index("{") :])["nodes"]) == 1, listing.stdout

    # A node with an unregistered key is refused, and its `fedsim client` leaves nothing behind.
    stranger = fleet.start(
        *("client", "--superlink", address, "--root-certificates", str(ca)),
        *("--auth-key", str(tmp_path / "stranger.key"), "--partition-id", "0", "--num-partitions", "1"),
    )
    assert fleet.wait(stranger) == 1, stranger.output()
    assert "Failed to activate SuperNode" in stranger.output()
    deadline = time.monotonic() + 30  # a SuperExec left behind ends by itself, writing its home first
    while any(is_alive(p) for p in stranger.pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not list(fleet.temp.glob("fedsim-client-*"))

    server.popen.send_signal(signal.SIGTERM)
    assert fleet.wait(server) == 143, server.output()
    assert not marker.exists()  # the run never started: no ServerApp of theirs ran here
    assert not fleet.left_running() and not fleet.left_files()


def test_hostile_replies_are_dropped_and_every_round_still_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the SuperNodes' ClientApps import tests.hostile_app
    overrides = ("rounds=2", "data.params.devices=3", "data.num_clients=3", "strategy.fraction_train=1.0")
    scenario = parse_scenario(QUICKSTART.read_text(), overrides)
    options = LaunchOptions(scenario, tmp_path / "run", client_app="tests.hostile_app:app")
    reporter = RecordingReporter()
    (tmp_path / "logs").mkdir()
    with ProcessGroup(os.environ, tmp_path / "logs") as group:
        outcome = launch(options, group, tmp_path, reporter, time.perf_counter())
        pids = group.pids()
    assert not [p for p in pids if is_alive(p)]

    assert outcome.error is None, outcome.error
    assert [(r.clients_sampled, r.clients_failed) for r in reporter.rounds] == [(3, 2), (3, 2)]
    for server_round in (1, 2):
        said = [w for w in reporter.warnings if w.startswith(f"round {server_round}: ")]
        assert any("2 rejected" in w for w in said)
        assert any("dropped the reply of node" in w and "non-finite values" in w for w in said)
        assert any("dropped the reply of node" in w and "expected float32[" in w for w in said)
    final = reporter.rounds[-1]
    assert final.accuracy is not None and math.isfinite(final.accuracy) and final.accuracy > 0.3
    state = torch.load(tmp_path / "run" / "model.pt")
    assert all(torch.isfinite(t).all() for t in state.values())


def test_superlink_admits_only_registered_nodes_over_tls(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    certs.generate(folder, ["127.0.0.1"], nodes=2)
    certs.write_node_key(tmp_path / "stranger.key", tmp_path / "stranger.pub")
    link = SuperLinkOptions("127.0.0.1", free_port(), certs.ServerTls.in_folder(folder), node_auth=True)
    address, ca = link.local_address, folder / certs.CA_CERT
    admin = flower_env(tmp_path / "home-admin")
    write_connection(tmp_path / "home-admin", address, link.client_tls)

    def node(name: str, tls: ClientTls, key: Path | None) -> list[str]:
        # Flower retries a failed connection forever by default; a refused node should end.
        argv = SuperNodeOptions(address, 1, 2, tls, auth_key=key).argv()
        return [*argv, "--max-retries", "1", "--max-wait-time", "60"]

    (tmp_path / "logs").mkdir()
    with ProcessGroup(os.environ, tmp_path / "logs") as group:
        server = group.start("superlink", link.argv(), env=flower_env(tmp_path / "home-link"))
        group.wait_until(server, lambda: superlink_answers(address, link.client_tls), 180, "answer")
        group.run(register_commands([folder / "node-0.pub", folder / "node-1.pub"]), 180, admin)
        member = group.start("member", node("member", ClientTls(ca), folder / "node-0.key"), env=admin)
        group.wait_until(member, lambda: CONNECTED in member.log_tail(50), 180, "connect")

        refused = {
            "stranger": (node("stranger", ClientTls(ca), tmp_path / "stranger.key"), "Failed to activate"),
            "no-ca": (node("no-ca", ClientTls(), folder / "node-1.key"), "CERTIFICATE_VERIFY_FAILED"),
            "plain": (node("plain", ClientTls(insecure=True), None), "could not establish a connection"),
        }
        attempts = {name: group.start(name, argv, env=admin) for name, (argv, _) in refused.items()}
        for name, attempt in attempts.items():
            assert attempt.popen.wait(300) != 0
            assert refused[name][1] in attempt.log_tail(50), attempt.log_tail(50)
            assert CONNECTED not in attempt.log_tail(200)

        listing = subprocess.run(
            flwr("supernode", "ls", "fedsim", "--format", "json"), env=admin, capture_output=True, text=True
        )
        nodes = json.loads(listing.stdout[listing.stdout.index("{") :])["nodes"]
        assert sorted(n["status"] for n in nodes) == ["online", "registered"]  # node-1 never got in

        client = [
            "client",
            "--superlink",
            address,
            "--insecure",
            "--partition-id",
            "1",
            "--num-partitions",
            "2",
        ]
        cli = subprocess.run([sys.executable, "-m", "fedsim", *client], capture_output=True, text=True)
        assert cli.returncode == 2 and "--insecure: the SuperLink at" in cli.stderr
        pids = group.pids()
    assert not [p for p in pids if is_alive(p)]


def test_ctrl_c_stops_the_run_and_every_process(tmp_path: Path, fleet: Fleet) -> None:
    run = fleet.start(
        "launch", str(QUICKSTART), "--clients", "2", "--set", "rounds=20", "--out", str(tmp_path / "run")
    )
    assert fleet.wait(run, until=lambda: "round   1" in run.output()) is None, run.output()
    run.popen.send_signal(signal.SIGINT)
    assert fleet.wait(run) == 130, run.output()
    assert "interrupted" in run.output()
    assert not fleet.left_running() and not fleet.left_files()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())  # the stopped ServerApp closed it
    assert summary["status"] == "failed" and summary["error"] == "stopped before the last round (interrupted)"
    assert summary["rounds_completed"] >= 1
