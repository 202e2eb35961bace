"""Cohort training: k clients trained together, one vectorized step for all of them.

The clients' parameters are stacked along a leading client axis and every local
step runs one ``torch.func.vmap``-ed forward/backward over per-client batches,
then one SGD update of the whole stack.  The training is the one of
:func:`clients.training.train`, client by client:

* each client's data order comes from its own generator, drawn as the per-client
  path draws it (one ``randperm`` per epoch), so its batches are the same rows;
* each client takes its own number of steps (``epochs * ceil(n / B)``); once a
  client has taken its last step it is *masked*: its parameters, momentum and
  loss stop changing while the others go on;
* a short batch (the last of an epoch) is padded to ``B`` rows whose loss weight is
  zero, and the loss is divided by the client's real rows: the batch mean;
* the algorithm's gradient terms (a proximal pull ``mu (w - w_global)``, an offset ``c - c_i``:
  each member's own, stacked along the client axis, :func:`stack_terms`), gradient norm clipping,
  momentum and weight decay follow ``training.train`` and PyTorch's SGD.

Only models whose rows are independent can be batched this way: the image models
here have no dropout and no batch norm, so no RNG or batch statistics are involved.
Others (recurrent ones, any with dropout or batch norm: :func:`not_vectorizable`) are
trained one after another by the caller (clients/cohort_group.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from clients.cohort_schedule import Member, Schedule, schedule
from fedsim.scenario.sections import ClientConfig
from strategies.algorithm import Term

Params = dict[str, torch.Tensor]


# Layers whose output depends on random numbers, on other rows of the batch, or on a time loop.
_ROW_COUPLED = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.RNNBase)


def not_vectorizable(model: nn.Module) -> str | None:
    """Why stacking this model's parameters would not give per-client training, if it would not."""
    if any(True for _ in model.buffers()):
        return "it has buffers (running statistics) that a cohort would share"
    for module in model.modules():
        if isinstance(module, _ROW_COUPLED):
            return f"{type(module).__name__} layers are not vectorized per client"
    return None


def vmap_pays(model: nn.Module, device: torch.device) -> bool:
    """Whether training the stack beats training the clients in turn: not for convolutions
    on a CPU, which vmap makes grouped ones, slower there (README: CNN 10.3 s a round
    against 8.0 s in turn; the 2NN gains, 0.31 s against 0.35 s)."""
    return device.type != "cpu" or not any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


@dataclass(frozen=True)
class Result:
    """One client's trained parameters (by state-dict name) and its mean loss over steps."""

    params: Params
    loss: float


def _stack(model: nn.Module, k: int) -> Params:
    return {n: p.detach().unsqueeze(0).repeat(k, *([1] * p.dim())) for n, p in model.named_parameters()}


