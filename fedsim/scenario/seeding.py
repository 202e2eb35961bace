"""Named, independent random streams derived from the scenario seed.

Every consumer of randomness asks for its own stream, e.g.
``generator(seed, "sample", round)`` or ``torch_generator(seed, "train", round, pid)``,
so adding a consumer never shifts another's numbers, and a client's shuffling
depends only on (seed, round, partition id), never on which worker ran it.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def _entropy(seed: int, path: tuple[int | str, ...]) -> list[int]:
    # crc32 is stable across processes, unlike hash() of a str.
    return [seed, *(zlib.crc32(p.encode()) if isinstance(p, str) else p for p in path)]


def generator(seed: int, *path: int | str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, path)))


def torch_generator(seed: int, *path: int | str) -> torch.Generator:
    state = np.random.SeedSequence(_entropy(seed, path)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)
