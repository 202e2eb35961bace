"""The local update: what a client does with the global model and its data in one round.

An update is a plug-in (fedsim/scenario/plugins.py), named by ``[client] update``, called as
``update(model, data, ctx, **params)`` with ``[client.params]`` as keywords:

- ``model``: the global model, loaded and on the training device; train it in place,
  fedsim sends back its ``state_dict()`` afterwards;
- ``data``: the client's training samples, a :class:`fedsim.data.Split` (``data.x``,
  ``data.y``; ``data.batch(rows)`` gives model inputs and targets);
- ``ctx``: an :class:`UpdateContext`: the ``[client]`` settings (this client's epochs), the
  global weights as received, the client's own random stream for this round, and more.

It returns a dict of metrics (numbers) or None.  They go to the strategy with the reply
(``num-examples`` is added by fedsim); ``train_loss`` is the one fedsim shows per round.
Shuffle with ``ctx.generator`` only: it depends on (seed, round, client), never on the
worker that runs the client, so runs repeat.

The algorithm's part (strategies/algorithm.py) reaches the update through ``ctx``: the
gradient terms of its steps (``ctx.terms``: add them after each backward pass with
``fedsim.add_terms(ctx.terms, params)``), its own objective, if any, and the client's kept state
(``ctx.state``, which the update may change: what it leaves there is kept).

The built-in :func:`sgd` is minibatch SGD (clients/training.py) with the algorithm's terms and
objective, and DP-SGD under ``privacy.mode = "sample"``.  Privacy that works on the released
model (local DP, central DP) and the attacks apply around any update.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from clients import training
from fedsim import protocol as keys
from fedsim.data import Split
from fedsim.scenario.sections import ClientConfig, Scenario
from fedsim.scenario.seeding import torch_generator
from strategies.algorithm import Arrays, Objective, Term

CPU = torch.device("cpu")


@dataclass(frozen=True)
class UpdateContext:
    """What a local update gets besides the model and the data."""

    config: ClientConfig  # [client]; local_epochs is this client's own (a straggler's are fewer)
    global_weights: Mapping[str, torch.Tensor]  # the model as received, by state-dict name, on the CPU
    generator: torch.Generator  # this client's random stream for this round: shuffle with it
    server_round: int
    partition_id: int  # which client this is
    server_config: Mapping[str, Any]  # what the strategy sent in the round's config (e.g. "proximal-mu")
    scenario: Scenario  # the whole resolved scenario
    device: torch.device = CPU
    terms: tuple[Term, ...] = ()  # the algorithm's gradient terms, by parameter name
    objective: Objective | None = None  # the algorithm's own loss; None: cross-entropy
    state: dict[str, Arrays] = field(default_factory=dict)  # the client's kept state: read it, change it


def sgd(model: nn.Module, data: Split, ctx: UpdateContext) -> dict[str, float]:
    """The built-in update: ``config.local_epochs`` of minibatch SGD with the algorithm's terms."""
    dp = ctx.scenario.privacy
    if dp is not None and dp.mode == "sample":  # DP-SGD, noise from its own stream
        # Imported here: Opacus calls logging.basicConfig on import, and a handler on the
        # root logger would print every line of the ServerApp's log (its events too) twice.
        from clients import dpsgd

        noise = torch_generator(ctx.scenario.seed, "dp", ctx.server_round, ctx.partition_id)
        max_norm = dp.max_grad_norm or 0.0
        loss = dpsgd.train(
            model, data, ctx.config, max_norm, dp.noise, ctx.generator, noise, ctx.terms, ctx.objective
        )
    else:
        loss = training.train(model, data, ctx.config, ctx.generator, ctx.terms, ctx.objective)
    return {keys.TRAIN_LOSS: loss}


def metrics_of(name: str, returned: object) -> dict[str, float]:
    """The numbers an update returned, as the reply's metrics; TypeError if they are not."""
    if returned is None:
        return {}
    if not isinstance(returned, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in returned.items()
    ):
        raise TypeError(
            f"client.update {name!r} returned {returned!r:.80}, expected a dict of numbers or None"
        )
    if keys.NUM_EXAMPLES in returned:
        raise TypeError(f"client.update {name!r} returned {keys.NUM_EXAMPLES!r}, which fedsim sets")
    return {k: float(v) for k, v in returned.items()}
