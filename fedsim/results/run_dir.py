"""The run folder: ``scenario.toml``, ``metrics.jsonl``, ``summary.json``, ``model.pt``,
and for text data ``vocab.json`` (token id -> character, to use the model later).

Rows are appended and flushed to disk as each round ends, so a run that dies
keeps every round it finished; ``summary.json`` says whether it completed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import torch

from fedsim.data.vocab import Vocabulary
from fedsim.results import per_client
from fedsim.results import rows as metrics_rows
from fedsim.results.records import RoundRecord, Summary, summarize
from fedsim.results.runlock import LOCK_FILE, RunLock
from fedsim.results.statetree import write_atomic
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError, describe

__all__ = [  # RoundRecord, Summary and summarize live in fedsim/results/records.py
    "METRICS_FILE",
    "MODEL_FILE",
    "SCENARIO_FILE",
    "SUMMARY_FILE",
    "VOCAB_FILE",
    "RoundRecord",
    "RunDirectory",
    "Summary",
    "default_out_dir",
    "read_metrics",
    "read_records",
    "read_rows",
    "read_vocab",
    "summarize",
    "to_records",
]

METRICS_FILE, SUMMARY_FILE, SCENARIO_FILE, MODEL_FILE, VOCAB_FILE = (
    "metrics.jsonl",
    "summary.json",
    "scenario.toml",
    "model.pt",
    "vocab.json",
)


def default_out_dir(scenario: Scenario, base: Path = Path("runs")) -> Path:
    return base / f"{scenario.name}-{datetime.now():%Y%m%d-%H%M%S}"


class RunDirectory:
    """Owns one run folder, locked against other writers (fedsim/results/runlock.py) until its results
    are written; refuses to write into a folder that already holds files.

    :meth:`reopen` takes over the folder of a stopped run instead, to resume it.
    """

    def __init__(self, path: Path, scenario: Scenario) -> None:
        _refuse_files(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ScenarioError("--out", f"cannot write to {path} ({error.strerror})") from None
        lock = RunLock.take(path, "--out")
        try:
            _refuse_files(path, LOCK_FILE)  # another run may have created it since the first look
            (path / SCENARIO_FILE).write_text(scenario.to_toml(), encoding="utf-8")
            self._attach(path, scenario, [], lock)
        except OSError as error:
            lock.release()
            raise ScenarioError("--out", f"cannot write to {path} ({error.strerror})") from None
        except BaseException:
            lock.release()
            raise

    def _attach(self, path: Path, scenario: Scenario, records: list[RoundRecord], lock: RunLock) -> None:
        self.path = path
        self.scenario = scenario
        self.records = records
        self._metrics: IO[str] = open(path / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = lock

    @classmethod
    def reopen(
        cls, path: Path, scenario: Scenario, metrics_bytes: int, rounds: int, lock: RunLock | None = None
    ) -> RunDirectory:
        """The folder of a stopped run, ``metrics.jsonl`` cut back to its first ``metrics_bytes``.

        Rows past that length belong to a round whose checkpoint never committed (or were
        cut short by the kill); they go.  The file is cut only once the rows kept are
        checked: whole rows of rounds 1..``rounds``, ending exactly at the cut.  ``lock``:
        the folder's, taken by the caller before it read the checkpoint; else taken here.
        """
        lock = lock or RunLock.take(path, "--resume")
        try:
            records = _cut_rows(path / METRICS_FILE, metrics_bytes, rounds)
            per_client.cut(path / per_client.CLIENTS_FILE, rounds)
            directory = cls.__new__(cls)
            directory._attach(path, scenario, records, lock)
        except BaseException:
            lock.release()
            raise
        return directory

    @property
    def metrics_bytes(self) -> int:
        """``metrics.jsonl``'s length: checkpoints record it with each round."""
        self._metrics.flush()
        return os.fstat(self._metrics.fileno()).st_size

    def save_vocab(self, vocab: Vocabulary) -> None:
        write_atomic(self.path / VOCAB_FILE, vocab.to_json().encode())

    def append(self, record: RoundRecord) -> None:
        """The round's row into ``metrics.jsonl`` (and its clients' outcomes into ``clients.jsonl``)."""
        if record.clients:  # first: a resume cuts clients.jsonl back to the rows metrics.jsonl kept
            self._append_line(
                self.path / per_client.CLIENTS_FILE, per_client.line(record.round, record.clients)
            )
        row = _rounded(record.row())
        try:  # one write, then fsync: a kill leaves at most this row cut short (metrics_rows.py)
            self._metrics.write(json.dumps(row) + "\n")
            self._metrics.flush()
            os.fsync(self._metrics.fileno())
        except OSError as error:  # a full disk: name the file, not only the reason
            raise OSError(error.errno, error.strerror, str(self.path / METRICS_FILE)) from None
        # Kept as written: a resumed run reads its earlier rows back rounded, and its
        # summary must add up the same values as one that ran through.
        self.records.append(RoundRecord.from_row(row))

    @staticmethod
    def _append_line(path: Path, text: str) -> None:
        try:
            with open(path, "a", encoding="utf-8") as stream:
                stream.write(text + "\n")
                stream.flush()
                os.fsync(stream.fileno())
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None

    def close(self) -> None:
        """Let go of the folder without writing results, as a process that stops here would."""
        self._metrics.close()
        self._lock.release()

    def finish(
        self,
        model_state: dict[str, torch.Tensor] | None,
        wall_time_s: float,
        error: str | None = None,
        privacy_stop: str | None = None,
        epsilon: float | None = None,
    ) -> Summary:
        """Write ``model.pt`` (unless ``model_state`` is None) and ``summary.json``, then let go.

        Each file is replaced atomically: a write that fails (a full disk) leaves the previous
        file or none, never one cut short.  A model that cannot be written fails the run, and
        the summary says so; the first write that failed is raised (OSError naming its path)
        once the folder is let go.
        """
        self._metrics.close()
        failed: OSError | None = None
        try:
            if model_state is not None:
                write_atomic(self.path / MODEL_FILE, _saved(model_state))
        except OSError as write_error:
            failed = write_error
            error = error or f"cannot write the model: {describe(write_error)}"
        summary = summarize(self.scenario, self.records, wall_time_s, error, privacy_stop, epsilon)
        text = json.dumps(dataclasses.asdict(summary), indent=2) + "\n"
        try:
            write_atomic(self.path / SUMMARY_FILE, text.encode())
        except OSError as write_error:
            failed = failed or write_error
        finally:
            self._lock.release()
        if failed is not None:
            raise failed
        return summary


