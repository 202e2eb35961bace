"""The server side of a deployment, as ``fedsim server`` and ``fedsim launch`` start it.

- Flower's SuperLink, bound to loopback: its Control API (``flwr run``, ``flwr supernode
  register``, ``fedsim submit``) and Runtime API (its SuperExec, the ServerApp) share
  that port with its Fleet API, and Flower 1.42 authenticates no Control API caller;
- the fleet gateway (fedsim/deploy/gateway.py) on the address the SuperNodes are given: it
  passes on their calls only;
- the operator's SuperNode keys, registered through the loopback Control API.  With
  node authentication on, Flower refuses self-registration over the Fleet API, so only
  those keys can join.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedsim.deploy.certs import ServerTls
from fedsim.deploy.flower import (
    ClientTls,
    SuperLinkOptions,
    flower_env,
    register_commands,
    superlink_answers,
    write_connection,
)
from fedsim.deploy.gateway import GatewayOptions
from fedsim.deploy.processes import ProcessGroup, Started
from fedsim.scenario.tables import ScenarioError

START_TIMEOUT_S = 180.0  # on a loaded machine a Flower process takes several seconds to start
REMOTE_CONTROL = (
    "the Control API must listen on loopback (127.0.0.1, ::1 or localhost): Flower 1.42 cannot "
    "authenticate its callers, so anyone reaching it with ca.crt could register nodes and run any "
    "code on every machine; submit from the server machine, or from elsewhere through an SSH "
    "tunnel: ssh -N -L {port}:127.0.0.1:{port} SERVER, then --superlink 127.0.0.1:{port}"
)


@dataclass(frozen=True)
class ServerSide:
    fleet_host: str  # where SuperNodes connect (the gateway); 0.0.0.0: every interface
    fleet_port: int
    control_host: str  # where the SuperLink itself listens: loopback only
    control_port: int
    tls: ServerTls | None  # None: plain text (--insecure), no node authentication possible
    node_keys: tuple[Path, ...] = ()  # registered at start; any: node authentication on

    def __post_init__(self) -> None:
        if not is_loopback(self.control_host):
            raise ScenarioError("--control-address", REMOTE_CONTROL.format(port=self.control_port))
        if self.node_keys and self.tls is None:
            raise ScenarioError("--node-keys", "SuperNode authentication needs TLS; drop --insecure")
        if self.control_port == self.fleet_port:
            raise ScenarioError("--control-address", f"port {self.control_port} is already --port's")

    @property
    def superlink(self) -> SuperLinkOptions:
        return SuperLinkOptions(self.control_host, self.control_port, self.tls, bool(self.node_keys))

    @property
    def gateway(self) -> GatewayOptions:
        return GatewayOptions(self.fleet_host, self.fleet_port, self.control_address, self.tls)

    @property
    def control_address(self) -> str:
        return self.superlink.local_address

    @property
    def fleet_address(self) -> str:
        """Where processes on this machine reach the gateway."""
        return SuperLinkOptions(self.fleet_host, self.fleet_port).local_address

    @property
    def client_tls(self) -> ClientTls:
        return self.superlink.client_tls

    def describe(self) -> str:
        """Which API listens where, for the operator."""
        host = f"[{self.fleet_host}]" if ":" in self.fleet_host else self.fleet_host
        auth = f"only the {len(self.node_keys)} registered node keys" if self.node_keys else "ANY node"
        return "\n".join(
            [
                f"  Fleet API (SuperNodes)        {host}:{self.fleet_port}  via fedsim's gateway; "
                f"admits {auth}",
                f"  Control API (flwr, submit)    {self.control_address}  loopback only: submit here, or "
                f"through ssh -N -L {self.control_port}:127.0.0.1:{self.control_port} THIS_MACHINE",
                f"  Runtime API (ServerApp)       {self.control_address}  loopback only",
            ]
        )


@dataclass(frozen=True)
class Running:
    superlink: Started
    gateway: Started


def start(side: ServerSide, group: ProcessGroup, workdir: Path, env: Mapping[str, str]) -> Running:
    """Start the SuperLink, register the node keys, then open the gateway; wait until each answers.

    The gateway comes last: a node that connects before its key is registered is refused,
    and Flower's SuperNode then exits rather than retrying.
    """
    tls = side.client_tls
    link = group.start("superlink", side.superlink.argv(), env=flower_env(workdir / "home-superlink", env))
    answers = functools.partial(superlink_answers, side.control_address, tls)
    group.wait_until(link, answers, START_TIMEOUT_S, "answer on its port")
    if side.node_keys:
        home = workdir / "home-admin"
        write_connection(home, side.control_address, tls)
        group.run(register_commands(list(side.node_keys)), START_TIMEOUT_S, flower_env(home, env))
    gateway = group.start("gateway", side.gateway.argv(), env=env)
    answers = functools.partial(superlink_answers, side.fleet_address, tls)
    group.wait_until(gateway, answers, START_TIMEOUT_S, "answer on its port")
    return Running(link, gateway)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False
