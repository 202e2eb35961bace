"""Server state of Flower's own strategies, read and written for checkpoints.

Our components carry ``state()`` and ``restore()`` themselves (fedsim/sim/checkpoint.py);
Flower's do not, so these adapters name the attributes that change from round to
round (read from Flower 1.42's sources):

- FedAdam, FedYogi, FedAdagrad (``FedOpt``): the moments ``m_t`` and ``v_t``; their
  ``current_arrays`` is reset from the global model in every ``configure_train``;
- FedAvgM: ``current_arrays`` (set once, then its own copy of the model) and
  ``momentum_vector``;
- the DP wrappers with adaptive clipping: ``clipping_norm``, adapted every round
  (their noise comes from NumPy's global generator, which checkpoints keep too).

Every other Flower strategy keeps nothing between rounds.

A user's strategy (a plug-in, fedsim/scenario/plugins.py) that is not :class:`Stateful` itself
has its instance attributes saved that a checkpoint can hold: numbers, strings, NumPy
arrays, ArrayRecords and lists and dicts of those (its moments, its counters, its
current model); anything else (a function, a lock) is left as the constructor made it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAvgM, Strategy
from flwr.serverapp.strategy.dp_adaptive_clipping import DifferentialPrivacyAdaptiveBase
from flwr.serverapp.strategy.fedopt import FedOpt

Arrays = dict[str, np.ndarray]


def _copy(arrays: Arrays | None) -> Arrays | None:
    return None if arrays is None else {k: np.array(v) for k, v in arrays.items()}


def _fedopt_state(s: FedOpt) -> dict[str, Any]:
    return {"m_t": _copy(s.m_t), "v_t": _copy(s.v_t)}


def _fedopt_restore(s: FedOpt, state: dict[str, Any]) -> None:
    s.m_t, s.v_t = _copy(state["m_t"]), _copy(state["v_t"])


def _fedavgm_state(s: FedAvgM) -> dict[str, Any]:
    current = None if s.current_arrays is None else {k: a.numpy() for k, a in s.current_arrays.items()}
    momentum = None if s.momentum_vector is None else [np.array(v) for v in s.momentum_vector]
    return {"current_arrays": current, "momentum_vector": momentum}


def _fedavgm_restore(s: FedAvgM, state: dict[str, Any]) -> None:
    current: Arrays | None = state["current_arrays"]
    s.current_arrays = None if current is None else ArrayRecord({k: Array(v) for k, v in current.items()})
    momentum = state["momentum_vector"]
    s.momentum_vector = None if momentum is None else [np.array(v) for v in momentum]


def _clipping_state(s: DifferentialPrivacyAdaptiveBase) -> dict[str, Any]:
    return {"clipping_norm": s.clipping_norm}


def _clipping_restore(s: DifferentialPrivacyAdaptiveBase, state: dict[str, Any]) -> None:
    s.clipping_norm = state["clipping_norm"]


RECORD = "__arrayrecord__"  # marks a saved ArrayRecord attribute


def attributes_state(s: object) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, value in vars(s).items():
        if isinstance(value, ArrayRecord):
            state[name] = {RECORD: {k: a.numpy() for k, a in value.items()}}
        elif _storable(value) and not isinstance(value, Strategy):
            state[name] = value
    return state


def attributes_restore(s: object, state: dict[str, Any]) -> None:
    for name, value in state.items():
        if isinstance(value, dict) and set(value) == {RECORD}:
            value = ArrayRecord({k: Array(np.array(v)) for k, v in value[RECORD].items()})
        setattr(s, name, value)


def _storable(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | str | np.ndarray | np.generic):
        return True
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _storable(v) for k, v in value.items())
    return False


def _is_users(component: object) -> bool:
    """A strategy from outside Flower and fedsim: a plug-in."""
    return type(component).__module__.split(".")[0] not in ("flwr", "fedsim", "strategies")


# (class, read, write): the first class an object is an instance of applies.
ADAPTERS: list[tuple[type[Any], Callable[[Any], dict[str, Any]], Callable[[Any, dict[str, Any]], None]]] = [
    (FedOpt, _fedopt_state, _fedopt_restore),
    (FedAvgM, _fedavgm_state, _fedavgm_restore),
    (DifferentialPrivacyAdaptiveBase, _clipping_state, _clipping_restore),
]


def adapter_for(
    component: object,
) -> tuple[Callable[[Any], dict[str, Any]], Callable[[Any, dict[str, Any]], None]] | None:
    """How to read and write ``component``'s state: a Flower strategy that has any, or a user's."""
    if isinstance(component, Strategy) and _is_users(component):
        return attributes_state, attributes_restore
    for cls, read, write in ADAPTERS:
        if isinstance(component, cls):
            return read, write
    return None
