"""A user's personalization: FedAvg, and each client's own model its global model with only the
last layer fine-tuned on the client's data (the body shared, the head its own: the idea of
FedPer, Arivazhagan et al. 2019, applied at evaluation).  Written against fedsim's public
interface alone: ``strategy.name = "head_tune:head_tune"``.

The ``personalize`` hook (strategies/algorithm.py) gets the client's round as it starts
(``start``): the global model loaded in ``start.model``, the client's data, its state, and
``start.train``, the client's own local SGD.  Freezing the body is ``requires_grad = False``:
the built-in steps train only what requires a gradient.  The worker reuses its model for the
next client, so the body is unfrozen again before returning.
"""

from __future__ import annotations

from typing import Annotated, Any

from flwr.serverapp.strategy import FedAvg, Strategy

import fedsim

EPOCHS = "epochs"


def personalize(start: fedsim.ClientStart) -> dict[str, Any]:
    """The global model with its last layer (the last weight and bias) trained ``epochs``."""
    params = list(start.model.named_parameters())
    body = [p for _, p in params[:-2]]
    for p in body:
        p.requires_grad_(False)
    try:
        return start.train(start.global_weights, epochs=int(start.strategy.get(EPOCHS, 1)))
    finally:
        for p in body:
            p.requires_grad_(True)


@fedsim.algorithm(personalize=personalize)
def head_tune(*, epochs: Annotated[int, fedsim.Bounds(ge=1)] = 1, **flower: Any) -> Strategy:
    """FedAvg; per-client evaluation fine-tunes each client's last layer for ``epochs``."""
    return FedAvg(**flower)
