"""The cohort engine's messages, with the real ClientApp and Flower Messages (no Ray).

A group message to node 0 naming partitions 0, 1, 2 is answered by the ClientApp
with each client's records; split into one reply per client, those replies must
pass screening and carry what each client's own node answers to its own message
(the per-client engine): the same arrays within float32 round-off (atol 1e-5), the
same ``num-examples``, the same train loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import clients.app as client_app
from clients.client_state import state_mod
from fedsim import protocol as keys
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import cohort_engine
from fedsim.sim.client_store import ClientStore
from fedsim.sim.cohort_choice import engine_line, fallback_reason, uses_cohorts
from fedsim.sim.replies import screen_train
from strategies import fedprox
from tests import stateful
from tests.conftest import REPO

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()
ATOL = 1e-5


def scenario(*overrides: str) -> Scenario:
    """The quickstart's data, FedProx (the mu each message sends decides its term)."""
    base = ("data.params.devices=3", "client.local_epochs=2", "strategy.name=fedprox")
    return parse_scenario(QUICKSTART, (*base, *overrides))


@pytest.fixture(autouse=True)
def server_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's Message needs the run/node identity that a ServerApp process has."""
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def global_arrays(s: Scenario) -> ArrayRecord:
    return ArrayRecord(build_model(s.model, (60,), 10, seed=s.seed).state_dict())


def ask(s: Scenario, arrays: ArrayRecord, node: int, mu: float) -> Message:
    config = ConfigRecord(
        {keys.SCENARIO: s.to_toml(), keys.DATA_ROOT: "", keys.SERVER_ROUND: 1, fedprox.MU: mu}
    )
    return Message(
        RecordDict({keys.ARRAYS: arrays, keys.CONFIG: config}),
        dst_node_id=node,
        message_type=MessageType.TRAIN,
    )


def context(node: int) -> Context:
    node_config = {
        keys.NODE_PARTITION_ID: node,
        keys.NODE_NUM_PARTITIONS: 3,
        keys.NODE_ALLOW_PLUGINS: "tests",
    }
    return Context(run_id=1, node_id=node, node_config=node_config, state=RecordDict(), run_config={})


PARTITION_OF = {0: 0, 1: 1, 2: 2}  # node id -> partition id


def cohort_replies(
    s: Scenario, mu: float, size: int | None
) -> tuple[list[cohort_engine.Group], list[Message]]:
    arrays = global_arrays(s)
    sent = [ask(s, arrays, node, mu) for node in (2, 0, 1)]  # any order: groups follow partitions
    groups = cohort_engine.group(sent, PARTITION_OF, size, s.client.local_epochs)
    answers = [client_app.train(g.message, context(g.message.metadata.dst_node_id)) for g in groups]
    return groups, cohort_engine.split(answers, groups)


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("attack.fraction=0.34", "attack.kind=sign_flip"),
        ("attack.fraction=0.34", "attack.kind=label_flip"),
    ],
    ids=["plain", "sign-flip", "label-flip"],
)
@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_split_group_replies_equal_each_clients_own_reply(overrides: tuple[str, ...], mu: float) -> None:
    s = scenario(*overrides)
    arrays = global_arrays(s)
    groups, replies = cohort_replies(s, mu, None)
    assert [g.partitions for g in groups] == [(0, 1, 2)]
    assert groups[0].message.metadata.dst_node_id == 0  # the group's first node
    assert [r.metadata.src_node_id for r in replies] == [0, 1, 2]  # as if each node had answered
    assert screen_train(replies, arrays).rejected == []
    for node, reply in enumerate(replies):
        own = client_app.train(ask(s, arrays, node, mu), context(node))
        for name, array in own.content.array_records[keys.ARRAYS].items():
            got = reply.content.array_records[keys.ARRAYS][name].numpy()
            np.testing.assert_allclose(got, array.numpy(), rtol=0, atol=ATOL)
        want, metrics = own.content.metric_records[keys.METRICS], reply.content.metric_records[keys.METRICS]
        assert metrics[keys.NUM_EXAMPLES] == want[keys.NUM_EXAMPLES]
        assert metrics[keys.TRAIN_LOSS] == pytest.approx(want[keys.TRAIN_LOSS], abs=ATOL)


