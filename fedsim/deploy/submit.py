"""``fedsim submit``: run a scenario on a SuperLink with ``flwr run``, follow it, record it.

The app sent is a generated Flower App whose ``pyproject.toml`` names the ServerApp
and ClientApp of the *installed* fedsim and carries no code: the SuperLink and
SuperNodes run their own installed copy (runtime dependency installation is off), so
what runs is what each machine installed.  The resolved scenario travels in the run
config (``scenario-toml``), so the server needs no scenario file.

Results: the ServerApp writes its complete run folder (``model.pt`` included) on the
SuperLink's machine.  The submitter rebuilds ``scenario.toml``, ``metrics.jsonl`` and
``summary.json`` from the events in the streamed log (:mod:`fedsim.deploy.wire`); the model
stays on the server.  ``fedsim launch`` runs everything on this machine, so there the
ServerApp writes ``out`` itself.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.metadata
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from fedsim.deploy import wire
from fedsim.deploy.flower import CONNECTION, ClientTls, flower_env, flwr, write_connection
from fedsim.deploy.processes import ProcessGroup, Started, StartError
from fedsim.results.records import Summary
from fedsim.results.run_dir import SUMMARY_FILE, RunDirectory
from fedsim.scenario.sections import Scenario
from fedsim.sim.server import Reporter

POLL_S = 0.2
RUN_ID = re.compile(r"Successfully started run (\d+)")
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Submission:
    scenario: Scenario
    superlink: str  # HOST:PORT of the SuperLink (its Control API shares the port)
    tls: ClientTls
    out: Path  # results folder on this machine
    server_writes_out: bool = False  # the SuperLink runs here and writes `out` itself
    client_app: str = "clients.app:app"
    server_app: str = "fedsim.deploy.serverapp:server_app"


@dataclass
class Outcome:
    summary: Summary | None = None
    server_results: str | None = None  # the ServerApp's run folder, on the SuperLink's machine
    error: str | None = None
    run_id: int | None = None
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    milestones: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds since start)


def submit(
    job: Submission, group: ProcessGroup, workdir: Path, reporter: Reporter, started_at: float
) -> Outcome:
    """Submit, stream and record the run; on Ctrl-C stop it on the SuperLink too."""
    home = workdir / "flwr-home-submit"
    write_connection(home, job.superlink, job.tls)
    local = None if job.server_writes_out else RunDirectory(job.out, job.scenario)
    argv = flwr("run", str(_write_app(job, workdir / "app")), CONNECTION, "--stream")
    argv += ["--run-config", str(_write_run_config(job, workdir / "run-config.toml"))]
    runner = group.start("flwr-run", argv, env=flower_env(home))
    outcome = Outcome()
    try:
        _follow(runner, group, job.scenario, reporter, local, outcome)
    except KeyboardInterrupt:
        outcome.error = "interrupted"
        _stop_run(group, outcome.run_id, flower_env(home))
        raise
    finally:
        outcome.milestones.append(("run ended", time.perf_counter() - started_at))
        if local is not None:
            outcome.summary = local.finish(None, time.perf_counter() - started_at, outcome.error)
    if job.server_writes_out and (job.out / SUMMARY_FILE).is_file():
        outcome.summary = Summary(**json.loads((job.out / SUMMARY_FILE).read_text(encoding="utf-8")))
    return outcome


def _follow(
    runner: Started,
    group: ProcessGroup,
    scenario: Scenario,
    reporter: Reporter,
    local: RunDirectory | None,
    outcome: Outcome,
) -> None:
    """Read ``flwr run``'s output as it grows, until it exits; act on every event."""
    assert runner.log is not None, "submit needs a ProcessGroup with a log folder"
    finished = False
    with open(runner.log, encoding="utf-8", errors="replace") as stream:
        pending = ""
        while True:
            exited = runner.popen.poll() is not None
            pending += stream.read()
            *lines, pending = pending.split("\n")
            for line in lines:
                finished |= _handle(line, scenario, reporter, local, outcome)
            if exited:
                break
            group.check_alive(ignore=runner)  # a SuperNode that died would stall the run
            time.sleep(POLL_S)
    if not finished and outcome.error is None:
        last = " | ".join(line.strip() for line in outcome.output if line.strip())[-500:]
        code = runner.popen.returncode
        outcome.error = f"the run ended without a result (flwr run exited with code {code}): {last}"


def _handle(
    line: str, scenario: Scenario, reporter: Reporter, local: RunDirectory | None, outcome: Outcome
) -> bool:
    """Act on one output line; True when it says the run completed."""
    event = wire.decode(line)
    if event is None:
        outcome.output.append(line)
        if outcome.run_id is None and (match := RUN_ID.search(line)):
            outcome.run_id = int(match.group(1))
        return False
    if event.kind == "results":
        outcome.server_results = str(event.data["path"])
    elif event.kind == "started":
        reporter.started(scenario, int(event.data["population"]))
    elif event.kind == "round":
        record = event.record()
        if local is not None:
            local.append(record)
        reporter.round_done(record)
    elif event.kind == "warn":
        reporter.warn(str(event.data["text"]))
    elif event.kind == "failed":
        outcome.error = str(event.data["text"])
    return event.kind == "done"


def _stop_run(group: ProcessGroup, run_id: int | None, env: dict[str, str]) -> None:
    """Best effort: the ServerApp would otherwise go on running on the SuperLink."""
    if run_id is None:
        return
    with contextlib.suppress(StartError):
        group.run({"flwr-stop": flwr("stop", str(run_id), CONNECTION)}, STOP_TIMEOUT_S, env)


def _write_app(job: Submission, folder: Path) -> Path:
    """A Flower App naming the installed ServerApp and ClientApp; ``flwr run`` bundles it."""
    pyproject = {
        "build-system": {"requires": ["setuptools>=68"], "build-backend": "setuptools.build_meta"},
        "project": {
            "name": "fedsim",
            "version": importlib.metadata.version("fedsim"),
            "description": "fedsim scenario run: ServerApp and ClientApp of the installed fedsim",
            "license": "Apache-2.0",
            "dependencies": [],
        },
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "fedsim",
                    "components": {"serverapp": job.server_app, "clientapp": job.client_app},
                    "config": {"scenario": "", "scenario-toml": "", "set": "", "out": ""},
                }
            }
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(tomli_w.dumps(pyproject), encoding="utf-8")
    return folder


def _write_run_config(job: Submission, path: Path) -> Path:
    out = str(job.out.resolve()) if job.server_writes_out else ""  # "": the server's runs/ folder
    path.write_text(tomli_w.dumps({"scenario-toml": job.scenario.to_toml(), "out": out}), encoding="utf-8")
    return path
