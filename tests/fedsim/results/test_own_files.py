"""A run folder to resume is untrusted: links and special files in it are refused before it is opened."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fedsim import cli
from fedsim.results.own_files import refuse_links
from tests.conftest import REPO


def run_folder(path: Path) -> Path:
    """What a stopped run leaves: its scenario, rows, lock and checkpoint (the files' content is not read)."""
    (path / "checkpoint" / "clients").mkdir(parents=True)
    (path / "scenario.toml").write_text((REPO / "fedsim" / "quickstart.toml").read_text())
    for name in ("metrics.jsonl", ".lock", "checkpoint/checkpoint.json", "checkpoint/clients/r1.npz"):
        (path / name).write_text("")
    return path


def link_clients_folder(run: Path, elsewhere: Path) -> Path:
    clients = run / "checkpoint" / "clients"
    (clients / "r1.npz").unlink()
    clients.rmdir()
    clients.symlink_to(elsewhere, target_is_directory=True)
    return clients


def link_file(name: str) -> Callable[[Path, Path], Path]:
    def make(run: Path, elsewhere: Path) -> Path:
        (run / name).unlink()
        (run / name).symlink_to(elsewhere / "precious.txt")
        return run / name

    return make


def fifo(run: Path, elsewhere: Path) -> Path:
    (run / "metrics.jsonl").unlink()
    os.mkfifo(run / "metrics.jsonl")
    return run / "metrics.jsonl"


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (link_clients_folder, "a symbolic link"),
        (link_file("metrics.jsonl"), "a symbolic link"),  # rows would be appended to its target
        (link_file(".lock"), "a symbolic link"),  # the lock is truncated when taken
        (link_file("scenario.toml"), "a symbolic link"),
        (fifo, "a special file"),  # reading it would block the resume
    ],
    ids=["clients-folder", "metrics", "lock", "scenario", "fifo"],
)
def test_a_resume_refuses_a_link_or_special_file_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path, Path], Path], kind: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    run = run_folder(tmp_path / "run")
    bad = make(run, elsewhere)
    assert cli.main(["run", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"fedsim: error: --resume: {bad} is {kind}"), err
    assert [p.name for p in elsewhere.iterdir()] == ["precious.txt"]
    assert (elsewhere / "precious.txt").read_text() == "keep me"


def test_a_run_folder_given_through_a_link_is_read_as_it_is(tmp_path: Path) -> None:
    run = run_folder(tmp_path / "run")
    (tmp_path / "latest").symlink_to(run, target_is_directory=True)
    refuse_links(tmp_path / "latest", "--resume")  # the user chose that path: no error
