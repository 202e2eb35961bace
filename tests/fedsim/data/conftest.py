"""Fixtures for the loaders' tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache of this test's own (loaders save their normalized arrays there), no data root from
    the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FEDSIM_DATA_DIR", raising=False)
    return tmp_path / "cache" / "fedsim"
