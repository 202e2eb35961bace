"""Start Flower's processes, wait until they are ready, and always stop every one of them.

Each process starts in a session of its own (so a Ctrl-C in the terminal reaches only
fedsim, which then stops them in order) and its PID is recorded.  Flower's processes
start more processes: the SuperLink a *detached* SuperExec (a session of its own
again) that starts the ServerApp, each SuperNode a SuperExec that starts a ClientApp
per message.  Killing a process group would miss the detached ones, so :meth:`stop`
walks the process tree (``/proc``, Linux) and signals every descendant by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

GRACE_S = 10.0  # after SIGTERM, before SIGKILL; a SuperNode takes a few seconds to shut down
POLL_S = 0.1


class StartError(RuntimeError):
    """A process exited or did not become ready; ``process.log_tail()`` says why."""

    def __init__(self, message: str, process: Started) -> None:
        super().__init__(message)
        self.process = process


@dataclass
class Started:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None  # None: output goes to this terminal

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class ProcessGroup:
    """Processes started for one command; a context manager that stops them all on exit."""

    env: Mapping[str, str]
    log_dir: Path | None = None  # None: processes write to this terminal
    started: list[Started] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # every PID started or found below one

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Started:
        stream: IO[bytes] | None = None
        log = self.log_dir / f"{name}.log" if self.log_dir else None
        if log is not None:
            stream = open(log, "wb")  # noqa: SIM115  (the child keeps it; closed below)
        try:
            popen = subprocess.Popen(
                list(argv),
                env=dict(self.env if env is None else env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=stream,
                stderr=subprocess.STDOUT if stream else None,
                start_new_session=True,
            )
        finally:
            if stream is not None:
                stream.close()
        process = Started(name, popen, log)
        self.started.append(process)
        self.seen.add(popen.pid)
        return process

    def run(
        self, commands: Mapping[str, Sequence[str]], timeout: float, env: Mapping[str, str] | None = None
    ) -> None:
        """Run short commands side by side to the end; raise StartError for the first that fails."""
        batch = [self.start(name, argv, env) for name, argv in commands.items()]
        deadline = time.monotonic() + timeout
        for process in batch:
            try:
                code = process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise StartError(f"{process.name} did not finish within {timeout:.0f} s", process) from None
            if code != 0:
                raise StartError(f"{process.name} failed with exit code {code}", process)
        for process in batch:  # done and reaped: its PID may be reused, so never signal it again
            self.started.remove(process)

    def wait_until(self, process: Started, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until true; raise StartError if the process exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise StartError(f"{process.name} did not {what} within {timeout:.0f} s", process)
            time.sleep(POLL_S)

    def check_alive(self, ignore: Started | None = None) -> None:
        """Raise StartError naming the first started process (but ``ignore``) that has exited."""
        for process in self.started:
            if process is not ignore and process.popen.poll() is not None:
                raise StartError(f"{process.name} exited with code {process.popen.returncode}", process)

    def pids(self) -> set[int]:
        """Every PID this group started or has seen running below one of its processes."""
        self.seen.update(descendants(*(p.pid for p in self.started)))
        return set(self.seen)

    def stop(self) -> None:
        """SIGTERM every started process, newest first; SIGKILL whatever outlives the grace.

        Only PIDs found running now are signalled (a PID noted earlier may have been
        reused); the tree is looked at again while waiting, for processes started late.
        """
        running = [p.pid for p in self.started if p.popen.poll() is None]
        # A process that exited may have left children in its group (a refused SuperNode's
        # SuperExec, which would write into a Flower home already removed): while any member
        # lives, the group's id (the leader's PID) cannot be reused.
        ended = {p.pid for p in self.started if p.pid not in running}
        targets = set(running) | descendants(*running) | group_members(ended)
        for pid in reversed(running):  # Flower's shutdown then stops its own children
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and self._alive(targets):
            time.sleep(POLL_S)
        for pid in self._alive(targets):
            _signal(pid, signal.SIGKILL)
        for pid in running:
            # Orphans still in a process group of ours (their parent died first).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for process in self.started:
            process.popen.wait()
        deadline = time.monotonic() + GRACE_S  # SIGKILL is delivered asynchronously
        while time.monotonic() < deadline and any(is_alive(pid) for pid in targets):
            time.sleep(POLL_S)
        self.seen.update(targets)

    def _alive(self, targets: set[int]) -> list[int]:
        """Living ``targets``, adding children they started since the last look."""
        for process in self.started:
            process.popen.poll()  # reap our children: a zombie must not count as running
        living = {pid for pid in targets if is_alive(pid)}
        targets.update(descendants(*living))
        return [pid for pid in targets if is_alive(pid)]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def descendants(*pids: int) -> set[int]:
    """PIDs of every living process below ``pids`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for child, parent, _ in _stats():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    stack = list(pids)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def group_members(groups: set[int]) -> set[int]:
    """PIDs of every living process in one of the process ``groups``."""
    return {pid for pid, _, group in _stats() if group in groups} if groups else set()


def _stats() -> Iterator[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every process."""
    if not os.path.isdir("/proc"):  # not Linux: only the process groups are signalled
        return
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        yield int(entry.name), int(fields[1]), int(fields[2])


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as stopped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
