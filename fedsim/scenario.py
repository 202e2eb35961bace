"""A scenario: one federated experiment, as a tree of frozen, validated dataclasses.

Load with :func:`load_scenario` (a TOML file plus ``--set`` overrides) or
:func:`parse_scenario` (TOML text, as sent to clients).  Each section checks its
own cross-field rules in ``__post_init__``; past this module nothing re-validates.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import tomli_w

from fedsim.config import ScenarioError, apply_override, bounded, from_table, to_table
from strategies.cohorts import cohort_size, expected_malicious, malicious_count
from strategies.params import (
    BulyanParams,
    FedAdagradParams,
    FedAdamParams,
    FedAvgMParams,
    FedAvgParams,
    FedMedianParams,
    FedProxParams,
    FedTrimmedAvgParams,
    FedYogiParams,
    KrumParams,
    MultiKrumParams,
    QFedAvgParams,
    ScaffoldParams,
    StrategyParams,
)

DatasetName = Literal["mnist", "synthetic"]
PartitionName = Literal["iid", "dirichlet", "shards", "natural"]
ModelName = Literal["cnn", "mlp", "logreg"]
StrategyName = Literal[
    "fedavg",
    "fedprox",
    "fedavgm",
    "fedadam",
    "fedyogi",
    "fedadagrad",
    "qfedavg",
    "fedmedian",
    "fedtrimmedavg",
    "krum",
    "multikrum",
    "bulyan",
    "scaffold",
]
AttackKind = Literal["sign_flip", "gaussian_noise", "scale", "label_flip"]

# Datasets whose samples carry a natural client id (a writer, a device, a speaker).
NATURAL_DATASETS: frozenset[str] = frozenset({"synthetic"})
IMAGE_DATASETS: frozenset[str] = frozenset({"mnist"})


@dataclass(frozen=True)
class SyntheticConfig:
    """Synthetic(alpha, beta) of Li et al. 2020 (FedProx), Section 5.1."""

    alpha: float = bounded(1.0, ge=0)  # how much local models differ
    beta: float = bounded(1.0, ge=0)  # how much local data differ
    test_fraction: float = bounded(0.2, gt=0, lt=1)  # per device, held out for evaluation


@dataclass(frozen=True)
class DataConfig:
    dataset: DatasetName = "mnist"
    root: str | None = None  # where MNIST/raw lives; else --data-dir, $FEDSIM_DATA_DIR, cache
    partition: PartitionName = "iid"
    num_clients: int = bounded(100, ge=1)
    alpha: float = bounded(0.5, gt=0)  # Dirichlet concentration (partition = "dirichlet")
    shards_per_client: int = bounded(2, ge=1)  # partition = "shards"
    min_partition_size: int = bounded(1, ge=0)  # partition = "dirichlet": resample below this
    synthetic: SyntheticConfig = SyntheticConfig()

    def __post_init__(self) -> None:
        if self.partition == "natural" and self.dataset not in NATURAL_DATASETS:
            raise ScenarioError(
                "data.partition",
                f"'natural' needs a dataset with natural clients "
                f"({', '.join(sorted(NATURAL_DATASETS))}); {self.dataset} has none",
            )


@dataclass(frozen=True)
class ModelConfig:
    name: ModelName = "cnn"


@dataclass(frozen=True)
class ClientConfig:
    local_epochs: int = bounded(1, ge=1)
    batch_size: int = bounded(10, ge=1)
    lr: float = bounded(0.1, gt=0)
    optimizer: Literal["sgd"] = "sgd"
    momentum: float = bounded(0.0, ge=0, lt=1)
    weight_decay: float = bounded(0.0, ge=0)


@dataclass(frozen=True)
class StrategyConfig:
    """The keys every strategy has; its own parameters go in its table, e.g. ``[strategy.fedadam]``."""

    name: StrategyName = "fedavg"
    fraction_train: float = bounded(0.1, gt=0, le=1)
    min_train_clients: int = bounded(1, ge=1)
    fraction_evaluate: float = bounded(0.0, ge=0, le=1)  # federated evaluation; 0 = off
    # One table per strategy (strategies/params.py).  Only the chosen one may be given;
    # it is filled with its defaults, so the run folder records every value used.
    fedavg: FedAvgParams | None = None
    fedprox: FedProxParams | None = None
    fedavgm: FedAvgMParams | None = None
    fedadam: FedAdamParams | None = None
    fedyogi: FedYogiParams | None = None
    fedadagrad: FedAdagradParams | None = None
    qfedavg: QFedAvgParams | None = None
    fedmedian: FedMedianParams | None = None
    fedtrimmedavg: FedTrimmedAvgParams | None = None
    krum: KrumParams | None = None
    multikrum: MultiKrumParams | None = None
    bulyan: BulyanParams | None = None
    scaffold: ScaffoldParams | None = None

    def __post_init__(self) -> None:
        for other in get_args(StrategyName):
            if other != self.name and getattr(self, other) is not None:
                raise ScenarioError(
                    f"strategy.{other}", f"only used by {other!r}, but strategy.name is {self.name!r}"
                )
        if getattr(self, self.name) is None:
            (params_class,) = (
                a for a in get_args(get_type_hints(StrategyConfig)[self.name]) if a is not type(None)
            )
            object.__setattr__(self, self.name, params_class())  # frozen: set once, while building

    @property
    def params(self) -> StrategyParams:
        """The chosen strategy's parameters."""
        params: StrategyParams = getattr(self, self.name)
        return params


