"""The command line: exit codes and one-line errors, checked in a real subprocess."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedsim.cli import main
from fedsim.results.records import RoundRecord
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import engine
from tests.conftest import REPO, file_size_limit


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
            ("--set", "strategy.name=fedagv"),
            "strategy.name: unknown strategy 'fedagv' (did you mean 'fedavg'? expected one of 'fedavg'",
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


def killed_run(folder: Path, last_row: str) -> Path:
    """A run folder as a kill leaves it: rounds 1 and 2, then ``last_row`` (no summary, no model)."""
    folder.mkdir()
    (folder / "scenario.toml").write_text('name = "killed"\nrounds = 5\n')
    rows = [json.dumps({**dataclasses.asdict(record), "round": n}) for n in (1, 2) for record in [ROW]]
    (folder / "metrics.jsonl").write_text("\n".join(rows) + "\n" + last_row)
    return folder


ROW = RoundRecord(0, 0.5, 1.0, 1.0, None, None, 10, 0, 0.1, 0.1)


def test_plot_of_a_killed_run_draws_its_complete_rows_and_warns_of_the_cut_one(tmp_path: Path) -> None:
    run = killed_run(tmp_path / "run", '{"round": 3, "accur')
    done = fedsim("plot", str(run))
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        f"fedsim: warning: {run / 'metrics.jsonl'}: left out its last row, cut short (the run was stopped "
    )
    assert (run / "accuracy.png").stat().st_size > 0 and (run / "loss.png").stat().st_size > 0


def test_plot_of_a_run_with_a_damaged_row_exits_2_naming_the_line(tmp_path: Path) -> None:
    run = killed_run(tmp_path / "run", "")
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace('"round": 2', '"round": 2,,'))
    done = fedsim("plot", str(run))
    assert done.returncode == 2
    assert done.stderr.startswith(f"fedsim: error: {metrics}: line 2 is not a JSON row (")
    assert done.stderr.count("\n") == 1


def unwritable(tmp_path: Path) -> Path:
    """A folder no one can create, root included: its parent is a file."""
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "out"


def test_plot_into_a_folder_it_cannot_write_exits_2_naming_it(tmp_path: Path) -> None:
    run, out = killed_run(tmp_path / "run", ""), unwritable(tmp_path)
    done = fedsim("plot", str(run), "--out", str(out))
    assert (done.returncode, done.stderr) == (
        2,
        f"fedsim: error: --out: cannot write to {out} (Not a directory)\n",
    )


def test_certs_into_a_folder_it_cannot_write_exits_2_naming_it(tmp_path: Path) -> None:
    out = unwritable(tmp_path)
    done = fedsim("certs", str(out))
    assert (done.returncode, done.stderr) == (
        2,
        f"fedsim: error: DIR: cannot write to {out} (Not a directory)\n",
    )


def test_plot_on_a_full_disk_exits_1_naming_the_figure_and_keeps_the_old_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = killed_run(tmp_path / "run", "")
    assert main(["plot", str(run)]) == 0
    before = (run / "accuracy.png").read_bytes()
    capsys.readouterr()
    with file_size_limit(1024):  # a figure is ~30 kB
        assert main(["plot", str(run)]) == 1
    assert capsys.readouterr().err == f"fedsim: error: {run / 'accuracy.png'}: File too large\n"
    assert (run / "accuracy.png").read_bytes() == before
