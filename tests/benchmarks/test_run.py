"""What ``python -m benchmarks.run`` runs: every system once per model, or GPU shares for fedsim."""

from __future__ import annotations

import pytest

from benchmarks import run


def test_on_the_cpu_every_system_runs_once_per_model() -> None:
    runs = run.plan(["cnn", "2nn"], ["fedsim", "quickstart"], rounds=5, epochs=1, shares=[])
    assert [(w.model, w.client_gpus, s) for w, s in runs] == [
        ("cnn", 0.0, "fedsim"),
        ("cnn", 0.0, "quickstart"),
        ("2nn", 0.0, "fedsim"),
        ("2nn", 0.0, "quickstart"),
    ]


def test_on_the_gpu_fedsim_runs_at_every_share_and_the_others_at_the_last() -> None:
    systems = ["fedsim", "fedsim-cohort", "plain-1thread", "quickstart"]
    runs = run.plan(["cnn"], systems, rounds=3, epochs=5, shares=[1.0, 0.25, 0.1])
    assert [(w.client_gpus, w.engine, s) for w, s in runs] == [
        (1.0, "per_client", "fedsim"),
        (0.25, "per_client", "fedsim"),
        (0.1, "per_client", "fedsim"),
        (0.1, "cohort", "fedsim-cohort"),
        (0.1, "per_client", "plain-1thread"),
        (0.1, "per_client", "quickstart"),
    ]
    assert {(w.local_epochs, w.rounds, str(w.device)) for w, _ in runs} == {(5, 3, "cuda:0")}
    gpu_scenario = runs[0][0].scenario().resources
    assert (gpu_scenario.client_gpus, gpu_scenario.engine) == (1.0, "per_client")
    assert runs[3][0].scenario().resources.engine == "cohort"


def test_a_dry_run_prints_the_plan_and_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    run.main(["--dry-run", "--models", "cnn", "--systems", "fedsim", "--client-gpus", "0.25,0.1"])
    printed = capsys.readouterr().out
    assert "cnn 100x10 gpu 0.25: fedsim" in printed and "cnn 100x10 gpu 0.1: fedsim" in printed


def test_quickstart_is_skipped_for_the_lstm_with_a_line_saying_so(capsys: pytest.CaptureFixture[str]) -> None:
    runs = run.plan(["lstm", "2nn"], ["fedsim", "plain-1thread", "quickstart"], rounds=4, epochs=1, shares=[])
    assert [(w.model, s) for w, s in runs] == [
        ("lstm", "fedsim"),
        ("lstm", "plain-1thread"),
        ("2nn", "fedsim"),
        ("2nn", "plain-1thread"),
        ("2nn", "quickstart"),
    ]
    assert runs[0][0].max_samples == 500 and runs[0][0].lr == 1.47 and runs[0][0].rounds == 4
    run.main(["--dry-run", "--models", "lstm", "--systems", "fedsim,quickstart"])
    printed = capsys.readouterr().out
    assert "lstm: quickstart skipped" in printed and "lstm 220x10 max 500: fedsim" in printed
    assert "max 500: quickstart" not in printed
