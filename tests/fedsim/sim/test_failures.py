"""Error replies classified from the texts Ray and Flower really produce.

The reasons are built as Flower's simulation worker builds them
(``str(type(ex)) + ":<'" + str(ex) + "'>"``, flwr/server/superlink/fleet/vce/vce_api.py)
from Ray's own exception classes; the memory monitor's wording is the raylet's format
strings (``strings ray/core/src/ray/raylet/raylet`` of the installed Ray), filled in.
"""

from __future__ import annotations

import pytest
from flwr.clientapp.client_app import ClientAppException
from ray.core.generated.common_pb2 import ActorDiedErrorContext
from ray.exceptions import ActorDiedError, ActorUnavailableError, OutOfMemoryError

from clients.gpu import Share, exceeded
from fedsim.scenario.files import parse_scenario
from fedsim.sim.failures import Failures, count, kind_of, out_of_memory_advice, summary

ACTOR_ID = bytes.fromhex("720ae0f0dbd20af2b0b6e0c801000000")
# The raylet's memory-monitor messages (Ray 2.x), as format strings.
KILLED = "%d worker(s) were killed due to the node running low on memory. %s, %s"
USAGE = (
    "Memory on the node (IP: %s, ID: %s) was %sGB / %sGB (%f), which exceeds the memory usage "
    "threshold of %f; Object store memory usage: [%s]; Ray killed %d worker(s) based on the killing "
    "policy: [%s]; To see more information about memory usage on this node, use `ray logs raylet.out "
    "-ip %s`; Top 10 memory users: %s"
)


def flower_reason(error: BaseException) -> str:
    return str(type(error)) + ":<'" + str(error) + "'>"


def memory_kill_detail() -> str:
    usage = USAGE % ("10.0.0.5", "e5d9", "1.95", "2.00", 0.975, 0.95, "", 1, "group by owner", "10.0.0.5", "")
    return KILLED % (1, usage, "pid=4711")


def actor_died(error_message: str) -> ActorDiedError:
    context = ActorDiedErrorContext(
        error_message=error_message, class_name="ClientAppActor", actor_id=ACTOR_ID, pid=4711
    )
    return ActorDiedError(context)


OUT_OF_MEMORY = [
    flower_reason(OutOfMemoryError(memory_kill_detail())),
    # A client that outgrew its GPU share (clients/gpu.py), its error wrapped as Flower wraps it.
    flower_reason(ClientAppException(exceeded([7], Share(0.1, 140 * 2**30)))),
    flower_reason(
        actor_died(
            "The actor is dead because its worker process has died. Worker exit type: NODE_OUT_OF_MEMORY"
            " Worker exit detail: " + memory_kill_detail()
        )
    ),
]
CRASHED = [
    # What a client whose process exits gets (observed with os._exit in a restartable actor).
    flower_reason(
        ActorUnavailableError(
            "The actor is temporarily unavailable: RpcError: RPC error: recvmsg:Connection reset by peer "
            "rpc_code: 14",
            ACTOR_ID,
        )
    ),
    flower_reason(actor_died("The actor is dead because its worker process has died.")),
    flower_reason(ActorDiedError()),
]
RAISED = [
    "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'\x1b[36mray::ClientAppActor.run()\x1b[39m"
    ' (pid=14263, ip=192.0.2.2)\n  File "clients/app.py", line 80, in train\n'
    "flwr.clientapp.client_app.ClientAppException: \nException ClientAppException occurred. Message: "
    "injected failure (faults.failure_rate)'>",
    "<class 'flwr.clientapp.client_app.ClientAppException'>:<'boom'>",
]


@pytest.mark.parametrize("reason", OUT_OF_MEMORY)
def test_rays_memory_kills_are_told_apart_from_other_deaths(reason: str) -> None:
    assert kind_of(reason) == "out_of_memory"


@pytest.mark.parametrize("reason", CRASHED)
def test_a_dead_or_unreachable_actor_is_a_crash(reason: str) -> None:
    assert kind_of(reason) == "crashed"


@pytest.mark.parametrize("reason", RAISED)
def test_an_exception_in_the_client_app_is_raised(reason: str) -> None:
    assert kind_of(reason) == "raised"


def test_counts_add_up_over_attempts() -> None:
    first = count([*OUT_OF_MEMORY[:1], *CRASHED[:2], RAISED[0]], timed_out=2, rejected=1)
    assert first == Failures(raised=1, crashed=2, out_of_memory=1, timed_out=2, rejected=1)
    assert (first + count([RAISED[1]])).raised == 2 and first.total == 7
    assert first.describe() == "1 raised, 2 crashed, 1 out of memory, 2 did not answer, 1 rejected"


def test_a_reason_is_summed_up_in_one_short_line() -> None:
    assert summary(RAISED[0]) == "injected failure (faults.failure_rate)"
    crashed = summary(CRASHED[0])
    assert crashed.startswith("ActorUnavailableError: The actor ") and "\n" not in crashed
    assert "\n" not in summary(OUT_OF_MEMORY[1]) and len(summary(OUT_OF_MEMORY[1])) <= 200


def test_memory_advice_names_the_values_to_change() -> None:
    text = out_of_memory_advice(parse_scenario("[client]\nbatch_size = 64\n[resources]\nclient_cpus = 1"))
    assert "resources.client_cpus (now 1)" in text and "client.batch_size (now 64)" in text
    rnn = parse_scenario(
        '[data]\ndataset = "shakespeare"\n[model]\nname = "lstm"\n[model.params]\nhidden_size = 512'
    )
    assert "model.params.hidden_size (now 512)" in out_of_memory_advice(rnn)


def test_an_exceeded_gpu_share_is_summed_up_as_the_client_said_it() -> None:
    reason = OUT_OF_MEMORY[1]
    assert summary(reason, limit=300) == (
        "client 7 needed more than its GPU share (resources.client_gpus = 0.1, 14.0 of 140.0 GiB); "
        "raise resources.client_gpus or lower client.batch_size"
    )
