"""Head layers: weighted layer pooling, multi-sample dropout, query cross attention."""

import numpy as np
import pytest
import keras

from esci_tf.models.heads import MultiSampleDropout, QueryCrossAttention, WeightedLayerPooling


def _round_trip(layer):
    return layer.__class__.from_config(layer.get_config())


def test_weighted_layer_pooling_starts_as_mean_and_learns_weights():
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(2, 5, 8)).astype("float32") for _ in range(3)]
    pool = WeightedLayerPooling(num_layers=3)
    np.testing.assert_allclose(pool(layers).numpy(), np.mean([x[:, 0] for x in layers], axis=0),
                               atol=1e-6)
    pool.layer_logits.assign([0.0, 0.0, 50.0])  # all weight on the last layer
    np.testing.assert_allclose(pool(layers).numpy(), layers[-1][:, 0], atol=1e-5)
    assert _round_trip(pool).get_config() == pool.get_config()
    with pytest.raises(ValueError, match="expected 3 layer outputs, got 2"):
        pool(layers[:2])


def test_multi_sample_dropout_averages_masks_in_training_only():
    keras.utils.set_random_seed(0)  # seeds the dropout layers' generators made below
    x = np.ones((512, 16), "float32")
    head = MultiSampleDropout(num_classes=4, rates=(0.1, 0.3, 0.5))
    plain = head(x).numpy()
    np.testing.assert_array_equal(plain, head.classifier(x).numpy())
    np.testing.assert_array_equal(plain, head(x, training=False).numpy())
    trained = head(x, training=True).numpy()
    assert not np.allclose(trained, plain)
    # Dropout keeps the expected input and the classifier is linear: equal in expectation.
    np.testing.assert_allclose(trained.mean(axis=0), plain[0], atol=0.15 * np.abs(plain).max())
    no_drop = MultiSampleDropout(num_classes=4, rates=(0.0, 0.0))
    np.testing.assert_allclose(no_drop(x, training=True).numpy(), no_drop(x).numpy(), atol=1e-6)
    assert _round_trip(head).get_config()["rates"] == [0.1, 0.3, 0.5]
    with pytest.raises(ValueError, match="rates must be"):
        MultiSampleDropout(4, rates=(1.5,))


def test_multi_sample_dropout_logits_are_float32_under_bfloat16():
    head = MultiSampleDropout(num_classes=4, rates=(0.1, 0.2), dtype="mixed_bfloat16")
    assert head(np.ones((2, 8), "float32"), training=True).dtype == "float32"


def test_query_cross_attention_ignores_tokens_outside_query_and_product():
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(2, 8, 16)).astype("float32")
    query = np.zeros((2, 8), bool)
    query[:, 1:3] = True
    product = np.zeros((2, 8), bool)
    product[:, 4:6] = True
    padding = np.zeros((2, 8), bool)
    padding[:, :7] = True
    layer = QueryCrossAttention(num_heads=4, dropout=0.0)
    out = layer(seq, query, product, padding).numpy()
    assert out.shape == (2, 16)
    changed = seq.copy()
    changed[:, 7] += 5.0  # a padding position: seen by nothing
    np.testing.assert_allclose(layer(changed, query, product, padding).numpy(), out, atol=1e-6)
    changed = seq.copy()
    changed[:, 4] += 5.0  # a product position: seen by the query
    assert not np.allclose(layer(changed, query, product, padding).numpy(), out)
    assert _round_trip(layer).get_config() == layer.get_config()
