"""Malformed scenarios through the real command line: exit 2, one line, no traceback.

Each file in ``tests/fuzz_corpus`` says in its first line where it fails: ``load``
(``fedsim validate`` and ``fedsim run`` both refuse it) or ``run`` (only ``run`` looks at
the data and the machine).  Add a file for every crash a fuzzer or a user finds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fedsim.cli import main
from tests.conftest import REPO

CORPUS = sorted((REPO / "tests" / "fuzz_corpus").glob("*.toml"))


def fedsim(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "fedsim", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def assert_refused(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("fedsim: error: "), done.stderr


def fails_at(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# fails at: "), f"{path.name}: first line must say where it fails"
    return first.removeprefix("# fails at: ").split()[0]


def test_the_corpus_covers_both_stages() -> None:
    stages = [fails_at(p) for p in CORPUS]
    assert set(stages) == {"load", "run"} and len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_a_malformed_scenario_exits_2_with_one_line(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if fails_at(path) == "load":
        assert_refused(fedsim("validate", str(path)))
    else:  # validate loads the data and model: in this process, where torch is imported already
        assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert_refused(fedsim("run", str(path), "--out", str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


@pytest.mark.parametrize("target", ["missing.toml", "fuzz_corpus"])
def test_an_unreadable_scenario_path_exits_2(target: str) -> None:
    done = fedsim("validate", str(REPO / "tests" / target))
    assert_refused(done)
    assert "cannot read scenario file" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU to give")
@pytest.mark.parametrize(("share", "said"), [("0.5", "0.5"), ('"auto"', "'auto'")])
def test_a_gpu_share_without_a_gpu_is_refused_before_ray_starts(
    share: str, said: str, tmp_path: Path
) -> None:
    done = fedsim(
        "run", "--set", f"resources.client_gpus={share}", "--set", "rounds=1", "--out", str(tmp_path / "r")
    )
    assert_refused(done)
    assert f"resources.client_gpus: {said} per client, but no CUDA GPU is visible" in done.stderr
