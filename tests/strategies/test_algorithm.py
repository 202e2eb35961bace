"""The algorithm interface (strategies/algorithm.py): what a declaration may say, and its arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.serverapp.strategy import FedAvg

from strategies.algorithm import Algorithm, ArraysLike, Offset, Proximal, algorithm, declared

MODEL = {"w": np.ones((2, 2), np.float32), "b": np.full(2, 3.0, np.float32), "count": np.array(5)}
PARAMETERS = ["w", "b"]  # "count" is a buffer


@pytest.mark.parametrize(
    ("like", "names", "value"),
    [
        (ArraysLike(), ["w", "b"], 0.0),
        (ArraysLike("model"), ["w", "b", "count"], 0.0),
        (ArraysLike("parameters", init="global"), ["w", "b"], None),
    ],
)
def test_arrays_like_the_model_start_at_zero_or_at_the_global_model(
    like: ArraysLike, names: list[str], value: float | None
) -> None:
    first = like.first(MODEL, PARAMETERS)
    assert list(first) == names
    for name, array in first.items():
        assert array.dtype == MODEL[name].dtype and array.shape == MODEL[name].shape
        assert np.array_equal(array, np.full_like(MODEL[name], value) if value is not None else MODEL[name])
    assert all(first[n] is not MODEL[n] for n in first)  # copies: a client's state is its own


@pytest.mark.parametrize("name", ["arrays", "config", "metrics", "state:x", "a@b", "a/b", "tab\t"])
def test_names_fedsim_uses_itself_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="reserved by fedsim"):
        Algorithm(state={name: ArraysLike()})


def test_central_dp_takes_no_arrays_beside_the_model() -> None:
    with pytest.raises(ValueError, match="no arrays may travel beside it"):
        Algorithm(replies={"delta": ArraysLike()}, central_dp=True)
    with pytest.raises(ValueError, match="both sent and replied"):
        Algorithm(sends={"c": ArraysLike()}, replies={"c": ArraysLike()})


def test_a_declaration_travels_with_its_strategy_and_its_subclasses() -> None:
    @algorithm(state={"kept": ArraysLike()})
    class Mine(FedAvg):
        pass

    class Yours(Mine):
        pass

    spec = declared(Mine)
    assert spec is not None and list(spec.state) == ["kept"] and declared(Yours) is spec
    assert declared(FedAvg) is None and declared(lambda: None) is None


def test_the_terms_by_hand_with_a_leading_client_axis() -> None:
    """Two clients stacked: w = (3, 1) and (0, 2), anchor (1, 1) for both, mu = 0.5, offsets (1, 0)
    and (0, -1): each client's gradient gains 0.5 (w - anchor) + its offset."""
    w = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    grads = {"w": torch.zeros(2, 2)}
    Proximal(0.5, {"w": torch.ones(2, 2)}).add_to(grads, {"w": w})
    Offset({"w": torch.tensor([[1.0, 0.0], [0.0, -1.0]])}).add_to(grads, {"w": w})
    assert grads["w"].tolist() == [[2.0, 0.0], [-0.5, -0.5]]
