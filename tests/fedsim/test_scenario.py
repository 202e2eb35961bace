"""Scenario rules for text data: which models, partitions and client counts go together."""

from __future__ import annotations

import pytest

from fedsim.config import ScenarioError
from fedsim.scenario import parse_scenario

SHAKESPEARE = """
[data]
dataset = "shakespeare"
partition = "natural"
[model]
name = "lstm"
"""


def test_shakespeare_defaults_to_the_tiny_shakespeare_file_and_the_data_decides_clients() -> None:
    data = parse_scenario(SHAKESPEARE).data
    assert data.text_path == "shakespeare/tinyshakespeare.txt" and data.seq_len == 80
    assert data.num_clients is None and data.fixed_num_clients is None


def test_the_scenario_round_trips_through_toml_without_a_client_count() -> None:
    scenario = parse_scenario(SHAKESPEARE, ("client.max_grad_norm=5",))
    assert parse_scenario(scenario.to_toml()) == scenario
    assert "num_clients" not in scenario.to_toml()


def test_other_data_sets_keep_100_clients_by_default() -> None:
    assert (
        parse_scenario('[data]\ndataset = "synthetic"\n[model]\nname = "mlp"').data.fixed_num_clients == 100
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("data.num_clients=10",),
            r"^data\.num_clients: shakespeare with partition 'natural' has one client per role",
        ),
        (
            ("model.name=mlp",),
            r"^model\.name: shakespeare is character sequences: expected a sequence model \(gru, lstm\), "
            r"got 'mlp'",
        ),
        (("model.name=cnn",), r"^model\.name: 'cnn' needs image data"),
        (("data.partition=dirichlet",), r"^data\.partition: 'dirichlet' splits by class label"),
        (("data.seq_len=0",), r"^data\.seq_len: expected a value >= 1, got 0"),
        (("data.min_samples=0",), r"^data\.min_samples: expected a value >= 1"),
        (("model.hidden_size=0",), r"^model\.hidden_size: expected a value >= 1"),
        (("client.max_grad_norm=0",), r"^client\.max_grad_norm: expected a value > 0"),
        (("data.path=''",), r"^data\.path: expected a file or folder name"),
    ],
)
def test_bad_text_settings_name_their_key(overrides: tuple[str, ...], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(SHAKESPEARE, overrides)


def test_sequence_models_need_text_data() -> None:
    with pytest.raises(
        ScenarioError, match=r"^model\.name: 'gru' reads character sequences .*mnist is not text"
    ):
        parse_scenario('[data]\ndataset = "mnist"\n[model]\nname = "gru"')


def test_text_needs_a_path_and_only_text_reads_one() -> None:
    with pytest.raises(ScenarioError, match=r"^data\.path: required for dataset 'text'"):
        parse_scenario('[data]\ndataset = "text"\n[model]\nname = "gru"')
    with pytest.raises(
        ScenarioError, match=r"^data\.path: only read by text datasets; mnist uses data\.root"
    ):
        parse_scenario('[data]\ndataset = "mnist"\npath = "x.txt"\n[model]\nname = "cnn"')


def test_iid_shakespeare_may_fix_its_client_count() -> None:
    data = parse_scenario(SHAKESPEARE, ("data.partition=iid", "data.num_clients=20")).data
    assert data.fixed_num_clients == 20