# Each attack kind's own keys and their defaults (see strategies/attacks.py for the papers).
ATTACK_PARAMS: dict[str, dict[str, float]] = {
    "sign_flip": {"scale": 4.0},
    "gaussian_noise": {"noise_std": 1.0},
    "scale": {"scale": 10.0},
    "label_flip": {},
}


@dataclass(frozen=True)
class AttackConfig:
    """Byzantine clients: a seeded ``fraction`` of the partitions misbehaves whenever sampled."""

    fraction: float = bounded(0.0, ge=0, lt=1)  # 0 = no attack
    kind: AttackKind = "sign_flip"
    scale: float | None = bounded(None, gt=0)  # sign_flip: send -scale * update; scale: scale * update
    noise_std: float | None = bounded(None, gt=0)  # gaussian_noise: update + N(0, noise_std^2)

    def __post_init__(self) -> None:
        own = ATTACK_PARAMS[self.kind]
        for key in ("scale", "noise_std"):
            if key in own and getattr(self, key) is None:
                object.__setattr__(self, key, own[key])  # frozen: set once, while building
            elif key not in own and getattr(self, key) is not None:
                users = [k for k, keys in ATTACK_PARAMS.items() if key in keys]
                raise ScenarioError(
                    f"attack.{key}", f"only used by kind {' or '.join(map(repr, users))}, not {self.kind!r}"
                )


@dataclass(frozen=True)
class VariantConfig:
    """One line of a comparison: a strategy as for ``fedsim compare --strategy``, and overrides."""

    strategy: str  # "name" or "name:key=value,key=value", e.g. "fedprox:proximal_mu=0.01"
    label: str | None = None  # legend and folder name; default: the strategy text
    set: tuple[str, ...] = ()  # more KEY=VALUE overrides for this variant, e.g. "attack.fraction=0"


@dataclass(frozen=True)
class CompareConfig:
    """What ``fedsim compare`` runs when the command line names no strategies or seeds."""

    seeds: tuple[int, ...] = ()  # default: the scenario's seed
    variants: tuple[VariantConfig, ...] = ()

    def __post_init__(self) -> None:
        if any(seed < 0 for seed in self.seeds) or len(set(self.seeds)) < len(self.seeds):
            raise ScenarioError("compare.seeds", f"expected distinct seeds >= 0, got {list(self.seeds)}")


@dataclass(frozen=True)
class EvaluationConfig:
    centralized: bool = True  # evaluate the global model on the held-out test set
    every: int = bounded(1, ge=1)  # rounds between evaluations; the last round always is
    target_accuracy: float | None = bounded(None, gt=0, le=1)


@dataclass(frozen=True)
class ResourcesConfig:
    client_cpus: float = bounded(1.0, gt=0)
    client_gpus: float = bounded(0.0, ge=0, le=1)
    round_timeout_s: float = bounded(600.0, gt=0)  # a round waits at most this for replies


