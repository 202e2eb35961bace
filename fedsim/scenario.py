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

DatasetName = Literal["mnist", "synthetic", "shakespeare", "text"]
PartitionName = Literal["iid", "dirichlet", "shards", "natural"]
ModelName = Literal["cnn", "mlp", "logreg", "lstm", "gru"]
StrategyName = Literal["fedavg", "fedprox"]

# Datasets whose samples carry a natural client id (a writer, a device, a speaker, a file).
NATURAL_DATASETS: frozenset[str] = frozenset({"synthetic", "shakespeare", "text"})
IMAGE_DATASETS: frozenset[str] = frozenset({"mnist"})
# Character sequences: samples are token windows, read by the sequence models only.
TEXT_DATASETS: frozenset[str] = frozenset({"shakespeare", "text"})
TEXT_MODELS: frozenset[str] = frozenset({"lstm", "gru"})
# Partitions that need one label per sample to split by.
LABEL_PARTITIONS: frozenset[str] = frozenset({"dirichlet"})

DEFAULT_NUM_CLIENTS = 100  # where the data has no client count of its own
SHAKESPEARE_PATH = "shakespeare/tinyshakespeare.txt"  # under the data root


@dataclass(frozen=True)
class SyntheticConfig:
    """Synthetic(alpha, beta) of Li et al. 2020 (FedProx), Section 5.1."""

    alpha: float = bounded(1.0, ge=0)  # how much local models differ
    beta: float = bounded(1.0, ge=0)  # how much local data differ
    test_fraction: float = bounded(0.2, gt=0, lt=1)  # per device, held out for evaluation


@dataclass(frozen=True)
class DataConfig:
    """Which data, and how it is split into clients.

    The client count: ``num_clients`` where set.  Unset, text data sets take it from
    the data (one client per role of the play, or per file of a text folder; a
    balanced ``iid`` split of the play keeps that count) and leave it None; all
    others fill in 100.  With ``partition = "natural"`` on text the data alone
    decides, so setting ``num_clients`` there is an error; ``min_samples`` filters.
    """

    dataset: DatasetName = "mnist"
    root: str | None = None  # data root holding MNIST/raw, shakespeare/...; else --data-dir, env, cache
    path: str | None = None  # text: a UTF-8 file or a folder of .txt files, absolute or under the root
    partition: PartitionName = "iid"
    num_clients: int | None = bounded(None, ge=1)  # None: the data decide (text); see the docstring
    alpha: float = bounded(0.5, gt=0)  # Dirichlet concentration (partition = "dirichlet")
    shards_per_client: int = bounded(2, ge=1)  # partition = "shards"
    min_partition_size: int = bounded(1, ge=0)  # partition = "dirichlet": resample below this
    seq_len: int = bounded(80, ge=1)  # text: characters a model reads to predict the next one
    min_samples: int = bounded(100, ge=1)  # text: keep roles/files with this many training windows
    eval_windows: int = bounded(5000, ge=1)  # text: centralized evaluation reads at most this many
    synthetic: SyntheticConfig = SyntheticConfig()

    def __post_init__(self) -> None:
        if self.partition == "natural" and self.dataset not in NATURAL_DATASETS:
            raise ScenarioError(
                "data.partition",
                f"'natural' needs a dataset with natural clients "
                f"({', '.join(sorted(NATURAL_DATASETS))}); {self.dataset} has none",
            )
        if self.partition in LABEL_PARTITIONS and self.dataset in TEXT_DATASETS:
            raise ScenarioError(
                "data.partition",
                f"{self.partition!r} splits by class label, which {self.dataset} lacks; "
                "use 'natural', 'iid' or 'shards'",
            )
        if self.dataset in TEXT_DATASETS:
            self._check_text()
        elif self.path is not None:
            raise ScenarioError("data.path", f"only read by text datasets; {self.dataset} uses data.root")
        elif self.num_clients is None:  # resolved here, so scenario.toml records the count
            object.__setattr__(self, "num_clients", DEFAULT_NUM_CLIENTS)

    def _check_text(self) -> None:
        if self.dataset == "text" and self.path is None:
            raise ScenarioError(
                "data.path", "required for dataset 'text': a UTF-8 file or a folder of .txt files"
            )
        if self.path is not None and not self.path.strip():
            raise ScenarioError("data.path", "expected a file or folder name, got ''")
        if self.partition == "natural" and self.num_clients is not None:
            unit = "role" if self.dataset == "shakespeare" else "file"
            raise ScenarioError(
                "data.num_clients",
                f"{self.dataset} with partition 'natural' has one client per {unit}, so the data "
                "decides the count; remove this key (data.min_samples filters clients)",
            )

    @property
    def text_path(self) -> str:
        """The text to read: ``path``, or for shakespeare the play under the data root."""
        return self.path or SHAKESPEARE_PATH


@dataclass(frozen=True)
class ModelConfig:
    name: ModelName = "cnn"
    # lstm / gru only; the defaults are McMahan et al. 2017's Shakespeare model.
    embedding_dim: int = bounded(8, ge=1)
    hidden_size: int = bounded(256, ge=1)
    num_layers: int = bounded(2, ge=1)


@dataclass(frozen=True)
class ClientConfig:
    local_epochs: int = bounded(1, ge=1)
    batch_size: int = bounded(10, ge=1)
    lr: float = bounded(0.1, gt=0)
    optimizer: Literal["sgd"] = "sgd"
    momentum: float = bounded(0.0, ge=0, lt=1)
    weight_decay: float = bounded(0.0, ge=0)
    max_grad_norm: float | None = bounded(None, gt=0)  # clip each step's gradient norm (RNNs)


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
        self._check_model_fits_data()
        clients = self.data.num_clients  # None: checked once the data are loaded
        if clients is not None and self.strategy.min_train_clients > clients:
            raise ScenarioError(
                "strategy.min_train_clients",
                f"expected at most data.num_clients ({clients}), got {self.strategy.min_train_clients}",
            )

    def _check_model_fits_data(self) -> None:
        model, dataset = self.model.name, self.data.dataset
        if model == "cnn" and dataset not in IMAGE_DATASETS:
            raise ScenarioError("model.name", f"'cnn' needs image data (mnist); {dataset} is not images")
        if model in TEXT_MODELS and dataset not in TEXT_DATASETS:
            raise ScenarioError(
                "model.name",
                f"{model!r} reads character sequences (shakespeare, text); {dataset} is not text",
            )
        if dataset in TEXT_DATASETS and model not in TEXT_MODELS:
            raise ScenarioError(
                "model.name",
                f"{dataset} is character sequences: expected a sequence model "
                f"({', '.join(sorted(TEXT_MODELS))}), got {model!r}",
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
