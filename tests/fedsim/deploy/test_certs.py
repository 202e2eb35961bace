"""`fedsim certs`: files Flower and Python's TLS accept, private keys kept private."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from fedsim.deploy import certs
from fedsim.scenario.tables import ScenarioError


def test_server_certificate_is_signed_by_the_ca_for_the_hosts_and_loopback(tmp_path: Path) -> None:
    certs.generate(tmp_path, ["10.0.0.5", "fl.example.org"], nodes=0)
    ca = x509.load_pem_x509_certificate((tmp_path / certs.CA_CERT).read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / certs.SERVER_CERT).read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    assert names.get_values_for_type(x509.DNSName) == ["fl.example.org", "localhost"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_node_keys_are_p384_in_the_openssh_formats_flower_reads(tmp_path: Path) -> None:
    certs.generate(tmp_path, [], nodes=2)
    for k in range(2):
        private_path, public_path = certs.node_key_paths(tmp_path, k)
        private = load_ssh_private_key(private_path.read_bytes(), None)
        public = load_ssh_public_key(public_path.read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.public_numbers() == private.public_key().public_numbers()


def test_private_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    certs.generate(tmp_path, [], nodes=1)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes[certs.CA_KEY] == modes[certs.SERVER_KEY] == modes["node-0.key"] == 0o600
    assert modes[certs.CA_CERT] & 0o044  # certificates and public keys are meant to be shared


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / certs.SERVER_KEY).write_text("keep me")
    with pytest.raises(ScenarioError, match=r"^DIR: .*server\.key already exists"):
        certs.generate(tmp_path, [], nodes=0)
    assert (tmp_path / certs.SERVER_KEY).read_text() == "keep me"
    assert not (tmp_path / certs.CA_CERT).exists()


def test_a_folder_without_the_server_files_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"^--certs: .*ca\.crt not found"):
        certs.ServerTls.in_folder(tmp_path)
