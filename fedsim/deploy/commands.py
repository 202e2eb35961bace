"""The deployment commands: ``certs``, ``server``, ``client``, ``submit``, ``launch``.

Each handler returns fedsim's exit code: 0 done, 1 failed (a process or the run),
2 bad input (one line naming the option or key), 130 interrupted.  Every process a
command starts belongs to a :class:`ProcessGroup` that stops it on the way out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from fedsim.deploy import args as deploy_args
from fedsim.deploy import certs, probe
from fedsim.deploy.flower import SuperNodeOptions, flower_env
from fedsim.deploy.processes import ProcessGroup, Started, StartError
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import stopping
from fedsim.sim.cohort_choice import for_deployment

if TYPE_CHECKING:
    from fedsim.deploy.submit import Outcome

START_TIMEOUT_S = 180.0


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register the deployment subcommands, each with its ``handler``."""
    handlers = {"certs": _certs, "server": _server, "client": _client, "submit": _submit, "launch": _launch}
    deploy_args.add(commands, handlers)


def run(args: argparse.Namespace) -> int:
    handler: deploy_args.Handler = args.handler
    try:
        # `kill` and service managers send SIGTERM: stop our processes as on Ctrl-C, not orphan them.
        with stopping.handled(second_exits=False):
            return handler(args)
    except ScenarioError as error:
        print(f"fedsim: error: {error}", file=sys.stderr)
        return 2
    except StartError as error:
        print(f"fedsim: {error}", file=sys.stderr)
        if tail := error.process.log_tail():
            print(f"--- end of {error.process.log} ---\n{tail}", file=sys.stderr)
        return 1
    except probe.Unreachable as error:
        print(f"fedsim: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fedsim: interrupted; every process it started was stopped", file=sys.stderr)
        return stopping.exit_code(stopping.received() or signal.SIGINT)


def _certs(args: argparse.Namespace) -> int:
    written = certs.generate(args.dir, args.host or ["127.0.0.1"], args.nodes, args.days)
    print(f"wrote {', '.join(p.name for p in written)} to {args.dir}", file=sys.stderr)
    print(f"server: fedsim server --certs {args.dir} ...   clients: --root-certificates {args.dir}/ca.crt")
    return 0


def _server(args: argparse.Namespace) -> int:
    from fedsim.data.roots import ENV_DATA_DIR  # here: fedsim.data imports torch
    from fedsim.deploy import superlink  # here: the gateway imports uvicorn and httpx

    tls = deploy_args.server_tls(args)
    keys = tuple(deploy_args.existing(p, "--node-keys") for p in args.node_keys or [])
    if tls is not None and not keys:
        raise ScenarioError(
            "--node-keys",
            "required with TLS: only SuperNodes whose public key is registered here may join "
            "(`fedsim certs --nodes N` writes key pairs); --insecure runs an open plain-text federation",
        )
    side = superlink.ServerSide(args.host, args.port, *deploy_args.control_address(args), tls, keys)
    env = dict(os.environ) | ({ENV_DATA_DIR: str(args.data_dir.resolve())} if args.data_dir else {})
    with _workdir("fedsim-server-", keep=False) as work, ProcessGroup(env) as group:
        running = superlink.start(side, group, work.path, env)
        mode = f"TLS, {len(keys)} registered SuperNode keys" if tls else "PLAIN TEXT (--insecure)"
        print(
            f"fedsim: SuperLink ready ({mode}); run folders go to {Path('runs').resolve()}; "
            f"Ctrl-C stops it\n{side.describe()}",
            file=sys.stderr,
        )
        stopped = _first_to_exit(running.superlink, running.gateway)
    code = stopped.popen.returncode
    print(f"fedsim: the {stopped.name} exited with code {code} (its messages are above)", file=sys.stderr)
    return 1


def _first_to_exit(*processes: Started) -> Started:
    while True:
        for process in processes:
            if process.popen.poll() is not None:
                return process
        time.sleep(0.5)


def _client(args: argparse.Namespace) -> int:
    tls = deploy_args.client_tls(args)
    opts = SuperNodeOptions(
        args.superlink,
        args.partition_id,
        args.num_partitions,
        tls,
        args.data_dir,
        deploy_args.existing(args.auth_key, "--auth-key") if args.auth_key else None,
        args.runtime_port,
        tuple(args.allow_plugins),
    )
    if opts.auth_key is not None and tls.insecure:
        raise ScenarioError("--auth-key", "SuperNode authentication needs TLS; drop --insecure")
    probe.check_superlink(args.superlink, tls, args.wait)
    with _workdir("fedsim-client-", keep=False) as work, ProcessGroup(os.environ) as group:
        node = group.start("supernode", opts.argv(), env=flower_env(work.path / "home"))
        code = node.popen.wait()
    if code != 0:
        print(f"fedsim: the SuperNode exited with code {code} (Flower's message is above)", file=sys.stderr)
        if opts.auth_key is not None:
            print(
                "fedsim: 'Failed to activate SuperNode' means the SuperLink does not know this node's "
                "key: register its .pub file there (fedsim server --node-keys)",
                file=sys.stderr,
            )
        return 1
    return 0


