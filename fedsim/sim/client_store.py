"""The server's store of what each simulated client keeps between its rounds (an algorithm's
``state``, strategies/algorithm.py), so pooled nodes can stand in for any client and a resumed
run hands every client its state back.

A pooled node (strategies/placement.py) keeps nothing: each train message carries its client's
state (:meth:`ClientStore.attach`) and the reply brings the new one back, which the round loop
takes out (:meth:`ClientStore.take`) before screening hands the reply to the strategy.  Neither
counts as traffic: in the simulated federation the state never leaves its client.  SuperNodes
keep their own client's state (clients/client_state.py) and send none, so this store stays empty.

Where the states are: in RAM up to :data:`RAM_BYTES`, and on disk in the run's checkpoint
folder, one file per round (``clients/r<k>.npz``) holding the states that changed in round k,
written by :meth:`ClientStore.commit` before that round's checkpoint commits.  A file is deleted
once no client's latest state is in it.  Past the budget, states already on disk leave RAM,
least recently used first, and are read back when their client is next sampled: RAM holds at
most the budget plus the states of the round being trained, whatever the population.
"""

from __future__ import annotations

import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from flwr.app import Message, RecordDict

from fedsim import protocol as keys
from fedsim.results.statetree import npz_bytes, sha256, write_atomic

State = dict[str, dict[str, np.ndarray]]  # state name -> its arrays by name
RAM_BYTES = 256 * 2**20  # client state kept in the server's RAM beyond what a round changed
OPEN_FILES = 16  # state files kept open for reading (a run may reference one per round)


class ClientStore:
    """Each client's latest state, by partition id; ``folder`` is ``RUN_DIR/checkpoint/clients``."""

    def __init__(self, folder: Path, ram_bytes: int = RAM_BYTES) -> None:
        self.folder = folder
        self.ram_bytes = ram_bytes
        self.resident: OrderedDict[int, State] = OrderedDict()  # least recently used first
        self.changed: set[int] = set()  # since the last commit: in RAM only
        self.file_of: dict[int, str] = {}  # partition -> the committed file holding its latest state
        self.files: dict[str, str] = {}  # every file some client's latest state is in -> its SHA-256
        self._held: dict[str, int] = {}  # file -> how many clients' latest states it holds
        self._open: OrderedDict[str, np.lib.npyio.NpzFile] = OrderedDict()  # for reading, most recent last

    def __len__(self) -> int:
        return len(self.file_of.keys() | self.changed)

    @property
    def resident_bytes(self) -> int:
        return sum(_nbytes(state) for state in self.resident.values())

    def get(self, partition: int) -> State | None:
        """The client's latest state (read back from disk if it left RAM); None before its first."""
        state = self.resident.get(partition)
        if state is None and partition in self.file_of:
            state = self._read(self.file_of[partition], partition)
            self.resident[partition] = state
        if state is not None:
            self.resident.move_to_end(partition)
        return state

    def put(self, partition: int, state: State) -> None:
        self.resident[partition] = state
        self.resident.move_to_end(partition)
        self.changed.add(partition)

    def attach(self, messages: Iterable[Message], partition_of: Mapping[int, int]) -> list[Message]:
        """Train messages to pooled nodes, each with its client's state (none before its first reply)."""
        out = []
        for message in messages:
            state = self.get(partition_of[message.metadata.dst_node_id])
            if state is not None:
                carried = {keys.state_record(name): keys.to_record(arrays) for name, arrays in state.items()}
                message.content = RecordDict({**dict(message.content.items()), **carried})
            out.append(message)
        return out

    @staticmethod
    def take(reply: Message) -> State | None:
        """The client's new state out of its (screened) reply, which then holds the rest; None if none."""
        content = reply.content
        names = [name for name in content.array_records if name.startswith(keys.STATE)]
        if not names:
            return None
        state = {name.removeprefix(keys.STATE): keys.to_numpy(content.array_records[name]) for name in names}
        reply.content = RecordDict({k: v for k, v in content.items() if k not in names})
        return state

    def commit(self, server_round: int) -> dict[str, str]:
        """Write the states changed since the last commit (one file for the round); the files the
        checkpoint must now reference, with their SHA-256.  Then trim RAM to the budget."""
        if self.changed:
            name = f"r{server_round:06d}.npz"
            data = npz_bytes(
                {
                    f"{p}/{state}/{array}": values
                    for p in sorted(self.changed)
                    for state, arrays in self.resident[p].items()
                    for array, values in arrays.items()
                }
            )
            write_atomic(self.folder / name, data)
            self.files[name] = sha256(data)
            for partition in self.changed:
                self._point(partition, name)
            self.changed = set()
        self._trim()
        return dict(self.files)

    def restore(self, files: Mapping[str, str]) -> None:
        """The committed files of a checkpoint (each checked against its SHA-256): later rounds' win."""
        self.resident.clear()
        self.changed, self.file_of, self.files, self._held = set(), {}, {}, {}
        for name in sorted(files):  # r<k> with k zero-padded: oldest first
            path = self.folder / name
            if sha256(path.read_bytes()) != files[name]:
                raise ValueError(f"{name}: content does not match its checksum (truncated or changed)")
            self.files[name] = files[name]
            with zipfile.ZipFile(path) as archive:
                partitions = {int(member.split("/", 1)[0]) for member in archive.namelist()}
            for partition in sorted(partitions):
                self._point(partition, name)

    def _point(self, partition: int, name: str) -> None:
        old = self.file_of.get(partition)
        if old is not None:
            self._held[old] -= 1
            if not self._held[old]:  # no client's latest state is in it: the checkpoint drops it
                del self._held[old], self.files[old]
                if (npz := self._open.pop(old, None)) is not None:
                    npz.close()
        self.file_of[partition] = name
        self._held[name] = self._held.get(name, 0) + 1

    def _read(self, name: str, partition: int) -> State:
        npz = self._open.pop(name, None) or np.load(self.folder / name, allow_pickle=False)
        self._open[name] = npz
        if len(self._open) > OPEN_FILES:
            self._open.popitem(last=False)[1].close()
        state: State = {}
        prefix = f"{partition}/"
        for member in npz.files:  # in the order written: each state's arrays in the model's order
            if member.startswith(prefix):
                _, state_name, array = member.split("/", 2)
                state.setdefault(state_name, {})[array] = npz[member]
        return state

    def _trim(self) -> None:
        held = self.resident_bytes
        while held > self.ram_bytes and self.resident:
            partition, state = next(iter(self.resident.items()))
            if partition in self.changed:  # not on disk yet (a commit empties changed first)
                break
            del self.resident[partition]
            held -= _nbytes(state)


def _nbytes(state: State) -> int:
    return sum(a.nbytes for arrays in state.values() for a in arrays.values())
