"""The ClientApp: the same code in Ray-simulated clients and on real SuperNodes.

Each message carries the resolved scenario; a worker process builds the data set,
partition and model for it once and reuses them for every later message
(``_workload`` is cached per process), so a round costs training, not set-up.

A client's round is its algorithm's (strategies/algorithm.py) around the local update:
``begin`` gives the update its gradient terms, ``finish`` the reply's extra arrays and the
client's new state, which stays in its node's ``Context.state`` (clients/client_state.py: a
pooled node's message brings it and its reply takes it back).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from clients import client_state, cohort_group, faults, gpu, node, privacy, training, update
from clients.cohort_schedule import Member
from fedsim import protocol as keys
from fedsim.data import FederatedData, Split
from fedsim.models.build import build_model
from fedsim.scenario import objects, plugins, signatures
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.seeding import generator, torch_generator
from strategies import attacks
from strategies.algorithm import PLAIN, Algorithm, Arrays, ClientStart, Finished, Local, declared

app = ClientApp()


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


def keep_within(splits: OrderedDict[int, Split], rows: int) -> None:
    """Forget the least recently used splits until they hold at most ``rows`` rows (the last stays)."""
    held = sum(len(s) for s in splits.values())
    while held > rows and len(splits) > 1:
        held -= len(splits.popitem(last=False)[1])


@functools.lru_cache(maxsize=2)
def _workload(scenario_toml: str, data_root: str | None, driver_data: bytes | None = None) -> Workload:
    """``driver_data``: the driver's data in Ray's object store, for a node without ``data_root``."""
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


def _setup(msg: Message, context: Context) -> tuple[Workload, int, ConfigRecord]:
    """The cached workload, with the global model loaded, and this node's partition id."""
    config = msg.content.config_records[keys.CONFIG]
    pickled = config.get(keys.PLUGIN_OBJECTS)
    if isinstance(pickled, bytes) and _in_simulation():  # Python objects given to fedsim.run
        objects.install(pickled)
    node_dir = context.node_config.get(keys.NODE_DATA_DIR)
    data_root = str(node_dir) if node_dir else keys.text(config, keys.DATA_ROOT) or None
    token = config.get(keys.DRIVER_DATA)  # the driver's data, for a Ray node without the root
    data_copy = token if isinstance(token, bytes) and _in_simulation() else None
    work = _workload(keys.text(config, keys.SCENARIO), data_root, data_copy)
    work.model.load_state_dict(msg.content.array_records[keys.ARRAYS].to_torch_state_dict())
    named = config.get(keys.PARTITION_ID)  # a pooled node's message names its client
    pid = named if isinstance(named, int) else context.node_config[keys.NODE_PARTITION_ID]
    return work, int(pid), config


def _in_simulation() -> bool:
    """In a Ray actor of Flower's simulation, not on a SuperNode (whose ClientApp has no Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


# Central DP, clipped on the client (Flower's mods); around it, a pooled node's client state
# comes in and goes back (clients/client_state.py); around all, the reply names its Ray node.
@app.train(mods=[node.naming_mod, client_state.state_mod, privacy.clipping_mod])
def train(msg: Message, context: Context) -> Message:
    work, pid, config = _setup(msg, context)
    # The cohort engine sends a group's partition ids: this node trains them all (sim/cohort_engine.py).
    group = config.get(keys.COHORT_PARTITIONS)
    if isinstance(group, list):
        partitions = [int(p) for p in group]
        return gpu.within_share(work.share, partitions, lambda: _train_group(msg, work, config, partitions))
    return gpu.within_share(work.share, [pid], lambda: _train_client(msg, context, work, pid, config))


def _train_client(msg: Message, context: Context, work: Workload, pid: int, config: ConfigRecord) -> Message:
    """One client's round: its algorithm's begin, the local update, its algorithm's finish."""
    faults.act_out(keys.text(config, keys.FAULT))
    scenario = work.scenario
    # A straggler runs fewer epochs than the scenario's (strategies/plan.py).
    epochs = int(keys.number(config, keys.LOCAL_EPOCHS, scenario.client.local_epochs))
    client_cfg = dataclasses.replace(scenario.client, local_epochs=epochs)
    server_round = int(keys.number(config, keys.SERVER_ROUND))
    data = _training_data(work, pid)
    x = keys.to_numpy(msg.content.array_records[keys.ARRAYS])
    algorithm = work.algorithm
    start = ClientStart(
        model=work.model,
        global_weights=x,
        received=client_state.received(msg.content.array_records.get, algorithm),
        state=client_state.read(context.state.array_records.get, algorithm, work.model, x),
        config=client_cfg,
        server_config=dict(config),
        device=work.device,
    )
    local = algorithm.begin(start) if algorithm.begin else Local()
    ctx = update.UpdateContext(
        config=client_cfg,
        global_weights={k: torch.from_numpy(v) for k, v in x.items()},
        generator=torch_generator(scenario.seed, "train", server_round, pid),
        server_round=server_round,
        partition_id=pid,
        server_config=dict(config),
        scenario=scenario,
        device=work.device,
        terms=local.terms,
        objective=local.objective,
        state=start.state,
    )
    returned = work.update(work.model, data, ctx, **work.update_params)
    own = update.metrics_of(scenario.client.update, returned)
    y = {k: v.detach().cpu().numpy() for k, v in work.model.state_dict().items()}
    finished = _finish(algorithm, start, y, client_cfg.local_steps(len(data)))
    content = _reply(work, x, y, pid, server_round, finished, own, len(data))
    for name, record in client_state.records("replies", finished.replies, algorithm.replies).items():
        content[name] = record
    state = start.state if finished.state is None else finished.state
    client_state.keep(context.state, client_state.records("state", state, algorithm.state))
    return Message(content, reply_to=msg)


