"""fast_layer_norm: Keras' LayerNormalization values and gradients from fewer passes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from esci_tf.models import build_cross_encoder
from esci_tf.models.fast_layer_norm import layer_norm, use_fast_layer_norm
from tests.model_fixtures import TINY_BERT as TINY, tiny_bert_batch

X = (np.random.default_rng(0).normal(size=(2, 5, 8)) * 3 + 1).astype("float32")


def _pair(**kwargs):
    plain, fast = (keras.layers.LayerNormalization(epsilon=1e-6, **kwargs) for _ in range(2))
    plain(X)
    fast(X)
    rng = np.random.default_rng(1)
    plain.set_weights([rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()])
    fast.set_weights(plain.get_weights())
    return plain, fast


def test_values_and_gradients_match_keras():
    plain, fast = _pair()
    assert use_fast_layer_norm(fast) == 1
    x = tf.constant(X)
    upstream = tf.constant(np.random.default_rng(2).normal(size=X.shape).astype("float32"))
    results = []
    for layer in (plain, fast):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x)
        results.append([out] + tape.gradient(out, [x, layer.gamma, layer.beta], output_gradients=upstream))
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_gradient_under_xla_matches_eager():
    gamma, beta = tf.ones([8]) * 1.5, tf.zeros([8])

    def grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer_norm(x, gamma, beta, 1e-6) ** 3)
        return tape.gradient(loss, x)

    np.testing.assert_allclose(tf.function(grads, jit_compile=True)(tf.constant(X)), grads(tf.constant(X)),
                               atol=1e-4)


def test_bfloat16_inputs_give_bfloat16_outputs_close_to_float32():
    layer = keras.layers.LayerNormalization(dtype="mixed_bfloat16")
    layer(X)
    reference = keras.ops.convert_to_numpy(layer(X)).astype("float32")
    use_fast_layer_norm(layer)
    out = layer(tf.cast(X, tf.bfloat16))
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(out, tf.float32), reference, atol=0.05)


@pytest.mark.parametrize("kwargs", [dict(axis=1), dict(rms_scaling=True), dict(center=False), dict(scale=False)])
def test_other_layer_norms_keep_keras(kwargs):
    layer = keras.layers.LayerNormalization(**kwargs)
    layer(X)
    assert use_fast_layer_norm(layer) == 0
    assert "call" not in layer.__dict__


def test_cross_encoder_matches_keras_layer_norm_and_keeps_the_switch(tmp_path):
    plain = build_cross_encoder("bert", backbone_config=TINY, fast_layer_norm=False)
    fast = build_cross_encoder("bert", backbone_config=TINY)
    fast.set_weights(plain.get_weights())
    switched = [l for l in fast._flatten_layers() if isinstance(l, keras.layers.LayerNormalization)
                and "call" in l.__dict__]
    assert len(switched) == 2 * TINY["num_layers"] + 1  # two per layer + the embeddings'
    batch = tiny_bert_batch()
    np.testing.assert_allclose(fast(batch), plain(batch), atol=1e-5)
    path = tmp_path / "model.keras"
    fast.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.fast_layer_norm and not plain.fast_layer_norm
    np.testing.assert_allclose(loaded(batch), plain(batch), atol=1e-5)
