"""Each attack's transform, with numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsim.scenario.sections import AttackConfig
from strategies.attacks import (
    flip_labels,
    gaussian_noise,
    malicious_partitions,
    poisoned_model,
    scale_update,
    sign_flip,
)

UPDATE = {"w": np.array([0.5, -1.0, 0.0], dtype=np.float32), "b": np.array([2.0], dtype=np.float32)}


def test_sign_flip_reverses_and_scales_the_update() -> None:
    flipped = sign_flip(UPDATE, scale=4.0)
    assert flipped["w"].tolist() == [-2.0, 4.0, 0.0] and flipped["b"].tolist() == [-8.0]


def test_scale_boosts_the_update() -> None:
    assert scale_update(UPDATE, scale=10.0)["w"].tolist() == [5.0, -10.0, 0.0]


def test_gaussian_noise_adds_the_seeded_draws_with_that_spread() -> None:
    noisy = gaussian_noise(UPDATE, std=2.0, rng=np.random.default_rng(7))
    draws = np.random.default_rng(7)
    expected_w = UPDATE["w"] + draws.normal(0.0, 2.0, 3).astype(np.float32)
    expected_b = UPDATE["b"] + draws.normal(0.0, 2.0, 1).astype(np.float32)
    assert noisy["w"] == pytest.approx(expected_w) and noisy["b"] == pytest.approx(expected_b)
    assert noisy["w"].dtype == np.float32


def test_label_flip_maps_y_to_c_minus_1_minus_y() -> None:
    assert flip_labels(torch.tensor([0, 3, 9]), num_classes=10).tolist() == [9, 6, 0]


def test_poisoned_model_is_global_plus_transformed_update() -> None:
    x = {"w": np.array([1.0, 1.0], dtype=np.float32)}
    y = {"w": np.array([1.5, 0.0], dtype=np.float32)}  # update (0.5, -1)
    rng = np.random.default_rng(0)
    assert poisoned_model(x, y, AttackConfig(0.2, "sign_flip"), rng)["w"].tolist() == [-1.0, 5.0]  # -4 d
    assert poisoned_model(x, y, AttackConfig(0.2, "scale", scale=2.0), rng)["w"].tolist() == [2.0, -1.0]
    assert poisoned_model(x, y, AttackConfig(0.2, "label_flip"), rng)["w"].tolist() == [
        1.5,
        0.0,
    ]  # as trained


def test_malicious_partitions_are_a_seeded_fraction() -> None:
    chosen = malicious_partitions(seed=0, population=50, fraction=0.2)
    assert len(chosen) == 10 and chosen <= set(range(50))
    assert malicious_partitions(seed=0, population=50, fraction=0.2) == chosen
    assert malicious_partitions(seed=1, population=50, fraction=0.2) != chosen
    assert malicious_partitions(seed=0, population=50, fraction=0.0) == frozenset()
