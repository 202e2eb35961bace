"""MkDocs hooks: the pages generated from the repository at build time, so they cannot drift.

- reference.md: every scenario key, from the code (fedsim/scenario/reference.py) with the
  words of docs/scenario_keys.toml, and the shipped scenario files with their header comments;
- benchmarks.md: benchmarks/README.md, the measurements, kept beside the code that makes them.
"""

from __future__ import annotations

import re
import tomllib
import warnings
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parent.parent


def meanings() -> dict[str, str]:
    """What each scenario key means, from docs/scenario_keys.toml."""
    with (REPO / "docs" / "scenario_keys.toml").open("rb") as file:
        return tomllib.load(file)


def scenario_summaries() -> dict[str, str]:
    """Each shipped scenario file's header comment, in one line."""
    summaries = {}
    for path in sorted((REPO / "scenarios").glob("*.toml")):
        header = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line.lstrip("#").strip())
        summaries[path.name] = " ".join(header)
    return summaries


def benchmarks_page() -> str:
    """benchmarks/README.md, its links to files beside it made links into the repository."""
    text = (REPO / "benchmarks" / "README.md").read_text()
    # A link to a file (not a page of this site) becomes its path in code: the site has no copy.
    # Images stay: on_files copies them (IMAGE).
    return re.sub(r"(?<!!)\[([^\]]+)\]\((?!https?://|#)([^)]+)\)", r"\1 (`benchmarks/\2`)", text)


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+\.png)\)")


def on_files(files: Files, config: Any) -> Files:
    from fedsim.scenario.reference import markdown  # imported late: mkdocs loads hooks early

    with warnings.catch_warnings():  # the built-in strategies import Flower, whose CLI warns on import
        warnings.simplefilter("ignore", DeprecationWarning)
        reference = markdown(meanings(), scenario_summaries())
    files.append(File.generated(config, "reference.md", content=reference))
    files.append(File.generated(config, "benchmarks.md", content=benchmarks_page()))
    for image in IMAGE.findall((REPO / "benchmarks" / "README.md").read_text()):  # the figures it shows
        files.append(File.generated(config, image, abs_src_path=str(REPO / "benchmarks" / image)))
    return files
