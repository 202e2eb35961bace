"""The round loop (fedsim/sim/rounds.py) against a grid of in-process nodes: the real ClientApp
answers each message at once, as a pool of simulated nodes would, and a test may make some
clients fail.  Retries, failures, the privacy budget's stop, and each client's state going out
with its message and back into the server's store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, Error, Message, MessageType, RecordDict

from clients import app
from clients.client_state import state_mod
from fedsim import protocol as keys
from fedsim.data import load_federated
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.sim.client_store import ClientStore
from fedsim.sim.exchange import Abort, RunError
from fedsim.sim.rounds import RoundLoop
from strategies.budget import Budget, BudgetSpent, resolve
from strategies.placement import Placement
from strategies.registry import algorithm_of, build_strategy
from tests import stateful
from tests.conftest import REPO, RecordingReporter

pytestmark = pytest.mark.usefixtures("task_identity")

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()
POOL = (1, 2, 3)  # the pooled nodes' ids: as many as one stage addresses (3 of the 4 clients)
Answer = Callable[[Message, Context], Message]


class InProcessGrid:
    """Nodes answered by ``answer`` in this process; a partition in ``failing`` raises, one in
    ``silent`` never replies."""

    def __init__(
        self,
        nodes: Iterable[int],
        failing: frozenset[int] = frozenset(),
        silent: frozenset[int] = frozenset(),
    ) -> None:
        self.nodes = list(nodes)
        allowed = {keys.NODE_ALLOW_PLUGINS: "tests"}  # the ClientApp runs here without Ray, as on a node
        self.contexts = {n: Context(1, n, dict(allowed), RecordDict(), {}) for n in self.nodes}
        self.failing, self.silent = failing, silent
        self.replies: dict[str, Message] = {}
        self.sent: list[set[str]] = []  # each message's record names as it was sent

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for message in messages:
            message_id = uuid.uuid4().hex
            message.metadata.__dict__["_message_id"] = message_id  # as Flower's grid stamps it
            self.sent.append(set(message.content))
            ids.append(message_id)
            partition = message.content.config_records[keys.CONFIG].get(keys.PARTITION_ID)
            if partition in self.silent:
                continue
            if partition in self.failing:
                self.replies[message_id] = Message(Error(code=1, reason="client raised"), reply_to=message)
                continue
            self.replies[message_id] = self._answer(message)
        return ids

    def _answer(self, message: Message) -> Message:
        """The ClientApp's reply; what it raises, an error reply (as Flower's ClientApp sends)."""
        context = self.contexts[message.metadata.dst_node_id]
        try:
            if message.metadata.message_type == MessageType.TRAIN:
                return state_mod(message, context, app.train)
            return app.evaluate(message, context)
        except Exception as error:
            return Message(Error(code=2, reason=f"{type(error).__name__}: {error}"), reply_to=message)

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]


def scenario(*overrides: str) -> Scenario:
    base = ("data.params.devices=4", "data.num_clients=4", "model.name=logreg", "client.local_epochs=1")
    return parse_scenario(QUICKSTART, (*base, "strategy.fraction_train=0.75", *overrides))


def loop(s: Scenario, grid: InProcessGrid, store: ClientStore, budget: Budget | None = None) -> RoundLoop:
    data = load_federated(s.data, s.seed)
    model = build_model(s.model, data.input_shape, data.num_classes, s.seed)
    strategy = build_strategy(s, Placement.pool(grid.nodes, 4), [n for n, _ in model.named_parameters()])
    config = {keys.SCENARIO: s.to_toml(), keys.DATA_ROOT: ""}
    reporter = RecordingReporter()
    return RoundLoop(
        grid,
        s,
        data.test,
        strategy,
        model,
        config,
        reporter,
        Abort(),
        store,
        4,
        algorithm_of(s),
        budget,  # type: ignore[arg-type]
    )


def initial(s: Scenario) -> ArrayRecord:
    data = load_federated(s.data, s.seed)
    return ArrayRecord(build_model(s.model, data.input_shape, data.num_classes, s.seed).state_dict())


def test_a_round_trains_its_sample_aggregates_and_evaluates(tmp_path: Path) -> None:
    s = scenario()
    grid = InProcessGrid(POOL)
    rounds = loop(s, grid, ClientStore(tmp_path))
    x = initial(s)
    arrays, record = rounds.run(1, x)
    assert record.clients_sampled == 3 and record.clients_failed == 0 and record.retries == 0
    assert record.accuracy is not None and record.train_loss is not None and record.bytes_received > 0
    assert any(not np.array_equal(arrays[k].numpy(), x[k].numpy()) for k in x)
    assert len(grid.sent) == 3 and rounds.strategy.placement.pooled


def test_too_few_replies_retry_the_round_with_a_new_sample(tmp_path: Path) -> None:
    s = scenario("strategy.min_train_clients=3", "faults.round_retries=3")
    first = loop(s, InProcessGrid(POOL), ClientStore(tmp_path / "a")).strategy.sampled_partitions("train", 1)
    rounds = loop(s, InProcessGrid(POOL, failing=frozenset({first[0]})), ClientStore(tmp_path / "b"))
    _, record = rounds.run(1, initial(s))
    assert record.retries >= 1 and record.clients_raised >= 1
    assert any("retrying with a new sample" in w for w in rounds.reporter.warnings)  # type: ignore[attr-defined]


def test_a_round_short_of_its_clients_after_every_retry_stops_the_run(tmp_path: Path) -> None:
    s = scenario("strategy.min_train_clients=3", "faults.round_retries=1", "resources.round_timeout_s=0.2")
    rounds = loop(s, InProcessGrid(POOL, silent=frozenset(range(4))), ClientStore(tmp_path))
    says = r"round 1: 0 of 3 sampled clients replied, fewer than strategy\.min_train_clients = 3"
    with pytest.raises(RunError, match=says):
        rounds.run(1, initial(s))


def test_a_spent_privacy_budget_stops_training_before_an_attempt(tmp_path: Path) -> None:
    local = ('privacy.mode="local"', "privacy.noise_multiplier=1.0", "privacy.clipping_norm=1.0")
    sizes = load_federated(scenario().data, 0).clients.sizes()
    s = resolve(scenario(*local, "privacy.target_epsilon=0.5"), sizes)  # delta set, as a run sets it
    budget = Budget(s, sizes)
    rounds = loop(s, InProcessGrid(POOL), ClientStore(tmp_path), budget)
    arrays = initial(s)
    with pytest.raises(BudgetSpent, match=r"it would spend epsilon [0-9.]+ > privacy\.target_epsilon = 0\.5"):
        for server_round in range(1, 50):
            arrays, _ = rounds.run(server_round, arrays)


def test_each_clients_state_goes_out_with_its_message_and_comes_back_into_the_store(tmp_path: Path) -> None:
    """The test algorithm (tests/stateful.py) counts each client's rounds in its state: a client's
    second round starts from what its first left, whichever pooled node trains it."""
    s = scenario("strategy.name=tests.stateful:Tally", "strategy.fraction_train=0.75")
    grid, store = InProcessGrid(POOL), ClientStore(tmp_path)
    rounds = loop(s, grid, store)
    arrays = initial(s)
    counts = dict.fromkeys(range(4), 0)
    records = []
    for server_round in (1, 2, 3):
        arrays, record = rounds.run(server_round, arrays)
        assert record.clients_failed == 0 and record.clients_rejected == 0
        for p in rounds.strategy.sampled_partitions("train", server_round):
            counts[p] += 1
        store.commit(server_round)
        for p, count in counts.items():
            kept = store.get(p)
            assert (kept is None) == (count == 0)
            assert kept is None or kept[stateful.ROUNDS]["n"][0] == count  # every round of it, none twice
        records.append(record)
    assert all(not c.state.array_records for c in grid.contexts.values())  # the nodes keep nothing
    carried = [names for names in grid.sent if keys.state_record(stateful.TALLY) in names]
    assert carried  # later rounds' messages brought their clients' state ...
    assert len({r.bytes_sent for r in records}) == len({r.bytes_received for r in records}) == 1  # ... untold


def test_a_client_that_fails_keeps_its_state_as_it_was(tmp_path: Path) -> None:
    s = scenario("strategy.name=tests.stateful:Tally", "strategy.fraction_train=1.0")
    store = ClientStore(tmp_path)
    broken = {stateful.TALLY: {}, stateful.ROUNDS: {"n": np.array([7.0], np.float32)}}  # no arrays to add
    store.put(0, broken)
    rounds = loop(s, InProcessGrid((1, 2, 3, 4)), store)
    _, record = rounds.run(1, initial(s))
    assert record.clients_sampled == 4 and record.clients_raised == 1  # its update could not use it
    kept = store.get(0)
    assert kept is not None and kept[stateful.ROUNDS]["n"][0] == 7.0  # nothing came back to replace it
    assert all(store.get(p) is not None for p in (1, 2, 3))


def test_nodes_refusing_the_scenarios_plug_in_fail_the_round_with_their_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SuperNodes whose operator allowed no plug-in: each refuses the scenario's strategy before
    importing it, and the server reports the nodes' error."""
    monkeypatch.setattr(app, "_in_simulation", lambda: False)  # SuperNodes: the ClientApp has no Ray
    s = scenario("strategy.name=tests.stateful:Tally")
    grid = InProcessGrid(POOL)  # the other tests' nodes allow the tests' plug-ins; these none
    for context in grid.contexts.values():
        context.node_config[keys.NODE_ALLOW_PLUGINS] = ""
    with pytest.raises(
        RunError, match=r"3 raised; first: PluginError: strategy\.name: 'tests\.stateful:Tally': this node"
    ):
        loop(s, grid, ClientStore(tmp_path)).run(1, initial(s))
