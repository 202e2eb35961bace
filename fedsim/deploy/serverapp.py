"""The ServerApp ``flwr run`` starts on a SuperLink: the simulation's server loop, configured by
the run config (``fedsim submit`` sends the resolved scenario as ``scenario-toml``) and
reporting its events on the ServerApp's log, which ``fedsim submit`` follows (fedsim/deploy/wire.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedsim.deploy.wire import StreamReporter
from fedsim.scenario.files import load_scenario, parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim.cohort_choice import for_deployment
from fedsim.sim.engine import flower_logs, prepare
from fedsim.sim.exchange import Abort, RunError
from fedsim.sim.server import serve

server_app = ServerApp()


@server_app.main()
def _flwr_run_main(grid: Grid, context: Context) -> None:
    log = logging.getLogger("fedsim")
    log.addHandler(logging.StreamHandler())
    log.setLevel(logging.INFO)
    log.propagate = False  # each line once, whatever a library puts on the root logger
    reporter = StreamReporter()
    try:
        scenario = for_deployment(scenario_from_run_config(context.run_config))
        out = str(context.run_config.get("out", "")) or None
        job = prepare(scenario, Path(out) if out else None, None)
        reporter.results(job.out.path.resolve())
        with flower_logs(verbose=False):
            serve(grid, job, reporter, Abort())
    except Exception as error:  # tell the submitter why, then let Flower mark the run failed
        reporter.failed(str(error) if isinstance(error, RunError | ScenarioError) else repr(error))
        raise
    reporter.done()


def scenario_from_run_config(config: Mapping[str, object]) -> Scenario:
    """``scenario-toml`` (the resolved scenario, as `fedsim submit` sends it) or a ``scenario`` file.

    ``set`` holds space-separated overrides, as ``fedsim run --set``: "rounds=3 client.lr=0.05".
    """
    overrides = tuple(str(config.get("set", "")).split())
    text = str(config.get("scenario-toml", ""))
    if text:
        return parse_scenario(text, overrides, source="run config scenario-toml")
    return load_scenario(str(config["scenario"]), overrides)
