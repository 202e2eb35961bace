"""Graph capture of a cohort's local step (``[resources] capture``): compiled once per shape.

A cohort step (clients/cohort.py) is a few hundred small operations launched from Python
through vmap's batching rules; on a GPU the launches, not the arithmetic, take the time.
Captured, the step is one program of fixed shapes:

* its inputs are always (slots, B, ...): the schedule pads a short batch to B rows of
  weight 0, and a client that is done, or a slot no client fills, is masked (``active`` 0),
  so neither the live clients nor a short batch change a shape.  The mask is always a
  tensor here; with a mask of ones the masked update is the unmasked one exactly (a
  multiplication by 1.0), so the captured and eager steps do the same arithmetic;
* the state lives in static buffers (one :class:`~clients.cohort.Stack` per shape): a group
  is copied in, every step copies its batch into the input buffers and runs, and the
  group is copied out.

How: ``torch.compile(fullgraph=True, dynamic=False)`` (inductor) on every device; on CUDA
the compiled step is then recorded once into a ``torch.cuda.CUDAGraph`` that every step
replays.  Not ``mode="reduce-overhead"``: its CUDA graph trees leave out graphs that mutate
inputs other than parameters ("skipping cudagraphs due to mutated inputs"), and this step
updates the stacked parameters, momentum and losses in place; they also hand out outputs
that the next replay overwrites.  Holding the graph and its buffers here makes the buffers
the state.  The compiled function is the same on both devices, so the CPU tests check the
arithmetic that the GPU's graph replays.

Compiling costs once per machine and per :class:`Shape`: the compiled step is kept on disk and
a later process loads it (clients/compile_cache.py; the numbers are in benchmarks/README.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from clients import cohort, compile_cache
from clients.cohort import Params, Prepared, Stack
from clients.cohort_schedule import Member
from fedsim.scenario.sections import ClientConfig
from strategies.algorithm import Term

log = logging.getLogger(__name__)

MAX_RUNNERS = 4  # shapes kept compiled per process; each holds its buffers (and graph memory)
WARMUP_CALLS = 3  # before recording: compile, then let allocator and cuDNN choices settle


@dataclass(frozen=True)
class Shape:
    """What a captured step is specialised to: one :class:`Runner` per Shape per process."""

    model: int  # id() of the workload's model; its runner keeps it alive, so the id stays its own
    x: tuple[int, ...]  # one step's inputs: (slots, B, ...)
    x_dtype: torch.dtype
    terms: tuple[tuple[object, ...], ...]  # each gradient term's kind and constants (FedProx's mu)
    cfg: ClientConfig  # lr, momentum, weight decay, clipping: constants of the program
    device: str


@dataclass(frozen=True)
class Captured:
    results: list[cohort.Result]
    compile_s: float  # spent compiling (and recording) for this call; 0 if the shape was ready


def _step(model: nn.Module, cfg: ClientConfig, templates: Sequence[Term]) -> Callable[..., None]:
    """The step as a function of tensors only: the terms come in as their tensor fields and are
    rebuilt on ``templates`` (their kinds and constants), so their tensors are the program's inputs."""
    grads_of = cohort.grad_step(model)

    def step(
        params: Params,
        term_tensors: tuple[dict[str, Params], ...],
        momentum: Params,
        totals: torch.Tensor,
        batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> None:
        x, y, weight, active = batch
        grads, (_, loss) = grads_of(params, x, y, weight)
        terms = tuple(
            dataclasses.replace(t, **fields)  # type: ignore[type-var]
            for t, fields in zip(templates, term_tensors, strict=True)
        )
        cohort.update(Stack(params, terms, momentum, totals), grads, loss, active, cfg)

    return step


class Runner:
    """The static buffers of one :class:`Shape` and its compiled (CPU) or recorded (CUDA) step."""

    def __init__(self, model: nn.Module, template: Prepared, cfg: ClientConfig, shape: Shape) -> None:
        self.stack = b = template.stack.clone()
        x, y = template.batch(0)
        weight, active = template.plan.weight[0], template.plan.active[0]
        self.batch = tuple(torch.zeros_like(t) for t in (x, y, weight, active))
        args = (b.params, tuple(map(cohort.term_tensors, b.terms)), b.momentum, b.totals, self.batch)
        started = time.perf_counter()
        # Compiled once per machine, not once per process (clients/compile_cache.py).
        compile_cache.use()
        key = compile_cache.step_key(model, cfg)
        terms = compile_cache.terms_text(shape.terms)  # their kinds, constants and code
        path = compile_cache.step_file(key, f"{shape.x}|{shape.x_dtype}|{terms}|{shape.device}")
        templates = [dataclasses.replace(t, **{f: {} for f in cohort.term_tensors(t)}) for t in b.terms]  # type: ignore[type-var]
        compiled = compile_cache.load_step(path, model, args) or compile_cache.compile_step(
            _step(model, cfg, templates), args, path, model
        )

        def call() -> None:
            compiled(*args)

        self._run = _recorded(call) if x.is_cuda else _first_called(call)
        self.compile_s = time.perf_counter() - started
        compile_cache.mark(key)

    def train(self, state: Prepared) -> None:
        """Train ``state`` (a group of this runner's shape) in place, one replay per step."""
        _copy(state.stack, self.stack)
        x, y, weight, active = self.batch
        for t in range(state.num_steps):
            bx, by = state.batch(t)
            x.copy_(bx)
            y.copy_(by)
            weight.copy_(state.plan.weight[t])
            active.copy_(state.plan.active[t])
            self._run()
        _copy(self.stack, state.stack)


def _copy(source: Stack, target: Stack) -> None:
    for s, t in zip(source.tensors(), target.tensors(), strict=True):
        t.copy_(s)


def _first_called(call: Callable[[], None]) -> Callable[[], None]:
    call()  # compiles; the buffers it scribbles on are loaded before every group
    return call


def _recorded(call: Callable[[], None]) -> Callable[[], None]:
    """Warm ``call`` up on a side stream (PyTorch's recipe for capture), record it, return replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(WARMUP_CALLS):
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    torch.cuda.synchronize()
    return graph.replay


_RUNNERS: dict[Shape, Runner] = {}
_REFUSED: dict[Shape, str] = {}  # shapes that failed to compile: trained eagerly, said once


def train_captured(model: nn.Module, members: list[Member], cfg: ClientConfig, slots: int) -> Captured | None:
    """Train ``members`` in ``slots`` (>= their number) with the captured step of that shape.

    None if the step of this shape cannot be compiled (the caller trains eagerly); the
    error is logged once, on the worker.  An out-of-memory error is raised, not swallowed.
    """
    state = cohort.prepare(model, members, cfg, slots)
    x, _ = state.batch(0)
    terms = tuple(map(cohort.term_constants, state.stack.terms))
    shape = Shape(id(model), tuple(x.shape), x.dtype, terms, cfg, str(x.device))
    if shape in _REFUSED:
        return None
    compile_s, runner = 0.0, _RUNNERS.get(shape)
    if runner is None:
        runner = _build(model, state, cfg, shape)
        if runner is None:
            return None
        compile_s = runner.compile_s
    model.train()
    runner.train(state)
    return Captured(state.results(len(members)), compile_s)


def _build(model: nn.Module, state: Prepared, cfg: ClientConfig, shape: Shape) -> Runner | None:
    if len(_RUNNERS) >= MAX_RUNNERS:  # the oldest shape goes: its buffers and graph are freed
        del _RUNNERS[next(iter(_RUNNERS))]
    try:
        runner = Runner(model, state, cfg, shape)
    except torch.OutOfMemoryError:
        raise
    except Exception as error:  # a model or an op torch.compile cannot take: eager still can
        _REFUSED[shape] = f"{type(error).__name__}: {error}"
        log.warning("graph capture failed, training this shape eagerly: %s", _REFUSED[shape], exc_info=True)
        return None
    _RUNNERS[shape] = runner
    return runner


def forget() -> None:
    """Drop every compiled shape and its buffers (after an out-of-memory error)."""
    _RUNNERS.clear()
