"""A client's round, its algorithm's (strategies/algorithm.py) around the local update, and a
cohort group's round, each member's the same way with the group trained together.

``begin`` gives the update its gradient terms (or an objective), ``finish`` the reply's extra
arrays, metrics and the client's new state, which stays in its node's ``Context.state``
(clients/client_state.py: a pooled node's message brings it and its reply takes it back; a
group's message and reply carry each member's under its own record names).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from clients import channel, client_state, cohort_group, faults, training, update
from clients.client_state import Records
from clients.cohort_schedule import Member
from clients.workload import Workload
from fedsim import protocol as keys
from fedsim.data import Split
from fedsim.scenario.seeding import torch_generator
from strategies.algorithm import Algorithm, Arrays, ClientStart, Finished, Local, Trainer


def train_client(msg: Message, context: Context, work: Workload, pid: int, config: ConfigRecord) -> Message:
    """One client's round: its algorithm's begin, the local update, its algorithm's finish."""
    faults.act_out(keys.text(config, keys.FAULT))
    scenario = work.scenario
    # A straggler runs fewer epochs than the scenario's (strategies/plan.py).
    epochs = int(keys.number(config, keys.LOCAL_EPOCHS, scenario.client.local_epochs))
    server_round = int(keys.number(config, keys.SERVER_ROUND))
    data = work.training_data(pid)
    x = keys.to_numpy(msg.content.array_records[keys.ARRAYS])
    found, kept_state = msg.content.array_records.get, context.state.array_records.get
    start = _start(work, config, x, epochs, found, kept_state, pid, data)
    local = _begin(work.algorithm, start)
    ctx = update.UpdateContext(
        config=start.config,
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
    y = weights_of(work)  # a copy: finish may train the model on (start.train, Ditto's personal steps)
    finished = _finish(work.algorithm, start, y, start.config.local_steps(len(data)))
    kept = context.state.array_records.get
    content, compressed = _reply(work, x, y, pid, server_round, finished, own, len(data), kept)
    client_state.keep(context.state, {**_kept(work.algorithm, start, finished), **compressed})
    return Message(content, reply_to=msg)


def _start(
    work: Workload,
    config: ConfigRecord,
    x: Arrays,
    epochs: int,
    sent: Records,
    kept: Records,
    pid: int,
    data: Split,
) -> ClientStart:
    """The round as the client starts it: ``sent`` finds the strategy's arrays, ``kept`` its state."""
    server_round = int(keys.number(config, keys.SERVER_ROUND))
    return ClientStart(
        model=work.model,
        global_weights=x,
        received=client_state.received(sent, work.algorithm),
        state=client_state.read(kept, work.algorithm, work.model, x),
        config=dataclasses.replace(work.scenario.client, local_epochs=epochs),
        server_config=dict(config),
        device=work.device,
        data=data,
        strategy=dict(work.scenario.strategy.params),
        trainer=trainer(work, data, (work.scenario.seed, "personal", server_round, pid)),
    )


def trainer(work: Workload, data: Split, stream: tuple[int, str, int, int]) -> Trainer:
    """:meth:`ClientStart.train`: the built-in local steps on the worker's model, from given
    weights, shuffled from random ``stream`` (made when first asked: most rounds never train so)."""
    generators: list[torch.Generator] = []

    def train(weights: Mapping[str, np.ndarray], local: Local, epochs: int) -> Arrays:
        if not generators:
            generators.append(torch_generator(*stream))
        load(work, weights)
        cfg = dataclasses.replace(work.scenario.client, local_epochs=epochs)
        training.train(work.model, data, cfg, generators[0], local.terms, local.objective)
        return weights_of(work)

    return train


def load(work: Workload, weights: Mapping[str, np.ndarray]) -> None:
    work.model.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in weights.items()})


def weights_of(work: Workload) -> Arrays:
    """The worker's model by state-dict name, copied: on the CPU a tensor's ``numpy()`` shares its
    memory, and the model trains on (an algorithm's ``finish``, the next client)."""
    return {k: np.array(v.detach().cpu()) for k, v in work.model.state_dict().items()}


