"""A data set loader of your own: samples from a NumPy ``.npz`` file.

The scenario names it ``data.dataset = "mydata:load"``; fedsim finds this module because
it sits next to the scenario file, and calls ``load(root, **params)`` with the
``[data.params]`` table (checked against the signature below) once in the server and
once in every Ray worker, for each data root in turn until one does not raise
FileNotFoundError.

The file holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` (one row per sample,
integer classes) and, optionally, ``writers``: one natural client id per training sample,
which ``data.partition = "natural"`` makes one client each.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

import fedsim

HERE = Path(__file__).resolve().parent
REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def load(root: Path | None, *, file: str = "blobs.npz", standardize: bool = True) -> fedsim.Dataset:
    """The samples of ``file``: an absolute path, else under the data root ``root`` if it is
    there, else next to this module (where ``make_blobs.py`` writes ``blobs.npz``).

    ``standardize``: scale every feature to mean 0 and variance 1 over the training
    samples (the test samples with the same mean and scale).
    """
    path = find(root, file)
    with np.load(path) as arrays:
        missing = [k for k in REQUIRED if k not in arrays.files]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)} (it has {', '.join(arrays.files)})")
        x_train, x_test = arrays["x_train"].astype(np.float32), arrays["x_test"].astype(np.float32)
        y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
        writers = arrays["writers"].astype(np.int64) if "writers" in arrays.files else None
    if standardize:
        mean, scale = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
        x_train, x_test = (x_train - mean) / scale, (x_test - mean) / scale
    return fedsim.Dataset(train=(x_train, y_train), test=(x_test, y_test), client_ids=writers)


def find(root: Path | None, file: str) -> Path:
    """Where ``file`` is; FileNotFoundError (fedsim then tries the next data root) if nowhere."""
    given = Path(file)
    candidates = [given] if given.is_absolute() else [*([root / given] if root else []), HERE / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(candidates[0]))
