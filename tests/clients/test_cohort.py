"""Cohort training equals per-client training, client by client.

Three clients of 23, 10 and 7 samples with B=5 and E=2 take 10, 4 and 4 steps
(ceil(n/5) per epoch): the 10- and 7-sample clients are masked for the last 6 of
the cohort's 10 steps, and the 23- and 7-sample clients end each epoch on a short
batch (3 and 2 rows).  Each client's parameters after ``train_cohort`` must match
``training.train`` on that client alone, from the same global model and the same
generator seed, within float32 round-off: ``atol = 1e-5`` (vectorized kernels
sum in another order than the per-client ones, so the last bits differ).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clients import training
from clients.cohort import not_vectorizable, stack_terms, train_cohort
from clients.cohort_schedule import Member
from fedsim.data import Split
from fedsim.models.build import build_model
from fedsim.scenario.sections import ClientConfig, ModelConfig
from strategies.algorithm import Offset, Proximal, Term

SIZES = (23, 10, 7)
SHAPE = (1, 12, 12)  # image-shaped but small, so the CNN test stays quick
ATOL = 1e-5


def client_data(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.rand(n, *SHAPE, generator=g), torch.randint(0, 10, (n,), generator=g))


def clients(sizes: tuple[int, ...] = SIZES) -> list[Split]:
    return [client_data(n, seed) for seed, n in enumerate(sizes)]


def rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(1000 + seed)


def proximal(model: nn.Module, mu: float) -> tuple[Term, ...]:
    """FedProx's term towards ``model`` as it is (strategies/fedprox.py); none for ``mu = 0``."""
    return (Proximal(mu, {n: p.detach().clone() for n, p in model.named_parameters()}),) if mu else ()


def per_client(
    model: nn.Module,
    data: list[Split],
    cfg: ClientConfig,
    terms: list[tuple[Term, ...]],
    epochs: list[int] | None = None,
) -> list[tuple[dict[str, torch.Tensor], float]]:
    results = []
    for i, split in enumerate(data):
        local = copy.deepcopy(model)
        own = cfg if epochs is None else ClientConfig(**{**cfg.__dict__, "local_epochs": epochs[i]})
        loss = training.train(local, split, own, rng(i), terms[i])
        results.append(({n: p.detach() for n, p in local.named_parameters()}, loss))
    return results


def cohort(
    model: nn.Module,
    data: list[Split],
    cfg: ClientConfig,
    terms: list[tuple[Term, ...]],
    epochs: list[int] | None = None,
) -> list[tuple[dict[str, torch.Tensor], float]]:
    members = [
        Member(split, rng(i), cfg.local_epochs if epochs is None else epochs[i], terms[i])
        for i, split in enumerate(data)
    ]
    return [(r.params, r.loss) for r in train_cohort(model, members, cfg)]


def same_terms(model: nn.Module, data: list[Split], mu: float) -> list[tuple[Term, ...]]:
    return [proximal(model, mu)] * len(data)


def assert_same(
    expected: list[tuple[dict[str, torch.Tensor], float]], actual: list[tuple[dict[str, torch.Tensor], float]]
) -> None:
    assert len(expected) == len(actual)
    for (want, want_loss), (got, got_loss) in zip(expected, actual, strict=True):
        assert want.keys() == got.keys()
        for name in want:
            torch.testing.assert_close(got[name], want[name], atol=ATOL, rtol=0)
        assert got_loss == pytest.approx(want_loss, abs=ATOL)


def model_for(name: str) -> nn.Module:
    return build_model(ModelConfig(name=name), SHAPE, 10, seed=0)


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
@pytest.mark.parametrize("mu", [0.0, 0.1])
def test_cohort_matches_per_client_training(name: str, mu: float) -> None:
    model, data = model_for(name), clients()
    cfg = ClientConfig(local_epochs=2, batch_size=5, lr=0.05)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = per_client(model, data, cfg, same_terms(model, data, mu))
    actual = cohort(model, data, cfg, same_terms(model, data, mu))
    assert_same(expected, actual)
    for n, p in model.named_parameters():  # the global model is left as it was
        assert torch.equal(p, before[n])
    # Training moved every client, and differently: the check is not vacuous.
    first = next(iter(before))
    assert not torch.allclose(actual[0][0][first], before[first], atol=1e-4)
    assert not torch.allclose(actual[0][0][first], actual[1][0][first], atol=1e-4)


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_momentum_weight_decay_and_clipping_match(name: str) -> None:
    model, data = model_for(name), clients()
    cfg = ClientConfig(
        local_epochs=2, batch_size=5, lr=0.05, momentum=0.9, weight_decay=1e-3, max_grad_norm=0.5
    )
    terms = same_terms(model, data, 0.01)
    assert_same(per_client(model, data, cfg, terms), cohort(model, data, cfg, terms))


