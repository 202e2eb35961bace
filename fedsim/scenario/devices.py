"""The ``[devices]`` section: every client's compute speed, network bandwidths and hours online.

Plain data, validated at load; strategies/devices.py draws each client's profile from the seed
(or maps clients to a trace file's rows) and strategies/clock.py turns a client's task into
virtual seconds.  Docs: docs/time.md.

    [devices]
    compute = { dist = "lognormal", median = 50.0, sigma = 1.0 }   # local steps per second
    uplink_mbps = { dist = "loguniform", low = 0.5, high = 20.0 }
    downlink_mbps = { dist = "constant", value = 50.0 }
    availability = "daily"          # or "always" (default), or the trace's windows
    online_fraction = 0.3           # daily: the share of clients online at any moment
    # trace = "devices.csv"         # instead of the distributions: one row per device
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from fedsim.scenario.tables import ScenarioError, bounded, fill_choice_defaults

DistName = Literal["constant", "uniform", "loguniform", "lognormal"]

# Each distribution's own keys (no defaults: a distribution is said in full).
DIST_KEYS: dict[str, dict[str, Any]] = {
    "constant": {"value": None},
    "uniform": {"low": None, "high": None},
    "loguniform": {"low": None, "high": None},
    "lognormal": {"median": None, "sigma": None},
}
DAY_S = 86_400.0


@dataclass(frozen=True)
class Distribution:
    """A positive quantity drawn once per client: ``constant`` (``value``), ``uniform`` or
    ``loguniform`` in ``[low, high]``, or ``lognormal`` (``median``, and ``sigma`` of its log)."""

    dist: DistName = "constant"
    value: float | None = bounded(None, gt=0)
    low: float | None = bounded(None, gt=0)
    high: float | None = bounded(None, gt=0)
    median: float | None = bounded(None, gt=0)
    sigma: float | None = bounded(None, ge=0, le=10)

    def check(self, key: str) -> None:
        """Refuse a key its ``dist`` does not use, or one missing; ``key``: where it sits."""
        keys = ("value", "low", "high", "median", "sigma")
        fill_choice_defaults(self, key, self.dist, keys, DIST_KEYS, noun="dist ")
        missing = [k for k in DIST_KEYS[self.dist] if getattr(self, k) is None]
        if missing:
            raise ScenarioError(
                f"{key}.{missing[0]}", f"missing (dist {self.dist!r} needs {list(DIST_KEYS[self.dist])})"
            )
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ScenarioError(f"{key}.low", f"expected at most high = {self.high:g}, got {self.low:g}")

    def spread(self) -> float:
        """The ratio of its 95th to its 5th percentile (1: every client alike): what "10x" means."""
        if self.dist == "constant":
            return 1.0
        if self.dist == "lognormal":
            assert self.sigma is not None
            return math.exp(2 * 1.6449 * self.sigma)
        assert self.low is not None and self.high is not None
        if self.dist == "loguniform":
            return float((self.high / self.low) ** 0.9)
        return (self.low + 0.95 * (self.high - self.low)) / (self.low + 0.05 * (self.high - self.low))


STEPS_PER_S = Distribution("constant", value=100.0)  # a local step of 10 ms, for every client


@dataclass(frozen=True)
class DevicesConfig:
    """Every client's device, fixed for the run (strategies/devices.py draws them from the seed)."""

    compute: Distribution = STEPS_PER_S  # local steps (minibatches) per second
    uplink_mbps: Distribution | None = None  # None: uploads take no time
    downlink_mbps: Distribution | None = None  # None: downloads take no time
    # "always": every client online; "daily": each online for online_fraction of every day_s,
    # from its own start time; "trace": the trace file's windows.
    availability: Literal["always", "daily", "trace"] = "always"
    online_fraction: float | None = bounded(None, gt=0, le=1)  # availability "daily"
    day_s: float = bounded(DAY_S, gt=0)  # the period of "daily" and of a trace's windows
    # A CSV file, one row per device (docs/time.md); relative to the scenario's folder.
    trace: str | None = None

    def __post_init__(self) -> None:
        self.compute.check("devices.compute")
        for key in ("uplink_mbps", "downlink_mbps"):
            if (dist := getattr(self, key)) is not None:
                dist.check(f"devices.{key}")
        if self.availability == "daily" and self.online_fraction is None:
            raise ScenarioError("devices.online_fraction", "availability 'daily' needs it: the share online")
        if self.availability != "daily" and self.online_fraction is not None:
            raise ScenarioError(
                "devices.online_fraction", f"only with availability 'daily', not {self.availability!r}"
            )
        if self.availability == "trace" and self.trace is None:
            raise ScenarioError("devices.availability", "'trace' takes the windows of devices.trace: set it")
        if self.trace is not None:
            self._check_trace_alone()

    def _check_trace_alone(self) -> None:
        """A trace gives every device's speeds: distributions beside it would be a second way to say so."""
        if self.availability == "daily":
            raise ScenarioError(
                "devices.availability", "a trace gives each device's hours: 'trace' or 'always'"
            )
        given = [k for k in ("uplink_mbps", "downlink_mbps") if getattr(self, k) is not None]
        if self.compute != STEPS_PER_S:
            given.insert(0, "compute")
        if given:
            raise ScenarioError(
                f"devices.{given[0]}", "devices.trace gives every device's speeds: leave it out"
            )
