"""Scenario files: TOML text in, a validated Scenario out, with ``--set`` overrides.

A file that names a plug-in by import path searches its own folder for it (``python_path``,
recorded absolute in the run folder).  No file at all is the built-in quickstart.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError, apply_override, from_table

DEFAULT_SCENARIO = "quickstart.toml"  # packaged with fedsim: synthetic data, runs offline


def scenario_table(path: str | Path | None, overrides: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """The scenario file (None: the built-in quickstart) as a table, overrides applied."""
    if path is None:
        text = files("fedsim").joinpath(DEFAULT_SCENARIO).read_text(encoding="utf-8")
        return parse_table(text, tuple(overrides), source=DEFAULT_SCENARIO)
    table = parse_table(read_text(path), tuple(overrides), source=str(path))
    return with_folder(with_trace(table, Path(path).parent), Path(path).parent)


def with_trace(table: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``table`` with a relative ``devices.trace`` read from ``folder`` (recorded absolute)."""
    devices = table.get("devices")
    if not isinstance(devices, dict) or not isinstance(devices.get("trace"), str):
        return table
    trace = (folder.expanduser() / devices["trace"]).resolve()
    return {**table, "devices": {**devices, "trace": str(trace)}}


def parse_table(text: str, overrides: tuple[str, ...] = (), source: str = "scenario") -> dict[str, Any]:
    """Parse TOML text and apply ``key.path=value`` overrides, not yet validated."""
    try:
        table: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(source, f"invalid TOML: {error}") from None
    for assignment in overrides:
        apply_override(table, assignment)
    return table


def parse_scenario(text: str, overrides: tuple[str, ...] = (), source: str = "scenario") -> Scenario:
    """Parse TOML text, apply ``key.path=value`` overrides, validate."""
    return from_table(Scenario, parse_table(text, overrides, source))


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ScenarioError(str(path), f"cannot read scenario file ({reason})") from None


def load_scenario(path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = ()) -> Scenario:
    """The scenario file at ``path`` (None: the quickstart); plug-ins are imported from its folder too."""
    return from_table(Scenario, scenario_table(path, overrides))


def with_folder(table: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``table`` searching ``folder`` (and resolving relative python_path entries against it),
    if it names any plug-in by import path; the run folder records the absolute paths."""
    paths = table.get("python_path", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return table  # the loader names the problem
    sections = (("model", "name"), ("data", "dataset"), ("strategy", "name"), ("client", "update"))
    named = [table[s].get(k) for s, k in sections if isinstance(table.get(s), dict)]
    if not paths and not any(isinstance(n, str) and ":" in n for n in named):
        return table
    base = folder.expanduser().resolve()
    resolved = [str((base / p).resolve()) for p in paths]
    return {**table, "python_path": list(dict.fromkeys([*resolved, str(base)]))}
