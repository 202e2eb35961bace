"""examples/compare_api: FedAvg against the user's top-k algorithm from the Python API, plotted."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

from fedsim.results.run_dir import read_metrics
from tests.examples import EXAMPLES

SCRIPT = EXAMPLES / "compare_api" / "compare.py"


@pytest.mark.engine
@pytest.mark.usefixtures("ray_cluster")
def test_the_script_compares_both_strategies_and_plots_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "compare"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--rounds", "2", "--out", str(out)])
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts examples/error_feedback first
    names = runpy.run_path(str(SCRIPT), run_name="__main__")

    comparison = names["comparison"]
    assert comparison.out == out and comparison.failed == 0
    assert [run.label for run in comparison.runs] == ["fedavg", "TopK"]
    table = comparison.table
    assert "| fedavg |" in table and "| TopK |" in table
    assert f"wrote {out / 'fedavg_vs_topk.png'}" in capsys.readouterr().out
    assert (out / "fedavg_vs_topk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    fedavg, topk = (read_metrics(run.out) for run in comparison.runs)
    assert len(fedavg) == len(topk) == 2
    assert all(r["residual_norm"] > 0 for r in topk) and not any("residual_norm" in r for r in fedavg)
    # the same clients and samples: the same data, sent two ways
    assert [r["clients_sampled"] for r in fedavg] == [r["clients_sampled"] for r in topk]
    first, second = (run.weights for run in comparison.runs)
    assert any(not torch.equal(first[k], second[k]) for k in first)
