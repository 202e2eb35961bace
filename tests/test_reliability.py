"""Reliability end to end through Flower + Ray: kill and resume, determinism, faults, stragglers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import torch

from fedsim.results import per_client
from fedsim.results.records import RoundRecord
from fedsim.results.run_dir import read_metrics
from fedsim.scenario import plugins
from fedsim.scenario.files import parse_scenario
from fedsim.sim import checkpoint, engine
from strategies.algorithm import PLAIN, Algorithm, declared
from strategies.plan import plan_round
from tests.conftest import REPO, RecordingReporter, default_sigint, simulate

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()
# Ten devices, all sampled every round: quick rounds, and 30% of ten is three.
SMALL = ("rounds=2", "client.local_epochs=1", "data.params.devices=10", "strategy.fraction_train=1.0")
POPULATION = 10
WALL_CLOCK = ("round_time_s", "eval_time_s", "elapsed_s")  # everything else must repeat exactly


def algorithm_of_name(name: str) -> Algorithm:
    return declared(plugins.resolve(plugins.STRATEGY, name)) or PLAIN


def comparable(run_dir: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in read_metrics(run_dir)]


def same_model(a: Path, b: Path) -> bool:
    x, y = torch.load(a / "model.pt"), torch.load(b / "model.pt")
    return list(x) == list(y) and all(torch.equal(x[k], y[k]) for k in x)


def fedsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedsim", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_a_run_killed_with_sigkill_and_resumed_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    """FedAdam: the server's moments, the model and the generators must all come back."""
    overrides = ("rounds=4", "strategy.name=fedadam", "strategy.fraction_evaluate=0.2", *SMALL[2:])
    scenario = [arg for override in overrides for arg in ("--set", override)]
    simulate(QUICKSTART, tmp_path / "whole", overrides=overrides)  # in this process: the same engine

    killed_dir = tmp_path / "killed"
    run_killed_after_round_2(killed_dir, scenario)
    assert checkpoint.load(killed_dir).round in (2, 3)  # killed mid-run
    assert not (killed_dir / "summary.json").exists()  # nothing ran after the kill

    resumed = fedsim("run", "--resume", str(killed_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming " in resumed.stderr
    assert [r["round"] for r in read_metrics(killed_dir)] == [1, 2, 3, 4]  # none lost, none twice
    assert comparable(killed_dir) == comparable(tmp_path / "whole")
    summary = json.loads((killed_dir / "summary.json").read_text())
    expected = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final_accuracy"] == expected["final_accuracy"]
    assert same_model(killed_dir, tmp_path / "whole")


def run_killed_after_round_2(out: Path, scenario: list[str]) -> None:
    """``fedsim run --out out *scenario``, sent SIGKILL as soon as it prints round 2's line."""
    command = [sys.executable, "-m", "fedsim", "run", "--out", str(out), *scenario]
    process = subprocess.Popen(
        command, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("round   2"):  # printed once round 2's checkpoint is committed
            process.send_signal(signal.SIGKILL)
            break
    try:
        assert process.wait(timeout=120) == -signal.SIGKILL  # a bound against hanging, not a speed check
    finally:
        process.kill()


def resume_here(run_dir: Path) -> None:
    """Go on with the stopped run in ``run_dir`` in this process, on the session's Ray cluster."""
    scenario = parse_scenario((run_dir / "scenario.toml").read_text())
    summary = engine.run(engine.prepare(scenario, run_dir, None, resume=True), RecordingReporter())
    assert summary.status == "completed", summary.error


class StopAfter(RecordingReporter):
    """Stops the run right after a round is recorded and checkpointed, as a crash there would."""

    def __init__(self, last: int) -> None:
        super().__init__()
        self.last = last

    def round_done(self, record: RoundRecord) -> None:
        super().round_done(record)
        if record.round == self.last:
            raise RuntimeError("stopped for the test")


# Every built-in algorithm whose clients keep state, and the example written against the public
# interface alone (examples/error_feedback): named by what they declare, not one by one.
STATEFUL = [
    *(f"strategy.name={name}" for name in plugins.REGISTRY["strategy"] if algorithm_of_name(name).state),
    f"strategy.name=topk:TopK python_path=['{REPO / 'examples' / 'error_feedback'}']",
    # Personal models, evaluated per client every round: clients.jsonl resumes too.
    'strategy.name=ditto evaluation.clients="all"',
]


@pytest.mark.parametrize("algorithm", STATEFUL, ids=lambda s: s.split()[0].removeprefix("strategy.name="))
def test_each_clients_state_survives_a_sigkill_and_the_resume_ends_as_an_uninterrupted_run(
    tmp_path: Path, algorithm: str
) -> None:
    """Half the clients a round, so a client's state waits rounds for its next turn; killed after
    round 2's checkpoint, resumed: the same rows and model as a run never stopped."""
    overrides = ("rounds=4", *algorithm.split(), *SMALL[1:3], "strategy.fraction_train=0.5")
    simulate(QUICKSTART, tmp_path / "whole", overrides=overrides)
    killed_dir = tmp_path / "killed"
    run_killed_after_round_2(killed_dir, [arg for override in overrides for arg in ("--set", override)])
    assert checkpoint.load(killed_dir).clients  # the clients' states of the first rounds
    resume_here(killed_dir)  # as `fedsim run --resume` does (that command: the FedAdam test above)
    assert [r["round"] for r in read_metrics(killed_dir)] == [1, 2, 3, 4]
    assert comparable(killed_dir) == comparable(tmp_path / "whole")
    assert same_model(killed_dir, tmp_path / "whole")
    assert per_client.read(killed_dir) == per_client.read(tmp_path / "whole")


@pytest.mark.parametrize(
    "privacy",
    [
        (
            'privacy.mode="central"',
            'privacy.clipping="adaptive"',
            'privacy.sampling="poisson"',
            "privacy.noise_multiplier=0.8",
            "privacy.clipped_count_stddev=1.0",
        ),
        ('privacy.mode="local"', "privacy.noise_multiplier=0.01", "privacy.clipping_norm=5.0"),
    ],
    ids=["central-adaptive-poisson", "local"],
)
def test_a_private_run_resumes_with_its_accountant_and_clipping_norm(
    tmp_path: Path, privacy: tuple[str, ...]
) -> None:
    """The accountant (rounds, or each client's participations) and the adaptive norm come back:
    the resumed run reports the epsilons and trains the model of an uninterrupted one."""
    overrides = ("rounds=3", *SMALL[1:3], "strategy.fraction_train=0.5", *privacy)
    simulate(QUICKSTART, tmp_path / "whole", overrides=overrides)
    scenario = parse_scenario(QUICKSTART, overrides)
    with pytest.raises(RuntimeError, match="stopped for the test"):
        engine.run(engine.prepare(scenario, tmp_path / "stopped", None), StopAfter(2))
    job = engine.prepare(scenario, tmp_path / "stopped", None, resume=True)
    assert job.resume is not None and any(path.startswith("budget.") for path in job.resume.strategy)
    engine.run(job, RecordingReporter())
    rows = read_metrics(tmp_path / "stopped")
    assert 0 < rows[0]["epsilon"] < rows[2]["epsilon"]
    assert comparable(tmp_path / "stopped") == comparable(tmp_path / "whole")
    assert same_model(tmp_path / "stopped", tmp_path / "whole")
    summary = json.loads((tmp_path / "stopped" / "summary.json").read_text())
    assert summary["epsilon"] == rows[2]["epsilon"]


def test_one_actor_or_two_give_identical_metrics(tmp_path: Path) -> None:
    """2 CPUs: client_cpus 1 makes two actors, 1.5 one; both train with one torch thread."""
    common = (*SMALL, "strategy.fraction_evaluate=0.2", "stragglers.fraction=0.3", "faults.failure_rate=0.2")
    simulate(QUICKSTART, tmp_path / "two", overrides=(*common, "resources.client_cpus=1"))
    simulate(QUICKSTART, tmp_path / "one", overrides=(*common, "resources.client_cpus=1.5"))
    assert comparable(tmp_path / "one") == comparable(tmp_path / "two")
    assert read_metrics(tmp_path / "one")[0]["fed_accuracy"] is not None


FAULTS = {
    "failure": ("clients_raised", ()),
    "crash": ("clients_crashed", ()),
    # The round waits out the timeout for a dropout: keep it short (clients still get 2 min to start).
    "dropout": ("clients_timed_out", ("resources.round_timeout_s=10",)),
}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_a_30_percent_fault_rate_completes_and_counts_the_failures(tmp_path: Path, kind: str) -> None:
    column, extra = FAULTS[kind]
    overrides = (*SMALL, f"faults.{kind}_rate=0.3", *extra)
    summary, reporter = simulate(QUICKSTART, tmp_path / "run", overrides=overrides)
    assert summary.status == "completed" and summary.rounds_completed == 2
    scenario = parse_scenario(QUICKSTART, overrides)
    fault = {"failure": "fail"}.get(kind, kind)
    planned = [sum(c.fault == fault for c in plan_round(scenario, r, 0, POPULATION).clients) for r in (1, 2)]
    assert sum(planned) >= 2  # 30% of 10 sampled clients, in each of 2 rounds
    rows = read_metrics(tmp_path / "run")
    for row, expected in zip(rows, planned, strict=True):
        if kind == "dropout":  # a loaded machine may make an honest client late too
            assert row[column] >= expected and row["clients_failed"] == row[column]
        else:
            assert row[column] == row["clients_failed"] == expected
        assert row["clients_sampled"] == 10 and row["retries"] == 0
    assert summary.clients_failed == sum(r["clients_failed"] for r in rows)
    assert len(reporter.warnings) >= 2  # every round with failures says so


def test_too_few_replies_retry_the_round_on_a_new_sample(tmp_path: Path) -> None:
    overrides = (*SMALL, "faults.failure_rate=0.6", "strategy.min_train_clients=6", "faults.round_retries=20")
    summary, reporter = simulate(QUICKSTART, tmp_path / "run", overrides=overrides)
    scenario = parse_scenario(QUICKSTART, overrides)
    rows = read_metrics(tmp_path / "run")
    for r, row in zip((1, 2), rows, strict=True):
        tries = [plan_round(scenario, r, a, POPULATION) for a in range(row["retries"] + 1)]
        good = [sum(c.fault == "" for c in plan.clients) for plan in tries]
        assert all(g < 6 for g in good[:-1]) and good[-1] >= 6  # retried exactly while short
        assert row["clients_raised"] == sum(10 - g for g in good) and row["clients_sampled"] == 10 * len(
            tries
        )
    assert summary.status == "completed" and sum(r["retries"] for r in rows) >= 1
    assert any("retrying with a new sample" in w for w in reporter.warnings)


def test_straggler_policies_drop_or_keep_the_partial_work(tmp_path: Path) -> None:
    speeds = "devices.compute={dist='loguniform',low=25.0,high=100.0}"
    common = (*SMALL, "client.local_epochs=3", "stragglers.fraction=0.5", speeds)
    simulate(QUICKSTART, tmp_path / "drop", overrides=(*common, "stragglers.policy=drop"))
    simulate(QUICKSTART, tmp_path / "partial", overrides=(*common, "stragglers.policy=partial"))
    drop, partial = read_metrics(tmp_path / "drop"), read_metrics(tmp_path / "partial")
    for d, p in zip(drop, partial, strict=True):
        assert d["stragglers"] == p["stragglers"] == 5 and d["clients_failed"] == p["clients_failed"] == 0
        per_client = p["bytes_received"] // 10
        assert d["bytes_received"] == 5 * per_client  # dropped stragglers got no work and sent none
        assert p["bytes_received"] == 10 * per_client  # partial work is collected ...
        assert d["train_loss"] != p["train_loss"] and d["simulated_time_s"] > 0
        assert d["simulated_time_s"] <= p["simulated_time_s"]  # nobody waits for a dropped straggler
    # ... and aggregated: a different global model (test loss; 351 test points can tie on accuracy).
    assert drop[-1]["loss"] != partial[-1]["loss"]


def test_a_diverged_global_model_stops_the_run_at_once_and_is_never_saved(tmp_path: Path) -> None:
    """FedAdam with a server step no float32 model survives: round 1's aggregate is inf."""
    overrides = ("rounds=3", "strategy.name=fedadam", "strategy.params.eta=1e300", *SMALL[1:])
    out = tmp_path / "run"
    done = fedsim("run", "--out", str(out), *[arg for o in overrides for arg in ("--set", o)])
    assert done.returncode == 1, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(
        "fedsim: run failed: round 1: the global model diverged: after strategy 'fedadam' aggregated, "
    ), last
    assert (
        "neither checkpointed nor saved as model.pt; try a smaller strategy.params.eta (now 1e+300)" in last
    )
    assert "--resume" not in last  # a resume continues the scenario unchanged: it would diverge again
    saved = checkpoint.load(out)
    assert saved.round == 0 and all(np.isfinite(a).all() for a in saved.model.values())  # the initial model
    assert not (out / "model.pt").exists() and read_metrics(out) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["rounds_completed"] == 0
    assert summary["error"].startswith("round 1: the global model diverged")


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@pytest.mark.parametrize("end", ["sigkill", "exit", "ctrl-c-twice"])
def test_fedsim_run_leaves_none_of_its_private_clusters_processes(tmp_path: Path, end: str) -> None:
    """Without RAY_ADDRESS the run starts a cluster of its own; Ray's agents used to outlive a
    kill.  A run that ends exits as soon as its results are written (fedsim/cli.py: entry),
    without waiting for Ray's shut-down: nothing may be left of the cluster either.  A second
    Ctrl-C to the terminal's process group used to hang the run in Ray's shut-down: it exits at
    once.  And the cluster is the machine's alone: nothing of it listens beyond loopback."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    rounds = "rounds=4" if end == "exit" else "rounds=20"
    scenario = [arg for o in (rounds, *SMALL[1:]) for arg in ("--set", o)]
    command = [sys.executable, "-m", "fedsim", "run", "--out", str(tmp_path / "run"), *scenario]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
        preexec_fn=default_sigint,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("round   1"):  # the cluster is up and training
            break
    deadline = time.monotonic() + 30  # the raylet starts its agents a little after the first round
    while True:
        tree = psutil.Process(process.pid).children(recursive=True)
        if any("Agent" in " ".join(p.cmdline()) for p in tree) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    reapers = [p for p in tree if "fedsim.sim.reaper" in p.cmdline()]
    cluster = [p for p in tree if p not in reapers]
    assert len(reapers) == 1 and any(p.name() == "raylet" for p in cluster)
    assert any("Agent" in " ".join(p.cmdline()) for p in cluster)  # the dashboard and runtime-env agents
    listening = {(p.name(), c.laddr.ip) for p in [psutil.Process(process.pid), *cluster] for c in sockets(p)}
    assert {name for name, _ in listening} >= {"gcs_server", "raylet"}
    assert {ip for _, ip in listening} <= LOOPBACK, listening
    if end == "sigkill":
        process.kill()
    if end == "ctrl-c-twice":
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(process.pid, signal.SIGINT)
        sent = time.monotonic()
    err = process.stderr.read()
    expected = {"sigkill": -signal.SIGKILL, "exit": 0, "ctrl-c-twice": 130}
    assert process.wait() == expected[end], err
    if end == "exit":
        assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
    if end == "ctrl-c-twice":
        assert time.monotonic() - sent < 2
        assert err.splitlines()[-1] == "fedsim: SIGINT again: stopped at once; what was saved is kept"
        assert "Traceback" not in err
    reapers[0].wait(timeout=120)  # it ends once it has killed the rest; the bound is against a hang
    assert [p for p in cluster if running(p)] == []


def sockets(process: psutil.Process) -> list[Any]:
    """The TCP sockets ``process`` listens on."""
    try:
        return [c for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    except psutil.NoSuchProcess:  # a worker that has just ended
        return []


def running(process: psutil.Process) -> bool:
    try:  # a zombie is dead, its exit status not yet collected
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_comparison_stopped_by_sigterm_is_finished_by_compare_resume(tmp_path: Path) -> None:
    """SIGTERM during the first of two variants: it exits 143 naming the command that goes on.
    The resume goes on with the first from its checkpoint, runs the second, and the table covers
    both (the runs that ended are kept: tests/fedsim/sim/test_sweep.py)."""
    out = tmp_path / "cmp"
    variants = ["fedavg", "fedavgm"]
    scenario = [arg for o in SMALL for arg in ("--set", o)]
    command = [sys.executable, "-m", "fedsim", "compare", *scenario, "--out", str(out)]
    command += [arg for v in variants for arg in ("--strategy", v)]
    process = subprocess.Popen(
        command, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("round   1"):  # the first run has checkpointed its first round
            process.send_signal(signal.SIGTERM)
            break
    err = process.stderr.read()
    assert process.wait(timeout=120) == 143, err
    assert err.splitlines()[-1] == (
        f"fedsim: interrupted; the 0 finished runs are in {out} (fedsim compare --resume {out} goes on "
        "with the rest)"
    )
    assert checkpoint.load(out / "fedavg-seed0").round >= 1 and not (out / "fedavgm-seed0").exists()

    resumed = fedsim("compare", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "1/2 fedavg, seed 0 (resumed)" in resumed.stderr and "resuming " in resumed.stderr
    for variant in variants:  # every round once
        assert [r["round"] for r in read_metrics(out / f"{variant}-seed0")] == [1, 2]
    assert resumed.stdout.count("| ok |") == 2 and all(f"| {v} | 1 |" in resumed.stdout for v in variants)
