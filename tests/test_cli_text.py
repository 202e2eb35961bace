"""``fedsim`` on bad text input: exit 2 with one line naming the key, before Ray starts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fedsim.cli import main

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "shakespeare_lstm.toml"


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *overrides: str) -> tuple[int, list[str]]:
    args = ["run", str(SCENARIO), "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]
    code = main([*args, *(a for o in overrides for a in ("--set", o))])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"data\.path: play\.txt not found under any data root \(searched .*\)"),
        (b"", r"data\.path: .*play\.txt is empty"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", r"data\.path: .*play\.txt is binary, not text"),
        (
            b"KING:\nGod save th\xe9e\n",
            r"data\.path: .*play\.txt is not UTF-8 text \(byte 0xe9 at offset 17\)",
        ),
        (b"KING:\nToo short.\n", r"data\.min_samples: no role has 100 training windows .*lower data"),
    ],
)
def test_bad_text_input_exits_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: bytes | None,
    message: str,
) -> None:
    monkeypatch.delenv("FEDSIM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if content is not None:
        (tmp_path / "play.txt").write_bytes(content)
    code, lines = _run(tmp_path, capsys, "data.path=play.txt", "data.min_samples=100")
    assert code == 2 and len(lines) == 1
    assert re.fullmatch(rf"fedsim: error: {message}.*", lines[0]), lines[0]
    assert not (tmp_path / "out").exists()  # refused before the run folder was made


def test_validate_says_the_data_decides_the_client_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SCENARIO)]) == 0
    out = " ".join(capsys.readouterr().err.split())
    assert "one client per role with >= " in out and "(counted when the data loads)" in out


def test_validate_refuses_a_client_count_for_natural_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SCENARIO), "--set", "data.num_clients=10"]) == 2
    assert capsys.readouterr().err.startswith("fedsim: error: data.num_clients: shakespeare with partition")