def test_groups_of_a_given_size_go_to_their_first_nodes() -> None:
    groups, replies = cohort_replies(scenario(), 0.0, 2)
    assert [g.partitions for g in groups] == [(0, 1), (2,)]
    assert [g.message.metadata.dst_node_id for g in groups] == [0, 2]
    assert [r.metadata.src_node_id for r in replies] == [0, 1, 2]
    config = groups[0].message.content.config_records[keys.CONFIG]
    assert config[keys.COHORT_PARTITIONS] == [0, 1] and config[keys.COHORT_EPOCHS] == [2, 2]


def test_a_straggler_trains_its_own_fewer_epochs_in_a_group() -> None:
    # The plan gives node 1 one local epoch instead of the scenario's 2 (strategies/plan.py).
    s = scenario("resources.engine=cohort", "stragglers.fraction=0.34")
    assert uses_cohorts(s)
    arrays = global_arrays(s)
    sent = [ask(s, arrays, n, 0.0) for n in range(3)]
    straggler = sent[1].content.config_records[keys.CONFIG]
    sent[1].content = RecordDict(
        {keys.ARRAYS: arrays, keys.CONFIG: ConfigRecord({**straggler, keys.LOCAL_EPOCHS: 1})}
    )
    groups = cohort_engine.group(sent, PARTITION_OF, None, s.client.local_epochs)
    config = groups[0].message.content.config_records[keys.CONFIG]
    assert config[keys.COHORT_EPOCHS] == [2, 1, 2] and keys.LOCAL_EPOCHS not in config
    replies = cohort_engine.split([client_app.train(groups[0].message, context(0))], groups)
    for node, reply in enumerate(replies):
        own = client_app.train(sent[node], context(node))
        for name, array in own.content.array_records[keys.ARRAYS].items():
            got = reply.content.array_records[keys.ARRAYS][name].numpy()
            np.testing.assert_allclose(got, array.numpy(), rtol=0, atol=ATOL)
    # And the straggler's one epoch made a difference: two epochs end elsewhere.
    two = client_app.train(ask(s, arrays, 1, 0.0), context(1)).content.array_records[keys.ARRAYS]
    one = replies[1].content.array_records[keys.ARRAYS]
    name = next(iter(two.keys()))
    assert not np.allclose(one[name].numpy(), two[name].numpy(), rtol=0, atol=1e-4)


def test_a_groups_error_fails_each_of_its_clients() -> None:
    s = scenario()
    groups = cohort_engine.group([ask(s, global_arrays(s), n, 0.0) for n in range(3)], PARTITION_OF, None, 2)
    failed = Message(Error(code=1, reason="boom"), reply_to=groups[0].message)
    replies = cohort_engine.split([failed], groups)
    assert [r.metadata.src_node_id for r in replies] == [0, 1, 2]
    assert all(r.has_error() and r.error.reason == "boom" for r in replies)


def test_a_client_missing_from_a_group_reply_is_rejected_by_screening() -> None:
    s = scenario()
    arrays = global_arrays(s)
    groups = cohort_engine.group([ask(s, arrays, n, 0.0) for n in range(3)], PARTITION_OF, None, 2)
    answer = client_app.train(groups[0].message, context(0))
    partial = RecordDict({name: record for name, record in answer.content.items() if not name.endswith("@1")})
    replies = cohort_engine.split([Message(partial, reply_to=groups[0].message)], groups)
    screened = screen_train(replies, arrays)
    assert len(screened.rejected) == 1 and screened.rejected[0].startswith("node 1: ")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (("strategy.name=tests.stateful:Alone",), "local step is each client's own"),
        (("faults.failure_rate=0.1",), "faults"),
        (("privacy.mode=sample", "privacy.noise_multiplier=0.5", "privacy.max_grad_norm=1"), "DP-SGD"),
        (
            ("privacy.mode=central", "privacy.where=client", "privacy.noise_multiplier=0.5"),
            "client-side clipping",
        ),
    ],
)
def test_what_the_cohort_path_cannot_do_falls_back_with_a_reason(
    overrides: tuple[str, ...], reason: str
) -> None:
    s = scenario("resources.engine=cohort", *overrides)
    assert not uses_cohorts(s)
    why = fallback_reason(s)
    assert why is not None and reason in why
    line = engine_line(s)
    assert line is not None and line.startswith("engine: per-client training") and reason in line


def test_a_users_local_update_falls_back() -> None:
    s = scenario("resources.engine=cohort", "client.update=mymod:update")
    assert not uses_cohorts(s) and "client.update 'mymod:update' trains each client on its own" in (
        fallback_reason(s) or ""
    )


