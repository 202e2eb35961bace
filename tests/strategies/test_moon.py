"""MOON (Li, He and Song 2021, strategies/moon.py): its contrastive term by hand, its objective,
and its client half through the real ClientApp.

By hand, a batch of two, tau = 0.5 (sim: cosine similarity):
  z = (1, 0), z_glob = (1, 0), z_prev = (0, 1): sim 1 and 0, logits (2, 0):
      l = -log(e^2 / (e^2 + e^0)) = log(1 + e^-2) = 0.1269280110
  z = (1, 1), z_glob = (1, 0), z_prev = (-1, 1): sim 1/sqrt(2) and 0, logits (sqrt(2), 0):
      l = log(1 + e^-sqrt(2)) = 0.2176217216
  l_con = their mean = 0.1722748663
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clients import app, dpsgd
from fedsim import protocol as keys
from fedsim.data import Split
from fedsim.scenario.sections import ClientConfig
from strategies import moon
from strategies.algorithm import ClientStart
from strategies.registry import check_requirements
from tests.clients.test_app import initial_model, message, node, reply_model, scenario_toml
from tests.strategies.test_registry import scenario

Z = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
Z_GLOB = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
Z_PREV = torch.tensor([[0.0, 1.0], [-1.0, 1.0]])


def test_the_contrastive_term_by_hand() -> None:
    loss = moon.contrastive_loss(Z, Z_GLOB, Z_PREV, temperature=0.5)
    assert float(loss) == pytest.approx(0.1722748663, abs=1e-7)
    assert float(loss) == pytest.approx(
        (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-math.sqrt(2)))) / 2
    )


def test_it_is_zero_in_gradient_while_the_previous_model_is_the_global_one() -> None:
    """A client's first round: previous = global, so the term pulls and pushes alike."""
    z = torch.tensor([[0.3, -1.2], [2.0, 0.5]], requires_grad=True)
    moon.contrastive_loss(z, Z_GLOB, Z_GLOB, temperature=0.5).backward()
    assert z.grad is not None and torch.allclose(z.grad, torch.zeros_like(z), atol=1e-7)


def three_layers() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_the_representation_is_the_input_of_the_last_linear_layer() -> None:
    model, x = three_layers(), torch.randn(5, 3)
    logits, z = moon.represented(model, x)
    assert torch.equal(logits, model(x)) and torch.equal(z, model[1](model[0](x)))


def test_the_objective_adds_mu_times_the_term_and_reports_the_cross_entropy() -> None:
    model, global_model, previous = three_layers(), three_layers(), three_layers()
    with torch.no_grad():
        for p in previous.parameters():
            p.add_(0.5)
    x, y = torch.randn(6, 3, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 0, 1, 1, 0])
    with torch.no_grad():
        loss, shown = moon.Contrastive(global_model, previous, mu=2.0, temperature=0.5)(model, x, y)
        z, z_glob, z_prev = (moon.represented(m, x)[1] for m in (model, global_model, previous))
        supervised = F.cross_entropy(model(x), y)
    assert float(shown) == pytest.approx(float(supervised))
    assert float(loss) == pytest.approx(
        float(supervised + 2.0 * moon.contrastive_loss(z, z_glob, z_prev, 0.5))
    )


def test_it_trains_each_client_on_its_own_and_averages_as_fedavg() -> None:
    declared = moon.Moon.__fedsim_algorithm__  # type: ignore[attr-defined]
    assert declared.requires.per_client and declared.central_dp and not declared.replies
    check_requirements(
        scenario('[strategy]\nname = "moon"\n[privacy]\nmode = "central"\nnoise_multiplier = 0.1')
    )


@pytest.mark.usefixtures("task_identity")
def test_a_client_keeps_its_trained_model_as_the_next_rounds_previous_one() -> None:
    toml, context, x = scenario_toml("moon"), node(1), initial_model()
    config = {moon.MU: 1.0, moon.TEMPERATURE: 0.5}
    first = app.train(message(toml, x, 1, config=config), context)
    kept = keys.to_numpy(context.state.array_records[keys.state_record(moon.PREVIOUS)])
    y = reply_model(first)
    assert list(kept) == list(x) and all(np.array_equal(kept[k], y[k]) for k in x)
    second = app.train(message(toml, y, 2, config=config), context)  # its previous model is y now
    assert second.content.metric_records[keys.METRICS][keys.TRAIN_LOSS] > 0


def test_dp_sgd_clips_the_contrastive_objectives_per_example_gradients() -> None:
    model = three_layers()
    start = ClientStart(
        model,
        {k: v.numpy() for k, v in model.state_dict().items()},
        {},
        {moon.PREVIOUS: {k: v.numpy() + 0.1 for k, v in model.state_dict().items()}},
        ClientConfig(batch_size=4, lr=0.1),
        {moon.MU: 1.0, moon.TEMPERATURE: 0.5},
        torch.device("cpu"),
    )
    objective = moon.begin(start).objective
    g = torch.Generator().manual_seed(0)
    data = Split(torch.randn(12, 3, generator=g), torch.randint(0, 2, (12,), generator=g))
    before = [p.detach().clone() for p in model.parameters()]
    loss = dpsgd.train(model, data, start.config, 1.0, 0.5, g, torch.Generator(), (), objective)
    assert np.isfinite(loss) and any(
        not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)
    )


@pytest.mark.usefixtures("task_identity")
def test_with_mu_zero_a_client_trains_exactly_as_fedavgs() -> None:
    x = initial_model()
    config = {moon.MU: 0.0, moon.TEMPERATURE: 0.5}
    contrastive = reply_model(app.train(message(scenario_toml("moon"), x, 1, config=config), node(3)))
    plain = reply_model(app.train(message(scenario_toml(), x, 1), node(3)))
    assert all(np.array_equal(contrastive[k], plain[k]) for k in x)
