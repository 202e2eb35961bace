"""Checkpoints: exact state trees, the strategy chain's components, and kills between any two writes."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideAdaptiveClipping, FedAdam

from fedsim.results import statetree
from fedsim.results.statetree import pack, unpack
from fedsim.scenario import plugins
from fedsim.scenario.files import parse_scenario
from fedsim.sim import checkpoint as ckpt
from strategies.algorithm import PLAIN, declared
from strategies.placement import Placement
from strategies.registry import asynchronous, make_strategy
from strategies.sampling import SeededSampling

pytestmark = pytest.mark.usefixtures("task_identity")

TAKE_ALL: dict[str, Any] = {"fraction_train": 1.0, "min_train_nodes": 1, "min_available_nodes": 1}


class _Grid:
    def get_node_ids(self) -> list[int]:
        return [1, 2]


def arrays(*values: float) -> ArrayRecord:
    return ArrayRecord({"w": Array(np.array(values, dtype=np.float32))})


def train_round(
    strategy: Any,
    server_round: int,
    x: ArrayRecord,
    ys: list[ArrayRecord],
    replies_with: tuple[str, ...] = (),
) -> ArrayRecord:
    """One round of ``strategy`` with the given client models as replies, and beside each model the
    arrays ``replies_with`` names (its algorithm's, strategies/algorithm.py)."""
    sent = list(strategy.configure_train(server_round, x, ConfigRecord(), _Grid()))
    replies = []
    for m, y in zip(sent, ys, strict=True):
        content = RecordDict({"arrays": y, "metrics": MetricRecord({"num-examples": 1.0})})
        for name in replies_with:
            content[name] = arrays(*(0.01 * server_round * v for v in y["w"].numpy()))
        replies.append(Message(content, reply_to=m))
    new, _ = strategy.aggregate_train(server_round, replies)
    assert new is not None
    return new


def test_state_trees_come_back_bit_for_bit() -> None:
    tree = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "nested": {"b": [np.array([1, 2], dtype=np.int64), None, 0.1 + 0.2], "s": "x"},
        "scalar": np.float32(1) / 3,
        "tuple": (1, True, 2.5e-300),
        "missing": None,
    }
    back = round_trip(tree)
    assert np.array_equal(back["a"], tree["a"]) and back["a"].dtype == np.float32
    assert back["nested"]["b"][0].dtype == np.int64 and back["nested"]["b"][1:] == [None, 0.1 + 0.2]
    assert type(back["scalar"]) is np.float32 and back["scalar"] == tree["scalar"]
    assert back["tuple"] == [1, True, 2.5e-300] and back["missing"] is None


def test_objects_that_cannot_be_stored_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot store a set"):
        pack({"x": {1, 2}}, {})
    with pytest.raises(TypeError, match="keys must be strings"):
        pack({1: 2}, {})
    with pytest.raises(TypeError, match="Python objects"):
        pack({"x": np.array([object()])}, {})


class Accountant:
    """A privacy accountant as issue #5 may write one: Stateful, held by a wrapper."""

    def __init__(self) -> None:
        self.steps = 0
        self.epsilons: list[float] = []

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "epsilons": list(self.epsilons)}

    def restore(self, state: dict[str, Any]) -> None:
        self.steps, self.epsilons = state["steps"], list(state["epsilons"])


def chain() -> SeededSampling:
    """Our sampling around Flower's adaptive-clipping DP wrapper around FedAdam, plus an accountant."""
    dp = DifferentialPrivacyServerSideAdaptiveClipping(FedAdam(**TAKE_ALL), 0.1, 2)
    dp.accountant = Accountant()  # type: ignore[attr-defined]
    return SeededSampling(dp, Placement.fixed({1: 0, 2: 1}), seed=0, train_size=2, evaluate_size=0)


def test_every_stateful_component_of_the_chain_is_found_by_its_path() -> None:
    strategy = chain()
    paths = [path for path, _ in ckpt.components(strategy)]
    assert paths == ["strategy", "strategy.inner", "strategy.inner.strategy", "strategy.inner.accountant"]
    assert sorted(ckpt.collect(strategy)) == [
        "strategy.inner",  # the clipping norm (adapter)
        "strategy.inner.accountant",  # duck-typed: it has state() and restore()
        "strategy.inner.strategy",  # FedAdam's moments (adapter)
    ]


