"""The cohort engine end to end through Flower and Ray: the same run as the per-client engine.

Two rounds of the quickstart scenario under FedProx (10 of 30 clients per round, E=2,
unequal client sizes; in one case 3 stragglers per round train fewer epochs): trained in
groups by the cohort engine, every round's metrics
equal the per-client engine's within float32 round-off (the global model is the
weighted mean of the same client models, each within 1e-5 of its per-client twin).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsim.results.run_dir import read_metrics
from tests.conftest import REPO, simulate

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()
BASE = ("rounds=2", "client.local_epochs=2", "strategy.name=fedprox", "strategy.fraction_evaluate=0.2")
METRICS = ("accuracy", "loss", "train_loss", "fed_accuracy", "fed_loss")
COUNTS = ("clients_sampled", "clients_failed", "bytes_sent", "bytes_received")


@pytest.mark.parametrize(
    ("extra", "cohort_keys"),
    [
        ((), ("resources.engine=cohort",)),
        (("stragglers.fraction=0.3",), ("resources.engine=cohort", "resources.cohort_size=4")),
    ],
    ids=["one-group", "groups-of-4-with-stragglers"],
)
def test_cohort_engine_gives_the_per_client_engines_metrics(
    tmp_path: Path, extra: tuple[str, ...], cohort_keys: tuple[str, ...]
) -> None:
    per_client, _ = simulate(QUICKSTART, tmp_path / "per-client", overrides=(*BASE, *extra))
    cohort, _ = simulate(QUICKSTART, tmp_path / "cohort", overrides=(*BASE, *extra, *cohort_keys))
    assert per_client.status == cohort.status == "completed"
    want, got = read_metrics(tmp_path / "per-client"), read_metrics(tmp_path / "cohort")
    assert len(want) == len(got) == 2
    for a, b in zip(want, got, strict=True):
        assert a["fed_accuracy"] is not None and a["clients_sampled"] == 10
        assert b["stragglers"] == a["stragglers"] == (3 if extra else 0)
        for key in METRICS:
            assert b[key] == pytest.approx(a[key], abs=1e-5), key
        for key in COUNTS:  # bytes are counted per client, whichever engine trains them
            assert b[key] == a[key], key


def test_a_cnn_trained_in_turn_by_the_cohort_engine_gives_the_per_client_engines_metrics(
    tmp_path: Path, data_dir: Path
) -> None:
    # A convolutional model on a CPU: each worker trains its group with training.train, in turn.
    mnist = (
        'name = "cnn-in-turn"\nrounds = 2\n[data]\ndataset = "mnist"\nnum_clients = 20\nmax_samples = 20\n'
        '[model]\nname = "cnn"\n[strategy]\nfraction_train = 0.5\nfraction_evaluate = 0.0\n'
    )
    per_client, _ = simulate(mnist, tmp_path / "per-client", data_dir)
    cohort, _ = simulate(mnist, tmp_path / "cohort", data_dir, ("resources.engine=cohort",))
    assert per_client.status == cohort.status == "completed"
    want, got = read_metrics(tmp_path / "per-client"), read_metrics(tmp_path / "cohort")
    assert [r["clients_sampled"] for r in got] == [10, 10]
    for a, b in zip(want, got, strict=True):
        for key in ("accuracy", "loss", "train_loss"):
            assert b[key] == pytest.approx(a[key], abs=1e-6), key
