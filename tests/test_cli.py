"""The command line's contract: exit 2 and one line naming the problem for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsim.cli import main
from fedsim.results.records import RoundRecord
from tests.conftest import REPO

SCENARIOS = REPO / "scenarios"


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fedsim: error: ")
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["compare", "--strategy", "fedfoo"],
            "--strategy 'fedfoo': strategy.name: unknown strategy 'fedfoo'",
        ),
        (
            ["compare", "--strategy", "fedprox:mu=1"],
            "--strategy 'fedprox:mu=1': strategy.params.mu: unknown key",
        ),
        (["compare", "--strategy", "fedadam:=1"], "expected NAME or NAME:KEY=VALUE"),
        (["compare", "--strategy", "nosuch_mod:Nova"], "strategy.name: 'nosuch_mod:Nova': no module named"),
        (["compare", "--strategy", "fedavg", "--seeds", "0,a"], "--seeds: expected distinct integers"),
        (["compare"], "no variants"),
        (["compare", "--strategy", "fedavg", "--set", "attack.kind=jam"], "attack.kind: expected one of"),
        (
            ["validate", "--set", "strategy.fedadam.eta=0.1"],
            "strategy.fedadam: moved: write it as strategy.params",
        ),
        (
            ["validate", "--set", "strategy.params.eta=0.1"],
            "strategy.params.eta: unknown key ('fedavg' takes no",
        ),
    ],
)
def test_bad_compare_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert expected in one_line_error(capsys, argv)


def test_compare_refuses_a_folder_that_holds_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "old.txt").write_text("x")
    err = one_line_error(capsys, ["compare", "--strategy", "fedavg", "--out", str(tmp_path)])
    assert "--out" in err and "not empty" in err


@pytest.mark.parametrize("name", ["compare_robust.toml", "compare_mnist_noniid.toml"])
def test_comparison_scenarios_validate_with_all_their_variants(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert main(["validate", str(SCENARIOS / name)]) == 0
    assert "ok: compare: " in capsys.readouterr().err


def fake_run(folder: Path, name: str, seed: int, accuracies: list[float]) -> None:
    folder.mkdir(parents=True)
    (folder / "scenario.toml").write_text(f'name = "{name}"\nseed = {seed}\n')
    rows = [RoundRecord(i + 1, a, 1 - a, 1.0, None, None, 2, 0, 1.0, 0.1) for i, a in enumerate(accuracies)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r.__dict__) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "wall_time_s": 1.0}))


def test_plot_redraws_the_figures_of_a_comparison_folder(tmp_path: Path) -> None:
    fake_run(tmp_path / "fedavg-seed0", "fedavg", 0, [0.2, 0.4])
    fake_run(tmp_path / "krum-seed0", "krum", 0, [0.3, 0.6])
    assert main(["plot", str(tmp_path)]) == 0
    assert (tmp_path / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "loss.png").is_file()


def test_plot_of_several_runs_needs_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fake_run(tmp_path / "a", "fedavg", 0, [0.2])
    fake_run(tmp_path / "b", "fedavg", 1, [0.3])
    assert "--out" in one_line_error(capsys, ["plot", str(tmp_path / "a"), str(tmp_path / "b")])
    assert main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "accuracy.png").is_file()
    capsys.readouterr()
    assert "no metrics.jsonl" in one_line_error(capsys, ["plot", str(tmp_path / "figs")])
