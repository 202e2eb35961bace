"""Strategy parameter tables, [attack] and [compare]: each bad key stops loading with one line naming it."""

from __future__ import annotations

import pytest

from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim.preflight import resolved
from strategies.registry import make_strategy

SYNTHETIC = (
    '[data]\ndataset = "synthetic"\npartition = "natural"\n'
    '[data.params]\ndevices = 10\n[model]\nname = "logreg"\n'
)


def load(text: str, *overrides: str) -> Scenario:
    """The scenario as a run sets it up: params bound, the strategy built for 10 clients."""
    scenario = resolved(parse_scenario(SYNTHETIC + text, overrides), 10)
    scenario.check_population(10)
    make_strategy(scenario, 10)
    return scenario


def error(text: str, *overrides: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load(text, *overrides)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_the_strategy_params_are_filled_with_its_defaults() -> None:
    scenario = load('[strategy]\nname = "fedadam"\n[strategy.params]\neta = 0.01')
    assert scenario.strategy.params == {"eta": 0.01, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3}
    assert load("").strategy.params == {}


def test_set_reaches_the_same_table() -> None:
    scenario = load(
        "", "strategy.name=krum", "strategy.fraction_train=1.0", "strategy.params.num_malicious_nodes=1"
    )
    assert scenario.strategy.params == {"num_malicious_nodes": 1}


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("[strategy.fedadam]\neta = 0.01", (), "strategy.fedadam: moved: write it as strategy.params"),
        (
            "",
            ("strategy.params.proximal_mu=0.1",),
            "strategy.params.proximal_mu: unknown key ('fedavg' takes",
        ),
        (
            '[strategy]\nname = "fedadam"\n[strategy.params]\neta_l = 0.1',
            (),
            "strategy.params.eta_l: unknown key (did you mean 'eta'?",
        ),
        (
            '[strategy]\nname = "fedprox"\n[strategy.params]\nproximal_mu = -1',
            (),
            "strategy.params.proximal_mu: expected a value >= 0",
        ),
        (
            '[strategy]\nname = "fedtrimmedavg"\n[strategy.params]\nbeta = 0.5',
            (),
            "strategy.params.beta: expected a value < 0.5",
        ),
        (
            '[strategy]\nname = "fedprox"\n[strategy.params]\nproximal_mu = "x"',
            (),
            "expected a number, got 'x'",
        ),
        ('[strategy]\nname = "fedx"', (), "strategy.name: unknown strategy 'fedx' (did you mean 'fedprox'?"),
        ("[strategy]\nproximal_mu = 0.1", (), "strategy.proximal_mu: unknown key"),
        ("", ("strategy.params.fraction_train=0.5",), "strategy.params.fraction_train: set by fedsim"),
    ],
)
def test_bad_strategy_keys_are_named(text: str, overrides: tuple[str, ...], message: str) -> None:
    assert message in error(text, *overrides)


def test_attack_kind_chooses_its_keys_and_defaults() -> None:
    assert parse_scenario(SYNTHETIC + "[attack]\nfraction = 0.2").attack.scale == 4.0  # sign_flip
    scaled = parse_scenario(SYNTHETIC + '[attack]\nfraction = 0.2\nkind = "scale"')
    assert (scaled.attack.scale, scaled.attack.noise_std) == (10.0, None)
    noisy = parse_scenario(SYNTHETIC + '[attack]\nfraction = 0.2\nkind = "gaussian_noise"\nnoise_std = 0.5')
    assert (noisy.attack.scale, noisy.attack.noise_std) == (None, 0.5)
    assert "attack.noise_std: only used by kind 'gaussian_noise', not 'sign_flip'" in error(
        "[attack]\nnoise_std = 1.0"
    )
    assert "attack.scale: only used by kind 'sign_flip' or 'scale'" in error(
        '[attack]\nkind = "label_flip"\nscale = 2.0'
    )
    assert "attack.fraction: 0.05 of 10 clients is no client" in error("[attack]\nfraction = 0.05")


def test_robust_rules_need_enough_clients_per_round_for_their_f() -> None:
    # 10 clients, 30 % malicious, 5 sampled: f = ceil(5 * 3 / 10) = 2, Krum needs n >= 2f + 3 = 7.
    message = error('[strategy]\nname = "krum"\nfraction_train = 0.5\n[attack]\nfraction = 0.3')
    assert message.startswith("strategy.fraction_train: 'krum' needs at least 7 clients per round with f = 2")
    load('[strategy]\nname = "krum"\nfraction_train = 0.9\n[attack]\nfraction = 0.3')  # n = 9, f = 3: enough
    assert "needs at least 11" in error(
        '[strategy]\nname = "bulyan"\nfraction_train = 1.0\n[attack]\nfraction = 0.2'
    )
    assert "at most the 5 clients" in error(
        '[strategy]\nname = "multikrum"\nfraction_train = 0.5\n[strategy.params]\nnum_nodes_to_select = 6'
    )


def test_compare_section_reads_arrays_of_variants() -> None:
    scenario = parse_scenario(
        SYNTHETIC
        + '[compare]\nseeds = [0, 2]\n[[compare.variants]]\nstrategy = "fedavg"\nlabel = "FedAvg"\n'
        + 'set = ["attack.fraction=0"]\n[[compare.variants]]\nstrategy = "fedprox:proximal_mu=0.1"\n'
    )
    assert scenario.compare.seeds == (0, 2)
    first, second = scenario.compare.variants
    assert (first.label, first.set, second.label) == ("FedAvg", ("attack.fraction=0",), None)
    assert "compare.seeds: expected distinct seeds >= 0" in error("[compare]\nseeds = [1, 1]")
    assert "compare.seeds[1]: expected an integer" in error('[compare]\nseeds = [1, "x"]')
    assert "compare.variants: expected an array" in error('[compare]\nvariants = "fedavg"')
    assert "compare.variants[0].strategy: missing" in error('[[compare.variants]]\nlabel = "x"')


def test_resolved_scenario_round_trips_through_toml() -> None:
    text = (
        '[strategy]\nname = "multikrum"\nfraction_train = 1.0\n[attack]\nfraction = 0.2\n'
        '[[compare.variants]]\nstrategy = "krum"'
    )
    scenario = load(text)
    assert parse_scenario(scenario.to_toml()) == scenario
