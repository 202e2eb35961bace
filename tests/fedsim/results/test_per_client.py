"""Per-client statistics, checked against numbers worked out by hand, and clients.jsonl."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsim.results import per_client
from fedsim.results.per_client import ClientOutcome, distribution, statistics


def test_ten_clients_with_known_accuracies_give_the_hand_worked_statistics() -> None:
    accuracies = [0.7, 0.1, 0.5, 0.9, 0.3, 1.0, 0.2, 0.8, 0.4, 0.6]  # 0.1 .. 1.0, shuffled
    stats = distribution(accuracies)
    assert stats["client_acc_mean"] == pytest.approx(0.55)
    # Population variance of 0.1 * (1..10): (10**2 - 1) / 12 * 0.01 = 0.0825.
    assert stats["client_acc_std"] == pytest.approx(0.0825**0.5)
    # Linear interpolation at (n - 1) * q: 0.9 -> 0.19, 4.5 -> 0.55, 8.1 -> 0.91.
    assert stats["client_acc_p10"] == pytest.approx(0.19)
    assert stats["client_acc_p50"] == pytest.approx(0.55)
    assert stats["client_acc_p90"] == pytest.approx(0.91)
    assert stats["client_acc_worst10"] == pytest.approx(0.1)  # ceil(10 / 10) = 1 client
    assert stats["client_acc_best10"] == pytest.approx(1.0)


def test_worst_and_best_ten_percent_round_the_client_count_up() -> None:
    stats = distribution([0.0, 0.2, *[0.5] * 7, 0.8, 1.0], "personal_acc")  # 11: ceil(1.1) = 2
    assert stats["personal_acc_worst10"] == pytest.approx(0.1)
    assert stats["personal_acc_best10"] == pytest.approx(0.9)


def test_each_client_counts_once_whatever_its_size() -> None:
    outcomes = [ClientOutcome(0, 1.0, 0.1, 1000), ClientOutcome(1, 0.0, 2.0, 10)]
    stats = statistics(outcomes)
    assert stats["client_acc_mean"] == 0.5 and stats["clients_evaluated"] == 2
    assert "personal_acc_mean" not in stats  # no personal models: no personal statistics


def test_personal_accuracies_get_their_own_statistics() -> None:
    outcomes = [ClientOutcome(k, 0.5, 1.0, 10, personal_accuracy=0.5 + k / 10) for k in range(4)]
    stats = statistics(outcomes)
    assert stats["personal_acc_mean"] == pytest.approx(0.65)
    assert stats["personal_acc_worst10"] == pytest.approx(0.5)


def test_no_clients_give_no_statistics() -> None:
    assert distribution([]) == {}


def test_clients_jsonl_rows_read_back_and_a_resume_cuts_later_rounds(tmp_path: Path) -> None:
    path = tmp_path / per_client.CLIENTS_FILE
    rounds = {r: [ClientOutcome(k, r / 10, 1.0, 5, 0.9, 0.2) for k in (3, 1)] for r in (1, 2, 3)}
    lines = [per_client.line(r, outcomes) for r, outcomes in rounds.items()]
    path.write_text("\n".join(lines) + "\n" + lines[0][:20])  # a last row cut short by a kill
    read = per_client.read(tmp_path)
    assert [r for r, _ in read] == [1, 2, 3]
    assert [o.partition for o in read[0][1]] == [1, 3]  # in partition order
    assert read[1][1][0] == ClientOutcome(1, 0.2, 1.0, 5, 0.9, 0.2)
    per_client.cut(path, 2)
    assert [r for r, _ in per_client.read(tmp_path)] == [1, 2]


def test_the_summary_takes_the_last_evaluated_rounds_statistics() -> None:
    rows = [
        {"round": 1, "clients_evaluated": 3.0, "client_acc_mean": 0.2},
        {"round": 2, "accuracy": 0.5},
        {"round": 3, "clients_evaluated": 3.0, "client_acc_mean": 0.4, "personal_acc_mean": 0.6},
        {"round": 4},
    ]
    assert per_client.final(rows) == {
        "clients_evaluated": 3.0,
        "client_acc_mean": 0.4,
        "personal_acc_mean": 0.6,
    }
    assert per_client.final(rows[1:2]) is None