def _saved(model_state: dict[str, torch.Tensor]) -> bytes:
    """``torch.save``'s bytes, for an atomic write (torch would write the file in place)."""
    buffer = io.BytesIO()
    torch.save(model_state, buffer)
    return buffer.getvalue()


def _refuse_files(path: Path, *allowed: str) -> None:
    if path.exists() and (not path.is_dir() or any(p.name not in allowed for p in path.iterdir())):
        raise ScenarioError("--out", f"{path} already exists and is not empty; choose another folder")


def _cut_rows(metrics: Path, metrics_bytes: int, rounds: int) -> list[RoundRecord]:
    """The records of ``metrics``'s first ``metrics_bytes``, checked, then the file cut there."""
    try:
        with open(metrics, "r+b") as stream:
            kept = stream.read(metrics_bytes)
            if len(kept) < metrics_bytes:
                raise ValueError(f"shorter than the checkpoint's {metrics_bytes} bytes")
            records = to_records(metrics_rows.parse(kept, f"its first {metrics_bytes} bytes"))
            if [r.round for r in records] != list(range(1, rounds + 1)):
                raise ValueError(f"expected rounds 1 to {rounds} before the checkpoint")
            stream.truncate(metrics_bytes)
            os.fsync(stream.fileno())
    except OSError as error:
        raise ScenarioError("--resume", f"{metrics}: {error.strerror}") from None
    except (ValueError, TypeError) as error:
        raise ScenarioError("--resume", f"{metrics}: does not fit the checkpoint ({error})") from None
    return records


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    """Times to the millisecond; metrics keep full precision (runs are compared bitwise)."""
    return {k: round(v, 3) if k.endswith("_s") and v is not None else v for k, v in row.items()}


def read_vocab(run_dir: Path) -> Vocabulary:
    return Vocabulary.from_json((run_dir / VOCAB_FILE).read_text(encoding="utf-8"))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The complete rows of ``metrics.jsonl``; a last row cut short by a kill is left out."""
    return read_rows(run_dir)[0]


def read_rows(run_dir: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The complete rows, and a note if a last row cut short was left out (metrics_rows.RowError
    for a row that is not JSON)."""
    path = run_dir / METRICS_FILE
    return metrics_rows.complete(path.read_bytes(), str(path))


def read_records(run_dir: Path) -> list[RoundRecord]:
    """``metrics.jsonl``'s complete rows as records."""
    return to_records(read_metrics(run_dir))


def to_records(rows: list[dict[str, Any]]) -> list[RoundRecord]:
    """Rows as records; numbers under names of no field are a strategy's own metrics."""
    return [RoundRecord.from_row(row) for row in rows]
