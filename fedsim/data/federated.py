"""The shapes every data set takes: a train/test pair of tensors plus one index array per client."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from fedsim.data.client_rows import ClientRows
from fedsim.data.vocab import Vocabulary


@dataclass(frozen=True)
class Split:
    """Samples as rows: ``x[i]`` is the input of sample ``i`` and ``y[i]`` its target.

    ``x`` is float32 features ready for the model (no per-sample transform at train
    time), or, for text, a window of compact token ids (uint8/int16/int32) that
    :meth:`batch` widens to int64 per batch; ``y`` is int64 (a class, the next token).
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: np.ndarray) -> Split:
        """The rows ``indices``; a run of consecutive rows is a view, not a copy."""
        if len(indices) and indices[-1] - indices[0] == len(indices) - 1 and _increasing(indices):
            rows = slice(int(indices[0]), int(indices[-1]) + 1)
            return Split(self.x[rows], self.y[rows])
        index = torch.from_numpy(indices)
        return Split(self.x[index], self.y[index])

    def batch(self, rows: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs and targets of ``rows``: token ids become the int64 an embedding takes."""
        x = self.x[rows]
        return (x if x.is_floating_point() else x.long()), self.y[rows]


def _increasing(indices: np.ndarray) -> bool:
    return bool(np.all(np.diff(indices) == 1))


@dataclass(frozen=True)
class FederatedData:
    """A data set split for federated learning.

    ``train`` holds every training row; ``clients[k]`` lists the rows of partition ``k``
    (built when asked: fedsim/data/client_rows.py; ``clients.sizes()`` counts them all).
    For text, ``train`` has a row per start position in the token stream, and the
    clients list only the windows that stay inside one role or file.  ``local_tests[k]`` lists
    client ``k``'s own test rows (fedsim/data/local_test.py), of ``train`` (held out of its
    partition) or of ``test`` (a natural per-client test split), as ``local_source`` says.
    """

    train: Split
    test: Split
    num_classes: int
    clients: ClientRows  # training-sample indices of each partition id
    vocab: Vocabulary | None = None  # text: token id -> character
    local_tests: ClientRows | None = None  # each client's test rows; None: the clients have none
    local_source: Literal["train", "test"] = "train"

    def capped(self, max_samples: int) -> FederatedData:
        """Every client cut to its first ``max_samples`` rows (partitions list rows in order,
        so a text client keeps a stretch of its text, and its windows stay a view)."""
        return dataclasses.replace(self, clients=self.clients.capped(max_samples))

    def client(self, partition_id: int) -> Split:
        return self.train.subset(self.clients[partition_id])

    def local_test(self, partition_id: int) -> Split:
        """The client's own test samples (none where the data give clients none)."""
        source = self.train if self.local_source == "train" else self.test
        rows = self.local_tests[partition_id] if self.local_tests is not None else np.zeros(0, np.int64)
        return source.subset(rows)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def majority_accuracy(self) -> float:
        """Test accuracy of always predicting the most frequent test target: the baseline to beat."""
        if len(self.test) == 0:
            return 0.0
        return float(torch.bincount(self.test.y).max()) / len(self.test)
