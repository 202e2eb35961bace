"""Checkpoints: after every round, what a killed run needs to go on as if it had not stopped.

``RUN_DIR/checkpoint/`` holds the last complete round:

- ``round-<k>.npz``: the global model, every strategy component's state, the server
  process's global random generators (Python's, NumPy's, torch's);
- ``clients/r<j>.npz``: the clients' kept state (an algorithm's ``state``, in simulation), one
  file per round j <= k holding the states that changed in it, as long as some client's
  latest state is in it (fedsim/sim/client_store.py writes and reads them);
- ``checkpoint.json``: the commit record: the round, which files make it up with their
  SHA-256, the JSON around their arrays, ``metrics.jsonl``'s length with that round's row,
  and the SHA-256 of its own content: the JSON says which array is which layer, so an
  edit there (one layer pointed at another array of its shape) is refused like a changed file.

Order after round k (results.py has already appended and fsynced its row): data files
(temp, fsync, rename, fsync the folder), then ``checkpoint.json`` the same way, then old
files are deleted.  A kill before the rename of ``checkpoint.json`` leaves round k - 1
committed and stray files that the next commit deletes; a resume cuts ``metrics.jsonl``
back to the committed length, so no half-written or repeated row survives.

Components take part through :class:`Stateful`.  The checkpoint walks the strategy
chain (each wrapper's attributes holding a strategy or a Stateful object: our
SeededSampling, Flower's DP wrappers, an accountant) and takes every component's own
state, by attribute path, so a wrapper needs no code to pass on its inner strategy's.
Flower's strategies get adapters (strategies/state.py).
"""

from __future__ import annotations

import json
import random
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from flwr.serverapp.strategy import Strategy

from fedsim.results.statetree import npz_bytes, pack, read_npz, sha256, unpack, write_atomic
from fedsim.scenario.seeding import generator
from strategies.state import adapter_for

CHECKPOINT_DIR, MANIFEST, CLIENTS_DIR = "checkpoint", "checkpoint.json", "clients"
FORMAT = 3  # 2: checkpoint.json carries its own checksum; 3: clients' states in one file per round


@runtime_checkable
class Stateful(Protocol):
    """A server-side component whose state outlives a round.

    ``state()`` returns the component's own state only (not that of components it
    holds; the checkpoint finds those itself): a tree of dicts with string keys,
    lists, numbers, strings, None and NumPy arrays (fedsim/results/statetree.py).
    """

    def state(self) -> dict[str, Any]: ...
    def restore(self, state: dict[str, Any]) -> None: ...


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the run."""


def components(root: object, path: str = "strategy") -> Iterator[tuple[str, object]]:
    """``root`` and, depth first, every strategy or Stateful object its attributes hold."""
    seen: set[int] = set()

    def walk(component: object, at: str) -> Iterator[tuple[str, object]]:
        if id(component) in seen:
            return
        seen.add(id(component))
        yield at, component
        for name, value in getattr(component, "__dict__", {}).items():
            if not isinstance(value, type) and isinstance(value, Strategy | Stateful):
                yield from walk(value, f"{at}.{name}")

    yield from walk(root, path)


def collect(root: object, at: str = "strategy") -> dict[str, dict[str, Any]]:
    """Each component's own state, by attribute path; components without state are left out."""
    states = {}
    for path, component in components(root, at):
        if isinstance(component, Stateful):
            states[path] = component.state()
        elif (adapter := adapter_for(component)) is not None:
            states[path] = adapter[0](component)
    return states


def restore(root: object, states: dict[str, dict[str, Any]], at: str = "strategy") -> None:
    """Give every component under ``at`` its saved state; the chain must have the saved components."""
    states = {p: s for p, s in states.items() if p == at or p.startswith(f"{at}.")}
    found = 0
    for path, component in components(root, at):
        adapter = None if isinstance(component, Stateful) else adapter_for(component)
        if not isinstance(component, Stateful) and adapter is None:
            continue
        if path not in states:
            raise CheckpointError(f"no saved state for {path} ({type(component).__name__})")
        if isinstance(component, Stateful):
            component.restore(states[path])
        elif adapter is not None:
            adapter[1](component, states[path])
        found += 1
    if found != len(states):
        raise CheckpointError(f"saved state for components this strategy lacks: {sorted(states)}")


def seed_globals(seed: int) -> None:
    """Seed the process-wide generators (Flower's DP noise draws from NumPy's)."""
    rng = generator(seed, "server-globals")
    random.seed(int(rng.integers(2**63)))
    np.random.seed(rng.integers(2**32, size=4, dtype=np.uint64).astype(np.uint32))
    torch.manual_seed(int(rng.integers(2**63)))


def rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    name, mt, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, mt, int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().numpy(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, mt, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(mt, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.from_numpy(np.array(state["torch"], dtype=np.uint8)))


@dataclass(frozen=True)
class Checkpoint:
    round: int  # the last complete round; 0 before the first
    model: dict[str, np.ndarray]  # the global model's arrays, in the ArrayRecord's order
    strategy: dict[str, dict[str, Any]]  # component path -> its state (see collect)
    clients: dict[str, str]  # the clients' state files (ClientStore.commit): name -> SHA-256
    rng: dict[str, Any]  # rng_state()
    metrics_bytes: int  # metrics.jsonl's length with this round's row
    wall_time_s: float  # of all sessions of the run until this checkpoint
    scenario_sha256: str  # of scenario.toml: a resume must continue the same scenario


def clients_folder(run_dir: Path) -> Path:
    """Where the clients' state files are (fedsim/sim/client_store.py)."""
    return run_dir / CHECKPOINT_DIR / CLIENTS_DIR


class CheckpointWriter:
    """Writes one run's checkpoints; the clients' state files are the client store's, already written."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / CHECKPOINT_DIR
        for folder in (self.dir, self.dir / CLIENTS_DIR):
            if folder.is_symlink():  # its files are deleted below: never through a link to elsewhere
                raise CheckpointError(f"{folder}: a symbolic link; a run folder's checkpoint must be its own")
        (self.dir / CLIENTS_DIR).mkdir(parents=True, exist_ok=True)

    def save(self, checkpoint: Checkpoint) -> None:
        k = checkpoint.round
        state = {"model": checkpoint.model, "strategy": checkpoint.strategy, "rng": checkpoint.rng}
        main = self._write(self.dir / f"round-{k:06d}.npz", state)
        manifest = {
            "format": FORMAT,
            "round": k,
            "metrics_bytes": checkpoint.metrics_bytes,
            "wall_time_s": checkpoint.wall_time_s,
            "scenario_sha256": checkpoint.scenario_sha256,
            "state": main,
            "clients": checkpoint.clients,
        }
        sealed = {**manifest, "sha256": _digest(manifest)}
        write_atomic(self.dir / MANIFEST, json.dumps(sealed).encode())  # the commit
        self._delete_unreferenced({main["file"], *(f"{CLIENTS_DIR}/{name}" for name in checkpoint.clients)})

    def _write(self, path: Path, tree: Any) -> dict[str, Any]:
        arrays: dict[str, np.ndarray] = {}
        packed = pack(tree, arrays)
        data = npz_bytes(arrays)
        write_atomic(path, data)
        return {"file": str(path.relative_to(self.dir)), "sha256": sha256(data), "tree": packed}

    def _delete_unreferenced(self, keep: set[str]) -> None:
        for path in [*self.dir.iterdir(), *(self.dir / CLIENTS_DIR).iterdir()]:
            name = str(path.relative_to(self.dir))
            if path.is_file() and not path.is_symlink() and name != MANIFEST and name not in keep:
                path.unlink()


def load(run_dir: Path) -> Checkpoint:
    """The committed checkpoint of ``run_dir``; CheckpointError says what is wrong with it."""
    folder = run_dir / CHECKPOINT_DIR
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{manifest_path}: missing (the run stopped before its first checkpoint?)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        found = manifest.get("format")
        if isinstance(found, int) and found != FORMAT:
            raise CheckpointError(
                f"{manifest_path}: checkpoint format {found}, written by another fedsim version "
                f"(this one reads format {FORMAT}); go on with the version that wrote it"
            )
        if found != FORMAT:
            raise ValueError(f"format {found!r}, expected {FORMAT}")
        if manifest.pop("sha256", None) != _digest(manifest):
            raise ValueError(f"{MANIFEST}: content does not match its checksum (edited or damaged)")
        state = _read(folder, manifest["state"])
        clients = _client_files(manifest["clients"])
        return Checkpoint(
            round=_count(manifest["round"]),
            model=dict(state["model"]),
            strategy=dict(state["strategy"]),
            clients=clients,
            rng=dict(state["rng"]),
            metrics_bytes=_count(manifest["metrics_bytes"]),
            wall_time_s=float(manifest["wall_time_s"]),
            scenario_sha256=str(manifest["scenario_sha256"]),
        )
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise CheckpointError(f"{folder}: unreadable or corrupt ({reason})") from None


def _digest(manifest: dict[str, Any]) -> str:
    """Of the manifest's values: sorted keys and fixed separators give the same bytes after a reload."""
    return sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())


def _read(folder: Path, entry: dict[str, Any]) -> Any:
    file = Path(entry["file"])
    if file.is_absolute() or ".." in file.parts:  # the manifest names files inside the folder only
        raise ValueError(f"file {entry['file']!r} is outside the checkpoint folder")
    return unpack(entry["tree"], read_npz(folder / file, entry["sha256"]))


def _client_files(entries: Any) -> dict[str, str]:
    """The manifest's client state files: plain names in the clients folder, each with its SHA-256."""
    if not isinstance(entries, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and Path(k).name == k and k not in ("", ".", "..")
        for k, v in entries.items()
    ):
        raise ValueError(f"clients: expected file names and their SHA-256, got {str(entries)[:80]}")
    return dict(entries)


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value
