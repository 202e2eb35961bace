"""Text corpora on disk: find them under the data roots, read them strictly, cut them into documents.

A *document* is the text of one natural client (a role of a play, a file of a
folder) already split in time: its first 80% for training, the rest held out, so
test text always follows the text a client trained on (McMahan et al. 2017,
"Communication-Efficient Learning of Deep Networks from Decentralized Data",
Section 3).  A plain text is split by characters; a play by lines (see
:mod:`fedsim.data.shakespeare`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedsim.config import ScenarioError
from fedsim.scenario import DataConfig

KEY = "data.path"
TRAIN_PARTS, ALL_PARTS = 4, 5  # the first 4/5 trains; integer maths, no float rounding


@dataclass(frozen=True)
class Document:
    name: str  # the role, or the file's path inside the folder
    train: str
    test: str


def train_count(n: int) -> int:
    """How many of ``n`` units (lines, characters) train: the first ``floor(0.8 n)``."""
    return n * TRAIN_PARTS // ALL_PARTS


def locate(spec: DataConfig, roots: list[Path]) -> Path:
    """The root under which ``spec.text_path`` exists; for an absolute path, its parent."""
    path = Path(spec.text_path).expanduser()
    if path.is_absolute():
        if not path.exists():
            raise ScenarioError(KEY, f"{path} not found")
        return path.parent
    for root in roots:
        if (root / path).exists():
            return root
    searched = ", ".join(str(r) for r in roots)
    raise ScenarioError(
        KEY,
        f"{path} not found under any data root (searched {searched}); pass --data-dir or set FEDSIM_DATA_DIR",
    )


def source(spec: DataConfig, root: Path) -> Path:
    return root / Path(spec.text_path).expanduser()


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


def documents(spec: DataConfig, root: Path) -> list[Document]:
    """Dataset ``text``: one document per ``.txt`` file of a folder, or the one file given."""
    path = source(spec, root)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ScenarioError(KEY, f"{path} is a folder without .txt files")
        return [split_text(str(f.relative_to(path)), read_text(f)) for f in files]
    if spec.partition == "natural":
        raise ScenarioError(
            "data.partition",
            f"'natural' gives one client per file of a folder, but {path} is one file; "
            "use 'shards' or 'iid' with data.num_clients",
        )
    if spec.num_clients is None:
        raise ScenarioError("data.num_clients", f"required to split the one file {path} into clients")
    return [split_text(path.name, read_text(path))]
