"""examples/npz_model_and_data: a user's model and a data set read from a .npz file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import fedsim
from fedsim.cli import main
from fedsim.results.run_dir import read_metrics
from tests.examples import EXAMPLES, example_module

FOLDER = EXAMPLES / "npz_model_and_data"
SCENARIO = FOLDER / "scenario.toml"
mydata = example_module("npz_model_and_data", "mydata")
mymodel = example_module("npz_model_and_data", "mymodel")
make_blobs = example_module("npz_model_and_data", "make_blobs")


def test_the_committed_file_is_what_make_blobs_writes_and_stays_small(tmp_path: Path) -> None:
    assert (FOLDER / "blobs.npz").stat().st_size < 200_000
    written = make_blobs.save(tmp_path / "again.npz")
    with np.load(FOLDER / "blobs.npz") as committed, np.load(written) as again:
        assert sorted(committed.files) == sorted(again.files)
        for key in committed.files:
            assert committed[key].dtype == again[key].dtype
            np.testing.assert_array_equal(committed[key], again[key])


def test_loader_reads_the_file_under_the_data_root_else_the_one_beside_it(tmp_path: Path) -> None:
    beside = mydata.load(None)
    assert isinstance(beside, fedsim.Dataset)
    x, y = beside.train
    assert x.shape == (2400, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.unique(beside.client_ids).tolist() == list(range(20))  # the writers
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-3  # standardized

    arrays = make_blobs.generate(train=100, test=20, writers=4)
    del arrays["writers"]  # optional
    np.savez(tmp_path / "blobs.npz", **arrays)
    own = mydata.load(tmp_path, standardize=False)
    assert own.client_ids is None
    np.testing.assert_array_equal(own.train[0], arrays["x_train"])
    assert mydata.load(tmp_path / "elsewhere").train[0].shape == (2400, 8)  # not there: the one beside it

    with pytest.raises(FileNotFoundError) as missing:
        mydata.load(tmp_path, file="nothing.npz")
    assert missing.value.filename == str(tmp_path / "nothing.npz")  # what fedsim's message names
    shutil.copy(tmp_path / "blobs.npz", tmp_path / "partial.npz")
    np.savez(tmp_path / "partial.npz", x_train=arrays["x_train"])
    with pytest.raises(ValueError, match="lacks y_train, x_test, y_test"):
        mydata.load(tmp_path, file="partial.npz")


def test_model_has_the_layers_its_params_ask_for() -> None:
    model = mymodel.build((8,), 5, hidden=16, layers=3)
    assert sum(p.numel() for p in model.parameters()) == (8 * 16 + 16) + 2 * (16 * 16 + 16) + (16 * 5 + 5)


def test_scenario_validates_and_bad_params_exit_2_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SCENARIO)]) == 0
    assert "20 clients" in capsys.readouterr().err
    assert main(["validate", str(SCENARIO), "--set", "model.params.hidden=0"]) == 2
    said = capsys.readouterr().err
    assert "model.params.hidden" in said, said


@pytest.mark.engine
@pytest.mark.usefixtures("ray_cluster")
def test_the_readme_command_trains_the_users_model_above_chance(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(SCENARIO), "--set", "rounds=3", "--out", str(out)]) == 0
    rows = read_metrics(out)
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert all(r["clients_sampled"] == 5 and r["clients_failed"] == 0 for r in rows)
    assert rows[-1]["accuracy"] > 0.3 > 0.2  # five balanced classes: chance is 0.2
    assert rows[-1]["accuracy"] > rows[0]["accuracy"]
