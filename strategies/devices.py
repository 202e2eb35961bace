"""Every client's device: compute speed, bandwidths and hours online, fixed for the run.

Drawn from the seed, one stream per quantity for the whole population at once
(``(seed, "devices", quantity)``), so a million clients cost a few vectorised draws and a client's
device does not depend on the engine, the actors or a resume.  Or read from a trace file: one
row per device, clients mapped to rows from ``(seed, "devices", "trace")``.

The trace format (CSV with a header; docs/time.md), close to FedScale's device traces
(``computation`` and ``communication`` per device) and availability traces (online intervals)::

    device,compute_steps_per_s,uplink_mbps,downlink_mbps,online
    pixel-4,120.5,8.2,42.0,
    budget-phone,12.0,0.9,6.5,0-3600;43200-50400

``online``: ``start-end`` windows in seconds of each ``devices.day_s`` period, ``;`` between
them; empty: always online.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedsim.scenario.devices import DevicesConfig, Distribution
from fedsim.scenario.seeding import generator
from fedsim.scenario.tables import ScenarioError

EPSILON_S = 1e-9
TRACE_COLUMNS = ("device", "compute_steps_per_s", "uplink_mbps", "downlink_mbps", "online")


@dataclass(frozen=True)
class Devices:
    """The population's devices, by partition id; ``inf`` bandwidth: transfers take no time."""

    compute: np.ndarray  # local steps per second
    uplink_mbps: np.ndarray
    downlink_mbps: np.ndarray
    # Online windows: client i is online at t when (t - start[i]) mod period is below length[i];
    # a trace's device may have several windows (rows of ``windows``); always: length = period.
    windows: tuple[tuple[np.ndarray, np.ndarray], ...]  # (start, length) per window, each [N]
    period_s: float

    def online(self, t: float) -> np.ndarray:
        """Which clients are online at virtual time ``t`` (a boolean mask)."""
        mask = np.zeros(len(self.compute), dtype=bool)
        for start, length in self.windows:  # EPSILON: a window's start, computed, counts as in it
            mask |= np.mod(t - start + EPSILON_S, self.period_s) < length
        return mask

    def next_online(self, t: float) -> np.ndarray:
        """When each client is next online, from ``t`` on (``t`` itself for those online now)."""
        best = np.full(len(self.compute), np.inf)
        for start, length in self.windows:
            phase = np.mod(t - start, self.period_s)
            wait = np.where(phase < length, 0.0, self.period_s - phase)
            best = np.minimum(best, t + np.where(length > 0, wait, np.inf))
        return best


def draw(cfg: DevicesConfig, seed: int, population: int) -> Devices:
    """The devices of ``population`` clients, as ``cfg`` describes them."""
    if cfg.trace is not None:
        return from_trace(read_trace(Path(cfg.trace)), seed, population, cfg.day_s, cfg.availability)
    always = (np.zeros(population), np.full(population, cfg.day_s))
    windows = (always,)
    if cfg.availability == "daily":
        assert cfg.online_fraction is not None
        start = generator(seed, "devices", "online").uniform(0.0, cfg.day_s, population)
        windows = ((start, np.full(population, cfg.online_fraction * cfg.day_s)),)
    return Devices(
        compute=sample(cfg.compute, seed, "compute", population),
        uplink_mbps=sample(cfg.uplink_mbps, seed, "uplink", population),
        downlink_mbps=sample(cfg.downlink_mbps, seed, "downlink", population),
        windows=windows,
        period_s=cfg.day_s,
    )


def sample(dist: Distribution | None, seed: int, quantity: str, population: int) -> np.ndarray:
    """``population`` draws of ``dist`` from the quantity's own stream (None: infinite)."""
    if dist is None:
        return np.full(population, np.inf)
    rng = generator(seed, "devices", quantity)
    if dist.dist == "constant":
        assert dist.value is not None
        return np.full(population, dist.value)
    if dist.dist == "lognormal":
        assert dist.median is not None and dist.sigma is not None
        return dist.median * np.exp(dist.sigma * rng.standard_normal(population))
    assert dist.low is not None and dist.high is not None
    if dist.dist == "uniform":
        return rng.uniform(dist.low, dist.high, population)
    return np.exp(rng.uniform(math.log(dist.low), math.log(dist.high), population))