def test_recurrent_models_train_in_cohorts_one_after_another() -> None:
    text = '[data]\ndataset="text"\n[model]\nname="lstm"\n[resources]\nengine="cohort"'
    assert uses_cohorts(parse_scenario(text))  # the worker trains them in turn (clients/cohort_group.py)


def test_engine_line_and_default() -> None:
    assert engine_line(scenario()) is None and not uses_cohorts(scenario())
    assert "groups of similar length for the client actors" in (
        engine_line(scenario("resources.engine=cohort")) or ""
    )
    sized = scenario("resources.engine=cohort", "resources.cohort_size=4")
    assert uses_cohorts(sized) and "groups of 4 clients" in (engine_line(sized) or "")


def test_cohort_size_needs_the_cohort_engine() -> None:
    with pytest.raises(ScenarioError, match=r"resources\.cohort_size: only used by engine 'cohort'"):
        scenario("resources.cohort_size=4")
    with pytest.raises(ScenarioError, match=r"resources\.cohort_size"):
        scenario("resources.engine=cohort", "resources.cohort_size=0")


def test_capture_needs_the_cohort_engine_and_is_stated() -> None:
    with pytest.raises(ScenarioError, match=r"resources\.capture: only used by engine 'cohort'"):
        scenario("resources.capture=true")
    auto = engine_line(scenario("resources.engine=cohort")) or ""
    assert "in chunks that fit memory" in auto and "graph capture on CUDA workers" in auto
    assert "no graph capture" in (
        engine_line(scenario("resources.engine=cohort", "resources.capture=false")) or ""
    )


def test_the_workers_report_is_logged_and_reaches_no_strategy(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cohort_engine, "_SAID", set())  # earlier tests' groups were said already
    s = scenario("resources.engine=cohort")
    arrays = global_arrays(s)
    groups = cohort_engine.group([ask(s, arrays, n, 0.0) for n in range(3)], PARTITION_OF, None, 2)
    answer = client_app.train(groups[0].message, context(0))
    report = answer.content.metric_records[keys.COHORT_REPORT]
    assert report[keys.REPORT_CLIENTS] == 3 and report[keys.REPORT_CAPTURED] == 0  # CPU: capture off
    assert report[keys.REPORT_CHUNKS] == 1 and report[keys.REPORT_COMPILE_S] == 0.0
    with caplog.at_level("INFO", logger="fedsim"):
        replies = cohort_engine.split([answer], groups)
        cohort_engine.split([answer], groups)  # the same report again: said once
    assert screen_train(replies, arrays).rejected == []  # per-client replies carry no report
    assert all(set(r.content.keys()) == {keys.ARRAYS, keys.METRICS} for r in replies)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(
        "cohort engine: a worker trained 3 clients in 1 chunk of 3"
    )


def test_report_line_and_the_out_of_memory_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cohort_engine, "_SAID", set())
    numbers = {
        keys.REPORT_CLIENTS: 10,
        keys.REPORT_CHUNK: 4,
        keys.REPORT_CHUNKS: 3,
        keys.REPORT_FIT: 8,
        keys.REPORT_FOOTPRINT: 50 * 2**20,
        keys.REPORT_AVAILABLE: 800 * 2**20,
        keys.REPORT_CAPTURED: 1,
        keys.REPORT_HALVINGS: 1,
        keys.REPORT_COMPILE_S: 12.34,
        keys.REPORT_CACHE_MISSES: 1,
    }
    assert cohort_engine.report_line({k: float(v) for k, v in numbers.items()}) == (
        "cohort engine: a worker trained 10 clients in 3 chunks of 4 (memory: 800 MB available "
        "to it, 50.0 MB per client, 8 fit at once); captured step, compiled in 12.3 s (cold, kept "
        "on disk for later runs)"
    )
    with caplog.at_level("INFO", logger="fedsim"):
        cohort_engine._tell(7, MetricRecord(numbers))
    warning, info = caplog.records
    assert warning.levelname == "WARNING" and "halved its chunk 1 time(s)" in warning.getMessage()
    assert "4 clients at a time" in warning.getMessage() and info.getMessage().endswith(
        "compiled in 12.3 s (cold, kept on disk for later runs)"
    )


