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
from typing import Any, Literal

import tomli_w

from fedsim.config import ScenarioError, apply_override, bounded, from_table, to_table

DatasetName = Literal["mnist", "synthetic"]
PartitionName = Literal["iid", "dirichlet", "shards", "natural"]
ModelName = Literal["cnn", "mlp", "logreg"]
StrategyName = Literal["fedavg", "fedprox"]

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
    name: StrategyName = "fedavg"
    fraction_train: float = bounded(0.1, gt=0, le=1)
    min_train_clients: int = bounded(1, ge=1)
    proximal_mu: float = bounded(0.0, ge=0)  # FedProx's mu
    fraction_evaluate: float = bounded(0.0, ge=0, le=1)  # federated evaluation; 0 = off

    def __post_init__(self) -> None:
        if self.proximal_mu > 0 and self.name != "fedprox":
            raise ScenarioError(
                "strategy.proximal_mu", f"only used by 'fedprox', but strategy.name is {self.name!r}"
            )


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

    def to_toml(self) -> str:
        return tomli_w.dumps(to_table(self))


def parse_scenario(text: str, overrides: tuple[str, ...] = (), source: str = "scenario") -> Scenario:
    """Parse TOML text, apply ``key.path=value`` overrides, validate."""
    try:
        table: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(source, f"invalid TOML: {error}") from None
    for assignment in overrides:
        apply_override(table, assignment)
    return from_table(Scenario, table)


def load_scenario(path: str | Path, overrides: tuple[str, ...] = ()) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ScenarioError(str(path), f"cannot read scenario file ({reason})") from None
    return parse_scenario(text, overrides, source=str(path))
