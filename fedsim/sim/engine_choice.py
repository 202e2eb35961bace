"""The engine a scenario runs on when it names none (``resources.engine = "auto"``), and why.

Decided once the data are loaded, before Ray starts, from what is known then: the device,
the model, the clients' sizes, the rounds and whether compiled steps are on disk.  The
choice is written into the run folder's ``scenario.toml`` (a resume runs as the run began)
and said in one line.  Either engine gives the same training within the tolerance the
cohort engine is tested to (tests/clients/test_cohort.py); the measurements behind each rule
are in benchmarks/README.md ("Cohort engine").
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch
from torch import nn

from clients import cohort, compile_cache
from fedsim.data import FederatedData
from fedsim.scenario.sections import Scenario
from fedsim.sim.cohort_choice import fallback_reason

Engine = Literal["per_client", "cohort"]

# A group takes as many steps as its longest client: past this spread (longest / median
# client) the others idle (the quickstart's synthetic devices: 56 s a cohort against 36 s).
MAX_SIZE_SPREAD = 1.5
# Capture saves ~0.07 s a round on the 2NN (0.11 s against 0.18 s, 2 cores); compiling costs
# 13-18 s cold, and loading the compiled step from disk still ~2 s a worker (importing Dynamo
# and inductor).  So it pays over this many rounds (benchmarks/README.md, "Compile once").
CAPTURE_COLD_ROUNDS = 300
CAPTURE_WARM_ROUNDS = 40


def resolve(
    scenario: Scenario, data: FederatedData, model: nn.Module, joined: bool = False
) -> tuple[Scenario, str]:
    """``scenario`` with ``engine`` (and ``capture``) decided, and the line saying so; an
    engine the scenario names is kept, with no line.  ``joined``: the run joins a Ray cluster
    (RAY_ADDRESS), whose workers fedsim does not count."""
    res = scenario.resources
    if res.engine != "auto":
        return scenario, ""
    engine, capture, why = _choose(scenario, data, model, joined)
    chosen = dataclasses.replace(res, engine=engine, capture=capture)
    shown = "cohort, captured" if capture else engine.replace("_", "-")
    return dataclasses.replace(scenario, resources=chosen), f"engine chosen: {shown} ({why})"


def _choose(
    scenario: Scenario, data: FederatedData, model: nn.Module, joined: bool
) -> tuple[Engine, bool | None, str]:
    if joined:  # the cohort engine would size its groups blind: one group, on one node
        return "per_client", None, "on a joined Ray cluster a message per client spreads them over its nodes"
    if scenario.resources.uses_gpu:
        return (
            "per_client",
            None,
            "on a GPU until the cohort engine's CUDA path is measured; set engine to try it",
        )
    if reason := fallback_reason(scenario):
        return "per_client", None, reason
    if reason := cohort.not_vectorizable(model):
        return "per_client", None, f"the model cannot be stacked: {reason}"
    if not cohort.vmap_pays(model, torch.device("cpu")):
        return "per_client", None, "a convolutional model on a CPU trains one client at a time either way"
    sizes = data.clients.sizes()  # counted, not built: a million drawn clients cost nothing here
    spread = float(sizes.max()) / max(float(np.median(sizes)), 1.0)
    if spread > MAX_SIZE_SPREAD:
        return "per_client", None, f"the largest client holds {spread:.1f}x the median: a group waits for it"
    why = "a small model on clients of similar size: one vectorized step trains a group"
    # A run that stops at its target may end long before its rounds: they promise nothing.
    if scenario.evaluation.stop_at_target:
        return "cohort", False, f"{why}; eager steps: a run that stops at its target may not repay a compile"
    warm = compile_cache.marked(compile_cache.step_key(model, scenario.client))
    if scenario.rounds >= (CAPTURE_WARM_ROUNDS if warm else CAPTURE_COLD_ROUNDS):
        cached = "its step compiled from the on-disk cache" if warm else "a first compile"
        return "cohort", True, f"{why}; {scenario.rounds} rounds repay {cached}"
    cached = " from the on-disk cache" if warm else ""
    return "cohort", False, f"{why}; eager steps: a compile{cached} would not pay in {scenario.rounds} rounds"
