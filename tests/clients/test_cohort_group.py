"""A worker's group in chunks (clients/cohort_group.py): the same results however it is cut.

The three clients of tests/clients/test_cohort.py (23, 10 and 7 samples) train eagerly
here (capture off: the captured step has its own tests); the memory the worker finds is
set by hand, in units of the estimated per-client footprint.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from torch import nn

from clients import capture, cohort, cohort_group, cohort_memory
from clients.cohort import Result
from clients.cohort_schedule import Member
from fedsim.scenario.sections import ClientConfig
from tests.clients.test_cohort import assert_same, clients, model_for, per_client, proximal, rng

CFG = ClientConfig(local_epochs=2, batch_size=5, lr=0.05, momentum=0.5)
EAGER = cohort_group.Options(capture=False, cohort_size=None, client_cpus=1.0, client_gpus=0.0)


@pytest.fixture(autouse=True)
def fresh_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cohort_group, "_CEILING", {})


def members() -> list[Member]:
    return [Member(split, rng(i), CFG.local_epochs) for i, split in enumerate(clients())]


def memory_for(monkeypatch: pytest.MonkeyPatch, model: nn.Module, clients_that_fit: float) -> int:
    """Make the worker find room for this many clients (at the estimate's 50% margin)."""
    per_client = cohort_group._footprint(model, members(), CFG, captured=False).total
    available = int(clients_that_fit * per_client / cohort_memory.MARGIN)
    monkeypatch.setattr(cohort_memory, "available_bytes", lambda *_: available)
    return per_client


def test_a_group_larger_than_memory_trains_in_chunks_with_the_same_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = model_for("mlp")
    per_client = memory_for(monkeypatch, model, 2.5)  # 2 fit: chunks of 2 and 1
    trained = cohort_group.train_group(model, members(), CFG, EAGER)
    assert_same(per_client_results(model), [(r.params, r.loss) for r in trained.results])
    report = trained.report
    assert (report.clients, report.fit, report.chunk, report.chunks) == (3, 2, 2, 2)
    assert report.footprint_bytes == per_client and not report.captured and report.halvings == 0


def test_a_set_cohort_size_is_trained_whole_whatever_the_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_for("logreg")
    memory_for(monkeypatch, model, 1.0)
    sized = cohort_group.Options(capture=False, cohort_size=3, client_cpus=1.0, client_gpus=0.0)
    report = cohort_group.train_group(model, members(), CFG, sized).report
    assert (report.fit, report.chunk, report.chunks) == (1, 3, 1)


def test_out_of_memory_halves_the_chunk_and_retries_with_the_same_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The device holds one client at a time, whatever the estimate said (all 3 fit).
    model = model_for("mlp")
    memory_for(monkeypatch, model, 10.0)
    real = cohort.train_cohort

    def one_at_a_time(model: nn.Module, part: Sequence[Member], cfg: ClientConfig) -> list[Result]:
        if len(part) > 1:
            cohort.prepare(model, part, cfg)  # draws the batches' orders, as a real failure would
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(model, part, cfg)

    monkeypatch.setattr(cohort, "train_cohort", one_at_a_time)
    trained = cohort_group.train_group(model, members(), CFG, EAGER)
    # 3 -> 1 (3 // 2), and the generators were wound back: the same batches as alone.
    assert_same(per_client_results(model), [(r.params, r.loss) for r in trained.results])
    assert (trained.report.halvings, trained.report.chunk, trained.report.chunks) == (1, 1, 3)
    # The process remembers: the next group starts at one client, without an error.
    again = cohort_group.train_group(model, members(), CFG, EAGER).report
    assert (again.halvings, again.chunk, again.fit) == (0, 1, 3)


def test_out_of_memory_with_one_client_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_for("logreg")
    memory_for(monkeypatch, model, 1.0)

    def never(*_: object) -> list[Result]:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(cohort, "train_cohort", never)
    with pytest.raises(torch.OutOfMemoryError):
        cohort_group.train_group(model, members(), CFG, EAGER)


def per_client_results(model: nn.Module) -> list[tuple[dict[str, torch.Tensor], float]]:
    return per_client(model, clients(), CFG, [()] * len(clients()))


def test_a_convolutional_model_on_a_cpu_trains_its_group_in_turn_exactly_as_per_client() -> None:
    model = model_for("cnn")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    epochs = [2, 1, 2]  # a straggler's fewer epochs are its own, as in a stacked group
    terms = [proximal(model, 0.1)] * len(epochs)
    group = [
        Member(split, rng(i), e, terms[i]) for i, (split, e) in enumerate(zip(clients(), epochs, strict=True))
    ]
    trained = cohort_group.train_group(model, group, CFG, EAGER)
    expected = per_client(model, clients(), CFG, terms, epochs)
    for (want, want_loss), got in zip(expected, trained.results, strict=True):
        assert all(torch.equal(got.params[n], want[n]) for n in want)  # the same code: bit for bit
        assert got.loss == want_loss
    assert not torch.equal(trained.results[0].params["0.weight"], before["0.weight"])
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # left as it came
    report = trained.report
    assert report.in_turn and (report.clients, report.chunk, report.chunks) == (3, 1, 3)


def test_vmap_pays_except_for_convolutions_on_a_cpu() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not cohort.vmap_pays(model_for("cnn"), cpu) and cohort.vmap_pays(model_for("cnn"), cuda)
    assert cohort.vmap_pays(model_for("mlp"), cpu) and cohort.vmap_pays(model_for("logreg"), cpu)


@pytest.mark.parametrize("name", ["mlp", "cnn"])  # a stacked chunk; a convolutional group in turn
def test_a_step_that_cannot_compile_trains_eagerly_on_the_batches_of_per_client_training(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # train_captured draws the group's batch schedule before it compiles; a refused compile
    # must not leave the eager fallback with generators already drawn from.
    monkeypatch.setattr(capture, "_build", lambda *_: None)
    model = model_for(name)
    captured = cohort_group.Options(capture=True, cohort_size=3, client_cpus=1.0, client_gpus=0.0)
    trained = cohort_group.train_group(model, members(), CFG, captured)
    assert_same(per_client_results(model), [(r.params, r.loss) for r in trained.results])
    assert not trained.report.captured


def test_a_captured_convolutional_group_trains_in_turn_with_one_compiled_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(capture, "_RUNNERS", {})
    model = model_for("cnn")
    captured = cohort_group.Options(capture=True, cohort_size=None, client_cpus=1.0, client_gpus=0.0)
    trained = cohort_group.train_group(model, members(), CFG, captured)
    assert_same(per_client_results(model), [(r.params, r.loss) for r in trained.results])
    report = trained.report
    assert report.in_turn and report.captured and report.compile_s > 0
    assert len(capture._RUNNERS) == 1  # one slot's shape, compiled once for all three clients
