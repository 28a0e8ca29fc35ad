"""BiEncoderRanker: product texts, query lists cut at list_size with padding marked, a tiny fine-tune
that scores, saves and loads back to the same scores."""

import os

import numpy as np
import pytest

from esci_tf import files
from esci_tf.rankers import load_ranker
from esci_tf.rankers.bi_encoder import texts
from esci_tf.training.bi_encoder_training import BiEncoderSettings, list_dataset, train_bi_encoder_ranker

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
    ranker = train_bi_encoder_ranker(frame, "xlm_roberta", None, settings, backbone_config=TINY)
    dataset, num_lists = list_dataset(ranker, frame, settings)
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


def test_cosent_loss_is_one_log_sum_exp_over_the_batch_ordered_pairs():
    import tensorflow as tf

    from esci_tf.training.bi_encoder_training import cosent_loss

    gains = tf.constant([[1.0, 0.1, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    scores = tf.constant([[2.0, 3.0, 0.5, 9.0], [1.0, 0.0, 4.0, 7.0]])
    mask = tf.constant([[True, True, True, False], [True, True, True, False]])  # item 3: padding
    # Ordered pairs (i above j): list 0 (0,1), (0,2), (1,2); list 1 (1,0), (2,0). Ties and padding none.
    terms = [3.0 - 2.0, 0.5 - 2.0, 0.5 - 3.0, 1.0 - 0.0, 1.0 - 4.0]
    expected = np.log1p(np.exp(terms).sum())
    np.testing.assert_allclose(cosent_loss(gains, scores, mask).numpy(), expected, rtol=1e-6)
    # No ordered pair (all gains equal): log(1 + 0) = 0, not NaN.
    assert cosent_loss(tf.zeros([1, 3]), tf.constant([[1.0, 2.0, 3.0]]), tf.ones([1, 3], tf.bool)).numpy() == 0.0


def test_the_recipe_refuses_an_unknown_bi_encoder_loss():
    from esci_tf.recipe.config import RecipeConfig
    from esci_tf.training.config import ConfigError, RunConfig

    run = RunConfig.from_flat({"output_dir": "/tmp/r", "examples": "e.parquet", "products": "p.parquet",
                             "backbone_config": {"num_layers": 1}})
    RecipeConfig(run=run, output_dir="/tmp/r", bi_encoder_loss="cosent").validate(files=False)
    with pytest.raises(ConfigError, match="--bi_encoder_loss='softmax'"):
        RecipeConfig(run=run, output_dir="/tmp/r", bi_encoder_loss="softmax").validate(files=False)
