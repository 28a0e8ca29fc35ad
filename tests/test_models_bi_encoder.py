"""BiEncoder: the cosine of mean-pooled embeddings over real tokens only; the list train step's
loss is keras-rs' pairwise logistic loss of the scaled cosines, padding items take no part."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from esci_tf.models.bi_encoder import BiEncoder, build_bi_encoder
from esci_tf.training.bi_encoder_training import BiEncoderTrainer

CONFIG = dict(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
              max_sequence_length=16, dropout=0.0)  # no dropout: a train step scores as inference does


def _side(rng, batch, length):
    ids = rng.integers(3, 60, size=(batch, length)).astype("int32")
    mask = np.ones((batch, length), "int32")
    mask[:, length - 2:] = 0
    ids[mask == 0] = 0
    return ids, mask


def test_cosine_of_masked_means_and_serialization(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_bi_encoder("bert", backbone_config=CONFIG)
    rng = np.random.default_rng(0)
    q, qm = _side(rng, 3, 8)
    p, pm = _side(rng, 3, 10)
    inputs = {"query_token_ids": q, "query_padding_mask": qm, "product_token_ids": p, "product_padding_mask": pm}
    scores = np.asarray(model(inputs))
    hidden = lambda ids, mask: np.asarray(model.backbone(  # noqa: E731
        {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask})["sequence_output"])
    def pooled(ids, mask):
        h = hidden(ids, mask)
        v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return v / np.linalg.norm(v, axis=-1, keepdims=True)
    np.testing.assert_allclose(scores, (pooled(q, qm) * pooled(p, pm)).sum(-1), atol=1e-5)
    changed = dict(inputs, product_token_ids=p.copy())
    changed["product_token_ids"][:, -1] = 7  # a padded position
    np.testing.assert_allclose(np.asarray(model(changed)), scores, atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, BiEncoder) and loaded.kernels == model.kernels
    np.testing.assert_allclose(np.asarray(loaded(inputs)), scores, atol=1e-6)
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        build_bi_encoder("bert")


def _lists(rng, num_lists=2, size=4):
    q, qm = _side(rng, num_lists, 8)
    p, pm = _side(rng, num_lists * size, 10)
    mask = np.ones((num_lists, size), bool)
    mask[1, 2:] = False
    x = {"query_token_ids": q, "query_padding_mask": qm,
         "product_token_ids": p.reshape(num_lists, size, 10), "product_padding_mask": pm.reshape(num_lists, size, 10),
         "list_mask": mask}
    gains = np.array([[1.0, 0.1, 0.0, 0.01], [0.0, 1.0, 1.0, 0.0]], "float32")
    return x, gains


def test_list_loss_is_keras_rs_pairwise_logistic_and_ignores_padding():
    import keras_rs

    keras.utils.set_random_seed(1)
    model = build_bi_encoder("bert", backbone_config=CONFIG)
    trainer = BiEncoderTrainer(model, scale=20.0)
    x, gains = _lists(np.random.default_rng(1))
    scores = trainer.list_scores(x, training=False)
    flat = {k: x[k][1, :2] for k in ("product_token_ids", "product_padding_mask")}
    direct = model({"query_token_ids": np.repeat(x["query_token_ids"][1:], 2, 0),
                    "query_padding_mask": np.repeat(x["query_padding_mask"][1:], 2, 0), **flat})
    np.testing.assert_allclose(scores.numpy()[1, :2], 20.0 * np.asarray(direct), atol=1e-4)
    assert (scores.numpy()[1, 2:] == 0).all()
    expected = keras_rs.losses.PairwiseLogisticLoss()({"labels": gains, "mask": x["list_mask"]}, scores)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = trainer.train_on_batch(x, gains, return_dict=True)
    assert logs["loss"] == pytest.approx(float(expected), rel=1e-4)
    # Padding items: changing their tokens changes nothing.
    x2 = dict(x, product_token_ids=x["product_token_ids"].copy())
    x2["product_token_ids"][1, 3] = 5
    np.testing.assert_allclose(trainer.list_scores(x2, training=False).numpy(), scores.numpy(), atol=1e-6)


@pytest.mark.slow
def test_training_lowers_the_loss():
    keras.utils.set_random_seed(2)
    model = build_bi_encoder("bert", backbone_config=CONFIG)
    x, gains = _lists(np.random.default_rng(2))
    dataset = tf.data.Dataset.from_tensors((x, gains)).repeat()
    from esci_tf.training.bi_encoder_training import train_bi_encoder

    history = train_bi_encoder(model, dataset, steps=30, learning_rate=3e-3, warmup_ratio=0.0)
    assert history["loss"][-1] < 0.5 * history["loss"][0] or history["loss"][-1] < 0.05
