"""From variant texts and seeds to validated runs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fedsim.scenario.files import parse_table
from fedsim.scenario.sections import VariantConfig
from fedsim.scenario.tables import ScenarioError
from fedsim.scenario.variants import file_name, parse_seeds, plan, strategy_overrides
from fedsim.sim import sweep

BASE = """
name = "base"
seed = 0
[data]
dataset = "synthetic"
partition = "natural"
[data.params]
devices = 10
[model]
name = "logreg"
[strategy]
name = "fedprox"
fraction_train = 1.0
[strategy.params]
proximal_mu = 0.1
[attack]
fraction = 0.2
[[compare.variants]]
strategy = "fedavg"
"""


def test_strategy_text_becomes_overrides_of_its_table() -> None:
    assert strategy_overrides("fedavg") == ("strategy.name=fedavg",)
    assert strategy_overrides(" fedadam : eta=0.01, tau=1e-4 ") == (
        "strategy.name=fedadam",
        "strategy.params.eta=0.01",
        "strategy.params.tau=1e-4",
    )
    assert strategy_overrides("mystrategies:Nova") == ("strategy.name=mystrategies:Nova",)  # an import path
    assert strategy_overrides("my.mod:Nova:mu=0.1") == ("strategy.name=my.mod:Nova", "strategy.params.mu=0.1")
    for bad in ("", ":eta=1", "fedadam:=1", "fedadam:eta=1,x"):
        with pytest.raises(ScenarioError, match="expected NAME or NAME:KEY=VALUE"):
            strategy_overrides(bad)


def test_seeds_are_distinct_non_negative_integers() -> None:
    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds("7") == (7,)
    for bad in ("", "0,x", "1,1", "-1", "0,,1"):
        with pytest.raises(ScenarioError, match="--seeds"):
            parse_seeds(bad)


def test_labels_become_folder_names() -> None:
    assert file_name("fedprox:proximal_mu=0.01") == "fedprox-proximal_mu-0.01"
    assert file_name("FedAvg, no attack") == "FedAvg-no-attack"
    assert file_name("/") == "variant"


def test_plan_runs_every_variant_for_every_seed_seed_by_seed() -> None:
    variants = [
        (VariantConfig("fedavg"), "a"),
        (VariantConfig("krum", label="Krum, no attack", set=("attack.fraction=0",)), "b"),
    ]
    runs = plan(parse_table(BASE), variants, seeds=(0, 1))
    assert [(r.label, r.seed, r.folder) for r in runs] == [
        ("fedavg", 0, "fedavg-seed0"),
        ("Krum, no attack", 0, "Krum-no-attack-seed0"),
        ("fedavg", 1, "fedavg-seed1"),
        ("Krum, no attack", 1, "Krum-no-attack-seed1"),
    ]
    fedavg, krum = runs[2].scenario, runs[1].scenario
    assert (fedavg.name, fedavg.seed, fedavg.strategy.name, fedavg.strategy.params) == (
        "fedavg",
        1,
        "fedavg",
        {},
    )
    assert fedavg.strategy.fraction_train == 1.0  # common keys are kept
    assert (fedavg.attack.fraction, krum.attack.fraction) == (0.2, 0.0)
    assert fedavg.compare.variants == ()  # a run folder holds a plain scenario
    assert tomllib.loads(fedavg.to_toml())["strategy"]["name"] == "fedavg"


def test_a_bad_variant_is_named_by_where_it_came_from() -> None:
    table = parse_table(BASE)
    runs = plan(table, [(VariantConfig("fedprox:eta=1"), "--strategy 'fedprox:eta=1'")], (0,))
    with pytest.raises(
        ScenarioError, match=r"^--strategy 'fedprox:eta=1': strategy\.params\.eta: unknown key"
    ):
        sweep.check(runs, Path("/nonexistent/out"))  # the plug-ins' params, before anything runs
    with pytest.raises(ScenarioError, match=r"^compare\.variants\[0\]: strategy\.name: unknown strategy"):
        plan(table, [(VariantConfig("fedfoo"), "compare.variants[0]")], (0,))
    with pytest.raises(ScenarioError, match="label 'fedavg' repeats"):
        plan(table, [(VariantConfig("fedavg"), "a"), (VariantConfig("fedavg"), "b")], (0,))
    with pytest.raises(ScenarioError, match="no variants"):
        plan(table, [], (0,))
