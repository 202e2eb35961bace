"""A cohort's schedule: which rows every client trains on at every step (clients/cohort.py).

Each client's data order is drawn from its own generator exactly as
:func:`clients.training.train` draws it, so a client's batches in a cohort are the
rows it would train on alone; the steps are laid out as (steps, slots, B) tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fedsim.data import Split
from strategies.algorithm import Term


@dataclass(frozen=True)
class Member:
    """One client of a cohort: its data, its own shuffling stream, its epochs, its algorithm's terms."""

    data: Split
    generator: torch.Generator
    local_epochs: int
    terms: tuple[Term, ...] = ()  # the gradient terms of its steps (strategies/algorithm.py)


@dataclass(frozen=True)
class Schedule:
    """Every step's rows for every client, as indices into the cohort's concatenated data."""

    rows: torch.Tensor  # (steps, slots, B) int64; padding points at a valid row
    weight: torch.Tensor  # (steps, slots, B) float: 1 for a real row, 0 for padding
    active: torch.Tensor  # (steps, slots) float: 1 if the slot's client takes this step, else 0
    everyone: list[bool]  # per step: every slot takes it (no masking needed)
    steps: torch.Tensor  # (slots,) float: each client's number of steps; 1 for an idle slot


def schedule(members: Sequence[Member], batch_size: int, slots: int, device: torch.device) -> Schedule:
    """Draw each client's epochs' orders exactly as ``training.train`` does and lay them out.

    ``slots`` >= the members: the slots past them are idle (weight 0, never active), so a
    captured step of fixed shape trains fewer clients (clients/capture.py).
    """
    per_client: list[list[torch.Tensor]] = []
    offset = 0
    for member in members:
        batches: list[torch.Tensor] = []
        for _ in range(member.local_epochs):  # one randperm per epoch, in order, as the per-client path
            order = torch.randperm(len(member.data), generator=member.generator) + offset
            batches.extend(order.split(batch_size))
        per_client.append(batches)
        offset += len(member.data)
    longest = max(len(b) for b in per_client)
    rows = torch.zeros(longest, slots, batch_size, dtype=torch.int64)
    weight = torch.zeros(longest, slots, batch_size)
    for i, batches in enumerate(per_client):
        for t, batch in enumerate(batches):
            rows[t, i, : len(batch)] = batch
            weight[t, i, : len(batch)] = 1.0
    active = (weight.sum(dim=2) > 0).float()
    everyone = [bool(a) for a in active.all(dim=1)]  # on the host: no device sync per step
    steps = torch.tensor([float(len(b)) for b in per_client] + [1.0] * (slots - len(members)))
    return Schedule(rows.to(device), weight.to(device), active.to(device), everyone, steps.to(device))
