"""``fedsim certs DIR``: a test CA, a server certificate and SuperNode keys, for TLS on real machines.

Files carry the names the other commands look for in a certificate folder:

- ``ca.crt`` (the CA certificate: every client and submitter needs it), ``ca.key``
  (keep it off the server; only needed to issue more certificates);
- ``server.pem`` and ``server.key`` (the SuperLink's certificate and key, for
  ``flower-superlink --ssl-certfile/--ssl-keyfile``, with ``--ssl-ca-certfile ca.crt``);
- ``node-K.key`` and ``node-K.pub`` (one SuperNode's key pair for Flower's node
  authentication: P-384 in OpenSSH format, as ``flower-supernode
  --auth-supernode-private-key`` and ``flwr supernode register`` read them).

The server certificate always names 127.0.0.1 and localhost too: the SuperLink's
own SuperExec reaches it there, checking the certificate like any client.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedsim.results.outdir import check_writable
from fedsim.scenario.tables import ScenarioError

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
LOOPBACK = ("127.0.0.1", "localhost")
CURVE = ec.SECP384R1()  # Flower's node authentication accepts NIST curves; its docs use P-384


@dataclass(frozen=True)
class ServerTls:
    """The three files ``flower-superlink`` needs for TLS."""

    ca_cert: Path
    cert: Path
    key: Path

    @classmethod
    def in_folder(cls, folder: Path) -> ServerTls:
        """The files ``fedsim certs`` wrote to ``folder``; refuse if one is missing."""
        tls = cls(folder / CA_CERT, folder / SERVER_CERT, folder / SERVER_KEY)
        for path in (tls.ca_cert, tls.cert, tls.key):
            if not path.is_file():
                raise ScenarioError("--certs", f"{path} not found (create the folder with `fedsim certs`)")
        return tls


def node_key_paths(folder: Path, node: int) -> tuple[Path, Path]:
    """``(private, public)`` key files of SuperNode ``node``."""
    return folder / f"node-{node}.key", folder / f"node-{node}.pub"


def generate(folder: Path, hosts: Sequence[str], nodes: int, days: int = 365) -> list[Path]:
    """Write a CA, a server certificate for ``hosts`` (plus loopback) and ``nodes`` key pairs."""
    names = list(dict.fromkeys([*hosts, *LOOPBACK]))
    targets = [folder / n for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)]
    targets += [p for k in range(nodes) for p in node_key_paths(folder, k)]
    existing = [p for p in targets if p.exists()]
    if existing:
        raise ScenarioError("DIR", f"{existing[0]} already exists; choose an empty folder")
    check_writable(folder, "DIR")  # before any key is made

    ca_key = ec.generate_private_key(CURVE)
    ca_cert = _ca_certificate(ca_key, days)
    server_key = ec.generate_private_key(CURVE)
    server_cert = _server_certificate(server_key, names, ca_cert, ca_key, days)
    _write(folder / CA_CERT, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(folder / CA_KEY, _pem_private(ca_key), secret=True)
    _write(folder / SERVER_CERT, server_cert.public_bytes(serialization.Encoding.PEM))
    _write(folder / SERVER_KEY, _pem_private(server_key), secret=True)
    for k in range(nodes):
        write_node_key(*node_key_paths(folder, k))
    return targets


def write_node_key(private: Path, public: Path) -> None:
    """One SuperNode key pair, in the OpenSSH formats Flower reads."""
    key = ec.generate_private_key(CURVE)
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public_bytes = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write(private, private_bytes, secret=True)
    _write(public, public_bytes + b"\n")


def _ca_certificate(key: ec.EllipticCurvePrivateKey, days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedsim test CA")])
    return (
        _builder(name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    names: Sequence[str],
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    days: int,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    return (
        _builder(subject, ca_cert.subject, key.public_key(), days)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _general_name(host: str) -> x509.GeneralName:
    """An IP address SAN for addresses (TLS matches IPs only against those), else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    """Private keys are created readable by the owner only (0600), never world-readable first."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
