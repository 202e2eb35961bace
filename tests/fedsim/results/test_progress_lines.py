"""The round's line fits a terminal and a log file: at most 80 characters, never broken mid-way."""

from __future__ import annotations

import io

from rich.console import Console

from fedsim.results.progress import ConsoleReporter, describe
from fedsim.results.records import RoundRecord


def record(**changes: object) -> RoundRecord:
    base = RoundRecord(
        12, 0.98765, 0.04321, 0.0567, None, None, 100, 0, 123.4, 12.3, 133_000_000, 133_000_000
    )
    return RoundRecord(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_a_usual_round_is_one_line_of_at_most_80_characters() -> None:
    line = describe(record())
    assert "\n" not in line and len(line) <= 80, line
    assert line.startswith("round  12") and "acc 0.9877" in line and "100 clients" in line


def test_the_rarer_numbers_go_on_a_second_line_when_they_do_not_fit() -> None:
    lines = describe(record(fed_accuracy=0.5, clients_failed=3, stragglers=2, retries=1, epsilon=1.25)).split(
        "\n"
    )
    assert len(lines) == 2 and all(len(line) <= 80 for line in lines)
    assert "3 failed" in lines[1] and "epsilon 1.25" in lines[1] and lines[1].startswith("         ")


def test_a_log_file_gets_the_line_whole(tmp_path: object) -> None:
    out = io.StringIO()
    console = Console(file=out, width=60, force_terminal=False)  # narrower than the line
    with ConsoleReporter(console) as reporter:
        reporter.round_done(record())
    assert describe(record()) + "\n" in out.getvalue()  # not broken at the console's width


def test_a_round_trained_on_several_ray_nodes_says_how_many_and_one_node_says_nothing() -> None:
    assert "Ray nodes" not in describe(record(client_nodes={"0a1b2c3d@10.0.0.1": 100}))
    lines = describe(record(client_nodes={"0a1b2c3d@10.0.0.1": 60, "4e5f6a7b@10.0.0.2": 40}))
    assert "on 2 Ray nodes" in lines and all(len(line) <= 80 for line in lines.split("\n"))
