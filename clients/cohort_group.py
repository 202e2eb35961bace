"""How a worker trains the group a cohort message names: in chunks that fit, captured or not.

The worker decides the chunk, not the server: it is the one that knows its device and
what is free on it when the group arrives (other actors share the GPU or the RAM, and a
GPU worker keeps its clients' data resident).  Without ``resources.cohort_size`` the chunk
is as many clients as fit (clients/cohort_memory.py); with it, the server's groups are
trained whole.  The worker says what it did in the reply (:class:`Report`), and the server
logs it (fedsim/sim/cohort_engine.py).

Clients are independent, so chunking changes no result; neither does an out-of-memory
retry: the chunk is halved, the failed chunk's generators are wound back, and it runs
again.  The halved size is kept for the rest of the process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from clients import capture, cohort, cohort_memory, compile_cache, training
from clients.cohort import Result
from clients.cohort_schedule import Member
from fedsim.scenario.sections import ClientConfig


@dataclass(frozen=True)
class Options:
    capture: bool
    cohort_size: int | None  # the scenario's; None: chunks from memory
    client_cpus: float
    client_gpus: float


@dataclass(frozen=True)
class Report:
    """What the worker did with a group, for the server's log (never aggregated)."""

    clients: int
    chunk: int  # clients trained at once, in the end
    chunks: int
    fit: int  # clients the memory estimate lets train at once
    footprint_bytes: int  # one client's (clients/cohort_memory.py)
    available_bytes: int
    captured: bool
    compile_s: float  # spent compiling for this group; 0 when the shape was compiled before
    halvings: int  # out-of-memory retries with half the chunk
    in_turn: bool = False  # trained one after another: vmap would not pay (cohort.vmap_pays)
    cache_hits: int = 0  # compiled graphs loaded from the on-disk cache for this group
    cache_misses: int = 0  # compiled graphs built (and saved to it)


@dataclass(frozen=True)
class Trained:
    results: list[Result]
    report: Report


_CEILING: dict[tuple[int, int], int] = {}  # (model id, B) -> the chunk an out-of-memory error left


def train_group(model: nn.Module, members: Sequence[Member], cfg: ClientConfig, options: Options) -> Trained:
    """Every member's training, as :func:`clients.cohort.train_cohort` gives it, chunk by chunk;
    the report says whether a compile came from the on-disk cache (clients/compile_cache.py)."""
    before = compile_cache.Lookups.now()
    trained = _train_group(model, members, cfg, options)
    looked = compile_cache.Lookups.now() - before
    report = dataclasses.replace(trained.report, cache_hits=looked.hits, cache_misses=looked.misses)
    return Trained(trained.results, report)


def _train_group(model: nn.Module, members: Sequence[Member], cfg: ClientConfig, options: Options) -> Trained:
    device = next(model.parameters()).device
    if cohort.not_vectorizable(model) is not None:  # rows interact: each client's own batches
        return _in_turn(model, members, cfg, captured=False)
    if not cohort.vmap_pays(model, device):
        return _in_turn(model, members, cfg, options.capture)
    need = _footprint(model, members, cfg, options.capture)
    available = cohort_memory.available_bytes(device, options.client_cpus, options.client_gpus)
    fit = cohort_memory.group_size(len(members), available, need.total)
    ceiling = _CEILING.get((id(model), cfg.batch_size), len(members))
    chunk = min(len(members) if options.cohort_size else fit, ceiling)
    chunk = cohort_memory.even_chunk(len(members), chunk)
    results: list[Result] = []
    captured, compile_s, halvings, chunks = options.capture, 0.0, 0, 0
    while len(results) < len(members):
        part = list(members[len(results) : len(results) + chunk])
        wound = [m.generator.get_state() for m in part]
        try:
            done, spent = _train_chunk(model, part, cfg, chunk if captured else 0)
        except torch.OutOfMemoryError:
            if chunk == 1:
                raise
            done = (
                None  # halved below, out of the except block: its traceback holds the failed step's tensors
            )
        if done is None:
            for member, state in zip(part, wound, strict=True):
                member.generator.set_state(state)
            chunk = _halve(model, cfg, chunk, len(members) - len(results))
            halvings += 1
            continue
        captured = captured and spent is not None
        compile_s += spent or 0.0
        results.extend(done)
        chunks += 1
    report = Report(len(members), chunk, chunks, fit, need.total, available, captured, compile_s, halvings)
    return Trained(results, report)


def _in_turn(model: nn.Module, members: Sequence[Member], cfg: ClientConfig, captured: bool) -> Trained:
    """Each member on its own from the group's start, one after another, in one message:
    :func:`clients.training.train` itself, or captured, the compiled step of one slot (vmap
    over a single client leaves its convolutions plain)."""
    # The whole state, buffers too (a batch norm's running statistics are each client's own).
    start = {name: t.detach().clone() for name, t in model.state_dict().items()}
    results: list[Result] = []
    compile_s = 0.0
    for member in members:
        done = _captured(model, [member], cfg, 1) if captured else None
        if done is None:  # eager, also from here on if the step could not be compiled
            captured = False
            _load(model, start)
            own = dataclasses.replace(cfg, local_epochs=member.local_epochs)
            loss = training.train(model, member.data, own, member.generator, member.terms)
            results.append(Result({name: t.detach().clone() for name, t in model.state_dict().items()}, loss))
        else:
            results.extend(done.results)
            compile_s += done.compile_s
    _load(model, start)  # left as it came, as the stacked path leaves it
    n = len(members)
    return Trained(results, Report(n, 1, n, n, 0, 0, captured, compile_s, 0, in_turn=True))


@torch.no_grad()
def _load(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    model.load_state_dict(state)


def _train_chunk(
    model: nn.Module, part: list[Member], cfg: ClientConfig, slots: int
) -> tuple[list[Result], float | None]:
    """The chunk's results and compile time; None for the time when it trained eagerly."""
    if slots and (done := _captured(model, part, cfg, slots)) is not None:
        return done.results, done.compile_s
    return cohort.train_cohort(model, part, cfg), None


def _captured(model: nn.Module, part: list[Member], cfg: ClientConfig, slots: int) -> capture.Captured | None:
    """The captured step's training; None, the generators wound back, if it cannot compile."""
    wound = [m.generator.get_state() for m in part]
    done = capture.train_captured(model, part, cfg, slots)
    if done is None:  # it drew the batch schedule before trying to compile: drawn again eagerly
        for member, state in zip(part, wound, strict=True):
            member.generator.set_state(state)
    return done


def _halve(model: nn.Module, cfg: ClientConfig, chunk: int, left: int) -> int:
    """The chunk after an out-of-memory error: half, kept for later groups; memory freed first."""
    capture.forget()  # compiled shapes hold buffers and graph memory; the new chunk needs its own
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    _CEILING[(id(model), cfg.batch_size)] = chunk // 2
    return cohort_memory.even_chunk(left, chunk // 2)


def _footprint(
    model: nn.Module, members: Sequence[Member], cfg: ClientConfig, captured: bool
) -> cohort_memory.Footprint:
    sample = members[0].data.x[:1]
    batch = sample.expand(cfg.batch_size, *sample.shape[1:])
    parameters = sum(p.numel() for p in model.parameters())
    data = max(m.data.x.nbytes + m.data.y.nbytes for m in members)
    activations = cohort_memory.activation_elements(model, batch)
    itemsize = next(model.parameters()).element_size()
    return cohort_memory.footprint(
        parameters, activations, data, momentum=bool(cfg.momentum), captured=captured, itemsize=itemsize
    )
