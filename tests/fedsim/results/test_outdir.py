"""Output folders checked before a command works (fedsim/results/outdir.py)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import pytest

from fedsim.results.outdir import check_new, check_writable
from fedsim.scenario.tables import ScenarioError


def test_a_writable_folder_is_created_and_left_empty(tmp_path: Path) -> None:
    check_writable(tmp_path / "a" / "b", "--out")
    assert list((tmp_path / "a" / "b").iterdir()) == []


def test_a_folder_under_a_file_is_refused_naming_key_and_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ScenarioError) as caught:
        check_writable(tmp_path / "file" / "out", "--out")
    assert str(caught.value) == f"--out: cannot write to {tmp_path / 'file' / 'out'} (Not a directory)"


def test_a_folder_one_may_not_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied as a non-root user gets it (tests run as root, whom chmod does not stop)."""

    def denied(*_: Any, **__: Any) -> NoReturn:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "TemporaryFile", denied)
    with pytest.raises(ScenarioError, match=r"^DIR: cannot write to .* \(Permission denied\)$"):
        check_writable(tmp_path, "DIR")


def test_a_new_folder_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(ScenarioError, match="already exists and is not empty"):
        check_new(tmp_path, "--out")
    check_new(tmp_path / "new", "--out")
