"""The "dense" kernel: Dense / EinsumDense as 2-D MatMul + BiasAdd (+ GELU) give Keras' results, and
Grappler's remapper fuses them into one oneDNN kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from esci_tf.models import build_cross_encoder
from esci_tf.models.kernels import install, keras_internals
from esci_tf.models.kernels.dense import _einsum_plan, gelu_fusable
from esci_tf.models.kernels.gelu import gelu_erf
from tests.model_fixtures import TINY_BERT as TINY, tiny_bert_batch

RNG = np.random.default_rng(0)
INPUTS = RNG.normal(size=(2, 5, 6)).astype("float32")


def _pair(make, inputs):
    plain, fast = make(), make()
    plain(inputs)
    fast(inputs)
    fast.set_weights(plain.get_weights())
    return plain, fast


@pytest.mark.parametrize("activation", [None, "relu", "gelu", gelu_erf])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_matches_keras(activation, use_bias):
    plain, fast = _pair(lambda: keras.layers.Dense(7, activation=activation, use_bias=use_bias,
                                                   bias_initializer="random_normal"), INPUTS)
    assert install(fast, ["dense"]) == {"dense": 1}
    for training in (False, True):
        np.testing.assert_allclose(fast(INPUTS, training=training), plain(INPUTS, training=training),
                                   atol=1e-5)
    np.testing.assert_allclose(fast(INPUTS[0]), plain(INPUTS[0]), atol=1e-5)  # 2-D input


def test_dense_training_uses_the_layers_own_activation_and_has_gradients():
    plain, fast = _pair(lambda: keras.layers.Dense(7, activation=gelu_erf), INPUTS)
    install(fast, ["dense"])
    x = tf.constant(INPUTS)
    grads = []
    for layer in (plain, fast):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        grads.append(tape.gradient(loss, [x] + layer.trainable_variables))
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_gelu_fusable_is_exact_gelu():
    x = np.linspace(-6, 6, 101).astype("float32")
    np.testing.assert_allclose(gelu_fusable(tf.constant(x)), keras.activations.gelu(x), atol=1e-6)


@pytest.mark.parametrize("equation,bias_axes,out_shape,x", [
    ("abc,cde->abde", "de", (None, 3, 4), INPUTS),        # attention query/key/value
    ("abcd,cde->abe", "e", (None, 6), RNG.normal(size=(2, 5, 3, 4)).astype("float32")),  # output
    ("ab,bc->ac", None, (7,), INPUTS[0]),
])
def test_einsum_projections_match_keras(equation, bias_axes, out_shape, x):
    plain, fast = _pair(lambda: keras.layers.EinsumDense(equation, out_shape, bias_axes=bias_axes,
                                                         bias_initializer="random_normal"), x)
    assert install(fast, ["dense"]) == {"dense": 1}
    np.testing.assert_allclose(fast(x), plain(x), atol=1e-5)


@pytest.mark.parametrize("equation,bias_axes", [
    ("abc,cde->abde", "e"),     # bias over part of the kept axes: not one BiasAdd
    ("abc,dce->abde", None),    # contraction not leading in the kernel
    ("abc,cd->adb", None),      # output axes reordered
])
def test_unsupported_einsums_keep_keras(equation, bias_axes):
    layer = keras.layers.EinsumDense(equation, (None, 3, 4) if "e" in equation else (3, None),
                                     bias_axes=bias_axes)
    layer(INPUTS)
    assert install(layer, ["dense"]) == {"dense": 0}
    assert not keras_internals.overrides(layer, "call")


def test_einsum_plan():
    assert _einsum_plan("abc,cde->abde") == ("c", "de")
    assert _einsum_plan("abcd,cde->abe") == ("cd", "e")
    assert _einsum_plan("abc,cd->acd") is None
    assert _einsum_plan("not an equation") is None


def test_lora_layers_are_left_alone():
    layer = keras.layers.Dense(4)
    layer(INPUTS)
    layer.enable_lora(2)
    assert install(layer, ["dense"]) == {"dense": 0}


@pytest.mark.parametrize("make", [lambda: keras.layers.Dense(4),
                                  lambda: keras.layers.EinsumDense("abc,cde->abde", (None, 2, 2), bias_axes="de")])
def test_lora_switched_on_after_install_runs_keras_call(make):
    plain, fast = _pair(make, INPUTS)
    assert install(fast, ["dense"]) == {"dense": 1}
    for layer in (plain, fast):
        layer.enable_lora(2)
        layer.lora_kernel_b.assign(np.ones(layer.lora_kernel_b.shape, "float32"))
    fast.set_weights(plain.get_weights())
    np.testing.assert_allclose(fast(INPUTS), plain(INPUTS), atol=1e-5)


def _optimized_op_types(fn, *arrays):
    """Op types of `fn`'s graph after Grappler (the partition graphs a session runs)."""
    graph = tf.Graph()
    with graph.as_default():
        feeds = [tf.compat.v1.placeholder(a.dtype, a.shape) for a in arrays]
        outputs = fn(*feeds)
        with tf.compat.v1.Session(graph=graph) as session:
            metadata = tf.compat.v1.RunMetadata()
            session.run(outputs, dict(zip(feeds, arrays)), run_metadata=metadata,
                        options=tf.compat.v1.RunOptions(output_partition_graphs=True))
    return {node.op for partition in metadata.partition_graphs for node in partition.node}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_remapper_fuses_matmul_bias_and_gelu(dtype):
    x, w, b = (tf.cast(RNG.normal(size=s), dtype).numpy() for s in ((8, 16), (16, 4), (4,)))
    if not any(op.startswith("_Mkl") for op in _optimized_op_types(tf.matmul, x, w)):
        pytest.skip("TensorFlow runs without oneDNN here: no remapper fusion to check")
    ops = _optimized_op_types(lambda x, w, b: gelu_fusable(tf.nn.bias_add(tf.matmul(x, w), b)), x, w, b)
    assert any("FusedMatMul" in op for op in ops), ops
    assert not {"Erf", "BiasAdd", "MatMul"} & ops, ops


def test_cross_encoder_scores_match_keras_dense(tmp_path):
    plain = build_cross_encoder("bert", backbone_config=TINY, kernels=("dropout", "gelu", "attention", "layer_norm"),
                                pooling="weighted_layers",
                                num_pooled_layers=2, cross_attention=True)
    fast = build_cross_encoder("bert", backbone_config=TINY, pooling="weighted_layers",
                               num_pooled_layers=2, cross_attention=True)
    fast.set_weights(plain.get_weights())
    switched = [layer for layer in keras_internals.all_layers(fast) if keras_internals.overrides(layer, "call")]
    # per layer: q, k, v, output, 2 feed-forward; + pooler + cross attention's 4 + head
    assert len(switched) >= TINY["num_layers"] * 6 + 1
    batch = tiny_bert_batch()
    np.testing.assert_allclose(fast(batch), plain(batch), atol=1e-5)
    np.testing.assert_allclose(fast(batch, training=False), plain(batch, training=False), atol=1e-5)
    path = tmp_path / "model.keras"
    fast.save(path)
    loaded = keras.saving.load_model(path)
    assert "dense" in loaded.kernels and "dense" not in plain.kernels
    np.testing.assert_allclose(loaded(batch), plain(batch), atol=1e-5)


def test_mixed_bfloat16_outputs_stay_bfloat16():
    layer = keras.layers.Dense(4, activation="gelu", dtype="mixed_bfloat16")
    layer(INPUTS)
    install(layer, ["dense"])
    assert layer(INPUTS).dtype == tf.bfloat16
