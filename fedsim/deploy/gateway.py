"""The fleet gateway: the only SuperLink port other machines reach; it serves SuperNodes and nothing else.

Flower 1.42's SuperLink serves its Fleet API (SuperNodes), Control API (``flwr run``,
``flwr supernode register``) and Runtime API (its own SuperExec and ServerApps) on one
HTTP port, and its open-source edition authenticates no Control API caller (accounts
need Flower Enterprise's OIDC plugin; ``--control-api-address`` is deprecated and
ignored by the HTTP APIs).  Whoever reached that port with the ``ca.crt`` every client
holds could register a node, or run any app as the server's user on every machine.

So ``fedsim server`` binds the SuperLink to loopback and runs this gateway on the
public address.  It terminates TLS with the server's own certificate, forwards
``POST /v1/fleet/<call>`` (each call signed by a registered node key when node
authentication is on; the SuperLink checks it) and ``GET /health`` to the SuperLink
unchanged, and answers everything else 403.  Run as ``python -m fedsim.deploy.gateway``.
"""

from __future__ import annotations

import argparse
import re
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fedsim.deploy.certs import ServerTls
from fedsim.deploy.flower import GATEWAY_HEADER

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# One path segment of lowercase words: nothing percent-encoded, no "..", no other API.
FLEET_CALL = re.compile(r"/v1/fleet/[a-z]+(-[a-z]+)*")
# Not passed on: connection-level headers, and forwarding headers a client could forge
# (the SuperLink trusts X-Forwarded-For from loopback, which is where we call it from).
DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-real-ip",
    }
)
MARK = (GATEWAY_HEADER.encode(), b"fleet-only")  # lets `fedsim submit` tell this port from a Control API
REFUSED = (
    b"fedsim gateway: this address serves SuperNodes only (Flower's Fleet API). The Control API "
    b"listens on the server's loopback: run flwr or fedsim submit on the server machine, or "
    b"through an SSH tunnel to it.\n"
)


@dataclass(frozen=True)
class GatewayOptions:
    host: str  # the public address SuperNodes connect to
    port: int
    upstream: str  # the SuperLink on loopback, HOST:PORT
    tls: ServerTls | None  # None: plain text both ways (fedsim server --insecure)

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "fedsim.deploy.gateway", self.host, str(self.port), self.upstream]
        if self.tls is not None:
            argv += ["--ca", str(self.tls.ca_cert), "--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        return argv


def allowed(method: str, path: str, raw_path: bytes | None) -> bool:
    """Only the SuperNodes' calls and the health check, spelled exactly (not percent-encoded)."""
    if raw_path is not None and raw_path.split(b"?")[0] != path.encode():
        return False
    if path == "/health":
        return method in ("GET", "HEAD")
    return method == "POST" and FLEET_CALL.fullmatch(path) is not None


class Gateway:
    """An ASGI app forwarding the allowed requests to ``upstream``, streamed both ways."""

    def __init__(self, upstream: str, verify: ssl.SSLContext | bool) -> None:
        self.upstream = upstream
        self.verify = verify
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if allowed(scope["method"], scope["path"], scope.get("raw_path")):
                await self._forward(scope, receive, send)
            else:
                await _answer(send, 403, REFUSED)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Fleet calls are short, but a model's objects may take a while on a slow link.
                timeout = httpx.Timeout(300.0, connect=10.0)
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
                self.client = httpx.AsyncClient(
                    base_url=self.upstream, verify=self.verify, timeout=timeout, limits=limits
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.client is not None, "the lifespan starts the client"
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in DROPPED]
        request = self.client.build_request(
            scope["method"], scope["path"], headers=headers, content=_body(receive)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError:
            await _answer(send, 502, b"fedsim gateway: the SuperLink behind this address did not answer\n")
            return
        try:
            kept = [(k, v) for k, v in response.headers.raw if k.lower() not in DROPPED]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": [*kept, MARK]}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _answer(send: Send, status: int, text: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), MARK]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fedsim.deploy.gateway", description=__doc__.split("\n")[0]
    )
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("upstream", metavar="SUPERLINK", help="HOST:PORT of the SuperLink on loopback")
    parser.add_argument("--ca", type=Path, help="CA certificate; with --cert and --key: TLS")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    args = parser.parse_args(argv)
    tls = args.ca is not None
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=args.ca) if tls else False
    scheme = "https" if tls else "http"
    print(f"fedsim gateway: forwarding SuperNode calls on {args.host}:{args.port} to {args.upstream}")
    uvicorn.run(
        Gateway(f"{scheme}://{args.upstream}", verify),
        host=args.host,
        port=args.port,
        ssl_certfile=args.cert if tls else None,
        ssl_keyfile=args.key if tls else None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the client's own address, never one a header claims
        server_header=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
