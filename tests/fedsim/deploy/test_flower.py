"""The flags fedsim gives Flower's commands, checked against Flower's own argument parsers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from flwr.common.config import parse_config_args
from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink
from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode

from fedsim import protocol as keys
from fedsim.deploy import certs
from fedsim.deploy.flower import (
    BIN,
    ClientTls,
    SuperLinkOptions,
    SuperNodeOptions,
    flower_env,
    write_connection,
)
from fedsim.scenario.tables import ScenarioError


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> certs.ServerTls:
    folder = tmp_path_factory.mktemp("certs")
    certs.generate(folder, [], nodes=0)
    return certs.ServerTls.in_folder(folder)


def test_superlink_keeps_the_installed_environment_and_uses_tls(tls: certs.ServerTls) -> None:
    argv = SuperLinkOptions("0.0.0.0", 9092, tls, node_auth=True).argv()
    args = _parse_args_run_superlink().parse_args(argv[1:])
    assert argv[0] == str(BIN / "flower-superlink")
    assert args.runtime_dependency_install is False
    assert (args.ssl_ca_certfile, args.ssl_certfile, args.ssl_keyfile) == tuple(
        str(p) for p in (tls.ca_cert, tls.cert, tls.key)
    )
    assert args.enable_supernode_auth and not args.insecure
    assert (args.host, args.port) == ("0.0.0.0", 9092)


def test_superlink_without_tls_is_explicitly_insecure() -> None:
    args = _parse_args_run_superlink().parse_args(SuperLinkOptions().argv()[1:])
    assert args.insecure and not args.enable_supernode_auth


def test_a_wildcard_bind_is_reached_on_loopback(tls: certs.ServerTls) -> None:
    assert SuperLinkOptions("0.0.0.0", 9092, tls).local_address == "127.0.0.1:9092"
    assert SuperLinkOptions("::", 9092).local_address == "[::1]:9092"
    assert SuperLinkOptions("10.0.0.5", 9092, tls).client_tls == ClientTls(tls.ca_cert)


def test_supernode_carries_partition_data_dir_key_and_ca(tmp_path: Path) -> None:
    ca, key = tmp_path / "ca.crt", tmp_path / "node-1.key"
    node = SuperNodeOptions(
        "10.0.0.5:9092", 1, 3, ClientTls(ca), tmp_path / "data", key, 9123, ("mylab", "their.models")
    )
    args = _parse_args_run_supernode().parse_args(node.argv()[1:])
    assert args.superlink == "10.0.0.5:9092" and args.root_certificates == str(ca)
    assert args.auth_supernode_private_key == str(key) and args.port == 9123
    assert parse_config_args([args.node_config]) == {  # as the ClientApp reads it
        keys.NODE_PARTITION_ID: 1,
        keys.NODE_NUM_PARTITIONS: 3,
        keys.NODE_DATA_DIR: str(tmp_path / "data"),
        keys.NODE_ALLOW_PLUGINS: "mylab,their.models",
    }
    assert not args.insecure and not args.runtime_dependency_install


def test_supernode_options_refuse_a_partition_outside_the_federation() -> None:
    with pytest.raises(ScenarioError, match=r"^--partition-id: expected 0\.\.2, got 3"):
        SuperNodeOptions("h:1", 3, 3, ClientTls(insecure=True))


@pytest.mark.parametrize("prefix", ["", "my-lab", "mylab.", "a b", 'x"'])
def test_supernode_options_refuse_an_allowed_plug_in_that_is_not_a_module(prefix: str) -> None:
    with pytest.raises(ScenarioError, match=r"^--allow-plugin: expected a module such as mylab"):
        SuperNodeOptions("h:1", 0, 3, ClientTls(insecure=True), allow_plugins=(prefix,))


def test_each_process_gets_its_own_flower_home_and_this_environments_tools(tmp_path: Path) -> None:
    env = flower_env(tmp_path / "home", {"PATH": "/usr/bin", "FLWR_HOME": "/root/.flwr"})
    assert env["FLWR_HOME"] == str(tmp_path / "home") and (tmp_path / "home").is_dir()
    assert env["PATH"].split(":")[0] == str(BIN)
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"


def test_connection_file_names_the_address_and_ca(tmp_path: Path) -> None:
    write_connection(tmp_path, "10.0.0.5:9092", ClientTls(tmp_path / "ca.crt"))
    config = tomllib.loads((tmp_path / "config.toml").read_text())
    assert config["superlink"]["default"] == "fedsim"
    assert config["superlink"]["fedsim"] == {
        "address": "10.0.0.5:9092",
        "root-certificates": str(tmp_path / "ca.crt"),
    }