def offsets(model: nn.Module, count: int, seed: int = 7) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {n: 0.01 * torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in model.named_parameters()}
        for _ in range(count)
    ]


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_each_members_own_terms_match(name: str) -> None:
    """Each client's own offset (a control variate's c - c_i, a kept -g_k) beside a shared proximal term,
    stacked along the client axis: each client trains as it would alone."""
    model, data = model_for(name), clients()
    cfg = ClientConfig(local_epochs=2, batch_size=5, lr=0.05)
    terms: list[tuple[Term, ...]] = [
        (Offset(offset), *proximal(model, 0.1)) for offset in offsets(model, len(data))
    ]
    assert_same(per_client(model, data, cfg, terms), cohort(model, data, cfg, terms))


def test_members_with_terms_of_other_kinds_or_constants_are_refused() -> None:
    model, data = model_for("logreg"), clients((5, 5))
    for first, second in [(proximal(model, 0.1), proximal(model, 0.2)), (proximal(model, 0.1), ())]:
        members = [Member(data[0], rng(0), 1, first), Member(data[1], rng(1), 1, second)]
        with pytest.raises(ValueError, match="same kinds and constants"):
            stack_terms(members, 2)


def test_a_masked_client_ends_where_its_own_training_ends() -> None:
    # Alone, the 7-sample client takes 2 steps per epoch; in a cohort with the 23-sample
    # client (5 steps per epoch) it sits out 6 of 10 steps, and must end exactly where it
    # would alone: masking, not extra steps on padding.
    model = model_for("mlp")
    small, large = client_data(7, 2), client_data(23, 0)
    cfg = ClientConfig(local_epochs=2, batch_size=5, lr=0.05, momentum=0.5)
    alone = train_cohort(model, [Member(small, rng(2), 2)], cfg)[0]
    together = train_cohort(model, [Member(large, rng(0), 2), Member(small, rng(2), 2)], cfg)[1]
    for name, p in alone.params.items():
        torch.testing.assert_close(together.params[name], p, atol=ATOL, rtol=0)
    assert together.loss == pytest.approx(alone.loss, abs=ATOL)
    # And one more step would have moved it: training 3 epochs alone ends elsewhere.
    longer = train_cohort(model, [Member(small, rng(2), 3)], cfg)[0]
    assert not torch.allclose(longer.params["1.weight"], alone.params["1.weight"], atol=1e-4)


def test_members_may_have_their_own_epochs() -> None:
    # A straggler's fewer epochs: per-member, as the per-client path with its own config.
    model, data = model_for("logreg"), clients()
    cfg = ClientConfig(local_epochs=3, batch_size=5, lr=0.05)
    epochs = [1, 3, 2]
    none = same_terms(model, data, 0.0)
    assert_same(per_client(model, data, cfg, none, epochs), cohort(model, data, cfg, none, epochs))


def test_one_member_cohort_is_the_per_client_path() -> None:
    model, data = model_for("cnn"), clients((12,))
    cfg = ClientConfig(local_epochs=1, batch_size=5, lr=0.05)
    none = same_terms(model, data, 0.0)
    assert_same(per_client(model, data, cfg, none), cohort(model, data, cfg, none))


def test_recurrent_models_are_not_vectorized() -> None:
    assert all(not_vectorizable(model_for(name)) is None for name in ("cnn", "mlp", "logreg"))
    lstm = build_model(ModelConfig(name="lstm", params={"hidden_size": 4, "num_layers": 1}), (5,), 10, seed=0)
    assert "LSTM layers" in (not_vectorizable(lstm) or "")


def test_empty_member_is_refused() -> None:
    model = model_for("logreg")
    empty = Split(torch.zeros(0, *SHAPE), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least one sample"):
        train_cohort(model, [Member(empty, rng(0), 1)], ClientConfig())


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_in_float64_the_arithmetic_is_the_same_to_the_last_bits(name: str) -> None:
    # In float32 the vectorized kernels round differently; over many steps a ReLU or
    # max-pool near-tie can flip on that round-off and the CNN's results drift apart
    # (benchmarks/cohort.py shows it).  In float64 the round-off is 1e-16, so agreement
    # to 1e-12 after 3 epochs shows the two paths compute the same thing.
    model = model_for(name).double()
    data = [Split(split.x.double(), split.y) for split in clients()]
    cfg = ClientConfig(local_epochs=3, batch_size=5, lr=0.05, momentum=0.5)
    terms: list[tuple[Term, ...]] = [(Offset(o), *proximal(model, 0.1)) for o in offsets(model, len(data))]
    expected, actual = per_client(model, data, cfg, terms), cohort(model, data, cfg, terms)
    for (want, _), (got, _) in zip(expected, actual, strict=True):
        for n in want:
            torch.testing.assert_close(got[n], want[n], atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("layer", "reason"),
    [(nn.Dropout(0.5), "Dropout"), (nn.BatchNorm1d(4), "buffers"), (nn.LSTM(4, 4), "LSTM")],
)
def test_models_with_random_or_row_coupled_layers_are_refused(layer: nn.Module, reason: str) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, 4), layer)
    with pytest.raises(ValueError, match=reason):
        train_cohort(model, [Member(client_data(5, 0), rng(0), 1)], ClientConfig())
    for name in ("cnn", "mlp", "logreg"):  # the vectorized models have none of them
        assert not_vectorizable(model_for(name)) is None
