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

from fedsim.config import ScenarioError
from fedsim.data.federated import FederatedData, Split
from fedsim.data.partition import partition
from fedsim.data.text import Document
from fedsim.data.vocab import Vocabulary
from fedsim.scenario import DataConfig
from fedsim.seeding import generator


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


def keep_documents(docs: list[Document], spec: DataConfig, unit: str) -> list[Document]:
    """The documents with at least ``spec.min_samples`` training windows; an error if none."""
    kept = [d for d in docs if window_count(d.train, spec.seq_len) >= spec.min_samples]
    if not kept:
        most = max(window_count(d.train, spec.seq_len) for d in docs)
        raise ScenarioError(
            "data.min_samples",
            f"no {unit} has {spec.min_samples} training windows of data.seq_len = {spec.seq_len} "
            f"characters (the largest of {len(docs)} has {most}); lower data.min_samples or data.seq_len",
        )
    return kept


def federate(docs: list[Document], spec: DataConfig, seed: int, unit: str) -> FederatedData:
    """Filter, build the vocabulary from the training text, tokenize, partition, cap the test set."""
    docs = keep_documents(docs, spec, unit)
    vocab = Vocabulary.build("".join(d.train for d in docs))
    train = tokenize([d.train for d in docs], vocab, spec.seq_len)
    test = tokenize([d.test for d in docs], vocab, spec.seq_len)
    if len(test.starts) == 0:
        raise ScenarioError(
            "data.seq_len", f"no held-out text is longer than {spec.seq_len} characters; lower data.seq_len"
        )
    # Natural: a client per document; otherwise data.num_clients, else as many as documents.
    count = spec.num_clients or len(docs)
    positions = np.arange(len(train.starts))  # the shards partitioner cuts these in text order
    parts = partition(positions, train.owners, spec, generator(seed, "partition"), count)
    clients = tuple(train.starts[p] for p in parts)
    held_out = test.starts
    if len(held_out) > spec.eval_windows:  # a uniform sample of all clients' held-out windows
        chosen = generator(seed, "eval-windows").choice(len(held_out), spec.eval_windows, replace=False)
        held_out = held_out[np.sort(chosen)]
    test_split = test.split(spec.seq_len).subset(held_out)
    return FederatedData(train.split(spec.seq_len), test_split, len(vocab), clients, vocab)
