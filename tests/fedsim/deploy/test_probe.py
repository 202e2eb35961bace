"""The TLS preflight against real sockets: a TLS server, a plain one, and nothing at all."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fedsim.deploy import certs
from fedsim.deploy.flower import ClientTls, free_port
from fedsim.deploy.probe import Unreachable, check_superlink, split_address
from fedsim.scenario.tables import ScenarioError


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    certs.generate(folder, ["127.0.0.1"], nodes=0)
    return folder


@contextmanager
def serving(tls: ssl.SSLContext | None) -> Iterator[str]:
    """A server on 127.0.0.1 that completes a TLS handshake (or, plain, hangs up)."""
    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                if tls is not None:
                    with contextlib.suppress(ssl.SSLError, OSError):  # the client refused our certificate
                        tls.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield address
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        listener.close()
        thread.join(timeout=10)


def tls_context(folder: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / certs.SERVER_CERT, folder / certs.SERVER_KEY)
    return context


def test_the_right_ca_passes(cert_dir: Path) -> None:
    with serving(tls_context(cert_dir)) as address:
        check_superlink(address, ClientTls(cert_dir / certs.CA_CERT), wait_s=5)


def test_insecure_against_tls_names_insecure_and_the_fix(cert_dir: Path) -> None:
    with serving(tls_context(cert_dir)) as address, pytest.raises(ScenarioError) as error:
        check_superlink(address, ClientTls(insecure=True), wait_s=5)
    assert str(error.value).startswith(f"--insecure: the SuperLink at {address} uses TLS")
    assert "--root-certificates" in str(error.value)


def test_a_foreign_ca_or_the_system_cas_are_refused(cert_dir: Path, tmp_path: Path) -> None:
    certs.generate(tmp_path, ["127.0.0.1"], nodes=0)
    with serving(tls_context(cert_dir)) as address:
        for tls in (ClientTls(tmp_path / certs.CA_CERT), ClientTls()):
            with pytest.raises(ScenarioError, match=r"^--root-certificates: .* is not trusted by"):
                check_superlink(address, tls, wait_s=5)


def test_tls_against_a_plain_text_server_says_so(cert_dir: Path) -> None:
    with serving(None) as address, pytest.raises(ScenarioError, match=r"does not speak TLS"):
        check_superlink(address, ClientTls(cert_dir / certs.CA_CERT), wait_s=5)


def test_a_plain_text_server_is_fine_when_insecure() -> None:
    with serving(None) as address:
        check_superlink(address, ClientTls(insecure=True), wait_s=5)


def test_nothing_listening_is_unreachable_after_the_wait() -> None:
    with pytest.raises(Unreachable, match=r"nothing answered at 127\.0\.0\.1"):
        check_superlink(f"127.0.0.1:{free_port()}", ClientTls(insecure=True), wait_s=0)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.5:8000", ("10.0.0.5", 8000)),
        ("[::1]:9092", ("::1", 9092)),
        ("fl.example.org:1", ("fl.example.org", 1)),
    ],
)
def test_addresses_are_split_into_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["10.0.0.5", ":8000", "host:http", "host:70000"])
def test_bad_addresses_name_the_superlink_option(address: str) -> None:
    with pytest.raises(ScenarioError, match=r"^--superlink: expected HOST:PORT"):
        split_address(address)
