"""A model builder of your own: a small multilayer perceptron.

The scenario names it ``model.name = "mymodel:build"``; fedsim calls
``build(input_shape, num_classes, **params)`` with the ``[model.params]`` table, checked
against the signature: ``hidden = 0`` or ``layers = "two"`` is refused before anything
runs, naming the key.
"""

from __future__ import annotations

import math
from typing import Annotated

from torch import nn

import fedsim


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    hidden: Annotated[int, fedsim.Bounds(ge=1)] = 32,
    layers: Annotated[int, fedsim.Bounds(ge=1)] = 2,
) -> nn.Module:
    """``layers`` hidden layers of ``hidden`` ReLU units, then one logit per class."""
    width = math.prod(input_shape)
    blocks: list[nn.Module] = [nn.Flatten()]
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    blocks.append(nn.Linear(width, num_classes))
    return nn.Sequential(*blocks)
