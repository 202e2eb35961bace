"""The character vocabulary: ids, the out-of-vocabulary id, and the JSON a run folder keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsim.data.vocab import OOV_CHAR, OOV_ID, Vocabulary


def test_ids_follow_code_point_order_after_the_out_of_vocabulary_id() -> None:
    vocab = Vocabulary.build("banana\n")
    assert vocab.chars == ("\n", "a", "b", "n") and len(vocab) == 5
    assert vocab.encode("nab\n").tolist() == [4, 2, 3, 1]


def test_characters_missing_from_the_training_text_encode_as_oov() -> None:
    vocab = Vocabulary.build("ab")
    ids = vocab.encode("abzé")
    assert ids.tolist() == [1, 2, OOV_ID, OOV_ID]
    assert vocab.decode(ids.tolist()) == f"ab{OOV_CHAR}{OOV_CHAR}"


def test_ids_are_stored_in_the_smallest_integer_type() -> None:
    assert Vocabulary.build("abc").encode("abc").dtype == np.uint8
    wide = Vocabulary.build("".join(chr(0x4E00 + i) for i in range(300)))  # 300 CJK characters
    assert len(wide) == 301 and wide.encode(chr(0x4E00 + 299)).tolist() == [300]
    assert wide.encode("x").dtype == np.int16


def test_json_round_trip_gives_the_same_ids() -> None:
    vocab = Vocabulary.build("To be, or not to be: that is the question.\n— Ophélie")
    text = vocab.to_json()
    table = json.loads(text)
    assert table["oov_id"] == 0 and table["id_to_char"][0] is None and table["id_to_char"][1] == "\n"
    again = Vocabulary.from_json(text)
    assert again == vocab
    sample = "question — Ophélie?"
    assert np.array_equal(again.encode(sample), vocab.encode(sample))


def test_a_file_that_is_not_a_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="not a fedsim-char-vocab/1 vocabulary"):
        Vocabulary.from_json('{"id_to_char": [null, "a"]}')
