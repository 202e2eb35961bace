"""Tiny data files in the real on-disk formats, for the loaders' tests (no network)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: two zero bytes, the type code, the rank, each size as a big-endian uint32, the values."""
    header = bytes([0, 0, _CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gzipped: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gzipped:
        path = path.with_name(f"{path.name}.gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_idx_set(
    raw: Path,
    files: dict[str, tuple[str, str]],
    images: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    gzipped: bool = False,
) -> None:
    """``files``' images and labels of each split into the folder ``raw``."""
    for split, (images_name, labels_name) in files.items():
        write_idx(raw / images_name, images[split], gzipped)
        write_idx(raw / labels_name, labels[split], gzipped)
