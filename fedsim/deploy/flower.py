"""Flower's deployment commands as fedsim runs them: flags, environment, connection file.

fedsim wraps ``flower-superlink``, ``flower-supernode`` and the ``flwr`` CLI rather
than re-implementing them; this module only decides their flags:

- runtime dependency installation is off, so the ServerApp and ClientApp run in
  this installed environment instead of a fresh one ``uv`` would download torch into;
- every process gets a Flower home of its own (``FLWR_HOME``), never the user's
  ``~/.flwr``, and this environment's ``bin`` first on ``PATH`` (Flower starts
  ``flower-superexec``, ``flwr-serverapp`` and ``flwr-clientapp`` by name);
- Flower's telemetry and update check are off (machines may be offline).
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from fedsim import protocol as keys
from fedsim.deploy.certs import ServerTls
from fedsim.scenario.tables import ScenarioError

BIN = Path(sys.executable).parent  # flower-superlink, flwr, ... of this environment
CONNECTION = "fedsim"  # the SuperLink connection's name in the private Flower config
DEFAULT_PORT = 8000  # where SuperNodes connect (fedsim's gateway); Flower 1.42's SuperLink port too
DEFAULT_CONTROL_PORT = 9093  # Flower's usual Control API port; fedsim binds the SuperLink there, on loopback
GATEWAY_HEADER = "x-fedsim-gateway"  # on every answer of fedsim's gateway (fedsim/deploy/gateway.py)
CONNECTED = "SuperNode ID:"  # what a SuperNode logs once the SuperLink accepted it
# The SuperExec asks for new tasks once a second by default; each round pays that wait.
TASK_POLL_S = "0.1"


@dataclass(frozen=True)
class ClientTls:
    """How a SuperNode or ``flwr`` reaches a SuperLink: a CA, the system's CAs, or plain text."""

    root_certificates: Path | None = None  # None and not insecure: the system's trusted CAs
    insecure: bool = False

    def args(self) -> list[str]:
        if self.insecure:
            return ["--insecure"]
        return ["--root-certificates", str(self.root_certificates)] if self.root_certificates else []


@dataclass(frozen=True)
class SuperLinkOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls: ServerTls | None = None  # None: plain text, Flower's --insecure
    node_auth: bool = False  # only SuperNodes whose public key was registered may join

    def argv(self) -> list[str]:
        argv = [str(BIN / "flower-superlink"), "--host", self.host, "--port", str(self.port)]
        argv.append("--disable-runtime-dependency-installation")
        if self.tls is None:
            argv.append("--insecure")
        else:
            argv += ["--ssl-ca-certfile", str(self.tls.ca_cert), "--ssl-certfile", str(self.tls.cert)]
            argv += ["--ssl-keyfile", str(self.tls.key)]
        if self.node_auth:
            argv.append("--enable-supernode-auth")
        return argv

    @property
    def local_address(self) -> str:
        """Where processes on this machine reach it (a wildcard bind answers on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def client_tls(self) -> ClientTls:
        return ClientTls(self.tls.ca_cert) if self.tls else ClientTls(insecure=True)


@dataclass(frozen=True)
class SuperNodeOptions:
    superlink: str  # HOST:PORT
    partition_id: int
    num_partitions: int
    tls: ClientTls
    data_dir: Path | None = None
    auth_key: Path | None = None  # private key registered on the SuperLink
    runtime_port: int = 0  # the SuperNode's local API for its ClientApps; 0: a free port
    allow_plugins: tuple[str, ...] = ()  # module prefixes its ClientApp may import besides the built-ins

    def __post_init__(self) -> None:
        if not 0 <= self.partition_id < self.num_partitions:
            raise ScenarioError(
                "--partition-id", f"expected 0..{self.num_partitions - 1}, got {self.partition_id}"
            )
        for prefix in self.allow_plugins:
            if not all(part.isidentifier() for part in prefix.split(".")):
                raise ScenarioError(
                    "--allow-plugin", f"expected a module such as mylab or mylab.models, got {prefix!r}"
                )
        if self.data_dir is not None and '"' in str(self.data_dir):
            raise ScenarioError("--data-dir", "a path with '\"' cannot be passed in Flower's node config")

    def argv(self) -> list[str]:
        port = self.runtime_port or free_port()
        argv = [str(BIN / "flower-supernode"), "--superlink", self.superlink, *self.tls.args()]
        argv += ["--node-config", self.node_config(), "--port", str(port)]
        if self.auth_key is not None:
            argv += ["--auth-supernode-private-key", str(self.auth_key)]
        return argv

    def node_config(self) -> str:
        """Flower's ``key=value`` list, read by the ClientApp as ``context.node_config``."""
        pairs = [f"{keys.NODE_PARTITION_ID}={self.partition_id}"]
        pairs.append(f"{keys.NODE_NUM_PARTITIONS}={self.num_partitions}")
        if self.data_dir is not None:
            pairs.append(f'{keys.NODE_DATA_DIR}="{self.data_dir.resolve()}"')
        pairs.append(f'{keys.NODE_ALLOW_PLUGINS}="{",".join(self.allow_plugins)}"')
        return " ".join(pairs)


def flower_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a Flower process whose Flower home is ``home``."""
    env = dict(os.environ if base is None else base)
    env.update(
        FLWR_HOME=str(home),
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_SUPEREXEC_TASK_POLL_INTERVAL=TASK_POLL_S,
        PYTHONUNBUFFERED="1",  # logs reach their files as they are written
    )
    home.mkdir(parents=True, exist_ok=True)
    return env


def write_connection(home: Path, address: str, tls: ClientTls) -> None:
    """Flower's config file in ``home``, with one SuperLink connection, the default."""
    connection: dict[str, str | bool] = {"address": address}
    if tls.insecure:
        connection["insecure"] = True
    elif tls.root_certificates is not None:
        connection["root-certificates"] = str(tls.root_certificates.resolve())
    config = {"superlink": {"default": CONNECTION, CONNECTION: connection}}
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(tomli_w.dumps(config), encoding="utf-8")


def flwr(*args: str) -> list[str]:
    return [str(BIN / "flwr"), *args]


def register_commands(public_keys: list[Path]) -> dict[str, list[str]]:
    """``flwr supernode register`` for each key, against the default connection."""
    return {
        f"register-{i}": flwr("supernode", "register", str(key.resolve()), CONNECTION)
        for i, key in enumerate(public_keys)
    }


def superlink_answers(address: str, tls: ClientTls) -> bool:
    """True once the SuperLink's HTTP API answers its health check."""
    scheme = "http" if tls.insecure else "https"
    context = None if tls.insecure else ssl.create_default_context(cafile=tls.root_certificates)
    try:
        with urllib.request.urlopen(f"{scheme}://{address}/health", timeout=2, context=context) as reply:
            return int(reply.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
