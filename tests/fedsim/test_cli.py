"""The command line: exit codes and one-line errors, checked in a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedsim import engine
from fedsim.config import ScenarioError
from fedsim.scenario import parse_scenario
from tests.conftest import REPO


def fedsim(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fedsim", *args], capture_output=True, text=True, cwd=cwd)


def test_validate_accepts_a_shipped_scenario() -> None:
    result = fedsim("validate", "scenarios/mnist_cnn_iid.toml", "--set", "rounds=5")
    assert result.returncode == 0, result.stderr
    assert "ok: mnist_cnn_iid: 100 clients, fedavg, cnn on mnist, 5 rounds" in result.stderr


def test_validate_without_a_file_checks_the_builtin_quickstart() -> None:
    result = fedsim("validate")
    assert result.returncode == 0 and "ok: quickstart" in result.stderr


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        ("[data]\nnum_clent = 5\n", (), "data.num_clent: unknown key (did you mean 'num_clients'?"),
        ("[client]\nlr = 'fast'\n", (), "client.lr: expected a number, got 'fast'"),
        ("rounds = -1\n", (), "rounds: expected a value >= 1, got -1"),
        (
            "",
            ("--set", "strategy.name=fedsgd"),
            "strategy.name: unknown strategy 'fedsgd' (did you mean 'fedavg'? expected one of 'fedavg'",
        ),
        ("", ("--set", "rounds"), "--set: expected KEY=VALUE, got 'rounds'"),
        ("rounds = [\n", (), "invalid TOML"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, content: str, args: tuple[str, ...], expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    for command in ("validate", "run"):
        result = fedsim(command, str(path), *args)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert expected in result.stderr


def test_missing_file_and_unknown_option_exit_2(tmp_path: Path) -> None:
    result = fedsim("run", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "cannot read scenario file" in result.stderr
    result = fedsim("run", "--rounds", "3")
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def test_run_refuses_a_non_empty_out_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    result = fedsim("run", "--out", str(tmp_path))
    assert result.returncode == 2 and "--out: " in result.stderr and "not empty" in result.stderr


def test_gpus_without_a_gpu_are_refused_before_ray_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.torch.cuda, "is_available", lambda: False)
    scenario = parse_scenario("[resources]\nclient_gpus = 0.5")
    with pytest.raises(ScenarioError, match=r"^resources\.client_gpus: 0\.5 per client, but no CUDA GPU"):
        engine.check_resources(scenario)


def test_more_cpus_per_client_than_the_machine_has_is_refused() -> None:
    scenario = parse_scenario("[resources]\nclient_cpus = 4096")
    with pytest.raises(
        ScenarioError, match=r"^resources\.client_cpus: 4096 per client, but this machine has"
    ):
        engine.check_resources(scenario)


def test_help_lists_the_commands() -> None:
    result = fedsim("--help")
    assert result.returncode == 0
    assert all(word in result.stdout for word in ("run", "validate", "--set", "FEDSIM_DATA_DIR"))
