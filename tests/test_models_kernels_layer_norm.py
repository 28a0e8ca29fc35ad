"""The "layer_norm" kernel: Keras' LayerNormalization values and gradients from fewer passes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from esci_tf.models import build_cross_encoder
from esci_tf.models.kernels import install, keras_internals
from esci_tf.models.kernels.layer_norm import layer_norm
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
    assert install(fast, ["layer_norm"]) == {"layer_norm": 1}
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
    install(layer, ["layer_norm"])
    out = layer(tf.cast(X, tf.bfloat16))
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(out, tf.float32), reference, atol=0.05)


@pytest.mark.parametrize("kwargs", [dict(axis=1), dict(rms_scaling=True), dict(center=False), dict(scale=False)])
def test_other_layer_norms_keep_keras(kwargs):
    layer = keras.layers.LayerNormalization(**kwargs)
    layer(X)
    assert install(layer, ["layer_norm"]) == {"layer_norm": 0}
    assert not keras_internals.overrides(layer, "call")


def test_cross_encoder_matches_keras_layer_norm_and_keeps_the_switch(tmp_path):
    plain = build_cross_encoder("bert", backbone_config=TINY, kernels=("dropout", "gelu", "attention", "dense"))
    fast = build_cross_encoder("bert", backbone_config=TINY)
    fast.set_weights(plain.get_weights())
    switched = [l for l in keras_internals.all_layers(fast) if isinstance(l, keras.layers.LayerNormalization)
                and keras_internals.overrides(l, "call")]
    assert len(switched) == 2 * TINY["num_layers"] + 1  # two per layer + the embeddings'
    batch = tiny_bert_batch()
    np.testing.assert_allclose(fast(batch), plain(batch), atol=1e-5)
    path = tmp_path / "model.keras"
    fast.save(path)
    loaded = keras.saving.load_model(path)
    assert "layer_norm" in loaded.kernels and "layer_norm" not in plain.kernels
    np.testing.assert_allclose(loaded(batch), plain(batch), atol=1e-5)
