"""FedProx (Li et al. 2020, strategies/fedprox.py): Flower's FedProx sends mu, its clients add
mu (w - w_global) to every step.  By hand: w_global = (1, 2), w = (2, 0), mu = 0.5: the term adds
(0.5, -1) to the gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strategies import fedprox
from strategies.algorithm import ClientStart, Proximal


def start(mu: float | None) -> ClientStart:
    model = torch.nn.Linear(2, 1, bias=False)
    x = {"weight": np.array([[1.0, 2.0]], np.float32)}
    config = {} if mu is None else {fedprox.MU: mu}
    return ClientStart(model, x, {}, {}, None, config, torch.device("cpu"))  # type: ignore[arg-type]


def test_the_proximal_term_pulls_towards_the_model_as_received() -> None:
    (term,) = fedprox.begin(start(0.5)).terms
    assert isinstance(term, Proximal) and term.mu == 0.5
    grads = {"weight": torch.zeros(1, 2)}
    term.add_to(grads, {"weight": torch.tensor([[2.0, 0.0]])})
    assert grads["weight"].tolist() == [[0.5, -1.0]]


@pytest.mark.parametrize("mu", [0.0, None])
def test_without_mu_the_step_is_fedavgs(mu: float | None) -> None:
    assert fedprox.begin(start(mu)).terms == ()