def evaluate_own(msg: Message, context: Context, work: Workload, pid: int, config: ConfigRecord) -> Message:
    """Per-client evaluation (fedsim/sim/client_eval.py): the global model on the client's own test
    samples, and the algorithm's personal model (``personalize``) on the same, if it has one."""
    test = work.local_test(pid)
    metrics = MetricRecord({keys.NUM_EXAMPLES: float(len(test))})
    if len(test):
        metrics[keys.EVAL_LOSS], metrics[keys.EVAL_ACCURACY] = training.evaluate(work.model, test)
    else:  # too small a client to hold any sample out: the server leaves it out of the statistics
        metrics[keys.EVAL_LOSS] = metrics[keys.EVAL_ACCURACY] = 0.0
    personalize = work.algorithm.personalize
    if personalize is not None:
        x = keys.to_numpy(msg.content.array_records[keys.ARRAYS])
        own = msg.content.array_records.get  # a pooled node's message carries the client's state

        def kept(name: str) -> ArrayRecord | None:
            return own(name) or context.state.array_records.get(name)

        epochs = work.scenario.client.local_epochs
        start = _start(work, config, x, epochs, lambda _: None, kept, pid, work.training_data(pid))
        start = dataclasses.replace(start, received={})  # an evaluation brings no strategy arrays
        personal = personalize(start)
        load(work, personal)
        loss, accuracy = training.evaluate(work.model, test) if len(test) else (0.0, 0.0)
        metrics[keys.PERSONAL_LOSS], metrics[keys.PERSONAL_ACCURACY] = loss, accuracy
    return Message(RecordDict({keys.METRICS: metrics}), reply_to=msg)


def _begin(algorithm: Algorithm, start: ClientStart) -> Local:
    return algorithm.begin(start) if algorithm.begin else Local()


def _finish(algorithm: Algorithm, start: ClientStart, y: Arrays, steps: int) -> Finished:
    return algorithm.finish(start, y, steps) if algorithm.finish else Finished()


def _kept(algorithm: Algorithm, start: ClientStart, finished: Finished) -> dict[str, ArrayRecord]:
    """The client's new state as records: what ``finish`` says, else what the update left."""
    state = start.state if finished.state is None else finished.state
    return client_state.records("state", state, algorithm.state)


def _reply(
    work: Workload,
    x: Arrays,
    y: Arrays,
    pid: int,
    server_round: int,
    finished: Finished,
    own: dict[str, float],
    examples: int,
    kept: Records,
) -> tuple[RecordDict, dict[str, ArrayRecord]]:
    """The reply's model (as released: an algorithm's, an attacker's, under local DP; then encoded
    by [compression]), metrics and the algorithm's arrays beside them; and compression's new kept
    state (``kept`` finds the old)."""
    sent = y if finished.model is None else finished.model
    released = work.release(x, sent, pid, server_round)
    model, compressed = channel.encode_uplink(x, released, work.scenario, server_round, pid, kept)
    metrics = MetricRecord({**own, **finished.metrics, keys.NUM_EXAMPLES: float(examples)})
    content = RecordDict({keys.ARRAYS: model, keys.METRICS: metrics})
    for name, record in client_state.records("replies", finished.replies, work.algorithm.replies).items():
        content[name] = record
    return content, compressed


def train_group(msg: Message, work: Workload, config: ConfigRecord, partitions: list[int]) -> Message:
    """Train the group's clients together; each one's records under its own names.

    Each client's data, shuffling stream, state, terms, attack and local-DP noise are its own, as
    in :func:`train_client`; fedsim/sim/cohort_choice.py sends groups only when nothing else
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
        found = _members(msg, pid)  # its arrays and its state alike: its own names, or the shared
        data = work.training_data(pid)
        start = _start(work, config, x, own_epochs, found, found, pid, data)
        local = _begin(algorithm, start)
        if local.objective is not None:
            raise ValueError(
                "an algorithm with an objective of its own must declare Requires(per_client=True)"
            )
        generator_ = torch_generator(scenario.seed, "train", server_round, pid)
        starts.append(start)
        members.append(Member(data, generator_, own_epochs, local.terms))
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
        loss = {keys.TRAIN_LOSS: result.loss}
        found = _members(msg, pid)
        own, compressed = _reply(work, x, y, pid, server_round, finished, loss, len(member.data), found)
        states = {**_kept(algorithm, start, finished), **compressed}
        kept = {keys.state_record(n): r for n, r in states.items()}
        for name, record in [*own.items(), *kept.items()]:
            content[keys.member_record(name, pid)] = record
    return Message(content, reply_to=msg)


def _members(msg: Message, pid: int) -> Records:
    """A group member's records: its own where the message has them, else the shared ones."""
    records = msg.content.array_records

    def found(name: str) -> ArrayRecord | None:
        own = records.get(keys.member_record(name, pid))
        return own if own is not None else records.get(name)

    return found


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
