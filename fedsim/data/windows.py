"""Documents -> next-character samples, tokenized once into compact tensors.

A sample is a window of ``seq_len`` token ids and the id that follows it, as in
McMahan et al. 2017 and LEAF (Caldas et al. 2018): a text of ``L`` characters
gives ``L - seq_len`` windows.  All documents' text goes into one token stream of
1-byte ids (for up to 255 distinct characters), and the windows are an ``unfold``
view of it: the ~900k training windows of tiny Shakespeare cost ~1 MB of tokens
instead of a ~0.6 GB int64 ``(N, seq_len)`` copy in every Ray worker.  Windows
never cross from one document into the next: clients list only the start
positions inside one document.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedsim.data.dataset import Dataset
from fedsim.data.federated import Split
from fedsim.data.vocab import Vocabulary
from fedsim.scenario.seeding import generator
from fedsim.scenario.tables import ScenarioError


@dataclass(frozen=True)
class Document:
    """The text of one natural client (a role, a file), already split in time (fedsim/data/text.py)."""

    name: str
    train: str
    test: str


@dataclass(frozen=True)
class Windows:
    """How a text becomes samples: the text loaders' own params."""

    seq_len: int  # characters a model reads to predict the next one
    min_samples: int  # keep documents (roles, files) with this many training windows
    eval_windows: int  # the test set: at most this many held-out windows, a seeded sample


@dataclass(frozen=True)
class Stream:
    """The documents' texts tokenized end to end, and where their windows start."""

    tokens: np.ndarray
    starts: np.ndarray  # int64 start position of every window inside one document
    owners: np.ndarray  # int64 document index of each window

    def split(self, seq_len: int) -> Split:
        """A row per start position (``x`` a view of ``tokens``); only ``starts`` are real windows."""
        tokens = torch.from_numpy(self.tokens)
        if len(tokens) <= seq_len:
            return Split(tokens.new_empty((0, seq_len)), torch.empty(0, dtype=torch.int64))
        return Split(tokens[:-1].unfold(0, seq_len, 1), tokens[seq_len:].long())


def tokenize(texts: list[str], vocab: Vocabulary, seq_len: int) -> Stream:
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    counts = np.maximum(lengths - seq_len, 0)
    owners = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
    # start = the document's offset + the window's place inside the document
    within = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return Stream(vocab.encode("".join(texts)), np.repeat(offsets, counts) + within, owners)


def window_count(text: str, seq_len: int) -> int:
    return max(len(text) - seq_len, 0)


def keep_documents(docs: list[Document], seq_len: int, min_samples: int, unit: str) -> list[Document]:
    """The documents with at least ``min_samples`` training windows; an error if none."""
    kept = [d for d in docs if window_count(d.train, seq_len) >= min_samples]
    if not kept:
        most = max(window_count(d.train, seq_len) for d in docs)
        raise ScenarioError(
            "data.params.min_samples",
            f"no {unit} has {min_samples} training windows of data.params.seq_len = {seq_len} "
            f"characters (the largest of {len(docs)} has {most}); lower min_samples or seq_len",
        )
    return kept


def dataset(docs: list[Document], window: Windows, seed: int, unit: str) -> Dataset:
    """Filter, build the vocabulary from the training text, tokenize, sample the test windows.

    Each document is a natural client: its windows carry its index as their client id.
    """
    docs = keep_documents(docs, window.seq_len, window.min_samples, unit)
    vocab = Vocabulary.build("".join(d.train for d in docs))
    train = tokenize([d.train for d in docs], vocab, window.seq_len)
    test = tokenize([d.test for d in docs], vocab, window.seq_len)
    if len(test.starts) == 0:
        raise ScenarioError(
            "data.params.seq_len",
            f"no held-out text is longer than {window.seq_len} characters; lower data.params.seq_len",
        )
    held_out = test.starts
    if len(held_out) > window.eval_windows:  # a uniform sample of all clients' held-out windows
        chosen = generator(seed, "eval-windows").choice(len(held_out), window.eval_windows, replace=False)
        held_out = held_out[np.sort(chosen)]
    rows = train.split(window.seq_len)
    # Only a window inside one document is a sample: the others belong to no client (-1).
    ids = np.full(len(rows), -1, dtype=np.int64)
    ids[train.starts] = train.owners
    test_rows = test.split(window.seq_len).subset(held_out)
    return Dataset(
        train=(rows.x, rows.y),
        test=(test_rows.x, test_rows.y),
        num_classes=len(vocab),
        client_ids=ids,
        sequential=True,
        vocab=vocab,
    )
