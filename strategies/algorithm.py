"""An algorithm as one unit: what each client keeps, adds to its local step, and sends beside the model.

A strategy plug-in (a Flower ``Strategy`` class, or a function returning one) is an algorithm's
server half.  :func:`algorithm` declares the rest on it, and fedsim handles whatever an
algorithm declares the same way, a built-in's (a file each in this package) or a user's, and
names none of them:

- ``state``: named arrays each client keeps between its rounds (a control variate, its last
  gradient, its previous model), with their first value.  A SuperNode keeps them in its
  ``Context.state``; in simulation a client's state travels with its messages and the server
  keeps it for it (fedsim/sim/client_store.py), so checkpoints and ``--resume`` carry it.
- ``begin(start)``, before the local update: the step's extra gradient terms (:class:`Proximal`,
  :class:`Offset`) and, if the algorithm has one, its own local objective (a loss that reads the
  data, e.g. a contrastive term).  Every trainer applies
  the terms through one implementation: a client's own steps (clients/training.py), the cohort
  engine's steps stacked over clients (clients/cohort.py) and DP-SGD's (clients/dpsgd.py).
- ``finish(start, trained, steps)``, after it: the arrays the reply carries beside the model,
  the client's new state and metrics of its own.
- ``sends`` and ``replies``: the arrays the strategy's messages and the clients' replies carry
  beside the model; the server screens them as it screens the model.
- ``personalize(start)``, at per-client evaluation ([evaluation] clients): the client's own
  model, which fedsim evaluates on the client's test data beside the global model
  (``personal_acc_*``).  It reads the client's state (a kept personal model, a kept head) or
  trains one now (:meth:`ClientStart.train`, e.g. fine-tuning); it changes no state.
- ``requires``: what it assumes of the rest of the scenario, checked before a run starts.

Arrays are NumPy arrays by name (``Arrays``), as messages carry them; terms hold torch tensors on
the training device (:meth:`ClientStart.tensors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from fedsim import protocol as keys
from fedsim.data import Split
from fedsim.scenario.sections import ClientConfig

Arrays = dict[str, np.ndarray]  # by state-dict name: one per model parameter, or per model entry
Tensors = dict[str, torch.Tensor]
# (model, inputs, targets) -> (the loss to differentiate, the loss to report as train_loss)
Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# (weights, the step's terms, epochs) -> the trained weights: clients/local_round.py gives one
Trainer = Callable[[Mapping[str, np.ndarray], "Local", int], Arrays]


class ArraySpec(Protocol):
    """What one of an algorithm's named arrays is (a state, a message's extra): its first value,
    from the model's arrays (``x``, by state-dict name) and parameter names.  Its names, shapes
    and dtypes are also what the server's screening expects of it."""

    def first(self, model: Mapping[str, np.ndarray], parameters: Sequence[str]) -> Arrays: ...


@dataclass(frozen=True)
class ArraysLike:
    """Arrays shaped like the model: one per parameter (``named_parameters``), or per entry of its
    state dict (``"model"``, buffers too); first ``"zeros"``, or the ``"global"`` model as a client
    first receives it."""

    of: Literal["parameters", "model"] = "parameters"
    init: Literal["zeros", "global"] = "zeros"

    def names(self, model: Sequence[str], parameters: Sequence[str]) -> list[str]:
        return list(parameters if self.of == "parameters" else model)

    def first(self, model: Mapping[str, np.ndarray], parameters: Sequence[str]) -> Arrays:
        make = np.zeros_like if self.init == "zeros" else np.copy
        return {name: make(model[name]) for name in self.names(list(model), parameters)}


class Term(Protocol):
    """A term of the local step's gradient, added after the backward pass and before clipping."""

    def add_to(self, grads: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor]) -> None:
        """Add this term's gradient to ``grads`` in place, by parameter name.  The cohort engine
        stacks clients along a leading axis of every tensor (the term's own too): write it
        elementwise, and a frozen dataclass whose tensor fields are dicts, so it can be stacked."""


@dataclass(frozen=True)
class Proximal:
    """The gradient of ``mu/2 * ||w - anchor||^2``, ``mu * (w - anchor)``: a pull towards the anchor.

    Added in place rather than differentiated: its gradient is known, and autograd's term costs
    a graph node, a square and a backward pass per parameter each step (benchmarks/proximal.py).
    """

    mu: float
    anchor: Tensors

    def add_to(self, grads: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor]) -> None:
        for name, g in grads.items():
            g.add_(params[name] - self.anchor[name], alpha=self.mu)


@dataclass(frozen=True)
class Offset:
    """A constant added to every step's gradient (a control variate's ``c - c_i``, a kept ``-g_k``)."""

    values: Tensors

    def add_to(self, grads: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor]) -> None:
        for name, g in grads.items():
            g.add_(self.values[name])


@dataclass(frozen=True)
class Local:
    """What ``begin`` asks of this round's local steps."""

    terms: tuple[Term, ...] = ()
    objective: Objective | None = None  # None: cross-entropy on the model's logits