def test_groups_that_fit_whole_are_said_once_a_split_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cohort_engine, "_SAID", set())

    def report(clients: int, chunk: int, chunks: int) -> MetricRecord:
        return MetricRecord(
            {
                keys.REPORT_CLIENTS: clients,
                keys.REPORT_CHUNK: chunk,
                keys.REPORT_CHUNKS: chunks,
                keys.REPORT_CAPTURED: 0,
                keys.REPORT_COMPILE_S: 0.0,
            }
        )

    with caplog.at_level("INFO", logger="fedsim"):
        for clients in (9, 1, 3, 4):  # groups of every size, each trained whole
            cohort_engine._tell(7, report(clients, clients, 1))
        cohort_engine._tell(7, report(10, 4, 3))  # memory split one
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "9 clients in 1 chunk of 9" in said[0] and "3 chunks of 4" in said[1]


@pytest.mark.parametrize(
    ("steps", "workers", "groups"),
    [
        ([60] * 10, 2, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]),  # equal clients: half each (budget 300)
        ([60] * 10, 1, [list(range(10))]),  # one actor: one group
        # sum 850, budget max(500, 425) = 500: the longest alone, then 100+80+50+40+30 (5 x 100),
        # then the four shortest (4 x 20 = 80)
        ([5, 500, 10, 100, 80, 50, 40, 30, 20, 15], 2, [[1], [3, 4, 5, 6, 7], [0, 2, 8, 9]]),
        ([], 2, []),
    ],
)
def test_groups_are_clients_of_similar_length_within_a_workers_share(
    steps: list[int], workers: int, groups: list[list[int]]
) -> None:
    assert cohort_engine.balanced(steps, workers) == groups


def test_a_group_trained_in_turn_is_said_so() -> None:
    numbers = {
        keys.REPORT_CLIENTS: 5.0,
        keys.REPORT_CHUNK: 1.0,
        keys.REPORT_CHUNKS: 5.0,
        keys.REPORT_IN_TURN: 1.0,
    }
    line = (
        "cohort engine: a worker trained 5 clients one after another in one message "
        "(vmap makes convolutions grouped ones, slower on a CPU)"
    )
    assert cohort_engine.report_line(numbers) == f"{line}; eager steps"
    numbers |= {keys.REPORT_CAPTURED: 1.0, keys.REPORT_COMPILE_S: 2.0, keys.REPORT_CACHE_HITS: 1.0}
    assert (
        cohort_engine.report_line(numbers)
        == f"{line}; captured step, compiled in 2.0 s (from the on-disk cache)"
    )


def test_each_members_state_travels_under_its_own_names_and_comes_back_as_its_own_would(
    tmp_path: Path,
) -> None:
    """The test algorithm (tests/stateful.py) in a group: the array every message shares goes once,
    client 1's kept state under its own names; each split reply is what the client's own pooled
    node answers to its own message (state_mod carries the state there)."""
    s = scenario("strategy.name=tests.stateful:Tally", "resources.engine=cohort")
    arrays = global_arrays(s)
    scale = keys.to_record({k: np.ones_like(a.numpy()) for k, a in arrays.items()})  # one object, shared
    store = ClientStore(tmp_path)
    store.put(
        1,
        {
            stateful.TALLY: {k: np.full_like(a.numpy(), 0.1) for k, a in arrays.items()},
            stateful.ROUNDS: {"n": np.array([3.0], np.float32)},
        },
    )
    sent = []
    for node in range(3):
        message = ask(s, arrays, node, 0.0)
        message.content.config_records[keys.CONFIG][keys.PARTITION_ID] = node
        message.content[stateful.SCALE] = scale
        sent.append(message)
    sent = store.attach(sent, PARTITION_OF)
    (group,) = cohort_engine.group(sent, PARTITION_OF, None, 2)
    records = set(group.message.content.array_records)
    tally = keys.state_record(stateful.TALLY)
    assert {stateful.SCALE, keys.member_record(tally, 1)} <= records and tally not in records
    replies = cohort_engine.split([client_app.train(group.message, context(0))], [group])
    for node, reply in enumerate(replies):
        own = state_mod(sent[node], context(node), client_app.train)
        assert set(reply.content.array_records) == set(own.content.array_records)
        for name, record in own.content.array_records.items():
            for key, array in record.items():
                got = reply.content.array_records[name][key].numpy()
                np.testing.assert_allclose(got, array.numpy(), rtol=0, atol=ATOL)
        rounds = reply.content.metric_records[keys.METRICS][stateful.ROUNDS]
        assert (
            rounds == own.content.metric_records[keys.METRICS][stateful.ROUNDS] == (4.0 if node == 1 else 1.0)
        )
