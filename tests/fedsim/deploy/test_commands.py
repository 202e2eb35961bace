"""The deployment commands' exit codes and one-line errors, in real subprocesses (no Flower started)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedsim.deploy import certs
from fedsim.deploy.flower import free_port
from fedsim.deploy.gateway import GatewayOptions
from tests.conftest import REPO
from tests.fedsim.deploy.test_probe import serving, tls_context


def fedsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedsim", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert text in result.stderr


def test_help_lists_the_deployment_commands() -> None:
    result = fedsim("--help")
    assert all(word in result.stdout for word in ("certs", "server", "client", "submit", "launch"))


def test_certs_writes_the_files_once_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = fedsim("certs", str(tmp_path / "c"), "--host", "10.0.0.5", "--nodes", "2")
    assert result.returncode == 0, result.stderr
    names = {p.name for p in (tmp_path / "c").iterdir()}
    assert names == {"ca.crt", "ca.key", "server.pem", "server.key"} | {
        f"node-{k}.{ext}" for k in (0, 1) for ext in ("key", "pub")
    }
    one_line_error(fedsim("certs", str(tmp_path / "c")), 2, "already exists")


def test_server_wants_tls_files_or_an_explicit_insecure() -> None:
    one_line_error(fedsim("server"), 2, "fedsim: error: --certs: TLS is on by default")


def test_tls_files_must_come_complete_and_alone(tmp_path: Path) -> None:
    certs.generate(tmp_path, [], nodes=0)
    key = str(tmp_path / "server.key")
    one_line_error(fedsim("server", "--ssl-keyfile", key), 2, "--ssl-ca-certfile: missing")
    one_line_error(fedsim("server", "--insecure", "--ssl-keyfile", key), 2, "--ssl-keyfile: give either")


def test_a_tls_server_admits_only_registered_nodes_so_it_wants_their_keys(tmp_path: Path) -> None:
    certs.generate(tmp_path, [], nodes=0)
    result = fedsim("server", "--certs", str(tmp_path))
    one_line_error(result, 2, "fedsim: error: --node-keys: required with TLS: only SuperNodes whose public")


@pytest.mark.parametrize("address", ["0.0.0.0:9093", "10.0.0.5:9093", "[::]:9093", "nohost"])
def test_a_control_api_off_loopback_is_refused(tmp_path: Path, address: str) -> None:
    certs.generate(tmp_path, [], nodes=1)
    keys = ("--node-keys", str(tmp_path / "node-0.pub"))
    result = fedsim("server", "--certs", str(tmp_path), *keys, "--control-address", address)
    text = "expected HOST:PORT" if address == "nohost" else "the Control API must listen on loopback"
    one_line_error(result, 2, f"fedsim: error: --control-address: {text}")


def test_node_authentication_without_tls_is_refused(tmp_path: Path) -> None:
    certs.generate(tmp_path, [], nodes=1)
    result = fedsim("server", "--insecure", "--node-keys", str(tmp_path / "node-0.pub"))
    one_line_error(result, 2, "--node-keys: SuperNode authentication needs TLS")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (
            ("--superlink", "h:1", "--partition-id", "3", "--num-partitions", "3"),
            "--partition-id: expected 0..2",
        ),
        (
            ("--superlink", "nohost", "--partition-id", "0", "--num-partitions", "1"),
            "--superlink: expected HOST:PORT",
        ),
        (("--superlink", "h:1", "--partition-id", "0", "--num-partitions", "0"), "expected at least 1"),
    ],
)
def test_client_input_errors_name_the_option(args: tuple[str, ...], text: str) -> None:
    one_line_error(fedsim("client", "--insecure", *args), 2, text)


def test_an_insecure_client_against_a_tls_superlink_fails_with_the_fix(tmp_path: Path) -> None:
    certs.generate(tmp_path, ["127.0.0.1"], nodes=0)
    with serving(tls_context(tmp_path)) as address:
        result = fedsim(
            "client", "--superlink", address, "--insecure", "--partition-id", "0", "--num-partitions", "2"
        )
    one_line_error(result, 2, f"--insecure: the SuperLink at {address} uses TLS; pass --root-certificates")


def test_submit_to_nothing_fails_after_the_wait() -> None:
    result = fedsim("submit", "--superlink", f"127.0.0.1:{free_port()}", "--insecure", "--wait", "0")
    one_line_error(result, 1, "nothing answered at 127.0.0.1")


def test_submitting_to_the_nodes_address_names_the_control_api_instead(tmp_path: Path) -> None:
    certs.generate(tmp_path, ["127.0.0.1"], nodes=0)
    tls = certs.ServerTls.in_folder(tmp_path)
    port, nothing = free_port(), f"127.0.0.1:{free_port()}"  # the gateway's SuperLink is down: 502
    gateway = subprocess.Popen(GatewayOptions("127.0.0.1", port, nothing, tls).argv(), cwd=REPO)
    try:
        address, ca = f"127.0.0.1:{port}", str(tmp_path / certs.CA_CERT)
        result = fedsim("submit", "--superlink", address, "--root-certificates", ca, "--wait", "60")
    finally:
        gateway.terminate()
        gateway.wait(60)
    one_line_error(result, 2, f"--superlink: {address} is where SuperNodes connect (fedsim's gateway")


def test_launch_and_submit_check_the_out_folder_before_starting_anything(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / "file" / "run")
    result = fedsim("launch", "--clients", "2", "--out", out)
    one_line_error(result, 2, f"--out: cannot create {out}: {tmp_path / 'file'} is not a folder")
    result = fedsim("submit", "--superlink", f"127.0.0.1:{free_port()}", "--insecure", "--out", out)
    one_line_error(result, 2, f"--out: cannot create {out}")


def test_launch_refuses_more_nodes_than_the_memory_holds() -> None:
    result = fedsim("launch", "--clients", "100000")
    one_line_error(result, 2, "--clients: 100000 SuperNodes need about")
    assert "fedsim run" in result.stderr


def test_launch_refuses_bad_counts_and_a_used_out_folder(tmp_path: Path) -> None:
    one_line_error(fedsim("launch", "--clients", "0"), 2, "--clients: expected at least 1")
    (tmp_path / "keep.txt").write_text("x")
    one_line_error(fedsim("launch", "--clients", "2", "--out", str(tmp_path)), 2, "--out: ")
    result = fedsim("launch", "--clients", "2", "--set", "strategy.min_train_clients=3")
    one_line_error(result, 2, "strategy.min_train_clients: expected at most the 2 clients, got 3")
    result = fedsim("launch", "--clients", "2", "--set", "resources.engine=cohort")
    one_line_error(result, 2, "resources.engine: 'cohort' runs in simulation only")


def test_the_command_line_loads_without_flower_or_torch() -> None:
    """`fedsim validate` and the option errors above stay quick: Flower and torch load on use."""
    code = "import sys, fedsim.cli; print(sorted({'torch', 'flwr', 'ray'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "[]", result.stderr
