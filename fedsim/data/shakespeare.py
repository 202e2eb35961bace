"""Shakespeare next-character prediction with one client per speaking role.

After McMahan et al. 2017 ("Communication-Efficient Learning of Deep Networks from
Decentralized Data", Section 3) and LEAF (Caldas et al. 2018, "LEAF: A Benchmark
for Federated Settings"): each role of the play is a client; of its lines, the
first 80% train and the last 20% are held out.  The play is read in the format
of Karpathy's tiny Shakespeare: a paragraph opens with the speaker on a line of
its own (``NAME:``), followed by what that speaker says::

    First Citizen:
    Before we proceed any further, hear me speak.

Roles are in order of first appearance, so partition id ``k`` is the ``k``-th role
to speak.  A paragraph without a speaker line continues the last speech.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from fedsim.data.dataset import Dataset
from fedsim.data.text import KEY, read_text, source, train_count
from fedsim.data.windows import Document, Windows, dataset
from fedsim.scenario.tables import Bounds, ScenarioError

PLAY = "shakespeare/tinyshakespeare.txt"  # under the data root
Positive = Annotated[int, Bounds(ge=1)]

# A name starting with a letter, alone on its line, ending in a colon; short, so that
# a line of verse ending in a colon after a blank line is not taken for a speaker.
SPEAKER = re.compile(r"([A-Za-z][^:]{0,39}):\s*")


def load(
    root: Path | None,
    *,
    path: str = PLAY,
    seq_len: Positive = 80,
    min_samples: Positive = 100,
    eval_windows: Positive = 5000,
    seed: int = 0,
) -> Dataset:
    """The built-in ``shakespeare`` loader: one client per role with ``min_samples`` windows.

    The parameters are the ``text`` loader's (fedsim/data/text.py); ``path``, a play in the
    format above, defaults to tiny Shakespeare under the data root.
    """
    return dataset(documents(source(root, path)), Windows(seq_len, min_samples, eval_windows), seed, "role")


def parse_roles(text: str) -> dict[str, list[str]]:
    """Each role's spoken lines, in order; roles in order of first appearance."""
    roles: dict[str, list[str]] = {}
    speaker: str | None = None
    opens_paragraph = True
    for line in text.split("\n"):
        if not line.strip():
            opens_paragraph = True
            continue
        match = SPEAKER.fullmatch(line) if opens_paragraph else None
        opens_paragraph = False
        if match:
            speaker = match.group(1).strip()
            roles.setdefault(speaker, [])
        elif speaker is not None:  # text before the first speaker is no one's
            roles[speaker].append(line)
    return roles


def split_role(name: str, lines: list[str]) -> Document:
    """The first 80% of the role's lines train, the last 20% test; each line keeps its newline."""
    cut = train_count(len(lines))
    return Document(
        name, "".join(f"{line}\n" for line in lines[:cut]), "".join(f"{line}\n" for line in lines[cut:])
    )


def documents(path: Path) -> list[Document]:
    if path.is_dir():
        raise ScenarioError(
            KEY, f"{path} is a folder; shakespeare reads one play (use dataset 'text' for folders)"
        )
    roles = parse_roles(read_text(path))
    if not roles:
        raise ScenarioError(
            KEY,
            f"{path} has no speaker lines ('NAME:' alone on a line after a blank line); "
            "for plain text use dataset 'text'",
        )
    return [split_role(name, lines) for name, lines in roles.items()]