@dataclass(frozen=True)
class ClientStart:
    """What ``begin`` and ``finish`` get: the round as the client starts it."""

    model: nn.Module  # the global model, loaded, on ``device``: read it or copy it, the update trains it
    global_weights: Arrays  # the model as received
    received: dict[str, Arrays]  # the arrays the strategy sent beside it (``sends``)
    state: dict[str, Arrays]  # the client's kept state; a local update may change it (``UpdateContext``)
    config: ClientConfig  # [client], with this client's epochs (a straggler's are fewer)
    server_config: Mapping[str, Any]  # what the strategy sent in the round's config
    device: torch.device
    # The client's training samples (a label-flipper's flipped), on ``device``.
    data: Split = field(default_factory=lambda: Split(torch.zeros(0), torch.zeros(0, dtype=torch.int64)))
    strategy: Mapping[str, Any] = field(default_factory=dict)  # [strategy.params], defaults filled
    trainer: Trainer | None = None  # :meth:`train`'s steps, on this client's data and random stream

    def train(self, weights: Mapping[str, np.ndarray], local: Local | None = None, epochs: int = 1) -> Arrays:
        """``epochs`` of the client's local SGD ([client]'s batch size and learning rate, the
        built-in steps with ``local``'s terms) on its training data from ``weights``; the
        trained model by state-dict name.  It trains ``model`` in place: read it first."""
        if self.trainer is None:
            raise RuntimeError("this ClientStart was made without a trainer")
        return self.trainer(weights, local or Local(), epochs)

    def parameters(self) -> list[str]:
        """The model's parameter names (those of ``ArraysLike("parameters")``), in its order."""
        return [name for name, _ in self.model.named_parameters()]

    def tensors(self, arrays: Mapping[str, np.ndarray]) -> Tensors:
        """``arrays`` as tensors on the training device (for a term)."""
        return {name: torch.from_numpy(np.asarray(a)).to(self.device) for name, a in arrays.items()}


@dataclass(frozen=True)
class Finished:
    """What ``finish`` gives back."""

    replies: dict[str, Arrays] = field(default_factory=dict)  # the declared ``replies``
    state: dict[str, Arrays] | None = None  # the client's new state; None: ``start.state`` as left
    metrics: dict[str, float] = field(default_factory=dict)  # sent with the reply's metrics
    model: Arrays | None = None  # the model to send, if not the trained one (attacks, local DP follow)


@dataclass(frozen=True)
class Requires:
    """What an algorithm assumes of the scenario; the run refuses a scenario that breaks it."""

    plain_sgd: bool = False  # client.momentum = 0
    builtin_update: bool = False  # client.update = "sgd": its update is the built-in steps, terms applied
    per_client: bool = False  # its local step is not stacked (an objective of its own): no cohort engine


Begin = Callable[[ClientStart], Local]
Personalize = Callable[[ClientStart], Arrays]  # the client's own model, by state-dict name
Finish = Callable[[ClientStart, Arrays, int], Finished]  # (start, the trained model, its local steps)
RESERVED = frozenset({keys.ARRAYS, keys.CONFIG, keys.METRICS, keys.COMPRESSION_RESIDUAL})


@dataclass(frozen=True)
class Algorithm:
    """Everything an algorithm declares besides its strategy (see the module's docstring)."""

    begin: Begin | None = None
    finish: Finish | None = None
    personalize: Personalize | None = None
    state: Mapping[str, ArraySpec] = field(default_factory=dict)
    sends: Mapping[str, ArraySpec] = field(default_factory=dict)
    replies: Mapping[str, ArraySpec] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()  # metric names ``finish`` adds
    requires: Requires = Requires()
    # Whether central DP may wrap it: its aggregate is the mean of the clients' models, which
    # DP-FedAvg clips and noises (strategies/privacy.py), and its replies carry nothing else.
    central_dp: bool = False

    def __post_init__(self) -> None:
        for name in (*self.state, *self.sends, *self.replies):
            if (
                name in RESERVED
                or name.startswith(keys.STATE)
                or not name.isprintable()
                or set(name) & set("@/")
            ):
                raise ValueError(f"algorithm array name {name!r}: reserved by fedsim, or holds '@', '/'")
        if set(self.sends) & set(self.replies):
            raise ValueError(
                f"algorithm arrays {sorted(set(self.sends) & set(self.replies))} both sent and replied"
            )
        if self.central_dp and (self.sends or self.replies):
            raise ValueError("central DP clips and noises the model alone: no arrays may travel beside it")


PLAIN = Algorithm()  # what a strategy declaring nothing does: the model goes out and comes back
_DECLARED = "__fedsim_algorithm__"
S = TypeVar("S")


def algorithm(**declared: Any) -> Callable[[S], S]:
    """Declare an :class:`Algorithm` on a strategy plug-in (a class or a function), as a decorator::

        @fedsim.algorithm(begin=begin, finish=finish, state={"c_i": fedsim.ArraysLike()})
        class MyAlgorithm(FedAvg): ...

    The plug-in itself is unchanged: its params are its own signature's, as for any strategy.
    """
    spec = Algorithm(**declared)

    def declare(strategy: S) -> S:
        setattr(strategy, _DECLARED, spec)
        return strategy

    return declare


def declared(plugin: object) -> Algorithm | None:
    """What ``plugin`` (a strategy class or function) declares; None if it declares nothing."""
    spec = getattr(plugin, _DECLARED, None)
    return spec if isinstance(spec, Algorithm) else None
