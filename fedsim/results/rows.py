"""``metrics.jsonl``'s rows: one JSON object per line, a row complete once its newline is written.

A round's row is appended in one write and fsynced, so a kill leaves every earlier row
whole and at most the last one cut short (no newline yet).  Readers of a finished or
killed run (``fedsim plot``) take the complete rows and say that one was left out; a
resume cuts the file back only where a row ends (:func:`parse` checks it).
"""

from __future__ import annotations

import json
from typing import Any


class RowError(ValueError):
    """A row that is not a JSON object, or data that ends inside a row: one line naming where."""


def parse(data: bytes, source: str) -> list[dict[str, Any]]:
    """Every row of ``data``, which must end where a row ends (or be empty)."""
    if data and not data.endswith(b"\n"):
        raise RowError(f"{source}: end inside a row (the last line has no newline)")
    return [_row(line, number, source) for number, line in enumerate(data.split(b"\n")[:-1], 1)]


def complete(data: bytes, source: str) -> tuple[list[dict[str, Any]], str | None]:
    """The complete rows of ``data``, and a note if a last row cut short was left out."""
    end = data.rfind(b"\n") + 1
    rows = parse(data[:end], source)
    if not data[end:].strip():
        return rows, None
    return rows, f"{source}: left out its last row, cut short (the run was stopped while writing it)"


def _row(line: bytes, number: int, source: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError both are
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        raise RowError(f"{source}: line {number} is not a JSON row ({reason})") from None
    if not isinstance(row, dict):
        raise RowError(f"{source}: line {number} is not a JSON object")
    return row
