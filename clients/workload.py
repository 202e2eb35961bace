"""What a worker process keeps between the messages of a run: the data, the model, the plug-ins.

Each message carries the resolved scenario; a worker builds the data set, partition and model
for it once (:func:`load` is cached per process) and reuses them for every later message, so a
round costs training, not set-up.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clients import gpu, node, privacy
from fedsim.data import FederatedData, Split
from fedsim.models.build import build_model
from fedsim.scenario import plugins, signatures
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.seeding import generator
from strategies import attacks
from strategies.algorithm import PLAIN, Algorithm, Arrays, declared


@dataclass
class Workload:
    """What one worker process keeps between messages of a run."""

    scenario: Scenario
    data: FederatedData
    model: nn.Module
    device: torch.device
    malicious: frozenset[int]  # partition ids under [attack]
    update: Callable[..., object]  # the local update (clients/update.py), and its params
    update_params: dict[str, Any]
    algorithm: Algorithm  # what the strategy declares for its clients (strategies/algorithm.py)
    share: gpu.Share | None = None  # on a GPU: this process's share, its allocator capped to it
    _splits: OrderedDict[int, Split] = field(default_factory=OrderedDict)

    def client(self, partition_id: int) -> Split:
        """The partition's samples on the training device.

        On the CPU they are sliced per message from the data set every process shares
        (fedsim/data/shared.py): a few MB copied per client, instead of every partition
        an actor has trained kept in its memory.  A GPU keeps the partitions it got, up to
        the training set's rows in all (:func:`keep_within`): every disjoint partition fits,
        while clients drawn with replacement (``data.samples_per_client``), a million of
        them, would hold the data set many times over.
        """
        if self.device.type == "cpu":
            return self.data.client(partition_id)
        if partition_id in self._splits:
            self._splits.move_to_end(partition_id)
        else:
            split = self.data.client(partition_id)
            self._splits[partition_id] = Split(split.x.to(self.device), split.y.to(self.device))
            keep_within(self._splits, len(self.data.train))
        return self._splits[partition_id]

    def local_test(self, partition_id: int) -> Split:
        """The client's own test samples (per-client evaluation), on the training device."""
        split = self.data.local_test(partition_id)
        return split if self.device.type == "cpu" else Split(split.x.to(self.device), split.y.to(self.device))

    def training_data(self, partition_id: int) -> Split:
        """The partition's samples; a label-flipping attacker's with its labels flipped."""
        data = self.client(partition_id)
        if partition_id in self.malicious and self.scenario.attack.kind == "label_flip":
            return Split(data.x, attacks.flip_labels(data.y, self.data.num_classes))
        return data

    def release(self, x: Arrays, y: Arrays, partition_id: int, server_round: int) -> Arrays:
        """The model the client sends: its own, an attacker's poisoned one, noised under local DP."""
        scenario, sent = self.scenario, y
        if partition_id in self.malicious:
            rng = generator(scenario.seed, "attack", server_round, partition_id)
            sent = attacks.poisoned_model(x, y, scenario.attack, rng)
        dp = scenario.privacy
        if dp is not None and dp.mode == "local":
            dp_rng = generator(scenario.seed, "dp", server_round, partition_id)
            sent = privacy.local_release(x, sent, dp.clipping_norm or 0.0, dp.noise, dp_rng)
        return sent


def keep_within(splits: OrderedDict[int, Split], rows: int) -> None:
    """Forget the least recently used splits until they hold at most ``rows`` rows (the last stays)."""
    held = sum(len(s) for s in splits.values())
    while held > rows and len(splits) > 1:
        held -= len(splits.popitem(last=False)[1])


@functools.lru_cache(maxsize=2)
def load(
    scenario_toml: str,
    data_root: str | None,
    driver_data: bytes | None = None,
    allowed: tuple[str, ...] | None = None,
) -> Workload:
    """``driver_data``: the driver's data in Ray's object store, for a node without ``data_root``.
    ``allowed``: on a SuperNode, the modules its operator allowed plug-ins from (the built-ins
    always; fedsim/scenario/plugins.py); None: any (a simulation)."""
    with plugins.allowing_only(allowed):
        return _load(scenario_toml, data_root, driver_data)


def _load(scenario_toml: str, data_root: str | None, driver_data: bytes | None) -> Workload:
    scenario = parse_scenario(scenario_toml)
    torch.set_num_threads(scenario.resources.threads)  # match the CPUs Ray reserved for this worker
    paths = scenario.python_path
    data = node.load_data(scenario, Path(data_root) if data_root else None, driver_data)
    model = build_model(scenario.model, data.input_shape, data.num_classes, scenario.seed, paths)
    cfg = scenario.client
    local_update = plugins.resolve(plugins.UPDATE, cfg.update, paths)
    update_params = signatures.bind(plugins.UPDATE, cfg.update, local_update, cfg.params)
    strategy = plugins.resolve(plugins.STRATEGY, scenario.strategy.name, paths)
    use_gpu = scenario.resources.uses_gpu and torch.cuda.is_available()
    # Ray sets an actor's CUDA_VISIBLE_DEVICES to the one GPU it reserved for it, so that GPU
    # is cuda:0 here (on a SuperNode: the first GPU the node's process sees).
    device = torch.device("cuda", 0) if use_gpu else torch.device("cpu")
    share = gpu.claim(scenario.resources.gpu_share, device) if use_gpu else None
    attack = attacks.malicious_partitions(scenario.seed, len(data.clients), scenario.attack.fraction)
    algorithm = declared(strategy) or PLAIN
    return Workload(
        scenario, data, model.to(device), device, attack, local_update, update_params, algorithm, share
    )
