"""A round's row: RoundRecord's fields, then the strategy's own metrics under their names."""

from __future__ import annotations

from fedsim.results.records import RoundRecord


def test_a_strategys_metrics_are_keys_of_the_row_and_come_back() -> None:
    record = RoundRecord(1, 0.5, 1.0, 1.0, None, None, 4, 0, 0.1, 0.1, extra={"tau_eff": 12.5})
    row = record.row()
    assert "extra" not in row and row["tau_eff"] == 12.5 and row["accuracy"] == 0.5
    assert RoundRecord.from_row(row) == record
    assert RoundRecord.from_row({**row, "note": "text"}).extra == {"tau_eff": 12.5}  # numbers only