@dataclass(frozen=True)
class Scenario:
    name: str = "scenario"
    seed: int = bounded(0, ge=0)
    rounds: int = bounded(10, ge=1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    client: ClientConfig = ClientConfig()
    strategy: StrategyConfig = StrategyConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    resources: ResourcesConfig = ResourcesConfig()
    attack: AttackConfig = AttackConfig()
    compare: CompareConfig = CompareConfig()

    def __post_init__(self) -> None:
        if not self.name.strip() or os.sep in self.name:
            raise ScenarioError("name", f"expected a non-empty name without {os.sep!r}, got {self.name!r}")
        if self.model.name == "cnn" and self.data.dataset not in IMAGE_DATASETS:
            raise ScenarioError(
                "model.name", f"'cnn' needs image data (mnist); {self.data.dataset} is tabular"
            )
        if self.strategy.min_train_clients > self.data.num_clients:
            raise ScenarioError(
                "strategy.min_train_clients",
                f"expected at most data.num_clients ({self.data.num_clients}), "
                f"got {self.strategy.min_train_clients}",
            )
        _check_attack(self)
        _check_strategy(self)

    @property
    def train_cohort(self) -> int:
        """Clients sampled to train each round."""
        cfg = self.strategy
        return cohort_size(cfg.fraction_train, self.data.num_clients, cfg.min_train_clients)

    @property
    def assumed_malicious(self) -> int:
        """``f`` of Krum, Multi-Krum and Bulyan: as set, else the attackers expected per round."""
        given: int | None = getattr(self.strategy.params, "num_malicious_nodes", None)
        if given is not None:
            return given
        population = self.data.num_clients
        malicious = malicious_count(self.attack.fraction, population)
        return expected_malicious(self.train_cohort, malicious, population)

    def to_toml(self) -> str:
        return tomli_w.dumps(to_table(self))


def _check_attack(scenario: Scenario) -> None:
    attack, population = scenario.attack, scenario.data.num_clients
    if attack.fraction > 0 and malicious_count(attack.fraction, population) == 0:
        raise ScenarioError(
            "attack.fraction", f"{attack.fraction:g} of data.num_clients = {population} is no client"
        )


def _check_strategy(scenario: Scenario) -> None:
    """The assumptions each strategy makes about the clients it aggregates."""
    name, n = scenario.strategy.name, scenario.train_cohort
    if name == "scaffold" and scenario.client.momentum > 0:
        # Option II of the control-variate update assumes plain SGD steps.
        raise ScenarioError("client.momentum", "'scaffold' assumes plain SGD; expected 0")
    if name not in ("krum", "multikrum", "bulyan"):
        return
    f = scenario.assumed_malicious
    needed = 4 * f + 3 if name == "bulyan" else 2 * f + 3  # Bulyan: n >= 4f + 3; Krum: n > 2f + 2
    if n < needed:
        raise ScenarioError(
            f"strategy.{name}",
            f"needs at least {needed} clients per round with f = {f} malicious, "
            f"but strategy.fraction_train samples {n}",
        )
    selected = getattr(scenario.strategy.params, "num_nodes_to_select", None)
    if selected is not None and selected > n:
        raise ScenarioError(
            "strategy.multikrum.num_nodes_to_select", f"expected at most the {n} clients per round"
        )


def parse_table(text: str, overrides: tuple[str, ...] = (), source: str = "scenario") -> dict[str, Any]:
    """Parse TOML text and apply ``key.path=value`` overrides, not yet validated."""
    try:
        table: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(source, f"invalid TOML: {error}") from None
    for assignment in overrides:
        apply_override(table, assignment)
    return table


def parse_scenario(text: str, overrides: tuple[str, ...] = (), source: str = "scenario") -> Scenario:
    """Parse TOML text, apply ``key.path=value`` overrides, validate."""
    return from_table(Scenario, parse_table(text, overrides, source))


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ScenarioError(str(path), f"cannot read scenario file ({reason})") from None


def load_scenario(path: str | Path, overrides: tuple[str, ...] = ()) -> Scenario:
    return parse_scenario(read_text(path), overrides, source=str(path))
