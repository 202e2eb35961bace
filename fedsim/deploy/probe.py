"""Check, before starting a SuperNode or a submission, that the SuperLink can be reached as asked.

Flower retries a failed connection, and its errors name the symptom ("Server
disconnected without sending a response") rather than the cause.  One TLS handshake
up front tells the three mistakes apart and names the option to fix: ``--insecure``
against a TLS SuperLink, a CA that did not sign the server's certificate, TLS
against a plain-text SuperLink.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request

from fedsim.deploy.flower import GATEWAY_HEADER, ClientTls
from fedsim.scenario.tables import ScenarioError

HANDSHAKE_TIMEOUT_S = 10.0


class Unreachable(RuntimeError):
    """Nothing answered at the address within the wait."""


def split_address(address: str, option: str = "--superlink") -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); ScenarioError naming ``option`` if not."""
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ScenarioError(option, f"expected HOST:PORT, got {address!r}")
    return host, int(port)


def check_superlink(address: str, tls: ClientTls, wait_s: float) -> None:
    """Wait up to ``wait_s`` for the port; raise ScenarioError if TLS settings do not match."""
    host, port = split_address(address)
    if tls.insecure:
        if _handshake(host, port, ssl._create_unverified_context(), wait_s) is None:
            raise ScenarioError(
                "--insecure",
                f"the SuperLink at {address} uses TLS; pass --root-certificates with its CA "
                "certificate (ca.crt) instead",
            )
        return
    context = ssl.create_default_context(cafile=tls.root_certificates)
    problem = _handshake(host, port, context, wait_s)
    if isinstance(problem, ssl.SSLCertVerificationError):
        source = f"the CA in {tls.root_certificates}" if tls.root_certificates else "the system's CAs"
        raise ScenarioError(
            "--root-certificates",
            f"the SuperLink's certificate at {address} is not trusted by {source} "
            f"({problem.verify_message}); pass the ca.crt that signed it",
        )
    if problem is not None:
        raise ScenarioError(
            "--insecure",
            f"the SuperLink at {address} does not speak TLS (was it started with --insecure?); "
            "pass --insecure to connect without encryption",
        )


def check_control_api(address: str, tls: ClientTls) -> None:
    """Refuse, naming the fix, the address SuperNodes use: fedsim's gateway serves no Control API."""
    scheme = "http" if tls.insecure else "https"
    context = None if tls.insecure else ssl.create_default_context(cafile=tls.root_certificates)
    try:
        with urllib.request.urlopen(f"{scheme}://{address}/health", timeout=10, context=context) as reply:
            headers = reply.headers
    except urllib.error.HTTPError as error:  # the gateway answers 502 while its SuperLink is down
        headers = error.headers
    except OSError:
        return  # flwr reports what is wrong with a server that answers no health check
    if headers.get(GATEWAY_HEADER) is not None:
        raise ScenarioError(
            "--superlink",
            f"{address} is where SuperNodes connect (fedsim's gateway: no Control API); submit to the "
            "Control API `fedsim server` printed (127.0.0.1:PORT on the server machine, or an SSH "
            "tunnel to it: ssh -N -L PORT:127.0.0.1:PORT SERVER)",
        )


def _handshake(host: str, port: int, context: ssl.SSLContext, wait_s: float) -> ssl.SSLError | None:
    """Open a TLS session; the TLS error if the handshake fails, else None."""
    with _connect(host, port, wait_s) as raw:
        raw.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            with context.wrap_socket(raw, server_hostname=host):
                return None
        except ssl.SSLError as error:
            return error
        except OSError as error:  # a plain-text server hung up on the TLS hello
            return ssl.SSLError(str(error))


def _connect(host: str, port: int, wait_s: float) -> socket.socket:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT_S)
        except OSError as error:
            if time.monotonic() > deadline:
                raise Unreachable(
                    f"nothing answered at {host}:{port} within {wait_s:.0f} s ({error.strerror or error})"
                ) from None
            time.sleep(1.0)
