"""Peak resident memory of a benchmark's process tree, sampled from outside it.

Ray's actors are grandchildren of the driver (driver -> raylet -> worker) when the
driver starts a private cluster, so the tree holds everything the run uses.  Actors
are the processes Ray names ``ray::<class>`` (``ray::ClientAppActor``); its services
(GCS, raylet, the agents, idle workers) are reported together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024
SERVICES = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")  # named like actors


@dataclass
class Peaks:
    driver_mb: float = 0.0
    actors_mb: dict[int, float] = field(default_factory=dict)  # pid -> peak RSS
    services_mb: float = 0.0  # Ray's own processes, summed
    total_mb: float = 0.0  # the whole tree's RSS, summed at one instant
    # The whole tree's proportional set size: a page shared by k processes counts 1/k in
    # each, so this is the memory the run really holds (RSS counts shared data once per process).
    total_pss_mb: float = 0.0

    @property
    def actor_max_mb(self) -> float:
        return max(self.actors_mb.values(), default=0.0)


class TreeSampler:
    """Samples RSS of ``pid`` and its descendants every ``interval`` seconds in a thread."""

    PSS_EVERY = 4  # samples; reading smaps is slower than reading RSS

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peaks = Peaks()
        self._samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except psutil.NoSuchProcess:  # the root exited
                return
            self._stop.wait(self.interval)

    def sample(self) -> None:
        driver = self.root.memory_info().rss / MB
        peaks, total, services = self.peaks, driver, 0.0
        peaks.driver_mb = max(peaks.driver_mb, driver)
        with_pss = self._samples % self.PSS_EVERY == 0
        self._samples += 1
        pss = _pss(self.root) if with_pss else 0.0
        for child in self.root.children(recursive=True):
            try:
                rss = child.memory_info().rss / MB
                name = child.name()
                pss += _pss(child) if with_pss else 0.0
            except psutil.Error:  # exited between listing and reading
                continue
            total += rss
            if name.startswith("ray::") and not name.startswith(SERVICES):
                peaks.actors_mb[child.pid] = max(peaks.actors_mb.get(child.pid, 0.0), rss)
            else:
                services += rss
        peaks.services_mb = max(peaks.services_mb, services)
        peaks.total_mb = max(peaks.total_mb, total)
        peaks.total_pss_mb = max(peaks.total_pss_mb, pss)


def _pss(process: psutil.Process) -> float:
    info = process.memory_full_info()
    return float(getattr(info, "pss", info.rss)) / MB  # Linux has PSS; elsewhere RSS
