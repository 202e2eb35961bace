"""Text corpora on disk: find them under the data roots, read them strictly, cut them into documents.

A *document* is the text of one natural client (a role of a play, a file of a
folder) already split in time: its first 80% for training, the rest held out, so
test text always follows the text a client trained on (McMahan et al. 2017,
"Communication-Efficient Learning of Deep Networks from Decentralized Data",
Section 3).  A plain text is split by characters; a play by lines (see
:mod:`fedsim.data.shakespeare`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fedsim.data.dataset import Dataset
from fedsim.data.windows import Document, Windows, dataset
from fedsim.scenario.tables import Bounds, ScenarioError

KEY = "data.params.path"
TRAIN_PARTS, ALL_PARTS = 4, 5  # the first 4/5 trains; integer maths, no float rounding
Positive = Annotated[int, Bounds(ge=1)]


def load(
    root: Path | None,
    *,
    path: str,
    seq_len: Positive = 80,
    min_samples: Positive = 100,
    eval_windows: Positive = 5000,
    seed: int = 0,
) -> Dataset:
    """The built-in ``text`` loader: a UTF-8 file, or a folder of ``.txt`` files (one client each).

    ``path``: absolute, or under the data root.  ``seq_len``: characters a model reads to
    predict the next one; ``min_samples``: keep files with this many training windows;
    ``eval_windows``: the test set's size, a seeded sample of every file's held-out text.
    """
    return dataset(documents(source(root, path)), Windows(seq_len, min_samples, eval_windows), seed, "file")


def train_count(n: int) -> int:
    """How many of ``n`` units (lines, characters) train: the first ``floor(0.8 n)``."""
    return n * TRAIN_PARTS // ALL_PARTS


def source(root: Path | None, path: str) -> Path:
    """``path`` under ``root`` (FileNotFoundError there, so the next root is tried) or absolute."""
    if not path.strip():
        raise ScenarioError(KEY, "expected a file or folder name, got ''")
    given = Path(path).expanduser()
    if given.is_absolute():
        if not given.exists():
            raise ScenarioError(KEY, f"{given} not found")
        return given
    if root is None or not (root / given).exists():
        raise FileNotFoundError(2, "not found", str(given if root is None else root / given))
    return root / given


def read_text(path: Path) -> str:
    """The file as text with ``\\n`` line ends; a clear ScenarioError if it is not UTF-8 text."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ScenarioError(KEY, f"cannot read {path} ({error.strerror})") from None
    if not data.strip():
        raise ScenarioError(KEY, f"{path} is empty")
    if b"\0" in data:  # valid UTF-8, but no text file holds NUL
        raise ScenarioError(KEY, f"{path} is binary, not text (it holds NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ScenarioError(
            KEY, f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None
    return text.replace("\r\n", "\n")


def split_text(name: str, text: str) -> Document:
    cut = train_count(len(text))
    return Document(name, text[:cut], text[cut:])


def documents(path: Path) -> list[Document]:
    """One document per ``.txt`` file of a folder, or the one file given."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ScenarioError(KEY, f"{path} is a folder without .txt files")
        return [split_text(str(f.relative_to(path)), read_text(f)) for f in files]
    return [split_text(path.name, read_text(path))]
