"""``fedsim launch``: a SuperLink and N SuperNodes as real processes on 127.0.0.1, one run.

For trying the deployment engine on one machine: the same processes and flags as
``fedsim server`` / ``fedsim client`` / ``fedsim submit`` on separate machines, TLS,
the fleet gateway and SuperNode authentication included (with throwaway certificates
and keys unless given a ``fedsim certs`` folder).  The caller's :class:`ProcessGroup`
stops every process afterwards, also on Ctrl-C or failure.

Each SuperNode is three processes (the node, its SuperExec, a ClientApp per message,
which imports torch), and every sampled node trains at the same time: ``--clients``
is capped by the memory this machine has available, checked before anything starts.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from fedsim.data.roots import ENV_DATA_DIR
from fedsim.deploy import certs
from fedsim.deploy.args import new_out
from fedsim.deploy.flower import CONNECTED, SuperNodeOptions, flower_env, free_port
from fedsim.deploy.processes import ProcessGroup, Started
from fedsim.deploy.submit import Outcome, Submission, submit
from fedsim.deploy.superlink import START_TIMEOUT_S, ServerSide
from fedsim.deploy.superlink import start as start_server
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim.server import Reporter

# Resident memory measured with `fedsim launch` (quickstart, 4 and 8 nodes): a SuperNode
# ~140 MiB, its SuperExec ~125 MiB, a training ClientApp ~860 MiB; once per launch the
# fedsim command ~640 MiB, the ServerApp ~700 MiB, the SuperLink ~150 MiB, the gateway ~50 MiB.
NODE_MIB = 1152
BASE_MIB = 1664


@dataclass(frozen=True)
class LaunchOptions:
    scenario: Scenario  # its data.num_clients is the number of SuperNodes
    out: Path
    certs: Path | None = None  # a `fedsim certs` folder; None: throwaway certificates
    insecure: bool = False
    node_auth: bool = True  # with TLS only: Flower refuses node authentication in plain text
    data_dir: Path | None = None
    client_app: str = "clients.app:app"

    def __post_init__(self) -> None:
        new_out(self.out)
        if self.insecure and self.certs is not None:
            raise ScenarioError("--insecure", "cannot be combined with --certs")
        if self.scenario.data.num_clients is None:
            raise ScenarioError(
                "--clients", "required: this scenario's data set no client count of their own"
            )
        check_room(self.clients, psutil.virtual_memory().available >> 20)

    @property
    def clients(self) -> int:
        """The number of SuperNodes (set for every scenario that reaches here)."""
        return self.scenario.data.num_clients or 0

    def security(self) -> str:
        """What protects the launch's connections, in words."""
        if self.insecure:
            return "plain text: no TLS, no SuperNode authentication (--insecure)"
        where = f"certificates in {self.certs}" if self.certs else "throwaway certificates"
        joins = "SuperNodes authenticated" if self.node_auth else "any SuperNode may join (--no-node-auth)"
        return f"TLS on ({where}), {joins}"


def own_plugins(scenario: Scenario) -> tuple[str, ...]:
    """The modules of the scenario's plug-ins named by import path.  The launch's SuperNodes run
    on this machine for this user, so they import them, as ``fedsim run`` would."""
    names = (scenario.model.name, scenario.data.dataset, scenario.strategy.name, scenario.client.update)
    return tuple(sorted({name.partition(":")[0] for name in names if ":" in name}))


def check_room(clients: int, available_mib: int) -> None:
    """Refuse more SuperNodes than the available memory holds while they all train."""
    room = max(0, (available_mib - BASE_MIB) // NODE_MIB)
    if clients > room:
        need = (BASE_MIB + clients * NODE_MIB) / 1024
        raise ScenarioError(
            "--clients",
            f"{clients} SuperNodes need about {need:.0f} GiB while training (each is three processes, "
            f"~{NODE_MIB} MiB), and {available_mib / 1024:.1f} GiB is available: room for {room}. "
            "Simulate larger populations with `fedsim run` (its Ray workers take turns)",
        )


def launch(
    opts: LaunchOptions, group: ProcessGroup, workdir: Path, reporter: Reporter, started_at: float
) -> Outcome:
    """Start the SuperLink and gateway, then the SuperNodes, then submit the run and follow it."""
    clients = opts.clients
    keys = _node_keys(workdir / "keys", clients) if opts.node_auth and not opts.insecure else []
    side = _server_side(opts, workdir, tuple(public for _, public in keys))
    env = dict(os.environ) | ({ENV_DATA_DIR: str(opts.data_dir.resolve())} if opts.data_dir else {})
    start_server(side, group, workdir, env)
    milestones = [("SuperLink answering", time.perf_counter() - started_at)]
    tls = side.client_tls
    nodes: list[Started] = []
    for k in range(clients):
        spec = SuperNodeOptions(
            side.fleet_address,
            k,
            clients,
            tls,
            opts.data_dir,
            keys[k][0] if keys else None,
            allow_plugins=own_plugins(opts.scenario),
        )
        nodes.append(group.start(f"supernode-{k}", spec.argv(), env=flower_env(workdir / f"home-node-{k}")))
    for node in nodes:
        group.wait_until(
            node, functools.partial(_connected, node), START_TIMEOUT_S, "connect to the SuperLink"
        )
    milestones.append((f"{clients} SuperNodes connected", time.perf_counter() - started_at))
    job = Submission(
        opts.scenario, side.control_address, tls, opts.out, server_writes_out=True, client_app=opts.client_app
    )
    outcome = submit(job, group, workdir, reporter, started_at)
    outcome.milestones[:0] = milestones
    return outcome


def _server_side(opts: LaunchOptions, workdir: Path, keys: tuple[Path, ...]) -> ServerSide:
    """Everything on loopback, each API on a free port of its own."""
    tls = None
    if not opts.insecure:
        if opts.certs is None:
            certs.generate(workdir / "certs", ["127.0.0.1"], nodes=0)
        tls = certs.ServerTls.in_folder(opts.certs or workdir / "certs")
    return ServerSide("127.0.0.1", free_port(), "127.0.0.1", free_port(), tls, keys)


def _node_keys(folder: Path, count: int) -> list[tuple[Path, Path]]:
    """A fresh key pair per SuperNode, registered on the SuperLink before the node starts."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [certs.node_key_paths(folder, k) for k in range(count)]
    for private, public in pairs:
        certs.write_node_key(private, public)
    return pairs


def _connected(node: Started) -> bool:
    return node.log is not None and CONNECTED in node.log.read_text(encoding="utf-8", errors="replace")
