"""The ``[compression]`` section: what travels encoded between server and clients, validated.

Plain data, free of NumPy and Flower, so the scenario loader can check it; the codecs are in
strategies/compression.py, the client's and server's halves in clients/channel.py and
fedsim/sim/channel.py.  The rule that involves ``[privacy]`` is the Scenario's (sections.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fedsim.scenario.tables import bounded, fill_choice_defaults

# Each uplink codec's own keys and their defaults (strategies/compression.py: the codecs, papers).
COMPRESSION_PARAMS: dict[str, dict[str, float]] = {
    "none": {},
    "fp16": {},
    "int8": {},
    "topk": {"fraction": 0.1},
}


@dataclass(frozen=True)
class CompressionConfig:
    """What travels compressed: the clients' updates (uplink), the global model (downlink)."""

    uplink: Literal["none", "fp16", "int8", "topk"] = "none"
    downlink: Literal["none", "fp16", "int8"] = "none"  # no topk: most of a model would read as 0
    fraction: float | None = bounded(None, gt=0, le=1)  # topk: share of each tensor's entries kept

    def __post_init__(self) -> None:
        fill_choice_defaults(self, "compression", self.uplink, ("fraction",), COMPRESSION_PARAMS, "uplink ")

    @property
    def on(self) -> bool:
        return self.uplink != "none" or self.downlink != "none"
