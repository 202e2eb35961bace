"""What a data set loader returns (:class:`Dataset`, exported as ``fedsim.Dataset``), checked and
turned into the tensors every client slices.

A loader is a plug-in (fedsim/scenario/plugins.py): ``load(root, **params) -> Dataset``, ``root``
the data root it reads from (or None; raise FileNotFoundError to have the next root
tried).  The built-in ones (mnist, fashion_mnist, emnist, cifar10, femnist, synthetic,
shakespeare, text) are loaders too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fedsim.data.federated import Split
from fedsim.data.vocab import Vocabulary
from fedsim.scenario.plugins import DATASET, PluginError

KEY = DATASET.key


@dataclass(frozen=True)
class Dataset:
    """A data set as a loader gives it; fedsim partitions ``train`` into clients.

    ``train`` and ``test``: ``(x, y)`` pairs of tensors or NumPy arrays, one row per
    sample (``x`` the model's input, ``y`` its integer class), or map-style
    ``torch.utils.data.Dataset`` objects (any torchvision data set), read once into
    tensors.  ``uint8`` features of a data set that is not ``sequential`` are images: they
    become float32 in [0, 1], as a torchvision data set's do.  ``num_classes``: None infers
    it from the largest target.
    ``client_ids``: one natural client id per training sample (a writer, a device, a
    speaker), which ``partition = "natural"`` splits by; a negative id leaves the sample
    out of every client.  ``test_client_ids``: one per test sample, where the data hold each
    client's own test samples (LEAF's test files, Synthetic's): under ``partition = "natural"``
    they are that client's local test data (per-client evaluation).  ``sequential``: the
    samples are positions in one stream (text), so ``shards`` cuts it in reading order and
    ``dirichlet``, which splits by class, is refused.  ``vocab``: for token ids, the
    characters they stand for (saved with the run).
    """

    train: Any
    test: Any
    num_classes: int | None = None
    client_ids: Any = None
    sequential: bool = False
    vocab: Vocabulary | None = None
    test_client_ids: Any = None


@dataclass(frozen=True)
class Tensors:
    """A :class:`Dataset`, checked: tensors ready to partition."""

    train: Split
    test: Split
    num_classes: int
    client_ids: np.ndarray | None  # int64, one per training row
    sequential: bool
    vocab: Vocabulary | None
    test_client_ids: np.ndarray | None = None  # int64, one per test row


def materialize(dataset: object, name: str) -> Tensors:
    """``dataset`` as tensors, or a PluginError naming what does not fit."""
    if not isinstance(dataset, Dataset):
        raise PluginError(KEY, f"{name!r} returned {type(dataset).__name__}, expected a fedsim.Dataset")
    sequential = bool(dataset.sequential)
    train, test = (_split(getattr(dataset, w), name, w, sequential) for w in ("train", "test"))
    if len(train) == 0:
        raise PluginError(KEY, f"{name!r}: the training set is empty")
    if train.x.shape[1:] != test.x.shape[1:]:
        raise PluginError(
            KEY, f"{name!r}: train samples are {tuple(train.x.shape[1:])}, test {tuple(test.x.shape[1:])}"
        )
    return Tensors(
        train,
        test,
        _num_classes(dataset.num_classes, train, test, name),
        _client_ids(dataset.client_ids, len(train), name),
        sequential,
        dataset.vocab,
        _client_ids(dataset.test_client_ids, len(test), name, "test_client_ids", "test"),
    )


def _split(given: Any, name: str, which: str, sequential: bool) -> Split:
    if isinstance(given, tuple | list) and len(given) == 2:
        x, y = (
            _tensor(v, name, f"{which} {part}")
            for v, part in zip(given, ("features", "targets"), strict=True)
        )
    elif hasattr(given, "__getitem__") and hasattr(given, "__len__"):
        x, y = _read(given, name, which)
    else:
        raise PluginError(
            KEY, f"{name!r}: Dataset.{which} is {type(given).__name__}, expected (x, y) or a torch Dataset"
        )
    if x.dim() == 0 or y.dim() != 1 or len(x) != len(y):
        raise PluginError(
            KEY,
            f"{name!r}: {which} has {len(x) if x.dim() else 0} samples of features but "
            f"{len(y) if y.dim() else 0} targets (expected one integer target per sample)",
        )
    if y.is_floating_point() or y.dtype == torch.bool:
        raise PluginError(KEY, f"{name!r}: {which} targets are {y.dtype}, expected integer classes")
    if x.dtype == torch.uint8 and not sequential:  # images as stored (MNIST's files, PIL's arrays)
        x = x.float() / 255
    if x.is_floating_point() and x.dtype != torch.float32:
        x = x.float()  # the models' parameters are float32
    return Split(x, y.long())


def _tensor(value: Any, name: str, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    array = value if isinstance(value, np.ndarray) else None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        with contextlib.suppress(TypeError, ValueError):  # ragged rows: not an array
            array = np.asarray(value)
    if array is None:
        raise PluginError(KEY, f"{name!r}: {what} are {type(value).__name__}, expected a tensor or an array")
    if array.dtype.kind not in "biuf":  # strings, objects, dates: nothing a model reads
        raise PluginError(KEY, f"{name!r}: {what} are an array of {array.dtype}, expected numbers")
    return torch.from_numpy(np.ascontiguousarray(array))


def _read(dataset: Any, name: str, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A map-style data set's samples, read once: images become float tensors in [0, 1]."""
    if len(dataset) == 0:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    xs, ys = [], []
    for i in range(len(dataset)):
        x, y = dataset[i]
        xs.append(_sample(x, name, which))
        ys.append(int(y))
    try:
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)
    except RuntimeError as error:
        raise PluginError(KEY, f"{name!r}: {which} samples differ in shape ({error})") from None


def _sample(x: Any, name: str, which: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if hasattr(x, "mode") and hasattr(x, "size"):  # a PIL image, as torchvision gives without transform
        from torchvision.transforms.functional import to_tensor

        image: torch.Tensor = to_tensor(x)
        return image
    raise PluginError(KEY, f"{name!r}: a {which} sample is {type(x).__name__}, expected a tensor or an image")


def _num_classes(given: int | None, train: Split, test: Split, name: str) -> int:
    highest = max(int(train.y.max()), int(test.y.max()) if len(test) else 0)
    lowest = min(int(train.y.min()), int(test.y.min()) if len(test) else 0)
    if lowest < 0:
        raise PluginError(KEY, f"{name!r}: targets must be classes 0, 1, ..., got {lowest}")
    if given is None:
        return highest + 1
    if not isinstance(given, int) or isinstance(given, bool) or given <= highest:
        raise PluginError(KEY, f"{name!r}: num_classes = {given!r}, but a target is {highest}")
    return given


def _client_ids(
    given: Any, rows: int, name: str, field: str = "client_ids", which: str = "training"
) -> np.ndarray | None:
    if given is None:
        return None
    ids = np.asarray(given.numpy() if isinstance(given, torch.Tensor) else given)
    if ids.shape != (rows,) or not np.issubdtype(ids.dtype, np.integer):
        raise PluginError(
            KEY, f"{name!r}: {field} must be one integer per {which} sample ({rows}), got {ids.shape}"
        )
    return ids.astype(np.int64, copy=False)