def _finish(algorithm: Algorithm, start: ClientStart, y: Arrays, steps: int) -> Finished:
    return algorithm.finish(start, y, steps) if algorithm.finish else Finished()


def _reply(
    work: Workload,
    x: Arrays,
    y: Arrays,
    pid: int,
    server_round: int,
    finished: Finished,
    own: dict[str, float],
    examples: int,
) -> RecordDict:
    """The reply's model (as released: an algorithm's, an attacker's, under local DP) and metrics."""
    sent = y if finished.model is None else finished.model
    released = _release(work, x, sent, pid, server_round)
    metrics = MetricRecord({**own, **finished.metrics, keys.NUM_EXAMPLES: float(examples)})
    return RecordDict({keys.ARRAYS: keys.to_record(released), keys.METRICS: metrics})


def _training_data(work: Workload, pid: int) -> Split:
    """The partition's samples; a label-flipping attacker's with its labels flipped."""
    data = work.client(pid)
    if pid in work.malicious and work.scenario.attack.kind == "label_flip":
        return Split(data.x, attacks.flip_labels(data.y, work.data.num_classes))
    return data


def _release(
    work: Workload, x: dict[str, np.ndarray], y: dict[str, np.ndarray], pid: int, server_round: int
) -> dict[str, np.ndarray]:
    """The model the client sends: its own, an attacker's poisoned one, noised under local DP."""
    scenario, reply = work.scenario, y
    if pid in work.malicious:
        rng = generator(scenario.seed, "attack", server_round, pid)
        reply = attacks.poisoned_model(x, y, scenario.attack, rng)
    dp = scenario.privacy
    if dp is not None and dp.mode == "local":
        dp_rng = generator(scenario.seed, "dp", server_round, pid)
        reply = privacy.local_release(x, reply, dp.clipping_norm or 0.0, dp.noise, dp_rng)
    return reply


