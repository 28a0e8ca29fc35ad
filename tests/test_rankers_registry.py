"""The ranker kinds table: every kind's class says its kind and loads by it, and a directory of an
unknown kind is one error naming the file and the known kinds."""

import json

import pytest

from esci_tf.rankers import load_ranker
from esci_tf.rankers.base import RANKER_FILE, Ranker
from esci_tf.rankers.bm25 import BM25Ranker
from esci_tf.rankers.registry import RANKERS, ranker_class


@pytest.mark.parametrize("kind", sorted(RANKERS))
def test_each_kind_names_a_ranker_class_of_that_kind(kind):
    cls = ranker_class(kind)
    assert cls.kind == kind
    assert callable(cls.load) and callable(cls.scores)
    # Each writes its own directory, except the cross-encoder, whose directory a trainers.fit run writes.
    assert callable(getattr(cls, "save", None)) == (kind != "cross_encoder")


def test_a_saved_ranker_loads_through_the_table_and_follows_the_protocol(tmp_path):
    ranker = BM25Ranker.fit(["red shoe", "blue shoe", "red cap"])
    ranker.save(str(tmp_path))
    loaded = load_ranker(str(tmp_path))
    assert type(loaded) is BM25Ranker and loaded.directory == str(tmp_path)
    assert isinstance(loaded, Ranker) and loaded.locales is None


def test_an_unknown_kind_names_the_file_and_the_known_kinds(tmp_path):
    (tmp_path / RANKER_FILE).write_text(json.dumps({"kind": "svm"}))
    with pytest.raises(ValueError, match=r"ranker.json: unknown ranker kind 'svm'; known: bag, bi_encoder, bm25"):
        load_ranker(str(tmp_path))
