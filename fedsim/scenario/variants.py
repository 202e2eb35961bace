"""The runs of a comparison: one scenario under several strategy variants and seeds.

A variant names a strategy as ``name`` or ``name:key=value,...`` (as in
``fedsim compare --strategy fedprox:proximal_mu=0.01``).  That text becomes the
overrides ``strategy.name=fedprox`` and ``strategy.params.proximal_mu=0.01`` on the
scenario's table, so it meets exactly the checks of the scenario file and of
``--set``.  A variant keeps the scenario's common strategy keys (``fraction_train``,
...) but drops the file's ``[strategy.params]``: they belong to the strategy it
replaces.  Every run is built and validated here, before anything starts.

For a given seed, all variants share the data partition, the initial model and the
clients sampled each round: those depend on the seed only.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedsim.scenario.sections import Scenario, VariantConfig
from fedsim.scenario.tables import ScenarioError, apply_override, from_table

SPEC_FORM = "NAME or NAME:KEY=VALUE[,KEY=VALUE...]"


@dataclass(frozen=True)
class Run:
    label: str  # the variant: legend entry, and the run's scenario name
    seed: int
    scenario: Scenario
    folder: str  # "<label as a file name>-seed<seed>"
    where: str = ""  # where the variant came from, for errors: "--strategy 'x'", "compare.variants[0]"


def strategy_overrides(spec: str) -> tuple[str, ...]:
    """``"fedadam:eta=0.01,tau=1e-4"`` -> ``strategy.name=fedadam``, ``strategy.params.eta=0.01``, ...

    NAME may be an import path (``mystrategies:FedNova``, ``mystrategies:FedNova:mu=0.1``): the
    text after the last colon is the params only if it holds an ``=``.
    """
    head, _, tail = spec.rpartition(":")
    name, params = (head, tail) if head and "=" in tail else (spec, "")
    name = name.strip()
    if not name or "=" in name:
        raise ScenarioError("", f"expected {SPEC_FORM}, got {spec!r}")
    overrides = [f"strategy.name={name}"]
    for item in params.split(",") if params else []:
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise ScenarioError("", f"expected {SPEC_FORM}, got {spec!r}")
        overrides.append(f"strategy.params.{key}={value}")
    return tuple(overrides)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``."""
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise ScenarioError("--seeds", f"expected distinct integers >= 0 such as 0,1,2, got {text!r}")
    return seeds


def file_name(label: str) -> str:
    """A label as a folder name: ``fedprox:proximal_mu=0.01`` -> ``fedprox-proximal_mu-0.01``."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", label).strip("-") or "variant"


def variant_scenario(table: dict[str, Any], variant: VariantConfig, seed: int, where: str) -> Scenario:
    """The scenario ``table`` under ``variant`` and ``seed``; errors name ``where`` the variant came from."""
    run = copy.deepcopy(table)
    run.pop("compare", None)  # a run folder holds a plain scenario
    strategy = run.get("strategy")
    if isinstance(strategy, dict):
        strategy.pop("params", None)  # the file's params are its own strategy's
    try:
        for assignment in (*strategy_overrides(variant.strategy), *variant.set):
            apply_override(run, assignment)
        run["name"], run["seed"] = label_of(variant), seed
        return from_table(Scenario, run)
    except ScenarioError as error:
        raise ScenarioError(where, str(error)) from None


def label_of(variant: VariantConfig) -> str:
    return variant.label or variant.strategy


def plan(
    table: dict[str, Any], variants: Sequence[tuple[VariantConfig, str]], seeds: Sequence[int]
) -> list[Run]:
    """Every (variant, seed) run, seed by seed; ``variants`` pairs each with where it came from."""
    if not variants:
        raise ScenarioError(
            "--strategy", "no variants: give --strategy, or [[compare.variants]] in the scenario"
        )
    folders: dict[str, str] = {}
    for variant, where in variants:
        label = label_of(variant)
        if file_name(label) in folders:
            raise ScenarioError(where, f"label {label!r} repeats {folders[file_name(label)]!r}; set a label")
        folders[file_name(label)] = label
    return [
        Run(
            label_of(v),
            seed,
            variant_scenario(table, v, seed, where),
            f"{file_name(label_of(v))}-seed{seed}",
            where,
        )
        for seed in seeds
        for v, where in variants
    ]
