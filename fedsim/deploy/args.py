"""Options of the deployment commands (``fedsim certs|server|client|submit|launch``), and
what the TLS options mean together."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedsim.deploy import certs
from fedsim.deploy.flower import DEFAULT_CONTROL_PORT, DEFAULT_PORT, ClientTls
from fedsim.deploy.probe import split_address
from fedsim.scenario.tables import ScenarioError

Handler = Callable[[argparse.Namespace], int]

EPILOG = """\
one machine:   fedsim launch scenarios/quickstart.toml --clients 3 --set rounds=2
real machines: fedsim certs certs --host SERVER_IP --nodes 3       (once, copy ca.crt and node-K.key)
  server:      fedsim server --host 0.0.0.0 --certs certs --node-keys certs/node-*.pub
  client K:    fedsim client --superlink SERVER_IP:8000 --root-certificates ca.crt \\
                 --auth-key node-K.key --partition-id K --num-partitions 3
  submit:      on the server (its Control API listens on loopback only), or elsewhere after
               ssh -N -L 9093:127.0.0.1:9093 SERVER_IP:
               fedsim submit scenarios/quickstart.toml --superlink 127.0.0.1:9093 \\
                 --root-certificates ca.crt --set data.num_clients=3"""


def add(commands: argparse._SubParsersAction[Any], handlers: Mapping[str, Handler]) -> None:
    def parser(name: str, text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handlers[name])
        return sub

    _certs(parser("certs", "write a test CA, a server certificate and SuperNode keys"))
    _server(parser("server", "start a Flower SuperLink (TLS unless --insecure)"))
    _client(parser("client", "start a Flower SuperNode holding one partition"))
    _submit(parser("submit", "run a scenario on a SuperLink and record it here"))
    _launch(parser("launch", "try it on one machine: a SuperLink and N SuperNodes on 127.0.0.1"))


def _certs(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, metavar="DIR", help="folder to write into (files must not exist)")
    p.add_argument(
        "--host",
        action="append",
        metavar="NAME_OR_IP",
        help="a name or IP address clients use for the server (repeatable; 127.0.0.1 and localhost "
        "are always included)",
    )
    p.add_argument("--nodes", type=_count, default=0, metavar="N", help="SuperNode key pairs to write")
    p.add_argument("--days", type=_positive, default=365, help="validity (default: 365)")


def _server(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host", default="127.0.0.1", help="address SuperNodes connect to; 0.0.0.0 for every interface"
    )
    p.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"SuperNodes' port (default: {DEFAULT_PORT})"
    )
    p.add_argument(
        "--control-address",
        default=f"127.0.0.1:{DEFAULT_CONTROL_PORT}",
        metavar="HOST:PORT",
        help="the Control API, where runs are submitted: loopback only (default: "
        f"127.0.0.1:{DEFAULT_CONTROL_PORT}; from elsewhere, through an SSH tunnel)",
    )
    tls = p.add_mutually_exclusive_group()
    tls.add_argument(
        "--certs", type=Path, metavar="DIR", help="ca.crt, server.pem, server.key from `fedsim certs`"
    )
    tls.add_argument("--insecure", action="store_true", help="plain text: no TLS, no node authentication")
    for name, what in (("ca-certfile", "CA certificate"), ("certfile", "certificate"), ("keyfile", "key")):
        p.add_argument(
            f"--ssl-{name}", type=Path, metavar="FILE", help=f"the server's {what} (instead of --certs)"
        )
    p.add_argument(
        "--node-keys",
        type=Path,
        nargs="+",
        metavar="PUB",
        help="public keys (node-K.pub) of the only SuperNodes that may join; required with TLS",
    )
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="folder holding MNIST/raw, for evaluation")


def _client(p: argparse.ArgumentParser) -> None:
    p.add_argument("--superlink", required=True, metavar="HOST:PORT", help="the SuperLink's address")
    p.add_argument("--partition-id", type=_count, required=True, metavar="K", help="this node's partition")
    p.add_argument("--num-partitions", type=_positive, required=True, metavar="N", help="data.num_clients")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="folder holding this node's data (MNIST/raw)")
    _client_tls(p)
    p.add_argument(
        "--auth-key", type=Path, metavar="KEY", help="this node's registered private key (node-K.key)"
    )
    p.add_argument(
        "--runtime-port", type=_port, default=0, help="local port for its ClientApps (default: free)"
    )
    p.add_argument(
        "--allow-plugin",
        dest="allow_plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module (and those under it) whose plug-ins the server's scenarios may name, e.g. "
        "mylab.models (repeatable; the built-ins always; nothing else is imported)",
    )


def _submit(p: argparse.ArgumentParser) -> None:
    _scenario(p)
    p.add_argument(
        "--superlink",
        required=True,
        metavar="HOST:PORT",
        help=f"the SuperLink's Control API (fedsim server prints it; 127.0.0.1:{DEFAULT_CONTROL_PORT})",
    )
    _client_tls(p)


def _launch(p: argparse.ArgumentParser) -> None:
    _scenario(p)
    p.add_argument(
        "--clients",
        type=_positive,
        required=True,
        metavar="N",
        help="SuperNodes to start (sets data.num_clients)",
    )
    tls = p.add_mutually_exclusive_group()
    tls.add_argument(
        "--certs", type=Path, metavar="DIR", help="a `fedsim certs` folder (default: throwaway ones)"
    )
    tls.add_argument("--insecure", action="store_true", help="plain text: no TLS, no node authentication")
    p.add_argument("--no-node-auth", action="store_true", help="let any SuperNode join (TLS stays on)")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="folder holding MNIST/raw (read only)")


def add_scenario_args(p: argparse.ArgumentParser) -> None:
    """SCENARIO and ``--set``, as every command that takes a scenario has them (fedsim/cli.py too)."""
    p.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="scenario TOML file (default: the built-in quickstart)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set client.lr=0.05 (repeatable)",
    )


def _scenario(p: argparse.ArgumentParser) -> None:
    add_scenario_args(p)
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="results folder, new or empty (default: runs/<name>-<time>)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="keep the logs of every process")


def _client_tls(p: argparse.ArgumentParser) -> None:
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--root-certificates", type=Path, metavar="CA", help="the CA certificate (ca.crt)")
    tls.add_argument("--insecure", action="store_true", help="plain text, for a SuperLink started --insecure")
    p.add_argument(
        "--wait", type=float, default=60.0, metavar="S", help="wait this long for the SuperLink (60)"
    )


def _count(text: str) -> int:
    return _int(text, 0)


def _positive(text: str) -> int:
    return _int(text, 1)


def _port(text: str) -> int:
    value = _int(text, 1)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text}")
    return value


def _int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected at least {minimum}, got {value}")
    return value


def server_tls(args: argparse.Namespace) -> certs.ServerTls | None:
    files = {"--ssl-ca-certfile": args.ssl_ca_certfile, "--ssl-certfile": args.ssl_certfile}
    files["--ssl-keyfile"] = args.ssl_keyfile
    given = [option for option, path in files.items() if path is not None]
    if given and (args.insecure or args.certs is not None):
        raise ScenarioError(given[0], "give either --certs, the three --ssl-* files, or --insecure")
    if args.insecure:
        return None
    if args.certs is not None:
        return certs.ServerTls.in_folder(args.certs)
    if given:
        missing = [option for option in files if option not in given]
        if missing:
            raise ScenarioError(missing[0], "missing: TLS needs all three --ssl-* files")
        return certs.ServerTls(*(existing(path, option) for option, path in files.items()))
    raise ScenarioError(
        "--certs",
        "TLS is on by default: pass --certs DIR (see `fedsim certs`), the three --ssl-* "
        "files, or --insecure for plain text",
    )


def control_address(args: argparse.Namespace) -> tuple[str, int]:
    return split_address(args.control_address, "--control-address")


def client_tls(args: argparse.Namespace) -> ClientTls:
    if args.root_certificates is not None:
        return ClientTls(existing(args.root_certificates, "--root-certificates"))
    return ClientTls(insecure=args.insecure)


def existing(path: Path, option: str) -> Path:
    if not path.is_file():
        raise ScenarioError(option, f"{path} not found")
    return path.resolve()


def new_out(path: Path) -> Path:
    """A results folder that is new or empty and can be created, checked before any process starts."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ScenarioError("--out", f"{path} already exists and is not empty; choose another folder")
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ScenarioError("--out", f"cannot create {path}: {parent} is not a folder this user can write to")
    return path
