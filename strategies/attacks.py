"""Byzantine clients: which partitions misbehave, and what they send.

A fraction of the partitions, drawn once from ``generator(seed, "attack")``, is
malicious for the whole run and misbehaves in every round it is sampled.  Such a
client trains as usual and then replaces its update ``d = y - x`` (local model
minus global model) before replying, or it trains on flipped labels:

- ``sign_flip``: ``-scale * d``, the sign-flipping attack of the Byzantine-robustness
  literature (e.g. Li et al. 2019, "RSA: Byzantine-Robust Stochastic Aggregation
  Methods for Distributed Learning from Heterogeneous Datasets").  With the default
  ``scale`` of 4 and 20 % attackers, FedAvg's mean update ``0.8 d - 0.2 * 4 d`` is zero.
- ``gaussian_noise``: ``d + N(0, noise_std^2)`` per coordinate, after the Gaussian
  Byzantine workers of Blanchard et al. 2017, "Machine Learning with Adversaries:
  Byzantine Tolerant Gradient Descent" (Krum).
- ``scale``: ``scale * d``, the boosted update of Bagdasaryan et al. 2020, "How To
  Backdoor Federated Learning", here without a backdoor task.
- ``label_flip``: trains on labels ``y -> C - 1 - y``, the label-flipping attack of
  Fang et al. 2020, "Local Model Poisoning Attacks to Byzantine-Robust Federated Learning".

Each transform is a pure function, checked with numbers worked out by hand.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from fedsim.scenario.counts import malicious_count
from fedsim.scenario.sections import AttackConfig
from fedsim.scenario.seeding import generator

Arrays = dict[str, np.ndarray]


def malicious_partitions(seed: int, population: int, fraction: float) -> frozenset[int]:
    """The partition ids under attack: ``floor(fraction * population)`` of them, from the seed."""
    count = malicious_count(fraction, population)
    if count == 0:
        return frozenset()
    rng = generator(seed, "attack")
    return frozenset(int(p) for p in rng.choice(population, size=count, replace=False))


def sign_flip(update: Mapping[str, np.ndarray], scale: float) -> Arrays:
    return {k: -scale * d for k, d in update.items()}


def scale_update(update: Mapping[str, np.ndarray], scale: float) -> Arrays:
    return {k: scale * d for k, d in update.items()}


def gaussian_noise(update: Mapping[str, np.ndarray], std: float, rng: np.random.Generator) -> Arrays:
    return {k: d + rng.normal(0.0, std, d.shape).astype(d.dtype) for k, d in update.items()}


def flip_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return num_classes - 1 - labels


def poisoned_update(
    update: Mapping[str, np.ndarray], attack: AttackConfig, rng: np.random.Generator
) -> Arrays:
    """What a malicious client sends instead of ``update`` (label_flip: the update itself)."""
    if attack.kind == "sign_flip":
        return sign_flip(update, _given(attack.scale))
    if attack.kind == "scale":
        return scale_update(update, _given(attack.scale))
    if attack.kind == "gaussian_noise":
        return gaussian_noise(update, _given(attack.noise_std), rng)
    return dict(update)  # label_flip poisoned the data, not the update


def poisoned_model(
    global_model: Mapping[str, np.ndarray],
    local_model: Mapping[str, np.ndarray],
    attack: AttackConfig,
    rng: np.random.Generator,
) -> Arrays:
    """``x + poisoned(y - x)``: the model a malicious client replies with."""
    update = {k: local_model[k] - global_model[k] for k in local_model}
    poisoned = poisoned_update(update, attack, rng)
    return {k: (global_model[k] + poisoned[k]).astype(local_model[k].dtype) for k in local_model}


def _given(value: float | None) -> float:
    if value is None:  # AttackConfig fills its kind's defaults, so this is a bug
        raise ValueError("attack parameter missing for its kind")
    return value
