"""State trees on disk: NumPy arrays in an ``.npz``, everything around them as JSON.

A state tree is what :meth:`Stateful.state` returns: dicts with string keys, lists,
``None``, bools, ints, floats, strings and NumPy arrays or scalars.  :func:`pack`
turns one into JSON-able data plus named arrays; :func:`unpack` reverses it exactly
(bit for bit: arrays keep dtype and shape, floats round-trip through ``repr``, NumPy
scalars keep their type).  Files are written atomically: a temporary file, fsync,
``os.replace``, then the folder is fsynced, so a crash leaves the old file or the new.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

ARRAY = "__ndarray__"  # marks a reference to an array in the tree's JSON
SCALAR = "__npscalar__"  # the same for a NumPy scalar (a 0-d array on disk)


def pack(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``tree`` as JSON-able data; its arrays go into ``arrays`` under new names."""
    if isinstance(tree, np.ndarray | np.generic):
        value = np.asarray(tree)
        if value.dtype.hasobject:
            raise TypeError("cannot store an array of Python objects")
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {SCALAR if isinstance(tree, np.generic) else ARRAY: name}
    if isinstance(tree, dict):
        if not all(isinstance(k, str) for k in tree):
            raise TypeError(f"state keys must be strings, got {sorted(map(repr, tree))[:3]}")
        return {k: pack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [pack(v, arrays) for v in tree]
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    raise TypeError(f"cannot store a {type(tree).__name__} in a checkpoint")


def unpack(data: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The tree :func:`pack` made (tuples come back as lists)."""
    if isinstance(data, dict):
        if set(data) == {ARRAY}:
            return arrays[data[ARRAY]]
        if set(data) == {SCALAR}:
            return arrays[data[SCALAR]][()]
        return {k: unpack(v, arrays) for k, v in data.items()}
    if isinstance(data, list):
        return [unpack(v, arrays) for v in data]
    return data


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # the stub types **kwds as its bool option
    return buffer.getvalue()


def read_npz(path: Path, sha256: str) -> dict[str, np.ndarray]:
    """The arrays of ``path``, after checking its content against ``sha256``."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path.name}: content does not match its checksum (truncated or changed)")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash at any point leaves one or the other.

    A write that fails (a full disk) removes its temporary file and raises OSError naming
    ``path``, which keeps its old content (or stays absent): never a file cut short.
    """
    temp = path.with_name(f".{path.name}.tmp")
    try:
        with open(temp, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise OSError(error.errno, error.strerror, str(path)) from None
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or new file in ``path`` durable (the folder's entry, not only the data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
