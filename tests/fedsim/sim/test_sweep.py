"""``fedsim compare``'s loop, with the engine replaced: a crashing variant is reported, the rest finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from fedsim.cli import main
from fedsim.results.records import RoundRecord, Summary
from fedsim.scenario.files import parse_table
from fedsim.scenario.sections import VariantConfig
from fedsim.scenario.variants import plan
from fedsim.sim import engine, sweep
from fedsim.sim.server import Job, Reporter

SCENARIO = """
name = "loop"
[data]
dataset = "synthetic"
partition = "natural"
[data.params]
devices = 5
[model]
name = "logreg"
[strategy]
fraction_train = 1.0
"""


def fake_run(job: Job, reporter: Reporter, verbose: bool = False) -> Summary:
    """Two rounds of made-up metrics; FedMedian crashes in its second round."""
    for n in (1, 2):
        if job.scenario.strategy.name == "fedmedian" and n == 2:
            job.out.finish(None, 1.0, "RuntimeError: boom")
            raise RuntimeError("boom")
        record = RoundRecord(n, 0.3 * n, 1.0, 1.0, None, None, 5, 0, 0.1, 0.1, 1000, 1000)
        job.out.append(record)
        reporter.round_done(record)
    return job.out.finish(None, 1.0)


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "run", fake_run)


def test_a_crashing_variant_is_reported_and_the_others_finish(tmp_path: Path) -> None:
    variants = [(VariantConfig(name), name) for name in ("fedavg", "fedmedian", "fedprox")]
    runs = plan(parse_table(SCENARIO), variants, seeds=(0, 1))
    results = list(sweep.run_all(runs, tmp_path, None, Console(quiet=True)))
    assert [(r.label, r.seed, r.error) for r in results] == [
        ("fedavg", 0, None),
        ("fedmedian", 0, "RuntimeError: boom"),
        ("fedprox", 0, None),
        ("fedavg", 1, None),
        ("fedmedian", 1, "RuntimeError: boom"),
        ("fedprox", 1, None),
    ]
    assert len(next(r for r in results if r.label == "fedmedian").records) == 1  # its finished round is kept
    sweep.report(results, tmp_path, "loop", None)
    table = (tmp_path / "comparison.md").read_text()
    assert "| fedmedian | 2 | - | 0.3000 ± 0.0000 |" in table  # the best of what failed runs recorded
    assert "failed: seed 0: RuntimeError: boom; failed: seed 1: RuntimeError: boom |" in table
    assert table.count("| ok |") == 2


def test_compare_exits_1_when_a_run_failed_and_still_writes_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "loop.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    argv = ["compare", str(scenario), "--strategy", "fedavg", "--strategy", "fedmedian", "--out", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("# loop\n") and "| fedavg | 1 | 0.6000 |" in captured.out
    assert "fedsim: 1 of 2 runs failed" in captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock",
        "accuracy.png",
        "accuracy_by_bytes.png",
        "accuracy_by_time.png",
        "comparison.csv",
        "comparison.md",
        "fedavg-seed0",
        "fedmedian-seed0",
        "loss.png",
        "plan.json",
    ]


def test_compare_into_a_folder_it_cannot_write_exits_2_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = tmp_path / "loop.toml"
    scenario.write_text(SCENARIO)
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "out"  # under a file: no one can create it, root included
    started: list[str] = []
    monkeypatch.setattr(engine, "prepare", lambda scenario, *_, **__: started.append(scenario.name))
    assert main(["compare", str(scenario), "--strategy", "fedavg", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"fedsim: error: --out: cannot write to {out} (Not a directory)\n"
    assert started == []  # refused before the first variant


def test_compare_resume_keeps_the_runs_that_ended_and_runs_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = tmp_path / "loop.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    stopped = {"fedprox"}

    def stopping_at(job: Job, reporter: Reporter, verbose: bool = False) -> Summary:
        if job.scenario.strategy.name in stopped:  # Ctrl-C before its first round
            raise KeyboardInterrupt
        return fake_run(job, reporter, verbose)

    monkeypatch.setattr(engine, "run", stopping_at)
    variants = [arg for name in ("fedavg", "fedmedian", "fedprox") for arg in ("--strategy", name)]
    assert main(["compare", str(scenario), *variants, "--out", str(out)]) == 130
    assert f"(fedsim compare --resume {out} goes on with the rest)" in capsys.readouterr().err
    ended = {name: (out / f"{name}-seed0" / "metrics.jsonl").read_bytes() for name in ("fedavg", "fedmedian")}

    stopped.clear()
    assert main(["compare", "--resume", str(out)]) == 1  # FedMedian failed, and stays failed
    captured = capsys.readouterr()
    assert "1/3 fedavg, seed 0 (ended earlier: kept)" in captured.err
    assert "2/3 fedmedian, seed 0 (ended earlier: kept)" in captured.err
    assert "3/3 fedprox, seed 0  " in captured.err  # not begun: run anew
    assert {n: (out / f"{n}-seed0" / "metrics.jsonl").read_bytes() for n in ended} == ended
    assert len((out / "fedprox-seed0" / "metrics.jsonl").read_text().splitlines()) == 2
    assert "| fedavg | 1 | 0.6000 |" in captured.out and "| fedprox | 1 | 0.6000 |" in captured.out
    assert "failed: seed 0: RuntimeError: boom" in captured.out


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--seeds", "1"], "drop --seeds"),
        (["--set", "rounds=3"], "drop --set"),
        (["--strategy", "fedavg"], "drop --strategy"),
        (["--tensorboard"], "--tensorboard: a resume finishes the comparison's runs as planned"),
    ],
)
def test_compare_resume_takes_the_plan_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    assert main(["compare", "--resume", str(tmp_path), *extra]) == 2
    assert said in capsys.readouterr().err


def test_compare_resume_of_a_folder_without_a_plan_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "--resume", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"fedsim: error: --resume: {tmp_path} is not a comparison folder (no plan.json in it)\n"
    )
