"""Reply screening with real Flower Messages: the real ClientApp's replies pass, bad ones are named."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.supercore.task_identity import TaskIdentity

import clients.app as client_app
from clients.client_state import state_mod
from fedsim import protocol as keys
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from fedsim.sim.failures import count
from fedsim.sim.replies import expected_metrics, extras, screen_evaluate, screen_train, train_problem
from fedsim.sim.rounds import Attempt, check_delivery
from strategies.algorithm import declared
from strategies.plan import ClientPlan, RoundPlan
from tests import stateful
from tests.conftest import REPO, RecordingReporter

SCENARIO = parse_scenario((REPO / "fedsim" / "quickstart.toml").read_text(), ("data.params.devices=3",))


@pytest.fixture(autouse=True)
def server_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's Message needs the run/node identity that a ServerApp process has."""
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


@pytest.fixture(scope="module")
def global_arrays() -> ArrayRecord:
    return ArrayRecord(build_model(SCENARIO.model, (60,), 10, seed=0).state_dict())


def ask(arrays: ArrayRecord, node: int, kind: str = MessageType.TRAIN) -> Message:
    config = ConfigRecord({keys.SCENARIO: SCENARIO.to_toml(), keys.DATA_ROOT: "", keys.SERVER_ROUND: 1})
    return Message(
        RecordDict({keys.ARRAYS: arrays, keys.CONFIG: config}), dst_node_id=node, message_type=kind
    )


def context(node: int) -> Context:
    node_config = {
        keys.NODE_PARTITION_ID: node,
        keys.NODE_NUM_PARTITIONS: 3,
        keys.NODE_ALLOW_PLUGINS: "tests",
    }
    return Context(run_id=1, node_id=node, node_config=node_config, state=RecordDict(), run_config={})


def honest(arrays: ArrayRecord, node: int) -> Message:
    return client_app.train(ask(arrays, node), context(node))


def with_arrays(reply: Message, arrays: ArrayRecord) -> Message:
    content = RecordDict({keys.ARRAYS: arrays, keys.METRICS: reply.content.metric_records[keys.METRICS]})
    return Message(content, reply_to=ask(arrays, reply.metadata.src_node_id))


def replaced(reference: ArrayRecord, name: str, value: np.ndarray) -> ArrayRecord:
    arrays = {k: v.numpy() for k, v in reference.items()}
    arrays[name] = value
    return ArrayRecord({k: Array(v) for k, v in arrays.items()})


def test_the_client_apps_own_train_and_evaluate_replies_pass(global_arrays: ArrayRecord) -> None:
    assert screen_train([honest(global_arrays, 0), honest(global_arrays, 1)], global_arrays).rejected == []
    evaluated = client_app.evaluate(ask(global_arrays, 2, MessageType.EVALUATE), context(2))
    assert screen_evaluate([evaluated]).rejected == []


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda a, n: replaced(a, n, np.full(a[n].shape, np.nan, np.float32)), "non-finite values"),
        (lambda a, n: replaced(a, n, np.full(a[n].shape, np.inf, np.float32)), "non-finite values"),
        (lambda a, n: replaced(a, n, np.zeros((3, 3), np.float32)), "expected float32"),
        (lambda a, n: replaced(a, n, np.zeros(a[n].shape, np.float64)), "float64"),
        (lambda a, n: ArrayRecord({k: v for k, v in a.items() if k != n}), "do not match the model's"),
    ],
    ids=["nan", "inf", "shape", "dtype", "missing-array"],
)
def test_malformed_arrays_are_rejected_with_the_reason(
    global_arrays: ArrayRecord, corrupt: object, reason: str
) -> None:
    name = next(iter(global_arrays.keys()))
    bad = with_arrays(honest(global_arrays, 1), corrupt(global_arrays, name))  # type: ignore[operator]
    screened = screen_train([honest(global_arrays, 0), bad], global_arrays)
    assert [m.metadata.src_node_id for m in screened.accepted] == [0]
    assert len(screened.rejected) == 1 and screened.rejected[0].startswith("node 1: ")
    assert reason in screened.rejected[0]


def test_data_that_contradicts_its_declared_shape_is_rejected(global_arrays: ArrayRecord) -> None:
    name, first = next(iter(global_arrays.items()))
    lying = Array(dtype=first.dtype, shape=first.shape, stype=first.stype, data=first.data[:20])
    arrays = ArrayRecord({k: lying if k == name else v for k, v in global_arrays.items()})
    problem = train_problem(with_arrays(honest(global_arrays, 0), arrays), global_arrays)
    assert problem is not None and "unreadable data" in problem


