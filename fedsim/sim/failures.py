"""Why sampled clients did not deliver: counted per kind, and said in words the user can act on.

An error reply carries only Flower's reason text: ``<class '...'>:<'message'>``, the
exception the ClientApp raised, or the one Ray raised for the worker process.  Ray's
texts are matched here (its memory monitor's and its dead or unavailable actors').
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields

from fedsim import protocol
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import one_line

# Ray's memory monitor (raylet): "... worker(s) were killed due to the node running low on
# memory", "... exceeds the memory usage threshold of ...", the worker exit type
# NODE_OUT_OF_MEMORY, and ray.exceptions.OutOfMemoryError for tasks.
_OUT_OF_MEMORY = (
    "outofmemoryerror",
    "node_out_of_memory",
    "running low on memory",
    "memory usage threshold",
    "ray-oom-prevention",
    protocol.GPU_SHARE_EXCEEDED.lower(),  # a client capped at its GPU share (clients/gpu.py)
)
# The worker process is gone: Ray's actor errors (the actor restarts; the task is lost).
_CRASHED = ("actordiederror", "actorunavailableerror", "rayactorerror", "workercrashederror")


@dataclass(frozen=True)
class Failures:
    """Sampled clients whose work did not reach the aggregation, by cause."""

    raised: int = 0  # the ClientApp raised (faults.failure_rate, or a bug)
    crashed: int = 0  # the client's process died (faults.crash_rate, a segfault, a kill)
    out_of_memory: int = 0  # Ray killed the client's process for memory, or it outgrew its GPU share
    timed_out: int = 0  # no reply before resources.round_timeout_s (faults.dropout_rate)
    rejected: int = 0  # a reply that failed screening (fedsim/sim/replies.py)

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def __add__(self, other: Failures) -> Failures:
        return Failures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def describe(self) -> str:
        words = {
            "raised": "raised",
            "crashed": "crashed",
            "out_of_memory": "out of memory",
            "timed_out": "did not answer",
            "rejected": "rejected",
        }
        return ", ".join(f"{getattr(self, k)} {w}" for k, w in words.items() if getattr(self, k))


def kind_of(reason: str) -> str:
    """``raised``, ``crashed`` or ``out_of_memory`` for an error reply's reason."""
    text = reason.lower()
    if any(marker in text for marker in _OUT_OF_MEMORY):
        return "out_of_memory"
    if any(marker in text for marker in _CRASHED):
        return "crashed"
    return "raised"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its task names
_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)(?:\((\w+)\))?'>")


def summary(reason: str, limit: int = 200) -> str:
    """An error reply's reason in one short line: Ray's run to pages of tracebacks.

    A ClientApp's exception reaches the server as Flower's ``ClientAppException``
    (``... Message: <what it said>``), wrapped in Ray's ``RayTaskError``; Ray's own
    errors as their class and message.
    """
    text = _ANSI.sub("", reason)
    said = text.rsplit("Message: ", 1)[1] if "ClientAppException" in text and "Message: " in text else None
    match = _CLASS.search(text)
    kind = (match.group(2) or match.group(1)) if match else ""
    if said is None:
        said = text[match.end() :] if match else text
    said = " ".join(said.strip(":<>'\" \n").split())
    line = one_line(f"{kind}: {said}" if kind and kind != "ClientAppException" else said)
    return line if len(line) <= limit else f"{line[: limit - 3]}..."


def count(reasons: Iterable[str], timed_out: int = 0, rejected: int = 0) -> Failures:
    kinds = [kind_of(r) for r in reasons]
    return Failures(
        raised=kinds.count("raised"),
        crashed=kinds.count("crashed"),
        out_of_memory=kinds.count("out_of_memory"),
        timed_out=timed_out,
        rejected=rejected,
    )


def out_of_memory_advice(scenario: Scenario) -> str:
    """The scenario values that lower the memory clients need at once, with their current values."""
    res, client = scenario.resources, scenario.client
    advice = [
        f"raise resources.client_cpus (now {res.client_cpus:g}) so fewer clients run at once",
        f"lower client.batch_size (now {client.batch_size})",
    ]
    if "hidden_size" in scenario.model.params:  # lstm, gru
        hidden = scenario.model.params["hidden_size"]
        advice.append(f"lower model.params.hidden_size (now {hidden}) or data.params.seq_len")
    return "Ray killed a client for lack of memory: " + "; ".join(advice)
