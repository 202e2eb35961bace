"""The checkpoint folder on disk: one committed round at any moment, whatever write a kill interrupts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedsim.results import statetree
from fedsim.results.records import RoundRecord
from fedsim.results.run_dir import RunDirectory, read_metrics
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import checkpoint as ckpt
from fedsim.sim import client_store
from fedsim.sim.client_store import ClientStore, State

SCENARIO = parse_scenario("name = 't'\nrounds = 5")


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no clean-up."""


def state(k: int, clients: dict[str, str] | None = None) -> ckpt.Checkpoint:
    return ckpt.Checkpoint(
        round=k,
        model={"w": np.full(3, k, np.float32), "b": np.arange(k + 1, dtype=np.float64)},
        strategy={"strategy.inner": {"m_t": None if k == 0 else {"w": np.full(3, 0.1 * k)}}},
        clients=clients or {},
        rng={"numpy": ["MT19937", np.arange(4, dtype=np.uint32), k, 0, 0.0]},
        metrics_bytes=10 * k,
        wall_time_s=1.5 * k,
        scenario_sha256="abc",
    )


def client(value: float) -> State:
    return {"c_i": {"w": np.full(2, value, np.float32)}}


def files(run: Path) -> list[str]:
    folder = run / ckpt.CHECKPOINT_DIR
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def save_rounds(run: Path, rounds: range) -> ClientStore:
    """Client 0 changes in every round, client 1 only in round 1; a run that goes on from a
    checkpoint restores its clients' states first, as the server does."""
    writer = ckpt.CheckpointWriter(run)
    store = ClientStore(ckpt.clients_folder(run))
    if rounds.start:
        store.restore(ckpt.load(run).clients)
    for k in rounds:
        if k:
            store.put(0, client(k))
        if k == 1:
            store.put(1, client(1.0))
        writer.save(state(k, store.commit(k)))
    return store


def test_each_save_commits_its_round_and_keeps_only_the_files_it_needs(tmp_path: Path) -> None:
    save_rounds(tmp_path, range(4))
    loaded = ckpt.load(tmp_path)
    assert loaded.round == 3 and loaded.metrics_bytes == 30 and loaded.wall_time_s == 4.5
    assert (
        np.array_equal(loaded.model["w"], np.full(3, 3, np.float32)) and loaded.model["b"].dtype == np.float64
    )
    assert list(loaded.model) == ["w", "b"]
    assert np.array_equal(loaded.strategy["strategy.inner"]["m_t"]["w"], np.full(3, 0.1 * 3))
    clients = ClientStore(ckpt.clients_folder(tmp_path))
    clients.restore(loaded.clients)
    assert [clients.get(p)["c_i"]["w"].tolist() for p in (0, 1)] == [[3.0, 3.0], [1.0, 1.0]]  # type: ignore[index]
    # Client 1's state from round 1 still holds, so round 1's file is kept rather than rewritten.
    assert files(tmp_path) == [
        "checkpoint.json",
        "clients/r000001.npz",
        "clients/r000003.npz",
        "round-000003.npz",
    ]


def write_steps(run: Path) -> int:
    """How many files saving one more round writes (the commit record last)."""
    save_rounds(run, range(3))
    counting = _Counting(statetree.write_atomic)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ckpt, "write_atomic", counting)
        patch.setattr(client_store, "write_atomic", counting)
        save_rounds(run, range(3, 4))
    return counting.calls


class _Counting:
    def __init__(self, inner: Callable[[Path, bytes], None]) -> None:
        self.inner, self.calls = inner, 0

    def __call__(self, path: Path, data: bytes) -> None:
        self.calls += 1
        self.inner(path, data)


