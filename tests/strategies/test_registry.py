"""The registry: every scenario strategy name builds its strategy with the scenario's values, and
what an algorithm declares it needs is refused before a run, whoever wrote the algorithm."""

from __future__ import annotations

from typing import Any

import pytest
from flwr.serverapp.strategy import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    QFedAvg,
)

from fedsim.scenario import plugins
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from strategies.algorithm import Requires, algorithm
from strategies.placement import Placement
from strategies.registry import asynchronous, averaging, build_strategy, check_requirements

PARTITIONS = {100 + p: p for p in range(10)}  # node id -> partition id


def scenario(text: str) -> Scenario:
    base = (
        '[data]\ndataset = "synthetic"\npartition = "natural"\n'
        '[data.params]\ndevices = 10\n[model]\nname = "logreg"\n'
    )
    return parse_scenario(base + text)


def inner(text: str) -> Any:
    return build_strategy(scenario(text), Placement.fixed(PARTITIONS)).inner


def test_the_registry_names_every_built_in_by_its_import_path() -> None:
    """Flower's server-side strategies in strategies/builtin.py, each algorithm in its own file."""
    names = plugins.REGISTRY["strategy"]
    assert set(FLOWER_CLASSES) < set(names)
    assert all(
        path.split(":")[0] in ("strategies.builtin", f"strategies.{name}") for name, path in names.items()
    )


FLOWER_CLASSES = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fine_tune": FedAvg,  # personalization on FedAvg's server half
    "ditto": FedAvg,
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
    "qfedavg": QFedAvg,
    "fedmedian": FedMedian,
    "fedtrimmedavg": FedTrimmedAvg,
    "krum": Krum,
    "multikrum": MultiKrum,
    "bulyan": Bulyan,
}


SYNCHRONOUS = sorted(n for n in plugins.REGISTRY["strategy"] if not asynchronous(n))


@pytest.mark.parametrize("name", SYNCHRONOUS)
def test_every_strategy_builds_and_samples_the_configured_cohort(name: str) -> None:
    sampling = build_strategy(
        scenario(f'[strategy]\nname = "{name}"\nfraction_train = 0.7'), Placement.fixed(PARTITIONS)
    )
    target = plugins.resolve(plugins.STRATEGY, name)  # an algorithm's own class, or Flower's behind a factory
    assert type(sampling.inner) is (target if isinstance(target, type) else FLOWER_CLASSES[name])
    assert sampling.sizes["train"] == 7


def test_parameters_and_client_learning_rate_reach_flower() -> None:
    adam = inner(
        '[client]\nlr = 0.03\n[strategy]\nname = "fedadam"\n[strategy.params]\neta = 0.01\ntau = 1e-4'
    )
    assert isinstance(adam, FedAdam)
    assert (adam.eta, adam.eta_l, adam.beta_1, adam.tau) == (0.01, 0.03, 0.9, 1e-4)
    q = inner('[client]\nlr = 0.02\n[strategy]\nname = "qfedavg"\n[strategy.params]\nq = 0.5')
    assert isinstance(q, QFedAvg) and (q.q, q.client_learning_rate) == (0.5, 0.02)
    trimmed = inner('[strategy]\nname = "fedtrimmedavg"\n[strategy.params]\nbeta = 0.3')
    assert isinstance(trimmed, FedTrimmedAvg) and trimmed.beta == 0.3


def test_robust_rules_take_f_from_the_attack_unless_given() -> None:
    attack = '[attack]\nfraction = 0.2\n[strategy]\nfraction_train = 1.0\nname = "'
    krum = inner(attack + 'krum"')
    assert isinstance(krum, Krum) and krum.num_malicious_nodes == 2  # 20 % of 10, all sampled
    multi = inner(attack + 'multikrum"')
    assert isinstance(multi, MultiKrum) and (multi.num_malicious_nodes, multi.num_nodes_to_select) == (2, 8)
    bulyan = inner(
        '[strategy]\nname = "bulyan"\nfraction_train = 1.0\n[strategy.params]\nnum_malicious_nodes = 1'
    )
    assert isinstance(bulyan, Bulyan) and bulyan.num_malicious_nodes == 1
    half = inner('[attack]\nfraction = 0.2\n[strategy]\nfraction_train = 0.5\nname = "krum"')
    assert half.num_malicious_nodes == 1  # 5 sampled of 10, 2 malicious: 1 expected


@algorithm(requires=Requires(plain_sgd=True, builtin_update=True))
class Needy(FedAvg):
    """An algorithm that assumes plain SGD steps of the built-in update (as a control variate's
    update from the model's change does)."""


NEEDY, TALLY = "tests.strategies.test_registry:Needy", "tests.stateful:Tally"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f'[strategy]\nname = "{NEEDY}"\n[client]\nmomentum = 0.9', "client.momentum: '" + NEEDY),
        (f'[strategy]\nname = "{NEEDY}"\n[client]\nupdate = "x.y:z"', "client.update: '" + NEEDY),
        (
            f'[strategy]\nname = "{TALLY}"\n[privacy]\nmode = "local"\n'
            "clipping_norm = 1.0\nnoise_multiplier = 0.1",
            "privacy.mode: 'local' noises the model update only; 'tests.stateful:Tally' also sends ['moved']",
        ),
        (
            f'[strategy]\nname = "{TALLY}"\n[privacy]\nmode = "central"\nnoise_multiplier = 0.1',
            "privacy.mode: 'central' noises the mean of the clipped updates, which fedavg, fedprox",
        ),
        (
            '[strategy]\nname = "krum"\n[privacy]\nmode = "central"\nnoise_multiplier = 0.1',
            "privacy.mode: 'central' noises the mean",
        ),
    ],
    ids=["momentum", "update", "local-dp-extra-arrays", "central-not-declared", "central-builtin"],
)
def test_what_an_algorithm_declares_it_needs_is_refused_with_one_line(text: str, says: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        check_requirements(scenario(text))
    assert str(caught.value).startswith(says) and "\n" not in str(caught.value)


def test_every_averaging_built_in_may_be_wrapped_by_central_dp_and_none_else() -> None:
    assert {"fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad"} <= set(averaging())
    assert not {"krum", "qfedavg", "fedmedian"} & set(averaging())
    for name in averaging():
        check_requirements(
            scenario(f'[strategy]\nname = "{name}"\n[privacy]\nmode = "central"\nnoise_multiplier = 0.1')
        )
