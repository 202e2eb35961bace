"""metrics.jsonl's rows: complete once their newline is written (fedsim/results/rows.py)."""

from __future__ import annotations

import pytest

from fedsim.results.rows import RowError, complete, parse

ROWS = b'{"round": 1}\n{"round": 2}\n'


def test_whole_rows_parse_and_data_ending_inside_a_row_is_refused() -> None:
    assert parse(ROWS, "m") == [{"round": 1}, {"round": 2}] and parse(b"", "m") == []
    with pytest.raises(RowError, match=r"^m: end inside a row \(the last line has no newline\)$"):
        parse(ROWS[:-1], "m")  # row 2 is whole JSON, but its newline never made it


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"round": 1}\n{"round": \n', r"^m: line 2 is not a JSON row \(Expecting value\)$"),
        (b'{"round": 1}\n[1, 2]\n', r"^m: line 2 is not a JSON object$"),
        (b'{"round": 1}\n\xff\n', r"^m: line 2 is not a JSON row \(not UTF-8\)$"),
        (b"\n", r"^m: line 1 is not a JSON row \(Expecting value\)$"),
    ],
    ids=["cut-json", "not-an-object", "not-utf8", "empty-line"],
)
def test_a_damaged_row_is_named_by_its_line(data: bytes, says: str) -> None:
    with pytest.raises(RowError, match=says):
        parse(data, "m")


def test_a_last_row_cut_short_is_left_out_with_a_note() -> None:
    assert complete(ROWS, "m") == ([{"round": 1}, {"round": 2}], None)
    rows, note = complete(ROWS + b'{"round": 3, "acc', "m")
    assert rows == [{"round": 1}, {"round": 2}]
    assert note == "m: left out its last row, cut short (the run was stopped while writing it)"
    with pytest.raises(RowError, match="line 1"):  # only the last row may be cut short
        complete(b'{"ro\n' + ROWS, "m")