@dataclass(frozen=True)
class TraceRow:
    device: str
    compute: float
    uplink_mbps: float
    downlink_mbps: float
    windows: tuple[tuple[float, float], ...]  # (start, end) in seconds of the period; (): always


def read_trace(path: Path) -> list[TraceRow]:
    """A device trace's rows; a ScenarioError naming the file and line for anything malformed."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            if tuple(reader.fieldnames or ()) != TRACE_COLUMNS:
                raise ScenarioError(f"{path}:1", f"expected the header {','.join(TRACE_COLUMNS)}")
            rows = [_row(path, reader.line_num, raw) for raw in reader]
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ScenarioError("devices.trace", f"cannot read {path} ({reason})") from None
    if not rows:
        raise ScenarioError(f"{path}", "the trace has no device rows")
    return rows


def _row(path: Path, line: int, raw: dict[str, str | None]) -> TraceRow:
    where = f"{path}:{line}"
    if None in raw or any(v is None for v in raw.values()):
        raise ScenarioError(where, f"expected {len(TRACE_COLUMNS)} columns ({','.join(TRACE_COLUMNS)})")
    numbers = {}
    for column in TRACE_COLUMNS[1:4]:
        text = raw[column] or ""
        try:
            numbers[column] = float(text)
        except ValueError:
            raise ScenarioError(where, f"{column}: expected a number, got {text!r}") from None
        if not math.isfinite(numbers[column]) or numbers[column] <= 0:
            raise ScenarioError(where, f"{column}: expected a positive number, got {text!r}")
    return TraceRow(
        device=raw["device"] or "",
        compute=numbers["compute_steps_per_s"],
        uplink_mbps=numbers["uplink_mbps"],
        downlink_mbps=numbers["downlink_mbps"],
        windows=_windows(where, raw["online"] or ""),
    )


def _windows(where: str, text: str) -> tuple[tuple[float, float], ...]:
    windows = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        start, sep, end = part.partition("-")
        try:
            window = (float(start), float(end))
        except ValueError:
            window = (math.nan, math.nan)
        if not sep or not (0 <= window[0] < window[1]):
            raise ScenarioError(where, f"online: expected start-end seconds with start < end, got {part!r}")
        windows.append(window)
    return tuple(windows)


def from_trace(rows: list[TraceRow], seed: int, population: int, period: float, availability: str) -> Devices:
    """Clients mapped to trace rows from the seed (with replacement: any population, any trace)."""
    for row in rows:
        if any(end > period for _, end in row.windows):
            raise ScenarioError("devices.day_s", f"device {row.device!r} has a window past {period:g} s")
    pick = generator(seed, "devices", "trace").integers(0, len(rows), population)
    chosen = [rows[i] for i in pick]
    most = max(len(r.windows) for r in rows) if availability == "trace" else 0
    windows = []
    for k in range(max(most, 1)):
        start = np.array([_window(r, k, availability, period)[0] for r in chosen])
        length = np.array([_window(r, k, availability, period)[1] for r in chosen])
        windows.append((start, length))
    return Devices(
        compute=np.array([r.compute for r in chosen]),
        uplink_mbps=np.array([r.uplink_mbps for r in chosen]),
        downlink_mbps=np.array([r.downlink_mbps for r in chosen]),
        windows=tuple(windows),
        period_s=period,
    )


def _window(row: TraceRow, k: int, availability: str, period: float) -> tuple[float, float]:
    """(start, length) of the row's k-th window; a device with none (or availability "always") is
    always online in its first, and has empty ones after."""
    if availability != "trace" or not row.windows:
        return (0.0, period) if k == 0 else (0.0, 0.0)
    if k >= len(row.windows):
        return (0.0, 0.0)
    start, end = row.windows[k]
    return (start, end - start)
