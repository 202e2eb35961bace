"""Each client's training rows, held compactly: a million clients in a few megabytes.

One NumPy array per client costs ~110 bytes of array object on top of its indices, and
the server and every client actor build the partition: at 1,000,000 clients a tuple of
arrays was ~110 MB per process before a single index.  So the clients' rows are a
sequence that builds a client's array when asked:

- :class:`PackedRows`: every client's rows one after another in one flat array, with
  offsets (what the partitioners give, packed); a client is a view of it.
- :class:`DrawnRows`: nothing per client.  Client ``k``'s rows are drawn from its own
  random stream when asked (``data.samples_per_client`` beyond the data, fedsim/data/partition.py),
  so any process that asks gets the same rows, and a million clients cost the rows they
  draw from.

Both give sorted ``int64`` arrays, as the partitioners do, and ``sizes()`` without
building any client.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from fedsim.scenario.seeding import generator


class ClientRows(Sequence[np.ndarray]):
    """``rows[k]``: the training rows of partition ``k``, sorted."""

    @abstractmethod
    def client(self, k: int) -> np.ndarray: ...

    @abstractmethod
    def sizes(self) -> np.ndarray:
        """Each client's number of rows (``int64``), without building the clients."""

    @abstractmethod
    def capped(self, max_samples: int) -> ClientRows:
        """Every client cut to its first ``max_samples`` rows."""

    @abstractmethod
    def remapped(self, rows: np.ndarray) -> ClientRows:
        """The same clients, each position ``p`` replaced by ``rows[p]`` (``rows`` increasing)."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """The memory its arrays hold: what one process pays for the whole partition."""

    @overload
    def __getitem__(self, k: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, k: slice) -> tuple[np.ndarray, ...]: ...
    def __getitem__(self, k: int | slice) -> np.ndarray | tuple[np.ndarray, ...]:
        if isinstance(k, slice):
            return tuple(self.client(i) for i in range(len(self))[k])
        count = len(self)
        if not -count <= k < count:  # IndexError also ends iteration (Sequence.__iter__)
            raise IndexError(f"partition {k} of {count}")
        return self.client(int(k) % count)


@dataclass(frozen=True, eq=False)
class PackedRows(ClientRows):
    """Client ``k`` holds ``flat[offsets[k]:offsets[k + 1]]``."""

    flat: np.ndarray  # int64
    offsets: np.ndarray  # int64, one more than the clients, starting at 0

    @classmethod
    def pack(cls, parts: Sequence[np.ndarray]) -> PackedRows:
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        flat = np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, np.int64)
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def client(self, k: int) -> np.ndarray:
        return self.flat[self.offsets[k] : self.offsets[k + 1]]

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def capped(self, max_samples: int) -> PackedRows:
        sizes = self.sizes()
        # Each row's position within its client: keep those below the cap.
        within = np.arange(len(self.flat)) - np.repeat(self.offsets[:-1], sizes)
        kept = np.minimum(sizes, max_samples)
        offsets = np.zeros_like(self.offsets)
        np.cumsum(kept, out=offsets[1:])
        return PackedRows(self.flat[within < max_samples], offsets)

    def remapped(self, rows: np.ndarray) -> PackedRows:
        return PackedRows(rows[self.flat], self.offsets)

    @property
    def nbytes(self) -> int:
        return int(self.flat.nbytes + self.offsets.nbytes)


@dataclass(frozen=True, eq=False)
class DrawnRows(ClientRows):
    """``clients`` clients, each ``size`` distinct rows out of ``rows`` drawn from stream
    ``(seed, "client", k)``, independently of the other clients (clients may share rows);
    ``keep`` < ``size``: each client's first ``keep`` of its sorted rows (``capped``)."""

    rows: np.ndarray  # int64, increasing: the rows every client draws from
    clients: int
    size: int
    seed: int
    keep: int

    def __len__(self) -> int:
        return self.clients

    def client(self, k: int) -> np.ndarray:
        # Floyd's algorithm for a draw this small (NumPy's choice): O(size), not O(len(rows)).
        picks = generator(self.seed, "client", k).choice(len(self.rows), self.size, replace=False)
        return self.rows[np.sort(picks)[: self.keep]]

    def sizes(self) -> np.ndarray:
        return np.full(self.clients, self.keep, dtype=np.int64)

    def capped(self, max_samples: int) -> DrawnRows:
        return DrawnRows(self.rows, self.clients, self.size, self.seed, min(self.keep, max_samples))

    def remapped(self, rows: np.ndarray) -> DrawnRows:
        return DrawnRows(rows[self.rows], self.clients, self.size, self.seed, self.keep)

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes)
