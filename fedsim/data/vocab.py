"""A character vocabulary: one per data set, built from its training text.

Id 0 stands for every character the training text never showed (out of vocabulary),
since held-out text may hold characters no client trained on; ids 1.. are the
training characters in code-point order, so every process derives the same ids.
The run folder keeps it as ``vocab.json`` (:meth:`Vocabulary.to_json`), so a saved
model can encode new text and decode its predictions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

OOV_ID = 0
OOV_CHAR = "\ufffd"  # what an out-of-vocabulary id decodes to
FORMAT = "fedsim-char-vocab/1"


@dataclass(frozen=True)
class Vocabulary:
    chars: tuple[str, ...]  # chars[i] has id i + 1; sorted by code point

    def __post_init__(self) -> None:
        if any(len(c) != 1 for c in self.chars) or list(self.chars) != sorted(set(self.chars)):
            raise ValueError("expected distinct single characters in code-point order")

    @classmethod
    def build(cls, text: str) -> Vocabulary:
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        """Number of ids, out-of-vocabulary included: the model's input and output size."""
        return len(self.chars) + 1

    @property
    def dtype(self) -> np.dtype[np.integer]:
        """The smallest integer type holding every id: text stays 1 byte per character."""
        return np.dtype(np.uint8 if len(self) <= 2**8 else np.int16 if len(self) <= 2**15 else np.int32)

    def encode(self, text: str) -> np.ndarray:
        """One id per character, vectorized: a binary search of the code points."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        known = np.fromiter((ord(c) for c in self.chars), dtype=np.uint32, count=len(self.chars))
        if len(known) == 0:
            return np.full(len(codes), OOV_ID, dtype=self.dtype)
        slot = np.searchsorted(known, codes)
        found = known[np.minimum(slot, len(known) - 1)] == codes
        return np.where(found, slot + 1, OOV_ID).astype(self.dtype)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i - 1] if 0 < i <= len(self.chars) else OOV_CHAR for i in ids)

    def to_json(self) -> str:
        """``id_to_char[i]`` is the character of id ``i``; null marks the out-of-vocabulary id."""
        table = {"format": FORMAT, "oov_id": OOV_ID, "id_to_char": [None, *self.chars]}
        return json.dumps(table, ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        table = json.loads(text)
        if not isinstance(table, dict) or table.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} vocabulary")
        first, *chars = table["id_to_char"]
        if first is not None or table["oov_id"] != OOV_ID:
            raise ValueError(f"expected the out-of-vocabulary id {OOV_ID} first")
        return cls(tuple(chars))
