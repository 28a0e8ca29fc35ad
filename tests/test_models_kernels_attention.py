"""The "attention" kernel: Keras MultiHeadAttention's results from head-major matmuls."""

import numpy as np
import keras
import pytest

from esci_tf.models import build_cross_encoder
from esci_tf.models.kernels import install, keras_internals
from tests.model_fixtures import TINY_BERT as TINY, tiny_bert_batch


def _layer_pair(**kwargs):
    plain = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, **kwargs)
    fast = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, **kwargs)
    query, value = np.random.default_rng(0).normal(size=(2, 2, 7, 6)).astype("float32")
    plain(query, value)
    fast(query, value)
    fast.set_weights(plain.get_weights())
    assert install(fast, ["attention"]) == {"attention": 1}
    return plain, fast, query, value


def test_outputs_and_scores_match_keras_with_a_mask():
    plain, fast, query, value = _layer_pair()
    mask = np.random.default_rng(1).random((2, 7, 7)) > 0.3
    mask[:, :, 0] = True
    out_plain, scores_plain = plain(query, value, attention_mask=mask, return_attention_scores=True)
    out_fast, scores_fast = fast(query, value, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(out_fast, out_plain, atol=1e-5)
    np.testing.assert_allclose(scores_fast, scores_plain, atol=1e-6)


def test_fully_masked_query_rows_are_zero_as_in_keras():
    """Padded query positions mask every key: Keras zeroes their scores and context."""
    plain, fast, query, value = _layer_pair()
    mask = np.ones((2, 7, 7), bool)
    mask[1, 4:, :] = False  # rows 4-6 of the second example see nothing
    mask[0, :, 5:] = False
    out_plain, scores_plain = plain(query, value, attention_mask=mask, return_attention_scores=True)
    out_fast, scores_fast = fast(query, value, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(scores_fast, scores_plain, atol=1e-6)
    assert np.all(np.asarray(scores_fast)[1, :, 4:] == 0)
    np.testing.assert_allclose(out_fast, out_plain, atol=1e-5)
    np.testing.assert_allclose(fast(query, value, attention_mask=mask.astype("int32")), out_plain, atol=1e-5)


def test_training_dropout_uses_the_layer_dropout():
    plain, fast, query, value = _layer_pair(dropout=0.5)
    np.testing.assert_allclose(fast(query, value, training=False), plain(query, value, training=False), atol=1e-5)
    first, second = fast(query, value, training=True), fast(query, value, training=True)
    assert not np.allclose(first, second)  # fresh dropout masks each call


def test_causal_attention_keeps_keras_implementation():
    plain, fast, query, value = _layer_pair()
    np.testing.assert_allclose(fast(query, value, use_causal_mask=True),
                               plain(query, value, use_causal_mask=True), atol=1e-5)


@pytest.mark.parametrize("cross_attention", [False, True])
def test_cross_encoder_scores_match_keras_attention(cross_attention, tmp_path):
    plain = build_cross_encoder("bert", backbone_config=TINY, cross_attention=cross_attention,
                                kernels=("dropout", "gelu", "dense", "layer_norm"))
    fast = build_cross_encoder("bert", backbone_config=TINY, cross_attention=cross_attention)
    fast.set_weights(plain.get_weights())
    switched = [l for l in keras_internals.all_layers(fast) if keras_internals.overrides(l, "_compute_attention")]
    assert len(switched) == TINY["num_layers"] + (2 if cross_attention else 0)
    batch = tiny_bert_batch()
    np.testing.assert_allclose(fast(batch), plain(batch), atol=1e-5)
    path = tmp_path / "model.keras"
    fast.save(path)
    loaded = keras.saving.load_model(path)
    assert "attention" in loaded.get_config()["kernels"]
    np.testing.assert_allclose(loaded(batch), fast(batch), atol=1e-6)
