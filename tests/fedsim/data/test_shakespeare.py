"""Role parsing, the per-role 80/20 split in time, and window counts, on a hand-written play."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.data import load_federated
from fedsim.data.shakespeare import parse_roles, split_role
from fedsim.data.vocab import OOV_ID
from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError

PLAY = """\
A prologue nobody speaks.

ALICE:
One.
Two.
Three.
Four.
Five.

BOB:
Hark: a line with a colon.
Who goes there:
Yes.

ALICE:
Six.
Seven.
A second paragraph, no speaker line:
Eight.

CAROL:
Hi.
"""

ALICE = ["One.", "Two.", "Three.", "Four.", "Five.", "Six.", "Seven."]
BOB = ["Hark: a line with a colon.", "Who goes there:", "Yes."]


def test_roles_are_speakers_in_order_of_first_appearance_with_their_lines() -> None:
    roles = parse_roles(PLAY)
    assert list(roles) == ["ALICE", "BOB", "CAROL"]
    # "A second paragraph..." ends in a colon but continues ALICE's speech: it follows a
    # line of hers, not a blank line; the prologue before any speaker belongs to no one.
    assert roles["ALICE"] == [*ALICE, "A second paragraph, no speaker line:", "Eight."]
    assert roles["BOB"] == BOB
    assert roles["CAROL"] == ["Hi."]


def test_a_paragraph_without_a_speaker_line_continues_the_last_speech() -> None:
    roles = parse_roles("ANNE:\nFirst.\n\nthen more, after a pause\n\nBEN:\nHi.\n")
    assert roles == {"ANNE": ["First.", "then more, after a pause"], "BEN": ["Hi."]}


def test_first_80_percent_of_lines_train_and_the_last_20_percent_test() -> None:
    lines = [f"l{i}" for i in range(10)]
    doc = split_role("R", lines)
    assert doc.train == "l0\nl1\nl2\nl3\nl4\nl5\nl6\nl7\n" and doc.test == "l8\nl9\n"
    seven = split_role("R", lines[:7])  # 0.8 * 7 = 5.6: 5 train, 2 test
    assert seven.train.count("\n") == 5 and seven.test == "l5\nl6\n"
    one = split_role("R", ["only"])  # a lone line is held out
    assert one.train == "" and one.test == "only\n"


def _play_data(tmp_path: Path, **overrides: object) -> DataConfig:
    (tmp_path / "play.txt").write_text(PLAY)
    own = {"seq_len", "min_samples", "eval_windows"}
    params = {"path": "play.txt", **{k: v for k, v in overrides.items() if k in own}}
    rest = {k: v for k, v in overrides.items() if k not in own}
    return DataConfig(dataset="shakespeare", params=params, **rest)  # type: ignore[arg-type]


def test_windows_per_role_are_text_length_minus_seq_len(tmp_path: Path) -> None:
    spec = _play_data(tmp_path, partition="natural", seq_len=4, min_samples=1)
    data = load_federated(spec, seed=0, root=tmp_path)
    # ALICE has 9 lines: 7 train, "One.\n" ... "Seven.\n" = 5+5+7+6+6+5+7 = 41 characters
    # -> 37 windows; BOB has 3: 2 train, 27 + 16 = 43 characters -> 39 windows;
    # CAROL's single line is held out, so she has no training window and is dropped.
    assert [len(c) for c in data.clients] == [37, 39]
    alice = data.client(0)
    x, y = alice.batch(slice(0, 1))
    assert x.dtype == torch.int64 and data.train.x.dtype == torch.uint8  # widened per batch
    assert data.vocab is not None and data.vocab.decode(x[0].tolist()) == "One."
    assert data.vocab.decode(y.tolist()) == "\n"
    last_x, last_y = alice.batch(slice(36, 37))  # the last window ends inside ALICE's text
    assert data.vocab.decode(last_x[0].tolist()) == "ven." and data.vocab.decode(last_y.tolist()) == "\n"
    # Held out: ALICE's last 2 lines, 37 + 7 = 44 characters -> 40 windows; BOB "Yes.\n" -> 1.
    assert len(data.test) == 41
    # No training line holds a "Y": it is out of vocabulary (id 0) in the held-out text.
    assert (
        data.test.x[40].tolist()[0] == OOV_ID and data.vocab.decode(data.test.x[40].tolist()) == "\ufffdes."
    )


def test_min_samples_keeps_only_roles_with_enough_training_windows(tmp_path: Path) -> None:
    spec = _play_data(tmp_path, partition="natural", seq_len=4, min_samples=38)
    data = load_federated(spec, seed=0, root=tmp_path)
    assert [len(c) for c in data.clients] == [39]  # BOB only: ALICE has 37
    assert len(data.test) == 1  # and only BOB's held-out text is evaluated


def test_max_samples_keeps_each_roles_first_windows_after_the_filter(tmp_path: Path) -> None:
    full = load_federated(_play_data(tmp_path, partition="natural", seq_len=4, min_samples=38), 0, tmp_path)
    spec = _play_data(tmp_path, partition="natural", seq_len=4, min_samples=38, max_samples=10)
    data = load_federated(spec, seed=0, root=tmp_path)
    assert [len(c) for c in data.clients] == [10]  # BOB's first 10 of 39: the filter saw all 39
    assert np.array_equal(data.clients[0], full.clients[0][:10]) and len(data.test) == 1
    storage = data.client(0).x.untyped_storage().data_ptr()
    assert storage == data.train.x.untyped_storage().data_ptr()  # a stretch of text: still a view


def test_a_role_filter_that_leaves_no_client_names_the_key(tmp_path: Path) -> None:
    spec = _play_data(tmp_path, partition="natural", seq_len=4, min_samples=40)
    with pytest.raises(
        ScenarioError, match=r"^data\.params\.min_samples: no role has 40 .*the largest of 3 has 39"
    ):
        load_federated(spec, seed=0, root=tmp_path)


def test_iid_variant_has_as_many_balanced_clients_over_the_same_windows(tmp_path: Path) -> None:
    natural = load_federated(_play_data(tmp_path, partition="natural", seq_len=4, min_samples=1), 0, tmp_path)
    iid = load_federated(_play_data(tmp_path, partition="iid", seq_len=4, min_samples=1), 0, tmp_path)
    assert [len(c) for c in iid.clients] == [38, 38]  # 76 windows over 2 clients
    assert np.array_equal(np.sort(np.concatenate(iid.clients)), np.concatenate(natural.clients))
    assert len(iid.test) == len(natural.test) == 41


def test_a_text_without_speaker_lines_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prose.txt").write_text("Just prose.\nNo speakers here.\n")
    spec = DataConfig(dataset="shakespeare", params={"path": "prose.txt"})
    with pytest.raises(ScenarioError, match=r"^data\.params\.path: .*prose\.txt has no speaker lines"):
        load_federated(spec, seed=0, root=tmp_path)
