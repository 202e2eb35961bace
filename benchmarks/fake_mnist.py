"""``python -m benchmarks.fake_mnist ROOT``: MNIST-shaped random data, for a machine without MNIST.

Writes ``ROOT/MNIST/raw/*-ubyte.gz`` in the IDX format (fedsim/data/idx.py) with the real
files' shapes: 60,000 training and 10,000 test images of 28x28 uint8, labels 0-9.  Training
on noise times the same work as on MNIST; its accuracy means nothing.  Seeded, so every
run writes the same bytes.
"""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np

SIZES = {"train": 60_000, "t10k": 10_000}


def idx_bytes(array: np.ndarray) -> bytes:
    """Two zero bytes, type 0x08 (uint8), the number of dimensions, each size big-endian."""
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(root: Path, seed: int = 0) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in SIZES.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            with gzip.open(raw / f"{split}-{kind}-ubyte.gz", "wb", compresslevel=1) as stream:
                stream.write(idx_bytes(array))  # level 1: noise does not compress anyway
    return raw


if __name__ == "__main__":
    print(f"written: {write(Path(sys.argv[1]))}")
