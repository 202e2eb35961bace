"""What a run's data would take in memory, checked before it is built.

The server and every client actor build the whole federated data set themselves (the
partition is derived from the seed, not shipped).  For MNIST and text the files bound its
size, and ``data.num_clients`` is refused past the samples there are.  Synthetic data is
generated: each device draws lognormal(4, 2) + 50 samples (fedsim/data/synthetic.py), so
``data.params.devices`` alone decides.  Too many devices would not fail cleanly: the process
grows until the kernel's out-of-memory killer ends it (or another process on the machine).
So a run whose estimate exceeds the memory available is refused before anything is built.
"""

from __future__ import annotations

import math

from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError

# Expected samples per synthetic device: E[lognormal(4, 2)] + 50 = exp(4 + 2^2 / 2) + 50.
SYNTHETIC_SAMPLES_PER_DEVICE = math.exp(6) + 50
# A sample's peak bytes while the data is built, measured (ru_maxrss) at 775-785 for 1 000
# and 4 000 devices: 60 float32 features three times over (the devices' arrays, their
# concatenation, the train/test split), float64 while drawn, labels, device ids, indices.
PEAK_BYTES_PER_SAMPLE = 800
GIB = 2**30
DEFAULT_DEVICES = 30  # the synthetic loader's default (fedsim/data/synthetic.py)


def data_bytes(spec: DataConfig) -> int | None:
    """Peak memory one process takes to build ``spec``'s data; None where files bound it."""
    devices = spec.params.get("devices", DEFAULT_DEVICES)
    if spec.dataset != "synthetic" or not isinstance(devices, int):  # a bad value: the loader names it
        return None
    return int(devices * SYNTHETIC_SAMPLES_PER_DEVICE * PEAK_BYTES_PER_SAMPLE)


def check_memory(spec: DataConfig, processes: int, available: int) -> None:
    """Refuse data that ``processes`` processes (the server and the client actors of this machine)
    could not build in ``available`` bytes; ScenarioError naming ``data.params.devices``."""
    one = data_bytes(spec)
    devices = spec.params.get("devices", DEFAULT_DEVICES)
    if one is None or one * processes <= available:
        return
    fits = int(available / processes / SYNTHETIC_SAMPLES_PER_DEVICE / PEAK_BYTES_PER_SAMPLE)
    raise ScenarioError(
        "data.params.devices",
        f"{devices} synthetic devices (~{SYNTHETIC_SAMPLES_PER_DEVICE:.0f} samples each) take about "
        f"{one / GIB:.1f} GiB to build, in each of {processes} processes (the server and every client "
        f"actor), but this machine has {available / GIB:.1f} GiB available: at most ~{fits} devices fit",
    )
