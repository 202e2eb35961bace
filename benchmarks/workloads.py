"""The workloads measured: McMahan et al. 2017's models, as fedsim scenarios.

One ``Workload`` describes a run completely; each system under test (fedsim, the plain
loop, the quickstart-style Flower client) builds what it needs from it, so all of them
take the same SGD steps on the same partitions.  The MNIST models (CNN, 2NN) use 100 IID
clients; the Shakespeare LSTM takes its data, model and client settings from
``scenarios/shakespeare_lstm.toml`` (one client per speaking role), see ``Workload.of``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from fedsim.scenario.files import load_scenario, parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import to_table

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]
MODELS = {"cnn": "cnn", "2nn": "mlp", "lstm": "lstm"}  # fedsim's `mlp` is McMahan's 2NN (2 x 200 ReLU units)
# Workloads whose data, model and client settings are one of fedsim's scenarios, not MNIST's.
SCENARIO_FILES = {"lstm": REPO / "scenarios" / "shakespeare_lstm.toml"}
# Flower's PyTorch quickstart is an image classifier; it has no text counterpart to imitate.
QUICKSTART_MODELS = frozenset({"cnn", "2nn"})
# The roles of tiny Shakespeare with >= 100 training windows (the scenario's data settings).
SHAKESPEARE_ROLES = 220
# A full round of 10 roles is ~3,000 SGD steps of the 2 x 256 LSTM at ~60 ms each on one core
# (~3 min); each role's first 500 windows make it ~440 steps, ~30 s, on the same roles and model.
LSTM_MAX_SAMPLES = 500


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
    max_grad_norm: float | None = None  # client.max_grad_norm (the LSTM's scenario clips at 5)
    max_samples: int | None = None  # data.max_samples: each client's first this many samples
    samples_per_client: int | None = None  # data.samples_per_client: more clients than samples (IID)
    seed: int = 0

    @staticmethod
    def of(model: str, **changes: Any) -> Workload:
        """``model``'s workload: MNIST's settings above, or its scenario file's (the LSTM's
        E, B, lr and clipping; 10 roles a round, each cut to ``LSTM_MAX_SAMPLES`` windows)."""
        if model not in SCENARIO_FILES:
            return Workload(model=model, **changes)
        client = load_scenario(SCENARIO_FILES[model]).client
        from_file = Workload(
            model=model,
            num_clients=SHAKESPEARE_ROLES,
            local_epochs=client.local_epochs,
            batch_size=client.batch_size,
            lr=client.lr,
            max_grad_norm=client.max_grad_norm,
            max_samples=LSTM_MAX_SAMPLES,
        )
        return dataclasses.replace(from_file, **changes)

    @property
    def label(self) -> str:
        gpu = f" gpu {self.client_gpus:g}" if self.client_gpus else ""
        epochs = f" E={self.local_epochs}" if self.local_epochs != 1 else ""
        cap = f" max {self.max_samples}" if self.max_samples else ""
        each = f" n{self.samples_per_client}" if self.samples_per_client else ""
        # The engine is not in it: fedsim-cohort is another system on the same workload.
        return f"{self.model} {self.num_clients}x{self.per_round}{epochs}{cap}{each}{gpu}"

    @property
    def device(self) -> torch.device:
        """Where the plain loop and the quickstart client train (fedsim's clients: clients/gpu.py)."""
        import torch  # here: fedsim's child starts Ray before torch loads, as `fedsim run` does

        return torch.device("cuda", 0) if self.client_gpus else torch.device("cpu")

    @property
    def fraction(self) -> float:
        return self.per_round / self.num_clients

    def scenario(self) -> Scenario:
        """fedsim's scenario for this workload: training only, no evaluation to time."""
        resources: dict[str, object] = {
            "client_cpus": self.client_cpus,
            "client_gpus": self.client_gpus,
            "engine": self.engine,
        }
        if self.engine == "cohort":
            resources["capture"] = self.capture
        client: dict[str, object] = {
            "local_epochs": self.local_epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
        }
        if self.max_grad_norm is not None:
            client["max_grad_norm"] = self.max_grad_norm
        table = {
            "name": f"bench-{self.model}-{self.num_clients}",
            "seed": self.seed,
            "rounds": self.rounds,
            **self._data_and_model(),
            "client": client,
            "strategy": {"name": "fedavg", "fraction_train": self.fraction, "fraction_evaluate": 0.0},
            "evaluation": {"centralized": False},
            "resources": resources,
        }
        scenario = parse_scenario(tomli_w.dumps(table))
        sampled = scenario.train_cohort(self.num_clients)
        assert sampled == self.per_round, f"fraction {self.fraction} samples {sampled} clients"
        return scenario

    def _data_and_model(self) -> dict[str, dict[str, Any]]:
        """The [data] and [model] tables: the scenario file's where there is one, else MNIST IID."""
        if self.model in SCENARIO_FILES:
            base = load_scenario(SCENARIO_FILES[self.model])
            data, model = to_table(base.data), to_table(base.model)
        else:
            data = {"dataset": "mnist", "partition": "iid", "num_clients": self.num_clients}
            model = {"name": MODELS[self.model]}
        if self.max_samples is not None:
            data["max_samples"] = self.max_samples
        if self.samples_per_client is not None:
            data["samples_per_client"] = self.samples_per_client
        return {"data": data, "model": model}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @staticmethod
    def from_json(text: str) -> Workload:
        return Workload(**json.loads(text))
