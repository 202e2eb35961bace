"""Each client's own test data: held out of its partition, or the data set's per-client test split.

Non-IID federated learning is judged client by client (LEAF holds out each client's test
samples; q-FFL reports the spread of client accuracies), so each client needs test data of its
own distribution.  :func:`hold_out` takes ``data.client_test_fraction`` of every client's rows
out of its training rows: ``floor(n * fraction)`` of a client's ``n``, stratified by label
(systematic sampling over the client's rows sorted by label, ties in a seeded random order), so
a client holding 2 classes keeps both in its test data in proportion.  The held-out rows are
gone from the client's training rows: they never train.

Text rows are windows of one stream, and neighbouring windows share tokens: a client's test
windows are the last ones of its rows, and the training windows that would reach into the
first test window (within a window's length of it) are dropped, so no test token trains.

:func:`natural_tests` gives each natural client the test samples carrying its id (FEMNIST's
LEAF test files, Synthetic's held-out tail).
"""

from __future__ import annotations

import numpy as np

from fedsim.data.client_rows import PackedRows


def hold_out(
    clients: PackedRows,
    labels: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    window: int | None = None,
) -> tuple[PackedRows, PackedRows]:
    """(training rows, held-out rows) of every client; ``labels``: the class of each row.

    ``window``: the data are windows of this many tokens (text): hold out each client's last
    rows, and drop its training rows within ``window`` of them.
    """
    sizes, flat = clients.sizes(), clients.flat  # each client's rows, one after another
    owner = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.repeat(np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    held_counts = np.floor(sizes * fraction).astype(np.int64)
    if window is None:
        order = np.lexsort((rng.random(len(flat)), labels[flat], owner))  # by client, then label
        position = np.arange(len(flat)) - starts  # within its client, in that order
        # Systematic sampling: every 1/fraction-th row of the label-sorted client, floor(n*f) in all.
        held = np.floor((position + 1) * fraction) > np.floor(position * fraction)
        rows, owners = flat[order], owner[order]
        kept = ~held
    else:
        rows, owners = flat, owner  # each client's rows in increasing order
        position = np.arange(len(flat)) - starts
        held = position >= np.repeat(sizes - held_counts, sizes)
        first_held = np.full(len(sizes), np.iinfo(np.int64).max)
        np.minimum.at(first_held, owners[held], rows[held])
        kept = ~held & (rows < np.repeat(first_held, sizes) - window)
    return _packed(rows[kept], owners[kept], len(sizes)), _packed(rows[held], owners[held], len(sizes))


def natural_tests(client_ids: np.ndarray, test_ids: np.ndarray) -> PackedRows:
    """For the natural client of each id in ``client_ids`` (in client order), the test rows with
    that id."""
    order = np.argsort(test_ids, kind="stable")
    sorted_ids = test_ids[order]
    lo = np.searchsorted(sorted_ids, client_ids, side="left")
    hi = np.searchsorted(sorted_ids, client_ids, side="right")
    return PackedRows.pack([np.sort(order[a:b]) for a, b in zip(lo, hi, strict=True)])


def _packed(rows: np.ndarray, owners: np.ndarray, clients: int) -> PackedRows:
    """Rows grouped by owner, each client's increasing (the partitioners' order)."""
    order = np.lexsort((rows, owners))
    offsets = np.zeros(clients + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners, minlength=clients), out=offsets[1:])
    return PackedRows(rows[order].astype(np.int64, copy=False), offsets)
