"""Screen client replies before the strategy sees them.

On real machines a client is any process holding a node key, running code we do not
control.  A reply whose arrays do not fit the global model would make the
aggregation raise or silently broadcast NaNs to every client next round; one with
extra records or metric keys makes Flower's strategies skip the whole round
("InconsistentMessageReplies").  So each reply must carry exactly the records the
ClientApp sends (:mod:`clients.app`): the model, the arrays its algorithm declares beside it
(strategies/algorithm.py: ``replies``, and in simulation the client's ``state``), each with the
names, shapes and dtypes of the model's arrays it is like, and finite numbers only.  Replies
that do not are dropped and counted as failed clients; error replies pass through (the round
loop counts those).

What this cannot catch: finite but poisoned weights, or an inflated ``num-examples``
that gives one client more weight; those need robust aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord

from fedsim import protocol as keys
from fedsim.sim.channel import residual_like
from strategies.algorithm import Algorithm, ArraysLike, ArraySpec

TRAIN_METRICS = frozenset({keys.NUM_EXAMPLES, keys.TRAIN_LOSS})
# A train request asking for client-side adaptive clipping is answered with the clipped bit
# that Flower's adaptiveclipping_mod adds (central DP, strategies/privacy.py).
METRICS_ANSWERED_WITH = {"adaptive": keys.NORM_BIT}
EVALUATE_METRICS = frozenset({keys.NUM_EXAMPLES, keys.EVAL_LOSS, keys.EVAL_ACCURACY})


@dataclass(frozen=True)
class Screened:
    accepted: list[Message]  # well-formed replies and error replies, in their order
    rejected: list[str]  # why each dropped reply was dropped, naming its node


def extras(
    algorithm: Algorithm, model: ArrayRecord, parameters: Sequence[str], pooled: bool, uplink: str = "none"
) -> dict[str, ArrayRecord]:
    """The ArrayRecords a train reply carries beside the model, by name, each as its arrays must
    look: those the algorithm declares (``replies``), and from a pooled node, which keeps nothing,
    the client's state (with ``uplink`` topk: its error-feedback residual too, fedsim/sim/channel.py)."""
    declared: dict[str, ArraySpec] = dict(algorithm.replies)
    if pooled:
        declared.update({keys.state_record(name): spec for name, spec in algorithm.state.items()})
    out = {name: shaped(spec, model, parameters) for name, spec in declared.items()}
    if pooled and uplink == "topk":
        out[keys.state_record(keys.COMPRESSION_RESIDUAL)] = residual_like(model)
    return out


def shaped(spec: ArraySpec, model: ArrayRecord, parameters: Sequence[str]) -> ArrayRecord:
    """What arrays of ``spec`` look like: an ArraysLike's are the model's own (no copy made)."""
    if isinstance(spec, ArraysLike):
        return ArrayRecord({name: model[name] for name in spec.names(list(model), parameters)})
    return keys.to_record(spec.first(keys.to_numpy(model), parameters))


def expected_metrics(
    request: Message, builtin_update: bool = True, own: Iterable[str] = ()
) -> frozenset[str]:
    """The train metrics a reply to this request must carry: fedsim's, the algorithm's ``own``
    (a user's update may add its own too)."""
    config = request.content.config_records.get(keys.CONFIG)
    clipping = config.get(keys.DP_CLIENT_CLIPPING) if config is not None else None
    extra = METRICS_ANSWERED_WITH.get(clipping) if isinstance(clipping, str) else None
    base = (TRAIN_METRICS if builtin_update else frozenset({keys.NUM_EXAMPLES})) | set(own)
    return base | {extra} if extra else base


def screen_train(
    replies: Iterable[Message],
    model: ArrayRecord,
    extra: Mapping[str, ArrayRecord] | None = None,
    metrics: frozenset[str] = TRAIN_METRICS,
    exact: bool = True,
) -> Screened:
    """Keep the train replies whose arrays fit ``model`` (and each of ``extra``, :func:`extras`, its
    own) and whose numbers are finite.  ``exact``: the metrics must be ``metrics``; else at least
    those (a user's update's own)."""
    return _screen(replies, lambda m: train_problem(m, model, extra, metrics, exact))