def test_extra_records_and_bad_metrics_are_rejected(global_arrays: ArrayRecord) -> None:
    reply = honest(global_arrays, 0)
    metrics = reply.content.metric_records[keys.METRICS]
    extra = RecordDict({keys.ARRAYS: global_arrays, "other": global_arrays, keys.METRICS: metrics})

    def changed(**values: float) -> RecordDict:
        return RecordDict({keys.ARRAYS: global_arrays, keys.METRICS: MetricRecord({**metrics, **values})})

    nan_loss = changed(**{keys.TRAIN_LOSS: np.nan})
    no_examples = changed(**{keys.NUM_EXAMPLES: 0.0})
    extra_key = changed(x=1.0)
    cases = {"records": extra, "non-finite": nan_loss, "must be positive": no_examples, "metrics": extra_key}
    for reason, content in cases.items():
        problem = train_problem(Message(content, reply_to=ask(global_arrays, 0)), global_arrays)
        assert problem is not None and reason in problem


def test_error_replies_pass_through_for_the_round_loop_to_count(global_arrays: ArrayRecord) -> None:
    failed = Message(Error(code=1, reason="boom"), reply_to=ask(global_arrays, 2))
    screened = screen_train([failed], global_arrays)
    assert screened.accepted == [failed] and screened.rejected == []


def nan_reply(arrays: ArrayRecord, node: int) -> Message:
    name = next(iter(arrays.keys()))
    return with_arrays(
        honest(arrays, node), replaced(arrays, name, np.full(arrays[name].shape, np.nan, np.float32))
    )


def test_rejected_replies_count_as_failed_clients_and_can_stop_the_run(global_arrays: ArrayRecord) -> None:
    sent = [ask(global_arrays, n) for n in range(3)]
    screened = screen_train([honest(global_arrays, 0), nan_reply(global_arrays, 1)], global_arrays)
    failures = count([], timed_out=1, rejected=len(screened.rejected))
    plan = RoundPlan(1, 0, tuple(ClientPlan(p, epochs=1) for p in range(3)), drop_stragglers=False)
    first = f"rejected reply from {screened.rejected[0]}"
    reporter = RecordingReporter()
    attempt = Attempt(plan, screened.accepted, 1, failures, first, 0, 0, 0.0)
    assert check_delivery(1, attempt, SCENARIO, reporter) is None  # min_train_clients = 1: go on
    assert f"2 of {len(sent)} clients failed (1 did not answer, 1 rejected" in reporter.warnings[0]
    assert "rejected reply from node 1: " in reporter.warnings[0]
    assert "non-finite values" in reporter.warnings[0]
    none_good = Attempt(plan, [], 0, count([], rejected=3), "rejected reply from node 0: bad", 0, 0, 0.0)
    shortfall = check_delivery(1, none_good, SCENARIO, reporter)
    assert shortfall is not None and "0 of 3 sampled clients replied" in shortfall


def test_a_reply_carries_the_arrays_its_algorithm_declares_each_shaped_as_declared(
    global_arrays: ArrayRecord,
) -> None:
    """The test algorithm (tests/stateful.py) replies with ``moved`` (like the parameters) and, from
    a pooled node, its state: ``tally`` (like the parameters) and ``rounds`` (one number of its own)."""
    toml = parse_scenario(
        (REPO / "fedsim" / "quickstart.toml").read_text(),
        ("data.params.devices=3", "strategy.name=tests.stateful:Tally"),
    ).to_toml()
    request = ask(global_arrays, 1)
    config = request.content.config_records[keys.CONFIG]
    config[keys.SCENARIO], config[keys.PARTITION_ID] = toml, 1  # as to a pooled node
    request.content[stateful.SCALE] = global_arrays
    algorithm = declared(stateful.Tally)
    assert algorithm is not None
    parameters = list(global_arrays)
    pooled, supernode = (extras(algorithm, global_arrays, parameters, p) for p in (True, False))
    assert set(supernode) == {stateful.MOVED}
    assert set(pooled) == {
        stateful.MOVED,
        keys.state_record(stateful.TALLY),
        keys.state_record(stateful.ROUNDS),
    }
    assert list(pooled[keys.state_record(stateful.ROUNDS)]) == ["n"]
    reply = state_mod(request, context(1), client_app.train)  # the mod of a pooled node's state
    metrics = expected_metrics(request, own=algorithm.metrics)
    assert screen_train([reply], global_arrays, pooled, metrics).rejected == []
    # Without its arrays, or with one of another shape, the same reply is dropped.
    assert train_problem(reply, global_arrays, supernode, metrics) is not None
    content = reply.content
    broken = RecordDict(
        {
            **dict(content.items()),
            stateful.MOVED: replaced(
                global_arrays, next(iter(global_arrays.keys())), np.zeros(3, np.float32)
            ),
        }
    )
    problem = train_problem(Message(broken, reply_to=request), global_arrays, pooled, metrics)
    assert problem is not None and problem.startswith(f"{stateful.MOVED}: ")
