"""Dataset ``text``: a folder as natural shards, one file as contiguous or IID shards, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedsim.data import find_federated, load_federated
from fedsim.data.text import split_text
from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError

PARAMS = {"seq_len", "min_samples", "eval_windows"}  # the text loader's own, beside its path


def _text(path: str, **overrides: object) -> DataConfig:
    params = {
        "path": path,
        "seq_len": 3,
        "min_samples": 1,
        **{k: v for k, v in overrides.items() if k in PARAMS},
    }
    rest = {k: v for k, v in overrides.items() if k not in PARAMS}
    return DataConfig(dataset="text", params=params, **rest)  # type: ignore[arg-type]


def test_a_text_trains_on_its_first_80_percent_of_characters() -> None:
    doc = split_text("d", "abcdefghij")
    assert (doc.train, doc.test) == ("abcdefgh", "ij")


def test_a_folder_gives_one_client_per_txt_file_in_name_order(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("0123456789" * 2)  # 16 train characters -> 13 windows
    (folder / "a.txt").write_text("0123456789")  # 8 -> 5
    (folder / "sub" / "c.txt").write_text("0123456789" * 3)  # 24 -> 21
    (folder / "notes.md").write_text("not a .txt file, not read")
    data = load_federated(_text("corpus", partition="natural"), seed=0, root=tmp_path)
    assert [len(c) for c in data.clients] == [5, 13, 21]  # a.txt, b.txt, sub/c.txt
    # Held out: 2, 4 and 6 characters -> 0, 1 and 3 windows.
    assert len(data.test) == 4


def test_one_file_in_contiguous_shards(tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_text("abcdefghij" * 5)  # 40 train characters -> 37 windows
    spec = _text("book.txt", partition="shards", num_clients=3, shards_per_client=1)
    data = load_federated(spec, seed=0, root=tmp_path)
    sizes = sorted(len(c) for c in data.clients)
    assert sizes == [12, 12, 13] and all(np.array_equal(c, np.arange(c[0], c[-1] + 1)) for c in data.clients)
    assert np.array_equal(np.sort(np.concatenate(data.clients)), np.arange(37))
    shard, stream = data.client(0).x, data.train.x  # a contiguous shard is a view of the token stream
    assert shard.untyped_storage().data_ptr() == stream.untyped_storage().data_ptr()


def test_one_file_in_iid_windows(tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_text("abcdefghij" * 5)
    data = load_federated(_text("book.txt", partition="iid", num_clients=4), seed=0, root=tmp_path)
    assert sorted(len(c) for c in data.clients) == [9, 9, 9, 10]
    assert np.array_equal(np.sort(np.concatenate(data.clients)), np.arange(37))


def test_evaluation_reads_a_capped_sample_of_the_held_out_windows(tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_text("abcdefghij" * 50)  # 100 held-out characters -> 97 windows
    data = load_federated(_text("book.txt", num_clients=2, eval_windows=10), seed=0, root=tmp_path)
    again = load_federated(_text("book.txt", num_clients=2, eval_windows=10), seed=0, root=tmp_path)
    assert len(data.test) == 10 and bool((data.test.x == again.test.x).all())
    assert len(load_federated(_text("book.txt", num_clients=2), seed=0, root=tmp_path).test) == 97


@pytest.mark.parametrize("partition", ["iid", "natural"])
def test_one_file_without_a_client_count_is_one_client(tmp_path: Path, partition: str) -> None:
    (tmp_path / "book.txt").write_text("abcdefghij" * 5)  # one file: one natural client
    data = load_federated(_text("book.txt", partition=partition), seed=0, root=tmp_path)
    assert [len(c) for c in data.clients] == [37]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", r"is empty"),
        (b"\n \n", r"is empty"),
        (b"caf\xe9 au lait", r"is not UTF-8 text \(byte 0xe9 at offset 3\)"),  # Latin-1
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"is binary, not text"),
    ],
)
def test_bad_text_files_are_refused_naming_data_path(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / "bad.txt").write_bytes(content)
    with pytest.raises(ScenarioError, match=rf"^data\.params\.path: .*bad\.txt {problem}"):
        load_federated(_text("bad.txt", num_clients=1), seed=0, root=tmp_path)


def test_a_missing_text_names_the_roots_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDSIM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(
        ScenarioError, match=rf"^data\.root: 'text' found no data \(searched {tmp_path}\): .*nope"
    ):
        find_federated(_text("nope.txt", num_clients=1), 0, str(tmp_path))
    with pytest.raises(ScenarioError, match=r"^data\.params\.path: /no/such/file\.txt not found"):
        find_federated(_text("/no/such/file.txt", num_clients=1), 0, str(tmp_path))


def test_the_first_data_root_holding_the_text_is_used(tmp_path: Path) -> None:
    (tmp_path / "second" / "texts").mkdir(parents=True)
    (tmp_path / "second" / "texts" / "t.txt").write_text("hello, world" * 3)
    (tmp_path / "first").mkdir()
    spec = _text("texts/t.txt", root=str(tmp_path / "second"), num_clients=1)
    assert find_federated(spec, 0, str(tmp_path / "first"))[1] == tmp_path / "second"
    absolute = _text(str(tmp_path / "second" / "texts" / "t.txt"), num_clients=1)
    data, _ = find_federated(absolute, 0, str(tmp_path / "first"))  # read where it is, whatever the root
    assert len(data.clients) == 1


def test_iid_over_a_folder_keeps_one_client_per_file(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "corpus" / f"{name}.txt").write_text("0123456789" * 2)  # 13 windows each
    data = load_federated(_text("corpus", partition="iid"), seed=0, root=tmp_path)
    assert [len(c) for c in data.clients] == [13, 13, 13]


def test_held_out_text_shorter_than_a_window_is_refused(tmp_path: Path) -> None:
    (tmp_path / "short.txt").write_text("abcdefghij")  # held out: "ij", 2 characters
    with pytest.raises(
        ScenarioError, match=r"^data\.params\.seq_len: no held-out text is longer than 3 characters"
    ):
        load_federated(_text("short.txt", num_clients=1), seed=0, root=tmp_path)
