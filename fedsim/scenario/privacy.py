"""The ``[privacy]`` section: which differential-privacy mechanism a run uses, validated.

Three modes, each protecting a different unit:

- ``central``: client-level DP-FedAvg (McMahan et al. 2018, "Learning Differentially
  Private Recurrent Language Models"): every client update is clipped to an L2 norm
  (``fixed``, or ``adaptive`` as in Andrew et al. 2021, "Differentially Private
  Learning with Adaptive Clipping"), on the server or on the client, and the server
  adds Gaussian noise to their mean.  Protects a client's whole data set.
- ``local``: each client clips and noises its own update before it leaves the client.
  Protects a client's whole data set, even from the server.
- ``sample``: example-level DP-SGD (Abadi et al. 2016) inside every client's local
  training, with Opacus.  Protects each training example.

Plain data, free of Flower, torch and the accountant, so the scenario loader can check
it; the rules that involve other sections are the Scenario's (fedsim/scenario/sections.py),
the mechanisms are in strategies/privacy.py and clients/, the accounting in
strategies/accounting.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fedsim.scenario.tables import ScenarioError, bounded, fill_choice_defaults

PrivacyMode = Literal["central", "local", "sample"]

# Each mode's own keys (central mode: per clipping) and their defaults; None: resolved
# once the population is known (clipped_count_stddev: the cohort / 20, Andrew et al.).
OWN_KEYS: dict[str, dict[str, Any]] = {
    "central/fixed": {"clipping": "fixed", "where": "server", "clipping_norm": 1.0},
    "central/adaptive": {
        "clipping": "adaptive",
        "where": "server",
        "initial_clipping_norm": 0.1,  # Andrew et al.'s recommendation, and Flower's default
        "target_quantile": 0.5,
        "clip_lr": 0.2,
        "clipped_count_stddev": None,
    },
    "local": {"clipping_norm": 1.0},
    "sample": {"max_grad_norm": 1.0},
}
MODE_KEYS = sorted({key for keys in OWN_KEYS.values() for key in keys})

# The strategies whose aggregate is the mean of the updates (then, at most, a server
# optimizer step on it): the mean is what central mode's noise is calibrated to.
DELTA_EXPONENT = 1.1  # default delta = 1 / n**1.1, n the protected units: below 1/n


@dataclass(frozen=True)
class PrivacyConfig:
    """Differential privacy; see the module docstring and the README's "Differential privacy"."""

    mode: PrivacyMode
    # Noise std / clipping norm; "auto": the smallest that keeps the planned rounds
    # within target_epsilon.  Central adaptive: the effective multiplier of update and
    # clipped count together, as in Flower and Andrew et al.
    noise_multiplier: float | Literal["auto"] = bounded(1.0, gt=0)
    delta: float | None = bounded(None, gt=0, lt=1)  # None: 1 / n**1.1 (see default_delta)
    target_epsilon: float | None = bounded(None, gt=0)  # stop (or calibrate) to stay within it
    sampling: Literal["fixed", "poisson"] = "fixed"  # fixed: m of N; poisson: each client w.p. q
    clipping: Literal["fixed", "adaptive"] | None = None  # central
    where: Literal["server", "client"] | None = None  # central: who clips the update
    clipping_norm: float | None = bounded(None, gt=0)  # central fixed, local
    initial_clipping_norm: float | None = bounded(None, gt=0)  # central adaptive
    target_quantile: float | None = bounded(None, ge=0, le=1)  # adaptive: share left unclipped
    clip_lr: float | None = bounded(None, gt=0)  # adaptive: geometric step of the norm
    clipped_count_stddev: float | None = bounded(None, gt=0)  # adaptive: noise on the count
    max_grad_norm: float | None = bounded(None, gt=0)  # sample: per-example clipping

    def __post_init__(self) -> None:
        fill_choice_defaults(self, "privacy", self.variant, MODE_KEYS, OWN_KEYS, noun="")
        if self.noise_multiplier == "auto" and self.target_epsilon is None:
            raise ScenarioError(
                "privacy.noise_multiplier", "'auto' calibrates the noise to privacy.target_epsilon: set it"
            )

    @property
    def variant(self) -> str:
        """The mode, with the clipping in central mode: the key of OWN_KEYS."""
        return f"central/{self.clipping or 'fixed'}" if self.mode == "central" else self.mode

    @property
    def noise(self) -> float:
        """The noise multiplier, once resolved (``"auto"`` is calibrated before the run)."""
        if isinstance(self.noise_multiplier, str):
            raise ValueError("privacy.noise_multiplier is 'auto': resolve it first (strategies.budget)")
        return self.noise_multiplier

    @property
    def unit(self) -> str:
        return "example" if self.mode == "sample" else "client"


def default_delta(units: int) -> float:
    """``1 / units**1.1``: below ``1 / units``, the usual bound for a meaningful guarantee."""
    return float(units**-DELTA_EXPONENT)