def screen_evaluate(replies: Iterable[Message], metrics: frozenset[str] = EVALUATE_METRICS) -> Screened:
    """Keep the evaluation replies that carry exactly ``metrics``, finite (error replies pass)."""
    return _screen(replies, lambda m: evaluate_problem(m, metrics))


def train_problem(
    reply: Message,
    model: ArrayRecord,
    extra: Mapping[str, ArrayRecord] | None = None,
    metrics: frozenset[str] = TRAIN_METRICS,
    exact: bool = True,
) -> str | None:
    """Why a train reply must not be aggregated, or None if it may."""
    content = reply.content
    expected = {keys.ARRAYS: model, **(extra or {})}
    if set(content.array_records) != set(expected) or content.config_records:
        return f"expected ArrayRecords {sorted(expected)}, got records {sorted(content.keys())}"
    for name in sorted(expected):
        problem = arrays_problem(content.array_records[name], expected[name])
        if problem:
            return problem if name == keys.ARRAYS else f"{name}: {problem}"
    return _metrics_problem(reply, metrics, exact)


def evaluate_problem(reply: Message, metrics: frozenset[str] = EVALUATE_METRICS) -> str | None:
    content = reply.content
    if content.array_records or content.config_records:
        return f"expected only MetricRecord {keys.METRICS!r}, got records {sorted(content.keys())}"
    return _metrics_problem(reply, metrics)


def arrays_problem(arrays: ArrayRecord, reference: ArrayRecord) -> str | None:
    """Names, shapes and dtypes as in ``reference``; data readable and finite."""
    if list(arrays.keys()) != list(reference.keys()):
        return f"arrays {_names(arrays)} do not match the model's {_names(reference)}"
    for name, expected in reference.items():
        got = arrays[name]
        declared = (tuple(got.shape), got.dtype)
        if declared != (tuple(expected.shape), expected.dtype):
            return (
                f"{name}: {declared[1]}{list(declared[0])}, expected {expected.dtype}{list(expected.shape)}"
            )
        try:
            values = got.numpy()
        except Exception as error:  # malformed bytes: numpy's reader raises several kinds
            return f"{name}: unreadable data ({type(error).__name__})"
        if values.shape != tuple(expected.shape) or str(values.dtype) != expected.dtype:
            return f"{name}: data holds {values.dtype}{list(values.shape)}, not what it declares"
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            return f"{name}: non-finite values (NaN or inf)"
    return None


def _metrics_problem(reply: Message, expected: frozenset[str], exact: bool = True) -> str | None:
    content = reply.content
    if set(content.metric_records) != {keys.METRICS}:
        return f"expected one MetricRecord {keys.METRICS!r}, got {sorted(content.metric_records)}"
    metrics: MetricRecord = content.metric_records[keys.METRICS]
    if not expected <= set(metrics) or (exact and set(metrics) != expected):
        return f"metrics {sorted(metrics)}, expected {sorted(expected)}"
    for name, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        if not all(math.isfinite(v) for v in values):
            return f"metric {name!r}: non-finite value"
    if not keys.number(metrics, keys.NUM_EXAMPLES) > 0:
        return f"metric {keys.NUM_EXAMPLES!r} must be positive"
    return None


def _screen(replies: Iterable[Message], problem_of: Callable[[Message], str | None]) -> Screened:
    accepted: list[Message] = []
    rejected: list[str] = []
    for reply in replies:
        problem = None if reply.has_error() else problem_of(reply)
        if problem is None:
            accepted.append(reply)
        else:
            rejected.append(f"node {reply.metadata.src_node_id}: {problem}")
    return Screened(accepted, rejected)


def _names(record: ArrayRecord) -> str:
    names = list(record.keys())
    return str(names) if len(names) <= 4 else f"[{', '.join(names[:4])}, ... {len(names)} in all]"