def _submit(args: argparse.Namespace) -> int:
    from fedsim.deploy.submit import Submission, submit

    started_at = time.perf_counter()
    scenario = _scenario(args)
    tls = deploy_args.client_tls(args)
    out = deploy_args.new_out(args.out or _default_out(scenario))
    probe.check_superlink(args.superlink, tls, args.wait)
    probe.check_control_api(args.superlink, tls)
    job = Submission(scenario, args.superlink, tls, out)
    return _follow_run(args, lambda group, work, rep: submit(job, group, work, rep, started_at), out)


def _launch(args: argparse.Namespace) -> int:
    from fedsim.deploy.launch import LaunchOptions, launch

    started_at = time.perf_counter()
    scenario = _scenario(args, clients=args.clients)
    out = args.out or _default_out(scenario)
    opts = LaunchOptions(scenario, out, args.certs, args.insecure, not args.no_node_auth, args.data_dir)
    print(f"fedsim: launch: {opts.security()}", file=sys.stderr)
    return _follow_run(args, lambda group, work, rep: launch(opts, group, work, rep, started_at), out)


def _follow_run(args: argparse.Namespace, start: Callable[..., Outcome], out: Path) -> int:
    """Run ``start`` with a reporter and a process group; print the outcome; keep logs on failure."""
    from fedsim.results.progress import ConsoleReporter, print_summary

    console = Console(stderr=True, highlight=False)
    with _workdir("fedsim-run-", args.verbose) as work, ProcessGroup(os.environ, work.logs) as group:
        with ConsoleReporter(console) as reporter:
            reporter.progress.update(reporter.task, description="starting Flower's processes")
            outcome = start(group, work.path, reporter)
        work.keep |= outcome.error is not None
        stopped_at = time.perf_counter()
    if args.verbose:
        times = [f"{what} after {seconds:.1f} s" for what, seconds in outcome.milestones]
        times.append(f"processes stopped in {time.perf_counter() - stopped_at:.1f} s")
        print(f"fedsim: {'; '.join(times)}", file=sys.stderr)
    if outcome.error is not None:
        print(f"fedsim: run failed: {outcome.error}; results (if any) are in {out}", file=sys.stderr)
        return 1
    if outcome.summary is not None:
        print_summary(console, outcome.summary, str(out))
    if outcome.server_results and Path(outcome.server_results) != out.resolve():
        console.print(
            f"the server's copy, with model.pt, on the SuperLink's machine: {outcome.server_results}"
        )
    return 0


@dataclass
class _Work:
    path: Path
    keep: bool

    @property
    def logs(self) -> Path:
        return self.path / "logs"


@contextmanager
def _workdir(prefix: str, keep: bool) -> Iterator[_Work]:
    """A private folder for Flower homes, keys and logs; only the logs may outlive the command.

    They are kept (and named) when asked (-v) or when the command fails, not after Ctrl-C.
    """
    work = _Work(Path(tempfile.mkdtemp(prefix=prefix)), keep)
    work.logs.mkdir()
    try:
        yield work
    except KeyboardInterrupt:
        raise
    except BaseException:
        work.keep = True
        raise
    finally:
        for item in work.path.iterdir():  # homes, certificates, node keys: never left behind
            if item != work.logs:
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        if work.keep and any(work.logs.iterdir()):
            print(f"fedsim: the logs of every process are in {work.logs}", file=sys.stderr)
        else:
            shutil.rmtree(work.path, ignore_errors=True)


def _scenario(args: argparse.Namespace, clients: int | None = None) -> Scenario:
    """The scenario as the server will record it: plug-in params checked, defaults filled."""
    from fedsim.scenario.files import load_scenario
    from fedsim.sim.preflight import bound

    overrides = list(args.overrides)
    if clients is not None:
        overrides.append(f"data.num_clients={clients}")  # one partition per SuperNode
    return bound(for_deployment(load_scenario(args.scenario, overrides)))


def _default_out(scenario: Scenario) -> Path:
    from fedsim.results.run_dir import default_out_dir

    return default_out_dir(scenario).resolve()
