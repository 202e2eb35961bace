"""The workloads measured: McMahan et al. 2017's MNIST models, as fedsim scenarios.

One ``Workload`` describes a run completely; each system under test (fedsim, the plain
loop, the quickstart-style Flower client) builds what it needs from it, so all three
take the same SGD steps on the same partitions.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import torch

from fedsim.scenario import Scenario, parse_scenario
from strategies.cohorts import cohort_size

MODELS = {"cnn": "cnn", "2nn": "mlp"}  # fedsim's `mlp` is McMahan's 2NN (2 x 200 ReLU units)


@dataclass(frozen=True)
class Workload:
    model: str = "cnn"  # a key of MODELS
    num_clients: int = 100
    per_round: int = 10  # clients sampled per round (C = per_round / num_clients)
    rounds: int = 5  # the first is warm-up; the median of the others is reported
    local_epochs: int = 1
    batch_size: int = 10
    lr: float = 0.1
    client_cpus: float = 1.0
    client_gpus: float = 0.0  # each client's share of a GPU; > 0: every system trains on the GPU
    engine: str = "per_client"  # fedsim's resources.engine ("cohort": fedsim-cohort)
    capture: bool = False  # the cohort engine's resources.capture (on a CPU: torch.compile)
    seed: int = 0

    @property
    def label(self) -> str:
        gpu = f" gpu {self.client_gpus:g}" if self.client_gpus else ""
        epochs = f" E={self.local_epochs}" if self.local_epochs != 1 else ""
        # The engine is not in it: fedsim-cohort is another system on the same workload.
        return f"{self.model} {self.num_clients}x{self.per_round}{epochs}{gpu}"

    @property
    def device(self) -> torch.device:
        """Where the plain loop and the quickstart client train (fedsim's clients: fedsim/gpu.py)."""
        return torch.device("cuda", 0) if self.client_gpus else torch.device("cpu")

    @property
    def fraction(self) -> float:
        return self.per_round / self.num_clients

    def scenario(self) -> Scenario:
        """fedsim's scenario for this workload: training only, no evaluation to time."""
        toml = f"""
name = "bench-{self.model}-{self.num_clients}"
seed = {self.seed}
rounds = {self.rounds}
[data]
dataset = "mnist"
partition = "iid"
num_clients = {self.num_clients}
[model]
name = "{MODELS[self.model]}"
[client]
local_epochs = {self.local_epochs}
batch_size = {self.batch_size}
lr = {self.lr}
[strategy]
name = "fedavg"
fraction_train = {self.fraction!r}
fraction_evaluate = 0.0
[evaluation]
centralized = false
[resources]
client_cpus = {self.client_cpus}
client_gpus = {self.client_gpus}
engine = "{self.engine}"
{f"capture = {str(self.capture).lower()}" if self.engine == "cohort" else ""}
"""
        scenario = parse_scenario(toml)
        strategy = scenario.strategy
        sampled = cohort_size(strategy.fraction_train, self.num_clients, strategy.min_train_clients)
        assert sampled == self.per_round, f"fraction {self.fraction} samples {sampled} clients"
        return scenario

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @staticmethod
    def from_json(text: str) -> Workload:
        return Workload(**json.loads(text))