def test_a_restored_chain_goes_on_exactly_as_the_saved_one() -> None:
    np.random.seed(1)  # the DP wrapper's noise comes from NumPy's global generator
    original = chain()
    x = arrays(1.0, 2.0)
    x = train_round(original, 1, x, [arrays(0.5, 2.5), arrays(0.7, 1.5)])
    original.inner.accountant.steps, original.inner.accountant.epsilons = 1, [0.5]  # type: ignore[attr-defined]
    saved = round_trip(ckpt.collect(original))
    rng = ckpt.rng_state()
    norm = original.inner.clipping_norm  # type: ignore[attr-defined]
    expected = train_round(original, 2, x, [arrays(0.1, 0.2), arrays(0.3, 0.4)])

    ckpt.set_rng_state(rng)
    restored = chain()
    ckpt.restore(restored, saved)
    assert restored.inner.clipping_norm == norm != 0.1  # type: ignore[attr-defined]  # adapted in round 1
    assert restored.inner.accountant.epsilons == [0.5]  # type: ignore[attr-defined]
    again = train_round(restored, 2, x, [arrays(0.1, 0.2), arrays(0.3, 0.4)])
    assert again["w"].numpy().tobytes() == expected["w"].numpy().tobytes()
    assert fingerprint(ckpt.collect(restored)) == fingerprint(ckpt.collect(original))


def built_in(name: str) -> Any:
    """The built-in strategy ``name`` for 4 clients of a one-array model ``w``, as a run builds it."""
    scenario = parse_scenario(f'[strategy]\nname = "{name}"\nfraction_train = 1.0\n[data]\nnum_clients = 4')
    return make_strategy(scenario, 4, ["w"])


# Every built-in whose server keeps state between rounds (and Flower's three, as fedsim builds them).
# (The asynchronous ones resume in tests/test_time_engine.py.)
SYNCHRONOUS = [name for name in plugins.REGISTRY["strategy"] if not asynchronous(name)]
STATEFUL = [name for name in SYNCHRONOUS if ckpt.collect(built_in(name), "s")]


def test_the_built_ins_with_server_state_are_found() -> None:
    assert {"fedadam", "fedyogi", "fedadagrad", "fedavgm"} < set(STATEFUL)  # and ours that keep state


@pytest.mark.parametrize("name", STATEFUL)
def test_server_state_of_each_stateful_strategy_survives(name: str) -> None:
    original, x = built_in(name), arrays(1.0, -1.0)
    replies_with = tuple((declared(plugins.resolve(plugins.STRATEGY, name)) or PLAIN).replies)
    for r in (1, 2):
        x = train_round(original, r, x, _replies_for(original, r), replies_with)
    saved = round_trip(ckpt.collect(original))
    restored = built_in(name)
    ckpt.restore(restored, saved)
    ys, fresh = _replies_for(original, 3), built_in(name)
    expected, again = (
        train_round(original, 3, x, ys, replies_with),
        train_round(restored, 3, x, ys, replies_with),
    )
    assert again["w"].numpy().tobytes() == expected["w"].numpy().tobytes()
    assert fingerprint(ckpt.collect(restored)) == fingerprint(ckpt.collect(original))
    train_round(
        fresh, 3, x, ys, replies_with
    )  # without the saved state it ends elsewhere: the test has teeth
    assert fingerprint(ckpt.collect(fresh)) != fingerprint(ckpt.collect(original))


def _replies_for(strategy: Any, server_round: int) -> list[ArrayRecord]:
    return [arrays(0.1 * server_round, 0.2), arrays(-0.3, 0.4 * server_round)]


def round_trip(tree: Any) -> Any:
    """``tree`` through JSON and an ``.npz``, as a checkpoint stores it."""
    stored: dict[str, np.ndarray] = {}
    data = json.loads(json.dumps(pack(tree, stored)))
    with np.load(io.BytesIO(statetree.npz_bytes(stored)), allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    return unpack(data, loaded)


def fingerprint(tree: Any) -> bytes:
    """The exact content of a state tree: its JSON and every array's bytes."""
    stored: dict[str, np.ndarray] = {}
    data = json.dumps(pack(tree, stored)).encode()
    return data + b"".join(a.dtype.str.encode() + a.tobytes() for a in stored.values())


def test_global_generators_are_restored() -> None:
    state = ckpt.rng_state()
    drawn = (random.random(), np.random.random(), torch.rand(1).item())
    ckpt.set_rng_state(round_trip(state))
    assert (random.random(), np.random.random(), torch.rand(1).item()) == drawn