def killed_at(step: int, half_written: bool) -> Callable[[Path, bytes], None]:
    """write_atomic that dies at its ``step``-th call, leaving a temp file (whole or half)."""
    calls = [0]

    def write(path: Path, data: bytes) -> None:
        calls[0] += 1
        if calls[0] == step:
            temp = path.with_name(f".{path.name}.tmp")
            temp.write_bytes(data[: len(data) // 2] if half_written else data)
            raise Killed
        statetree.write_atomic(path, data)

    return write


@pytest.mark.parametrize("half_written", [False, True], ids=["before-rename", "mid-write"])
def test_a_kill_at_any_write_leaves_the_last_committed_round(tmp_path: Path, half_written: bool) -> None:
    steps = write_steps(tmp_path / "probe")  # round 3 after rounds 0-2: the clients', state, commit record
    assert steps == 3
    for step in range(1, steps + 1):
        run = tmp_path / f"kill-{step}"
        save_rounds(run, range(3))
        with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
            kill = killed_at(step, half_written)
            patch.setattr(ckpt, "write_atomic", kill)
            patch.setattr(client_store, "write_atomic", kill)
            save_rounds(run, range(3, 4))
        assert ckpt.load(run).round == 2  # the commit record was never replaced
        save_rounds(run, range(3, 4))  # the resumed run redoes round 3 ...
        assert ckpt.load(run).round == 3
        stray = [f for f in files(run) if Path(f).name.startswith(".") or "r000002" in f]
        assert not stray  # ... and clears the rest


def test_a_kill_after_the_commit_keeps_the_new_round(tmp_path: Path) -> None:
    save_rounds(tmp_path, range(3))

    def killed(*_: Any) -> None:
        raise Killed

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(ckpt.CheckpointWriter, "_delete_unreferenced", killed)
        save_rounds(tmp_path, range(3, 4))
    assert ckpt.load(tmp_path).round == 3 and "round-000002.npz" in files(tmp_path)
    save_rounds(tmp_path, range(4, 5))
    assert "round-000002.npz" not in files(tmp_path)


def test_a_checkpoint_whose_clients_folder_is_a_link_is_refused_and_nothing_is_deleted(
    tmp_path: Path,
) -> None:
    """A run folder is data a user copies and unpacks: its deletions must stay inside it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    save_rounds(tmp_path / "run", range(2))
    clients = ckpt.clients_folder(tmp_path / "run")
    for kept in clients.iterdir():
        kept.unlink()
    clients.rmdir()
    clients.symlink_to(elsewhere)
    with pytest.raises(ckpt.CheckpointError, match="a symbolic link"):
        ckpt.CheckpointWriter(tmp_path / "run")
    assert (elsewhere / "precious.txt").read_text() == "keep me"


def record(k: int) -> RoundRecord:
    return RoundRecord(k, 0.1 * k, 1.0, 1.0, None, None, 10, 0, 0.5, 0.1)


def test_rows_after_the_committed_round_are_cut_on_resume(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run", SCENARIO)
    writer = ckpt.CheckpointWriter(run.path)
    committed = 0
    for k in (1, 2, 3):
        run.append(record(k))  # the row first ...
        if k < 3:  # ... then the commit: round 3's never happens (killed)
            committed = run.metrics_bytes
            writer.save(dataclasses.replace(state(k), metrics_bytes=committed))
    with open(run.path / "metrics.jsonl", "a", encoding="utf-8") as stream:
        stream.write('{"round": 4, "accur')  # and a row cut short by the kill
    run.close()  # the killed process's lock goes with it
    reopened = RunDirectory.reopen(run.path, SCENARIO, ckpt.load(run.path).metrics_bytes, 2)
    assert ckpt.load(run.path).metrics_bytes == committed
    assert [r.round for r in reopened.records] == [1, 2] == [r["round"] for r in read_metrics(run.path)]
    reopened.append(record(3))
    assert [r["round"] for r in read_metrics(run.path)] == [1, 2, 3]


def test_metrics_that_do_not_fit_the_checkpoint_are_refused(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run", SCENARIO)
    run.append(record(1))
    size = run.metrics_bytes
    run.close()
    with pytest.raises(ScenarioError, match="shorter than the checkpoint"):
        RunDirectory.reopen(run.path, SCENARIO, size + 1, 1)
    with pytest.raises(ScenarioError, match="expected rounds 1 to 2"):
        RunDirectory.reopen(run.path, SCENARIO, size, 2)


def stopped_after_three_rows(folder: Path) -> int:
    """A run folder whose process stopped with rows 1-3 written; the length up to row 2."""
    run = RunDirectory(folder, SCENARIO)
    run.append(record(1))
    run.append(record(2))
    committed = run.metrics_bytes
    run.append(record(3))
    run.close()
    return committed


def test_rows_that_do_not_fit_are_refused_before_the_file_is_cut(tmp_path: Path) -> None:
    committed = stopped_after_three_rows(tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes().replace(b'"round": 2,', b'"round": 7,'))
    before = metrics.read_bytes()
    with pytest.raises(ScenarioError, match="expected rounds 1 to 2 before the checkpoint"):
        RunDirectory.reopen(tmp_path / "run", SCENARIO, committed, 2)
    assert metrics.read_bytes() == before  # nothing cut: round 3's row is still there


def test_a_cut_that_would_fall_inside_a_row_is_refused(tmp_path: Path) -> None:
    """One byte short of row 2's end: rounds 1 and 2 would still parse, but row 3 would join row 2."""
    committed = stopped_after_three_rows(tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.jsonl"
    before = metrics.read_bytes()
    with pytest.raises(ScenarioError, match="end inside a row"):
        RunDirectory.reopen(tmp_path / "run", SCENARIO, committed - 1, 2)
    assert metrics.read_bytes() == before


def corrupt_manifest(run: Path) -> None:
    (run / "checkpoint" / "checkpoint.json").write_text("{not json")


def flip_a_byte(run: Path) -> None:
    path = run / "checkpoint" / "round-000002.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_manifest(run: Path, edit: Callable[[dict[str, Any]], None], reseal: bool = False) -> None:
    """Change checkpoint.json; ``reseal``: and its checksum too, as one who knows the format could."""
    path = run / "checkpoint" / "checkpoint.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    if reseal:
        manifest.pop("sha256")
        manifest["sha256"] = ckpt._digest(manifest)
    path.write_text(json.dumps(manifest))


def point_outside(run: Path) -> None:
    """Resealed: the file names are checked whatever the checksum says."""
    edit_manifest(run, lambda m: m["state"].__setitem__("file", "../../etc/passwd"), reseal=True)


def point_a_layer_at_another_array(run: Path) -> None:
    """The model's ``w`` read from the array of the strategy's ``m_t.w``, of the same shape."""
    tree = json.loads((run / "checkpoint" / "checkpoint.json").read_text())["state"]["tree"]
    other = tree["strategy"]["strategy.inner"]["m_t"]["w"]
    assert other != tree["model"]["w"]
    edit_manifest(run, lambda m: m["state"]["tree"]["model"].__setitem__("w", other))


def wrong_format(run: Path) -> None:
    manifest = json.loads((run / "checkpoint" / "checkpoint.json").read_text())
    manifest["format"] = 99
    (run / "checkpoint" / "checkpoint.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (corrupt_manifest, "corrupt"),
        (flip_a_byte, "does not match its checksum"),
        (point_outside, "outside the checkpoint folder"),
        (point_a_layer_at_another_array, "checkpoint.json: content does not match its checksum"),
        (wrong_format, "format 99"),
        (lambda run: (run / "checkpoint" / "round-000002.npz").unlink(), "No such file"),
        (lambda run: (run / "checkpoint" / "checkpoint.json").unlink(), "missing"),
    ],
    ids=["json", "checksum", "outside", "layer-swapped", "format", "lost-file", "no-commit"],
)
def test_a_damaged_checkpoint_is_refused_with_the_reason(
    tmp_path: Path, damage: Callable[[Path], None], says: str
) -> None:
    save_rounds(tmp_path, range(3))
    damage(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match=says) as caught:
        ckpt.load(tmp_path)
    assert "\n" not in str(caught.value)
