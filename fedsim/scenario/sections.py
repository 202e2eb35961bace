"""A scenario: one federated experiment, as a tree of frozen, validated dataclasses.

Load with :func:`load_scenario` (a TOML file plus ``--set`` overrides) or
:func:`parse_scenario` (TOML text, as sent to clients).  Each section checks its
own cross-field rules in ``__post_init__``; past this module nothing re-validates.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import tomli_w

from fedsim.scenario import plugins
from fedsim.scenario.compression import CompressionConfig
from fedsim.scenario.counts import cohort_size, expected_malicious, malicious_count, straggler_count
from fedsim.scenario.devices import DevicesConfig
from fedsim.scenario.privacy import PrivacyConfig
from fedsim.scenario.tables import Params, ScenarioError, bounded, fill_choice_defaults, to_table

PartitionName = Literal["iid", "dirichlet", "shards", "natural"]
AttackKind = Literal["sign_flip", "gaussian_noise", "scale", "label_flip"]
StragglerPolicy = Literal["drop", "partial"]

MAX_SEED = 2**63 - 1  # TOML's largest integer; torch seeds overflow past 2**64
MAX_NAME_LENGTH = 100  # the run folder adds a timestamp; file systems allow 255 bytes
# Every round's row stays in memory and Poisson sampling plans every round before the first
# (strategies/plan.py, about 2 s per 100 000 rounds): a 10**15 typo must not hang the start.
MAX_ROUNDS = 100_000
GPU_UNITS = 10_000  # Ray's resolution of a resource quantity (ray._raylet.RESOURCE_UNIT_SCALING)


@dataclass(frozen=True)
class DataConfig:
    """Which data, and how it is split into clients.

    ``dataset`` names a loader (a built-in, or ``package.module:function``) called as
    ``load(root, **params)``: fedsim/data/.  The client count is ``num_clients`` where
    set; unset, a data set whose samples carry natural client ids (a role, a file, a
    writer, a device) has one client per id, any other 100.  With ``partition =
    "natural"`` each id is a client, and ``num_clients`` keeps the first ones (in id order).
    ``max_samples`` cuts every client to its first samples (after partitioning): shorter
    rounds, e.g. a benchmark's, on the same clients.  ``samples_per_client`` (``iid`` only)
    gives each client that many samples, disjoint while the data hold enough, else drawn
    per client with replacement across clients: more clients than samples, e.g. a million
    on MNIST (fedsim/data/partition.py: ``per_client``).  ``client_test_fraction`` holds out
    that share of each client's samples as its own test data (fedsim/data/local_test.py), which
    never trains; unset, a data set with per-client test samples (FEMNIST's, Synthetic's) under
    ``partition = "natural"`` gives its own.
    """

    dataset: str = "mnist"  # mnist, synthetic, shakespeare, text, ... or package.module:function
    params: Params = field(default_factory=Params)  # the loader's keyword arguments, e.g. path, seq_len
    root: str | None = None  # data root holding MNIST/raw, shakespeare/...; else --data-dir, env, cache
    partition: PartitionName = "iid"
    num_clients: int | None = bounded(None, ge=1)  # None: as the data say; see the docstring
    alpha: float = bounded(0.5, gt=0)  # Dirichlet concentration (partition = "dirichlet")
    shards_per_client: int = bounded(2, ge=1)  # partition = "shards"
    min_partition_size: int = bounded(1, ge=0)  # partition = "dirichlet": resample below this
    max_samples: int | None = bounded(None, ge=1)  # per client: its first this many training samples
    samples_per_client: int | None = bounded(None, ge=1)  # partition = "iid": each client this many
    client_test_fraction: float | None = bounded(None, gt=0, lt=1)  # each client's held-out share

    MOVED: ClassVar[dict[str, str]] = {
        "path": "params.path",
        "seq_len": "params.seq_len",
        "min_samples": "params.min_samples",
        "eval_windows": "params.eval_windows",
        "synthetic": "params",
    }

    def __post_init__(self) -> None:
        plugins.check_name(plugins.DATASET, self.dataset)
        object.__setattr__(self, "params", Params(self.params))  # a dict given in Python, too
        if self.samples_per_client is not None and self.partition != "iid":
            raise ScenarioError(
                "data.samples_per_client",
                f"only with partition = 'iid' (each client a uniform draw), got {self.partition!r}",
            )


@dataclass(frozen=True)
class ModelConfig:
    """A model builder (a built-in, or ``package.module:function``), called as
    ``builder(input_shape, num_classes, **params)``: fedsim/models/build.py."""

    name: str = "cnn"  # cnn, mlp, logreg, lstm, gru, or package.module:function
    params: Params = field(default_factory=Params)  # e.g. lstm's embedding_dim, hidden_size, num_layers

    MOVED: ClassVar[dict[str, str]] = {
        k: f"params.{k}" for k in ("embedding_dim", "hidden_size", "num_layers")
    }

    def __post_init__(self) -> None:
        plugins.check_name(plugins.MODEL, self.name)
        object.__setattr__(self, "params", Params(self.params))  # a dict given in Python, too


@dataclass(frozen=True)
class ClientConfig:
    local_epochs: int = bounded(1, ge=1)
    batch_size: int = bounded(10, ge=1)
    lr: float = bounded(0.1, gt=0)
    optimizer: Literal["sgd"] = "sgd"
    momentum: float = bounded(0.0, ge=0, lt=1)
    weight_decay: float = bounded(0.0, ge=0)
    max_grad_norm: float | None = bounded(None, gt=0)  # clip each step's gradient norm (RNNs)
    # The local update: "sgd" (minibatch SGD with the algorithm's gradient terms, and DP-SGD
    # where the scenario asks), or package.module:function (clients/update.py).
    update: str = "sgd"
    params: Params = field(default_factory=Params)  # the update's keyword arguments

    def __post_init__(self) -> None:
        plugins.check_name(plugins.UPDATE, self.update)
        object.__setattr__(self, "params", Params(self.params))  # a dict given in Python, too

    def local_steps(self, num_samples: float, epochs: int | None = None) -> int:
        """Optimizer steps a client takes on ``num_samples`` samples: every epoch's minibatches
        of ``batch_size`` (``epochs``: a straggler's own, else ``local_epochs``)."""
        return (self.local_epochs if epochs is None else epochs) * math.ceil(num_samples / self.batch_size)


@dataclass(frozen=True)
class StrategyConfig:
    """The server's strategy (a built-in, or ``package.module:Class``, a Flower Strategy) and
    the sampling every strategy shares; its own keyword arguments go in ``[strategy.params]``."""

    name: str = "fedavg"  # fedavg, fedprox, fedadam, ..., or package.module:Class
    params: Params = field(default_factory=Params)  # e.g. fedprox's proximal_mu, fedadam's eta
    fraction_train: float = bounded(0.1, gt=0, le=1)
    min_train_clients: int = bounded(1, ge=1)
    fraction_evaluate: float = bounded(0.0, ge=0, le=1)  # federated evaluation; 0 = off
    # A synchronous round in virtual time (Bonawitz et al. 2019): replies arriving later than this
    # after the round began are not aggregated; over-selection samples that share more clients and
    # keeps the first fraction_train's worth to arrive (strategies/clock.py: select).
    round_deadline_s: float | None = bounded(None, gt=0)
    over_selection: float = bounded(0.0, ge=0, le=10)

    MOVED: ClassVar[dict[str, str]] = {name: "params" for name in plugins.REGISTRY["strategy"]}

    def __post_init__(self) -> None:
        plugins.check_name(plugins.STRATEGY, self.name)
        object.__setattr__(self, "params", Params(self.params))  # a dict given in Python, too


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
        fill_choice_defaults(self, "attack", self.kind, ("scale", "noise_std"), ATTACK_PARAMS, noun="kind ")


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
    # Per-client evaluation (fedsim/sim/client_eval.py): the global model (and a personalization
    # algorithm's own models) on each chosen client's own test data ("all", or that fraction of
    # the clients, sampled per round from the seed), every ``clients_every`` rounds (unset: ``every``).
    clients: float | Literal["all"] | None = bounded(None, gt=0, le=1)
    clients_every: int | None = bounded(None, ge=1)
    target_accuracy: float | None = bounded(None, gt=0, le=1)
    # End the run at the first evaluation reaching target_accuracy: rounds (and seconds) to a
    # target are how McMahan et al. 2017 compare methods, and what a user waits for.
    stop_at_target: bool = False

    def __post_init__(self) -> None:
        if self.stop_at_target and self.target_accuracy is None:
            raise ScenarioError("evaluation.stop_at_target", "stops at evaluation.target_accuracy: set it")
        if self.stop_at_target and not self.centralized:
            raise ScenarioError(
                "evaluation.stop_at_target",
                "stops on the centralized accuracy: evaluation.centralized must be true",
            )

    def client_count(self, population: int) -> int:
        """How many clients per-client evaluation evaluates (0: it is off)."""
        if self.clients is None:
            return 0
        return population if self.clients == "all" else max(1, math.ceil(self.clients * population))

    def reached(self, accuracy: float | None) -> bool:
        """Whether an evaluation's accuracy reaches ``target_accuracy``."""
        return self.target_accuracy is not None and accuracy is not None and accuracy >= self.target_accuracy


@dataclass(frozen=True)
class ResultsConfig:
    """What a run writes besides its run folder's own files (fedsim/results/run_dir.py)."""

    tensorboard: bool = (
        False  # TensorBoard event files in RUN_DIR/tensorboard (fedsim/results/tensorboard.py)
    )


@dataclass(frozen=True)
class ResourcesConfig:
    client_cpus: float = bounded(1.0, gt=0)
    # Share of one GPU per client, 0 = none; "auto": sized from a measured client (clients/gpu.py).
    client_gpus: float | Literal["auto"] = bounded(0.0, ge=0, le=1)
    round_timeout_s: float = bounded(600.0, gt=0)  # a round waits at most this for replies
    # "cohort": a worker trains a group of the round's clients together (clients/cohort.py);
    # "auto": chosen once the data are loaded, and recorded (fedsim/sim/engine_choice.py).
    engine: Literal["auto", "per_client", "cohort"] = "auto"
    cohort_size: int | None = bounded(None, ge=1)  # clients per group; None: the whole round's sample
    # Graph capture of the cohort step (clients/capture.py); None: on where the worker trains on CUDA.
    capture: bool | None = None

    def __post_init__(self) -> None:
        for key in ("cohort_size", "capture"):
            if getattr(self, key) is not None and self.engine != "cohort":
                raise ScenarioError(f"resources.{key}", f"only used by engine 'cohort', not {self.engine!r}")
        share = self.client_gpus
        if not isinstance(share, str) and abs(share * GPU_UNITS - round(share * GPU_UNITS)) > 1e-6:
            # Ray would round it, and then fit fewer clients on a GPU than we count.
            raise ScenarioError(
                "resources.client_gpus", f"Ray counts GPU shares in steps of {1 / GPU_UNITS:g}, got {share!r}"
            )

    @property
    def uses_gpu(self) -> bool:
        return isinstance(self.client_gpus, str) or self.client_gpus > 0

    @property
    def gpu_share(self) -> float:
        """``client_gpus`` once resolved (``"auto"`` is measured before the run: clients/gpu.py)."""
        if isinstance(self.client_gpus, str):
            raise ValueError("resources.client_gpus is 'auto': resolve it first (clients.gpu.resolve)")
        return self.client_gpus

    @property
    def threads(self) -> int:
        """Torch threads per client actor: its whole CPUs, at least one."""
        return max(1, int(self.client_cpus))


@dataclass(frozen=True)
class FaultsConfig:
    """Injected client faults, decided from the seed per round and sampled client (training only)."""

    failure_rate: float = bounded(0.0, ge=0, lt=1)  # the client raises: an error reply
    crash_rate: float = bounded(0.0, ge=0, lt=1)  # the client's process dies; Ray starts a new one
    dropout_rate: float = bounded(0.0, ge=0, lt=1)  # the client never answers: the round times out
    round_retries: int = bounded(0, ge=0, le=100)  # re-run a round short of min_train_clients replies

    def __post_init__(self) -> None:
        total = self.failure_rate + self.crash_rate + self.dropout_rate
        if total >= 1:
            raise ScenarioError(
                "faults",
                f"failure_rate + crash_rate + dropout_rate must be below 1 (some client must "
                f"succeed), got {total:g}",
            )


@dataclass(frozen=True)
class StragglersConfig:
    """System heterogeneity of Li et al. 2020 (FedProx), Section 5.2."""

    fraction: float = bounded(0.0, ge=0, le=1)  # of each round's sampled clients
    policy: StragglerPolicy = "partial"  # drop: not aggregated (FedAvg); partial: their epochs count

    # A client's speed is its device's ([devices] compute, in local steps per second).
    MOVED: ClassVar[dict[str, str]] = {
        key: "[devices] compute = { dist = 'loguniform', low = 1 / (step_time_s * max_slowdown), "
        "high = 1 / step_time_s }, in local steps per second"
        for key in ("max_slowdown", "step_time_s")
    }


@dataclass(frozen=True)
class Scenario:
    name: str = "scenario"
    seed: int = bounded(0, ge=0, le=MAX_SEED)
    rounds: int = bounded(10, ge=1, le=MAX_ROUNDS)
    # Folders that plug-in modules are imported from, before the Python path; a scenario file
    # naming an import path adds its own folder (recorded absolute in the run folder).
    python_path: tuple[str, ...] = ()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    client: ClientConfig = ClientConfig()
    strategy: StrategyConfig = StrategyConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    results: ResultsConfig = ResultsConfig()
    resources: ResourcesConfig = ResourcesConfig()
    attack: AttackConfig = AttackConfig()
    privacy: PrivacyConfig | None = None  # no [privacy] table: no differential privacy
    compression: CompressionConfig = CompressionConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    compare: CompareConfig = CompareConfig()
    faults: FaultsConfig = FaultsConfig()
    stragglers: StragglersConfig = StragglersConfig()
    devices: DevicesConfig = DevicesConfig()

    def __post_init__(self) -> None:
        _check_compression(self)
        if not self.name.strip() or os.sep in self.name:
            raise ScenarioError("name", f"expected a non-empty name without {os.sep!r}, got {self.name!r}")
        if not self.name.isprintable() or len(self.name) > MAX_NAME_LENGTH:  # it names a folder
            raise ScenarioError(
                "name", f"expected at most {MAX_NAME_LENGTH} printable characters, got {self.name[:120]!r}"
            )
        timed = self.strategy.round_deadline_s is not None or self.strategy.over_selection > 0
        if timed and self.privacy is not None:
            key = "round_deadline_s" if self.strategy.round_deadline_s is not None else "over_selection"
            raise ScenarioError(
                f"strategy.{key}",
                "not with [privacy]: its accounting assumes every sampled client's update is aggregated",
            )
        if self.data.num_clients is not None:  # else the data decide: checked once they load
            self.check_population(self.data.num_clients)

    def check_population(self, population: int) -> None:
        """The rules that depend on the number of clients (known at load, or once the data load)."""
        if self.strategy.min_train_clients > population:
            raise ScenarioError(
                "strategy.min_train_clients",
                f"expected at most the {population} clients, got {self.strategy.min_train_clients}",
            )
        _check_attack(self, population)
        _check_stragglers(self, population)
        if self.privacy is not None:
            _check_privacy_population(self, population)

    def train_cohort(self, population: int) -> int:
        """Clients sampled to train each round."""
        cfg = self.strategy
        return cohort_size(cfg.fraction_train, population, cfg.min_train_clients)

    def evaluates(self, server_round: int) -> bool:
        """Whether ``server_round`` is evaluated: every ``evaluation.every`` rounds, and the last."""
        return server_round % self.evaluation.every == 0 or server_round == self.rounds

    def evaluates_clients(self, server_round: int) -> bool:
        """Whether ``server_round`` evaluates clients on their own test data ([evaluation] clients)."""
        evaluation = self.evaluation
        if evaluation.clients is None:
            return False
        every = evaluation.clients_every or evaluation.every
        return server_round % every == 0 or server_round == self.rounds

    def train_sample_size(self, population: int) -> int:
        """Clients sampled to train each round: the cohort, and over-selection's extra share."""
        cohort = self.train_cohort(population)
        return min(population, math.ceil(cohort * (1 + self.strategy.over_selection)))

    def assumed_malicious(self, population: int, given: int | None = None) -> int:
        """``f`` of Krum, Multi-Krum and Bulyan: ``given``, else the attackers expected per round."""
        if given is not None:
            return given
        malicious = malicious_count(self.attack.fraction, population)
        return expected_malicious(self.train_cohort(population), malicious, population)

    def expected_cohort(self, population: int) -> float:
        """Clients per round: m of N (fixed), or q * N on average (poisson): the mean's denominator."""
        cfg = self.strategy
        if self.privacy is not None and self.privacy.sampling == "poisson":
            return cfg.fraction_train * population
        return float(cohort_size(cfg.fraction_train, population, cfg.min_train_clients))

    def count_stddev(self, population: int) -> float:
        """Adaptive clipping's noise on the clipped count: as set, else the cohort / 20 (Andrew et al.)."""
        assert self.privacy is not None
        return self.privacy.clipped_count_stddev or self.expected_cohort(population) / 20

    def to_toml(self) -> str:
        return tomli_w.dumps(to_table(self))


def _check_privacy_population(scenario: Scenario, population: int) -> None:
    """What needs the client count: Flower's limit on adaptive clipping's noise."""
    privacy = scenario.privacy
    assert privacy is not None
    if privacy.clipping != "adaptive" or isinstance(privacy.noise_multiplier, str):
        return
    stddev = scenario.count_stddev(population)
    if privacy.noise_multiplier >= 2 * stddev:
        given = (
            ""
            if privacy.clipped_count_stddev
            else f" (the default: {scenario.expected_cohort(population):g} / 20)"
        )
        raise ScenarioError(
            "privacy.noise_multiplier",
            f"Flower's adaptive clipping needs noise_multiplier < 2 * clipped_count_stddev = {2 * stddev:g}"
            f"{given}, got {privacy.noise_multiplier:g}; raise privacy.clipped_count_stddev or lower "
            "the noise",
        )


def _check_attack(scenario: Scenario, population: int) -> None:
    attack = scenario.attack
    if attack.fraction > 0 and malicious_count(attack.fraction, population) == 0:
        raise ScenarioError("attack.fraction", f"{attack.fraction:g} of {population} clients is no client")


def _check_stragglers(scenario: Scenario, population: int) -> None:
    """Dropping stragglers must leave enough replies to aggregate."""
    if scenario.stragglers.policy != "drop":
        return
    cohort = scenario.train_cohort(population)
    kept = cohort - straggler_count(scenario.stragglers.fraction, cohort)
    if kept < scenario.strategy.min_train_clients:
        raise ScenarioError(
            "stragglers.fraction",
            f"policy 'drop' keeps {kept} of the {cohort} clients per round, fewer than "
            f"strategy.min_train_clients = {scenario.strategy.min_train_clients}",
        )


def _check_compression(scenario: Scenario) -> None:
    """Central DP clipped on the client runs Flower's clipping mod around the train handler: it
    would read the compressed model and clip the encoded update, not the update."""
    privacy, compression = scenario.privacy, scenario.compression
    if compression.on and privacy is not None and privacy.mode == "central" and privacy.where == "client":
        key = "compression.uplink" if compression.uplink != "none" else "compression.downlink"
        raise ScenarioError(
            key,
            "not with privacy.where = 'client' (its clipping mod reads uncompressed models); "
            "clip on the server",
        )
