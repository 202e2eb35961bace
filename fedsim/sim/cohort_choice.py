"""Whether a run trains in cohorts (``[resources] engine = "cohort"``), and the line saying so.

Free of torch and Flower when imported: the command line loads it (for_deployment) before either.
"""

from __future__ import annotations

import dataclasses

from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError


def fallback_reason(scenario: Scenario) -> str | None:
    """Why ``engine = "cohort"`` trains client by client in this scenario; None if it need not."""
    from strategies.registry import algorithm_of, is_async  # loads the strategy, and torch

    if is_async(scenario):
        return "an asynchronous strategy sends each client its own message"
    privacy = scenario.privacy
    if scenario.client.update != "sgd":
        return f"client.update {scenario.client.update!r} trains each client on its own"
    if algorithm_of(scenario).requires.per_client:
        return f"{scenario.strategy.name!r}'s local step is each client's own (not stacked over clients)"
    if privacy is not None and privacy.mode == "sample":
        return "DP-SGD clips and noises per example in each client (Opacus)"
    if privacy is not None and privacy.mode == "central" and privacy.where == "client":
        return "client-side clipping runs as a Flower mod on each client's own reply"
    faults = scenario.faults
    if faults.failure_rate or faults.crash_rate or faults.dropout_rate:
        return "injected faults act per client node"
    return None


def uses_cohorts(scenario: Scenario) -> bool:
    return scenario.resources.engine == "cohort" and fallback_reason(scenario) is None


def engine_line(scenario: Scenario) -> str | None:
    """The log line saying how clients train, for the cohort engine; None for the default."""
    if scenario.resources.engine != "cohort":
        return None
    if reason := fallback_reason(scenario):
        return f"engine: per-client training, not 'cohort': {reason}"
    res = scenario.resources
    if res.cohort_size is None:
        groups = "groups of similar length for the client actors, in chunks that fit memory,"
    else:
        groups = f"groups of {res.cohort_size} clients"
    capture = {
        None: "graph capture on CUDA workers",
        True: "graph capture on (compiled once per machine and shape, loaded by later workers)",
        False: "no graph capture",
    }[res.capture]
    together = (
        "trained together (vmap; one after another where it would not pay, a convolutional model on "
        "a CPU, or not work, a model with dropout, batch norm or recurrence)"
    )
    return f"engine: cohort, {groups} {together} on the group's first node; {capture}"


def for_deployment(scenario: Scenario) -> Scenario:
    """``scenario`` as real SuperNodes run it: client by client.  ``"auto"`` becomes
    ``"per_client"`` (recorded so in the run folder, as a simulation records its choice);
    ``"cohort"`` is refused: a group's first node would need the other clients' data."""
    engine = scenario.resources.engine
    if engine == "cohort":
        raise ScenarioError(
            "resources.engine", "'cohort' runs in simulation only; each SuperNode holds one partition"
        )
    if engine == "auto":
        resources = dataclasses.replace(scenario.resources, engine="per_client")
        return dataclasses.replace(scenario, resources=resources)
    return scenario
