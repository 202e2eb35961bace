"""A Flower client written the way Flower's PyTorch quickstart writes it, on the same workload.

Per sample: uint8 image -> PIL image -> ``ToTensor`` -> ``Normalize``; batches from a
shuffling ``DataLoader``; a fresh model built for every message.  The raw data are read
once per worker process (the tutorial caches its ``FederatedDataset`` the same way), and
the partitions are fedsim's, so both take the same number of SGD steps per client.
The server is Flower's own ``FedAvg``, timed at each round's aggregation.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from benchmarks.workloads import Workload
from fedsim.data import mnist
from fedsim.data.idx import read_idx
from fedsim.data.partition import iid
from fedsim.models.build import build_model
from fedsim.scenario.seeding import generator

TRANSFORM = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mnist.MEAN,), (mnist.STD,))])


class Images(Dataset[tuple[torch.Tensor, int]]):
    """One partition of MNIST, transformed per sample as torchvision datasets are."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image: torch.Tensor = TRANSFORM(Image.fromarray(self.images[i], mode="L"))
        return image, int(self.labels[i])


@functools.lru_cache(maxsize=1)
def _raw(workload_json: str, data_dir: str) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    workload = Workload.from_json(workload_json)
    root = mnist.locate(data_dir or None)
    images = read_idx(root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz")
    labels = read_idx(root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz")
    parts = iid(len(labels), workload.num_clients, generator(workload.seed, "partition"))
    return images, labels, tuple(parts)


client_app = ClientApp()
cached_client_app = ClientApp()


def _received(msg: Message) -> tuple[Workload, ConfigRecord, nn.Module]:
    """What either client does first: its workload and threads, the global model on its device."""
    config = msg.content.config_records["config"]
    workload = Workload.from_json(str(config["workload"]))
    torch.set_num_threads(max(1, int(workload.client_cpus)))
    model = build_model(workload.scenario().model, (1, 28, 28), 10, workload.seed)
    model = model.to(workload.device)  # the tutorial's DEVICE: cuda:0, the GPU Ray gave this actor
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    return workload, config, model


def _reply(msg: Message, model: nn.Module, train_loss: float, examples: int) -> Message:
    metrics = MetricRecord({"train_loss": train_loss, "num-examples": examples})
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    workload, config, model = _received(msg)
    images, labels, parts = _raw(str(config["workload"]), str(config["data-dir"]))
    rows = parts[int(context.node_config["partition-id"])]
    loader = DataLoader(Images(images[rows], labels[rows]), batch_size=workload.batch_size, shuffle=True)
    device = workload.device
    optimizer = torch.optim.SGD(model.parameters(), lr=workload.lr)
    model.train()
    losses = []
    for _ in range(workload.local_epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return _reply(msg, model, float(np.mean(losses)), len(rows))


@functools.lru_cache(maxsize=1)
def _tensors(workload_json: str, data_dir: str) -> tuple[torch.Tensor, torch.Tensor, tuple[np.ndarray, ...]]:
    """MNIST as normalized tensors, once per worker process: what a careful Flower user caches."""
    images, labels, parts = _raw(workload_json, data_dir)
    x = (torch.from_numpy(images).float().div_(255).sub_(mnist.MEAN).div_(mnist.STD)).unsqueeze(1)
    return x, torch.from_numpy(labels).long(), parts


@cached_client_app.train()
def train_cached(msg: Message, context: Context) -> Message:
    """The same training from cached tensors: minibatches are index slices, no DataLoader."""
    workload, config, model = _received(msg)
    images, labels, parts = _tensors(str(config["workload"]), str(config["data-dir"]))
    rows = torch.from_numpy(parts[int(context.node_config["partition-id"])])
    x, y = images[rows].to(workload.device), labels[rows].to(workload.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=workload.lr)
    model.train()
    total = torch.zeros((), device=workload.device)
    steps = 0
    for _ in range(workload.local_epochs):
        for batch in torch.randperm(len(y), device=workload.device).split(workload.batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.detach()
            steps += 1
    return _reply(msg, model, float(total) / steps, len(rows))


class TimedFedAvg(FedAvg):
    """Flower's FedAvg, noting the wall-clock time each round starts and ends."""

    def __init__(self, workload: Workload) -> None:
        super().__init__(
            fraction_train=workload.fraction,
            fraction_evaluate=0.0,
            min_train_nodes=workload.per_round,
            min_available_nodes=workload.num_clients,
        )
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.rounds = workload.rounds
        self.first_call = 0.0

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.starts.append(time.time())
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        result = super().aggregate_train(server_round, replies)
        self.ends.append(time.time())
        if server_round == self.rounds:  # Ray is still up: Flower stops it after the run
            from benchmarks.timeline import first_client_call

            self.first_call = first_client_call()
        return result


def server_app(
    workload: Workload,
    data_dir: str,
    strategy: TimedFedAvg,
    evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
) -> ServerApp:
    """Flower's ServerApp running ``strategy``; ``evaluate_fn``: its centralized evaluation."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        scenario = workload.scenario()
        model = build_model(scenario.model, (1, 28, 28), 10, scenario.seed)
        config = ConfigRecord({"workload": workload.to_json(), "data-dir": data_dir})
        strategy.start(
            grid,
            ArrayRecord(model.state_dict()),
            workload.rounds,
            train_config=config,
            evaluate_fn=evaluate_fn,
        )

    return app
