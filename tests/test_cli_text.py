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
        (None, r"data\.root: 'shakespeare' found no data \(searched .*\): .*play\.txt is missing"),
        (b"", r"data\.params\.path: .*play\.txt is empty"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", r"data\.params\.path: .*play\.txt is binary, not text"),
        (
            b"KING:\nGod save th\xe9e\n",
            r"data\.params\.path: .*play\.txt is not UTF-8 text \(byte 0xe9 at offset 17\)",
        ),
        (b"KING:\nToo short.\n", r"data\.params\.min_samples: no role has 100 training windows .*lower"),
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
    code, lines = _run(tmp_path, capsys, "data.params.path=play.txt", "data.params.min_samples=100")
    assert code == 2 and len(lines) == 1
    assert re.fullmatch(rf"fedsim: error: {message}.*", lines[0]), lines[0]
    assert not (tmp_path / "out").exists()  # refused before the run folder was made


def test_validate_counts_the_clients_the_data_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SCENARIO)]) == 0
    assert "ok: shakespeare_lstm: 220 clients" in capsys.readouterr().err  # roles with >= 100 windows


def test_a_client_count_for_natural_text_keeps_the_first_roles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SCENARIO), "--set", "data.num_clients=10"]) == 0
    assert "ok: shakespeare_lstm: 10 clients" in capsys.readouterr().err
    assert main(["validate", str(SCENARIO), "--set", "data.num_clients=500"]) == 2
    assert capsys.readouterr().err.startswith(
        "fedsim: error: data.num_clients: expected at most the 220 natural clients of 'shakespeare'"
    )
