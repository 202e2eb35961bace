"""The server side's layout: the SuperLink (Control, Runtime APIs) on loopback, SuperNodes via the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsim.deploy import certs
from fedsim.deploy.superlink import ServerSide
from fedsim.scenario.tables import ScenarioError


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> certs.ServerTls:
    folder = tmp_path_factory.mktemp("certs")
    certs.generate(folder, [], nodes=0)
    return certs.ServerTls.in_folder(folder)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "server.example.org"])
def test_a_control_api_off_loopback_is_refused_with_the_ssh_tunnel_route(
    host: str, tls: certs.ServerTls
) -> None:
    with pytest.raises(
        ScenarioError, match=r"^--control-address: the Control API must listen on loopback"
    ) as e:
        ServerSide("0.0.0.0", 8000, host, 9093, tls)
    assert "ssh -N -L 9093:127.0.0.1:9093 SERVER" in str(e.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_the_superlink_listens_on_loopback_and_the_gateway_on_the_public_address(
    host: str, tls: certs.ServerTls, tmp_path: Path
) -> None:
    side = ServerSide("0.0.0.0", 8000, host, 9093, tls, (tmp_path / "node-0.pub",))
    assert (side.superlink.host, side.superlink.port, side.superlink.node_auth) == (host, 9093, True)
    assert (side.gateway.host, side.gateway.port) == ("0.0.0.0", 8000)
    assert side.gateway.upstream == side.control_address  # the gateway forwards to the SuperLink
    assert side.fleet_address == "127.0.0.1:8000"  # a wildcard bind, reached on loopback here
    described = side.describe()
    assert "Fleet API (SuperNodes)        0.0.0.0:8000" in described
    assert f"Control API (flwr, submit)    {side.control_address}  loopback only" in described


def test_one_port_cannot_serve_both(tls: certs.ServerTls) -> None:
    with pytest.raises(ScenarioError, match=r"^--control-address: port 8000 is already --port's"):
        ServerSide("0.0.0.0", 8000, "127.0.0.1", 8000, tls)


def test_node_keys_need_tls(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"^--node-keys: SuperNode authentication needs TLS"):
        ServerSide("0.0.0.0", 8000, "127.0.0.1", 9093, None, (tmp_path / "node-0.pub",))
