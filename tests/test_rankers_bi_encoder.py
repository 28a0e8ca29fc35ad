"""BiEncoderRanker: product texts, query lists cut at list_size with padding marked, a tiny fine-tune
that scores, saves and loads back to the same scores."""

import os

import numpy as np
import pytest

from esci_tf import files
from esci_tf.rankers import load_ranker
from esci_tf.rankers.bi_encoder import BiEncoderRanker, BiEncoderSettings, texts

from run_fixtures import loaded_synthetic_frame

TINY = {"num_layers": 2, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return loaded_synthetic_frame(6, 2, str(tmp_path_factory.mktemp("files")))


def test_product_texts_are_cleaned_brand_and_title():
    import pandas as pd

    frame = pd.DataFrame({"query": ["<b>Red</b>  shoes"], "product_title": ["Runner &amp; co"],
                          "product_brand": ["Acme"]})
    assert texts(frame) == (["Red shoes"], ["Acme Runner & co"])
    assert texts(frame, "title")[1] == ["Runner & co"]
    with pytest.raises(ValueError, match="product_text"):
        texts(frame, "bullets")


@pytest.mark.slow
def test_lists_train_score_save_and_load(frame, tmp_path):
    settings = BiEncoderSettings(epochs=1, list_size=4, lists_per_batch=2, precision="float32")
    ranker = BiEncoderRanker.train(frame, "xlm_roberta", None, settings, backbone_config=TINY)
    dataset, num_lists = ranker.list_dataset(frame, settings)
    sizes = frame.groupby("query_id").size().to_numpy()
    assert num_lists == int(np.ceil(sizes / 4).sum())
    x, gains = next(iter(dataset))
    assert x["product_token_ids"].shape == (2, 4, 64) and x["query_token_ids"].shape == (2, 24)
    assert gains.shape == (2, 4) and (gains.numpy()[~x["list_mask"].numpy()] == 0).all()
    scores = ranker.scores(frame)
    assert scores.shape == (len(frame),) and np.all(np.abs(scores) <= 1.0 + 1e-5)
    ranker.save(str(tmp_path))
    np.testing.assert_allclose(load_ranker(str(tmp_path)).scores(frame), scores, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bi_encoder.keras", "ranker.json"]

    # A save that dies while writing the model leaves neither a model file a load would trust nor
    # its temporary; one killed mid-write leaves only a .tmp. name, which the run cleanup removes.
    original = ranker.model.save

    def dies_halfway(path, *args, **kwargs):
        with open(path, "wb") as partial:
            partial.write(b"PK\x03\x04 half a zip")
        assert os.path.basename(path).startswith(files.TEMP_PREFIX)
        raise OSError("disk full")

    ranker.model.save = dies_halfway
    target = tmp_path / "again"
    with pytest.raises(OSError, match="disk full"):
        ranker.save(str(target))
    assert not target.exists() or list(target.iterdir()) == []
    ranker.model.save = original
