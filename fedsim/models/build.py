"""Building a scenario's model: :func:`build_model` resolves ``[model]`` through the plug-in door
(fedsim/scenario/plugins.py) and builds it from the seed, the same on every process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fedsim.scenario import plugins, signatures
from fedsim.scenario.sections import ModelConfig


def build_model(
    cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, seed: int, paths: Sequence[str] = ()
) -> nn.Module:
    """The model ``cfg`` names; the same seed gives the same initial weights on every process.

    ``paths``: where plug-in modules are imported from (the scenario's ``python_path``).
    """
    builder = plugins.resolve(plugins.MODEL, cfg.name, paths)
    params = signatures.bind(plugins.MODEL, cfg.name, builder, cfg.params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = plugins.call(plugins.MODEL, cfg.name, builder, tuple(input_shape), num_classes, **params)
    if not isinstance(model, nn.Module):
        raise plugins.PluginError(
            "model.name", f"{cfg.name!r} returned {type(model).__name__}, expected {plugins.MODEL.returns}"
        )
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
