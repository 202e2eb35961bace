"""The docs site: every scenario key has its words, the pages the site lists exist, links resolve.

`make docs` builds the site with `mkdocs build --strict` (broken links and anchors fail it);
`make test` runs it.  These checks are the parts a reader of the repository relies on too.
"""

from __future__ import annotations

import re
import sys

import pytest
import yaml

from fedsim.scenario import reference
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "docs"))
import hooks  # (docs/hooks.py: the pages generated at build time)

GENERATED = {"reference.md", "benchmarks.md"}


def documented_keys() -> set[str]:
    return {k.name for k in reference.all_keys() if k.type != "table" or k.name.endswith("params")}


def test_every_scenario_key_has_its_meaning_in_the_docs() -> None:
    missing = documented_keys() - set(hooks.meanings())
    assert not missing, f"docs/scenario_keys.toml lacks {sorted(missing)}"


def test_no_meaning_outlives_its_key() -> None:
    stale = set(hooks.meanings()) - documented_keys()
    assert not stale, f"docs/scenario_keys.toml names keys that are gone: {sorted(stale)}"


def test_every_shipped_scenario_says_what_it_runs() -> None:
    summaries = hooks.scenario_summaries()
    assert summaries and all(summaries.values()), [name for name, text in summaries.items() if not text]


def nav_pages() -> list[str]:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text().replace("!!python", "python"))
    return [page for entry in config["nav"] for page in entry.values()]


def test_every_page_of_the_site_exists_or_is_generated() -> None:
    missing = [p for p in nav_pages() if p not in GENERATED and not (REPO / "docs" / p).is_file()]
    assert not missing and set(nav_pages()) >= GENERATED


@pytest.mark.parametrize("page", ["README.md", "benchmarks/README.md", "examples/README.md"])
def test_the_readmes_links_to_files_resolve(page: str) -> None:
    path = REPO / page
    links = re.findall(r"\]\((?!https?://|#|mailto:)([^)#\s]+)", path.read_text())
    broken = [link for link in links if not (path.parent / link).exists()]
    assert not broken, f"{page} links to missing files: {broken}"
