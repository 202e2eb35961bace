"""The captured cohort step (clients/capture.py) trains as the eager step and as each client alone.

On the CPU the step is compiled by inductor; a GPU records that same compiled step into a
CUDA graph, which these tests cannot run.  One compile (the 2NN, ~12 s on 2 cores) serves
the whole module: the second group reuses the compiled shape with fewer live clients.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from clients import capture, cohort, compile_cache
from clients.cohort import train_cohort
from clients.cohort_schedule import Member
from fedsim.scenario.sections import ClientConfig
from strategies.algorithm import Offset, Term
from tests.clients.test_cohort import assert_same, clients, model_for, offsets, per_client, proximal, rng
from tests.conftest import REPO

# Every part of the update: momentum, weight decay, clipping, and gradient terms: one shared by
# every client (a proximal pull) and one of each client's own (an offset).
CFG = ClientConfig(local_epochs=2, batch_size=5, lr=0.05, momentum=0.9, weight_decay=1e-3, max_grad_norm=0.5)
MU = 0.01


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "_RUNNERS", {})
    monkeypatch.setattr(capture, "_REFUSED", {})


def terms(model: torch.nn.Module, count: int, mu: float = MU) -> list[tuple[Term, ...]]:
    return [(*proximal(model, mu), Offset(offset)) for offset in offsets(model, count)]


def members(count: int, model: torch.nn.Module | None = None, mu: float = MU) -> list[Member]:
    """The first ``count`` clients, with the terms ``model`` gives them (none without one)."""
    own = terms(model, count, mu) if model is not None else [()] * count
    return [Member(split, rng(i), CFG.local_epochs, own[i]) for i, split in enumerate(clients()[:count])]


def test_captured_training_equals_eager_and_per_client_and_compiles_once() -> None:
    # Clients of 23, 10 and 7 samples: 10, 4 and 4 steps, short batches, masked clients.
    model, data = model_for("mlp"), clients()
    expected = per_client(model, data, CFG, terms(model, 3))
    eager = [(r.params, r.loss) for r in train_cohort(model, members(3, model), CFG)]
    first = capture.train_captured(model, members(3, model), CFG, slots=3)
    assert first is not None and first.compile_s > 0
    assert_same(expected, [(r.params, r.loss) for r in first.results])
    assert_same(eager, [(r.params, r.loss) for r in first.results])
    # Two live clients in the same three slots: the same shape, so no second compile,
    # and the idle slot changes nothing.
    second = capture.train_captured(model, members(2, model), CFG, slots=3)
    assert second is not None and second.compile_s == 0.0
    assert_same(expected[:2], [(r.params, r.loss) for r in second.results])
    assert len(capture._RUNNERS) == 1


def test_a_step_that_cannot_compile_is_refused_once_and_trained_eagerly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def broken(step: Callable[..., None], **_: object) -> Callable[..., None]:
        def run(*args: object) -> None:
            calls.append(1)
            raise RuntimeError("no backend for this op")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = model_for("logreg")
    assert capture.train_captured(model, members(2), CFG, slots=2) is None
    assert capture.train_captured(model, members(2), CFG, slots=2) is None
    assert calls == [1]  # the second call did not try again
    assert capture._RUNNERS == {} and "no backend for this op" in next(iter(capture._REFUSED.values()))


def test_an_out_of_memory_error_while_compiling_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def oom(step: Callable[..., None], **_: object) -> Callable[..., None]:
        def run(*args: object) -> None:
            raise torch.OutOfMemoryError("CUDA out of memory")

        return run

    monkeypatch.setattr(torch, "compile", oom)
    with pytest.raises(torch.OutOfMemoryError):
        capture.train_captured(model_for("logreg"), members(2), CFG, slots=2)
    assert capture._REFUSED == {}  # not refused: a smaller chunk may still be captured


def test_a_compiled_step_is_kept_on_disk_and_loaded_by_a_new_process_without_tracing(tmp_path: Path) -> None:
    """Two fresh processes train with the same step in one cache folder: the first compiles it
    ahead and saves it, the second loads it (Dynamo traces nothing) and trains the same."""
    probe = (
        "import torch\n"
        "from torch._dynamo.utils import counters\n"
        "from clients import capture, compile_cache\n"
        "from tests.clients.test_capture import CFG, members\n"
        "from tests.clients.test_cohort import model_for\n"
        "before = compile_cache.Lookups.now()\n"
        "model = model_for('mlp')\n"
        "done = capture.train_captured(model, members(3, model), CFG, slots=3)\n"
        "looked = compile_cache.Lookups.now() - before\n"
        "weights = torch.cat([p.flatten() for r in done.results for p in r.params.values()])\n"
        "print(compile_cache.folder(), looked.hits, looked.misses, counters['stats']['unique_graphs'])\n"
        "print(*weights.tolist())\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop(compile_cache.ENV, None)
    outputs = [
        subprocess.run(
            [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        for _ in range(2)
    ]
    answers = [out[0].split() for out in outputs]
    folder = str(tmp_path / "fedsim" / "compile" / f"torch-{torch.__version__}")
    assert answers[0][0] == answers[1][0] == folder
    assert [int(n) for n in answers[0][1:]] == [0, 1, 1]  # cold: compiled (one graph traced) and saved
    assert [int(n) for n in answers[1][1:]] == [1, 0, 0]  # loaded: nothing traced
    assert outputs[0][1] == outputs[1][1]  # the same training, to the bit
    assert len(list((Path(folder) / "fedsim-steps").iterdir())) == 1  # the mark the engine choice reads
    assert len(list((Path(folder) / "fedsim-compiled").iterdir())) == 1  # the step itself


def test_a_step_file_that_cannot_be_loaded_is_compiled_again(tmp_path: Path) -> None:
    broken = tmp_path / "step.bin"
    broken.write_bytes(b"not a compiled step")
    assert compile_cache.load_step(broken, model_for("mlp"), ()) is None
    assert compile_cache.load_step(tmp_path / "absent.bin", model_for("mlp"), ()) is None


def test_a_saved_step_compiled_for_another_thread_count_is_compiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inductor's code is specialised to torch's thread count: a worker with another one
    compiles its own step (its own file), and a step whose guards refuse is compiled again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    threads = torch.get_num_threads()
    model = model_for("mlp")
    assert capture.train_captured(model, members(2, model), CFG, slots=2) is not None
    (saved,) = (tmp_path / "fedsim" / "compile").rglob("fedsim-compiled/*.bin")
    state = cohort.prepare(model, members(2, model), CFG, 2)
    x, y = state.batch(0)
    batch = (x, y, state.plan.weight[0], state.plan.active[0])
    s = state.stack
    args = (s.params, tuple(map(cohort.term_tensors, s.terms)), s.momentum, s.totals, batch)
    assert compile_cache.load_step(saved, model, args) is not None
    path = compile_cache.step_file("key", "shape")
    try:
        torch.set_num_threads(threads + 1)
        assert compile_cache.load_step(saved, model, args) is None  # its guards refuse this process
        assert compile_cache.step_file("key", "shape") != path
    finally:
        torch.set_num_threads(threads)


def test_a_changed_forward_or_update_gets_another_step_key() -> None:
    """Layers print alike, code differs: a step compiled from the old code must not be loaded."""
    first, second = _doubling(), _tripling()
    assert str(first) == str(second) == "Net()"
    key = compile_cache.step_key(first, CFG)
    assert key == compile_cache.step_key(_doubling(), CFG)
    assert key != compile_cache.step_key(second, CFG) != compile_cache.step_key(first, ClientConfig())


def test_the_steps_terms_are_in_its_file_name_by_kind_and_constant() -> None:
    model = model_for("logreg")

    def text(mu: float) -> str:
        return compile_cache.terms_text(cohort.term_constants(t) for t in terms(model, 1, mu)[0])

    assert text(MU) == text(MU) != text(2 * MU) != compile_cache.terms_text([])


def _doubling() -> torch.nn.Module:
    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    return Net()


def _tripling() -> torch.nn.Module:
    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 3

    return Net()