def _train_group(msg: Message, work: Workload, config: ConfigRecord, partitions: list[int]) -> Message:
    """Train the group's clients together; each one's records under its own names.

    Each client's data, shuffling stream, state, terms, attack and local-DP noise are its own, as
    in :func:`_train_client`; fedsim/sim/cohort_choice.py sends groups only when nothing else
    differs.  The message holds what its clients share once, the rest per member
    (fedsim/sim/cohort_engine.py).
    """
    scenario = work.scenario
    server_round = int(keys.number(config, keys.SERVER_ROUND))
    given = config.get(keys.COHORT_EPOCHS)
    epochs = [e for e in given if isinstance(e, int)] if isinstance(given, list) else []
    if len(epochs) != len(partitions):
        raise ValueError(f"{keys.COHORT_EPOCHS}: expected one epoch count per client, got {given!r}")
    x = keys.to_numpy(msg.content.array_records[keys.ARRAYS])
    algorithm = work.algorithm
    starts, members = [], []
    for pid, own_epochs in zip(partitions, epochs, strict=True):
        start = _member_start(msg, work, config, x, pid, own_epochs)
        local = algorithm.begin(start) if algorithm.begin else Local()
        if local.objective is not None:
            raise ValueError(
                "an algorithm with an objective of its own must declare Requires(per_client=True)"
            )
        generator_ = torch_generator(scenario.seed, "train", server_round, pid)
        starts.append(start)
        members.append(Member(_training_data(work, pid), generator_, own_epochs, local.terms))
    res = scenario.resources
    # Capture unset: on where it pays, a CUDA worker (clients/capture.py).
    captured = res.capture if res.capture is not None else work.device.type == "cuda"
    share = res.gpu_share if res.uses_gpu else 0.0
    options = cohort_group.Options(captured, res.cohort_size, res.client_cpus, share)
    trained = cohort_group.train_group(work.model, members, scenario.client, options)
    content = RecordDict({keys.COHORT_REPORT: _report_record(trained.report)})
    for pid, start, member, result in zip(partitions, starts, members, trained.results, strict=True):
        y = {name: result.params[name].cpu().numpy() for name in x}  # the model's state-dict order
        steps = scenario.client.local_steps(len(member.data), member.local_epochs)
        finished = _finish(algorithm, start, y, steps)
        own = _reply(
            work, x, y, pid, server_round, finished, {keys.TRAIN_LOSS: result.loss}, len(member.data)
        )
        state = start.state if finished.state is None else finished.state
        for name, record in [
            *own.items(),
            *client_state.records("replies", finished.replies, algorithm.replies).items(),
            *(
                (keys.state_record(n), r)
                for n, r in client_state.records("state", state, algorithm.state).items()
            ),
        ]:
            content[keys.member_record(name, pid)] = record
    return Message(content, reply_to=msg)


def _member_start(
    msg: Message, work: Workload, config: ConfigRecord, x: Arrays, pid: int, epochs: int
) -> ClientStart:
    """A group member's start: its own records where the message has them, else the shared ones."""
    records = msg.content.array_records

    def found(name: str) -> Any:
        own = records.get(keys.member_record(name, pid))
        return own if own is not None else records.get(name)

    return ClientStart(
        model=work.model,
        global_weights=x,
        received=client_state.received(found, work.algorithm),
        state=client_state.read(found, work.algorithm, work.model, x),
        config=dataclasses.replace(work.scenario.client, local_epochs=epochs),
        server_config=dict(config),
        device=work.device,
    )


def _report_record(report: cohort_group.Report) -> MetricRecord:
    numbers = {
        keys.REPORT_CLIENTS: report.clients,
        keys.REPORT_CHUNK: report.chunk,
        keys.REPORT_CHUNKS: report.chunks,
        keys.REPORT_FIT: report.fit,
        keys.REPORT_FOOTPRINT: report.footprint_bytes,
        keys.REPORT_AVAILABLE: report.available_bytes,
        keys.REPORT_CAPTURED: int(report.captured),
        keys.REPORT_HALVINGS: report.halvings,
        keys.REPORT_IN_TURN: int(report.in_turn),
        keys.REPORT_CACHE_HITS: report.cache_hits,
        keys.REPORT_CACHE_MISSES: report.cache_misses,
    }
    return MetricRecord({**numbers, keys.REPORT_COMPILE_S: report.compile_s})


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The global model on this client's local data."""
    work, pid, _ = _setup(msg, context)
    data = work.client(pid)
    loss, accuracy = gpu.within_share(work.share, [pid], lambda: training.evaluate(work.model, data))
    metrics = MetricRecord(
        {keys.NUM_EXAMPLES: float(len(data)), keys.EVAL_LOSS: loss, keys.EVAL_ACCURACY: accuracy}
    )
    return Message(RecordDict({keys.METRICS: metrics}), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node holds, so it can sample reproducibly."""
    node = context.node_config
    metrics = MetricRecord(
        {
            keys.PARTITION_ID: float(node[keys.NODE_PARTITION_ID]),
            keys.NODE_NUM_PARTITIONS: float(node[keys.NODE_NUM_PARTITIONS]),
        }
    )
    return Message(RecordDict({keys.METRICS: metrics}), reply_to=msg)