Objective = Callable[[Params, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _objective(model: nn.Module) -> Objective:
    """One client's loss on its batch (differentiated, and reported as the aux value).

    The algorithm's gradient terms are not in it: :func:`update` adds them in place.
    """

    def objective(
        params: Params, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = functional_call(model, params, (x,))
        per_row = F.cross_entropy(logits, y, reduction="none")
        loss = (per_row * weight).sum() / weight.sum().clamp(min=1.0)  # the batch mean over real rows
        return loss, loss

    return objective


def _clip(grads: Params, max_norm: float) -> Params:
    """``clip_grad_norm_`` per client: one total 2-norm over all of a client's parameters."""
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads.values()], dim=1)
    total = torch.linalg.vector_norm(norms, 2, dim=1)
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    return {n: g * _per_client(scale, g) for n, g in grads.items()}


def _per_client(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (k,) tensor shaped to broadcast over a stacked (k, ...) tensor."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def term_tensors(term: Term) -> dict[str, Params]:
    """A term's tensor fields (dicts of tensors by parameter name), by field name."""
    if not dataclasses.is_dataclass(term):
        raise TypeError(f"the cohort engine stacks terms that are dataclasses, not {type(term).__name__}")
    return {f.name: v for f in dataclasses.fields(term) if isinstance(v := getattr(term, f.name), dict)}


def term_constants(term: Term) -> tuple[object, ...]:
    """What a stacked term shares across clients: its type and every field that is not tensors."""
    tensors = term_tensors(term)
    fields = dataclasses.fields(term)  # type: ignore[arg-type]
    return (type(term), *(getattr(term, f.name) for f in fields if f.name not in tensors))


def stack_terms(members: Sequence[Member], slots: int) -> tuple[Term, ...]:
    """The members' terms with each tensor stacked along a leading client axis of ``slots``.

    Every member must have terms of the same kinds and constants (FedProx's one ``mu``); only
    their tensors differ.  Idle slots past the members repeat the first member's (they are masked).
    """
    first = members[0].terms
    if any(tuple(map(term_constants, m.terms)) != tuple(map(term_constants, first)) for m in members):
        raise ValueError("a cohort's members must have terms of the same kinds and constants")
    padded = [*members, *([members[0]] * (slots - len(members)))]
    stacked = []
    for i, term in enumerate(first):
        fields = {
            field: {n: torch.stack([term_tensors(m.terms[i])[field][n] for m in padded]) for n in tensors}
            for field, tensors in term_tensors(term).items()
        }
        stacked.append(dataclasses.replace(term, **fields))  # type: ignore[type-var]
    return tuple(stacked)


@dataclass(frozen=True)
class Stack:
    """The clients' state, stacked along a leading slot axis.

    ``params``, ``momentum`` and ``totals`` (each slot's summed loss) change in place as it trains.
    """

    params: Params
    terms: tuple[Term, ...]  # the algorithm's gradient terms, stacked (:func:`stack_terms`)
    momentum: Params
    totals: torch.Tensor

    def clone(self) -> Stack:
        """A copy of every tensor (a captured step's static buffers, clients/capture.py)."""

        def copied(group: Params) -> Params:
            return {n: t.clone() for n, t in group.items()}

        terms = tuple(
            dataclasses.replace(term, **{f: copied(g) for f, g in term_tensors(term).items()})  # type: ignore[type-var]
            for term in self.terms
        )
        return Stack(copied(self.params), terms, copied(self.momentum), self.totals.clone())

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor, in a fixed order (to copy one stack into another of the same shapes)."""
        groups = [
            self.params,
            *(t for term in self.terms for t in term_tensors(term).values()),
            self.momentum,
        ]
        return [t for group in groups for t in group.values()] + [self.totals]


@dataclass(frozen=True)
class Prepared:
    """A cohort laid out on the model's device: its data, its schedule and its stack."""

    data_x: torch.Tensor
    data_y: torch.Tensor
    plan: Schedule
    stack: Stack

    @property
    def num_steps(self) -> int:
        return int(self.plan.rows.shape[0])

    def batch(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``t``'s (slots, B, ...) inputs and labels."""
        rows = self.plan.rows[t]
        x = self.data_x[rows]
        if not x.is_floating_point():  # token ids widen to the int64 an embedding takes
            x = x.long()
        return x, self.data_y[rows]

    def results(self, count: int) -> list[Result]:
        """The first ``count`` slots' parameters and mean losses (the rest are idle)."""
        losses = (self.stack.totals / self.plan.steps).tolist()
        params = self.stack.params
        return [
            Result({n: p[i].detach().clone() for n, p in params.items()}, losses[i]) for i in range(count)
        ]


def prepare(model: nn.Module, members: Sequence[Member], cfg: ClientConfig, slots: int = 0) -> Prepared:
    """Stack ``model``'s parameters into ``max(slots, len(members))`` slots and draw the schedule."""
    if problem := not_vectorizable(model):
        raise ValueError(f"cannot train this model as a cohort: {problem}; train it client by client")
    if not members or any(len(m.data) == 0 for m in members):
        raise ValueError("every member of a cohort needs at least one sample")
    device = next(model.parameters()).device
    slots = max(slots, len(members))
    params = _stack(model, slots)
    return Prepared(
        data_x=torch.cat([m.data.x for m in members]).to(device),
        data_y=torch.cat([m.data.y for m in members]).to(device),
        plan=schedule(members, cfg.batch_size, slots, device),
        stack=Stack(
            params=params,
            terms=stack_terms(members, slots),
            momentum={n: torch.zeros_like(p) for n, p in params.items()},
            totals=torch.zeros(slots, device=device),
        ),
    )


def grad_step(model: nn.Module) -> Callable[..., tuple[Params, tuple[torch.Tensor, torch.Tensor]]]:
    """Every client's (gradients, (loss, loss)) on its own batch: one vmap-ed call."""
    return vmap(grad_and_value(_objective(model), has_aux=True))


def update(
    stack: Stack, grads: Params, loss: torch.Tensor, active: torch.Tensor | None, cfg: ClientConfig
) -> None:
    """One step's update of the stack: the algorithm's gradient terms, clipping, SGD, the loss
    totals (in the order of ``training.train``)."""
    for term in stack.terms:
        term.add_to(grads, stack.params)
    if cfg.max_grad_norm is not None:
        grads = _clip(grads, cfg.max_grad_norm)
    _sgd(stack.params, grads, stack.momentum, active, cfg)
    stack.totals.add_(loss.detach() if active is None else loss.detach() * active)


def train_cohort(model: nn.Module, members: Sequence[Member], cfg: ClientConfig) -> list[Result]:
    """Train every member from ``model``'s parameters; ``model`` itself is left unchanged.

    ``cfg.local_epochs`` is ignored in favour of each member's own (a straggler's are fewer).
    """
    if not members:
        return []
    state = prepare(model, members, cfg)
    step = grad_step(model)
    model.train()
    for t in range(state.num_steps):
        x, y = state.batch(t)
        grads, (_, loss) = step(state.stack.params, x, y, state.plan.weight[t])
        active = None if state.plan.everyone[t] else state.plan.active[t]
        update(state.stack, grads, loss, active, cfg)
    return state.results(len(members))


def _sgd(
    params: Params, grads: Params, momentum: Params, active: torch.Tensor | None, cfg: ClientConfig
) -> None:
    """``torch.optim.SGD``'s step (no dampening, no Nesterov), in place, for active clients only.

    ``active`` (None: all) is 1 or 0 per client.  A masked client's step is multiplied by
    0: its momentum becomes ``buf * 1 + 0`` and its parameters ``p + 0``, so both stay exactly
    as they are (its gradient is finite: its batch weighs 0, the algorithm's terms are finite).
    """
    for n, p in params.items():
        g = grads[n]
        if cfg.weight_decay:
            g = g.add(p, alpha=cfg.weight_decay)
        mask = None if active is None else _per_client(active, g)
        if mask is not None:
            g = g * mask
        if cfg.momentum:
            buf = momentum[n]
            # SGD starts the buffer at the first gradient; from zeros, momentum * 0 + g is that exactly.
            if mask is None:
                buf.mul_(cfg.momentum).add_(g)
                g = buf
            else:  # a masked client keeps its buffer (* 1 + 0) and does not step along it
                buf.mul_(torch.where(mask > 0, cfg.momentum, 1.0)).add_(g)
                g = buf * mask
        p.add_(g, alpha=-cfg.lr)
