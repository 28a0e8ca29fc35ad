"""FGM and AWP: the perturbation formulas, bit-exact restores, AWP gating."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from esci_tf.training import adversarial
from esci_tf.training.training_model import TrainingModel
from training_fixtures import build_tiny, make_batch, weights_of


def _np(variable):
    return keras.ops.convert_to_numpy(variable)


def _bits_equal(a, b):
    return all(np.array_equal(np.asarray(x).view(np.uint32), np.asarray(y).view(np.uint32))
               for x, y in zip(a, b))


def test_summed_rows_adds_duplicate_indices():
    values = tf.constant(np.arange(15, dtype="float32").reshape(5, 3))
    grad = tf.IndexedSlices(values, tf.constant([4, 1, 4, 0, 4]), tf.constant([6, 3]))
    rows, first, sums = adversarial.summed_rows(grad)
    np.testing.assert_array_equal(rows.numpy(), [0, 1, 4, 4, 4])
    np.testing.assert_array_equal(first.numpy(), [True, True, True, False, False])
    dense = tf.convert_to_tensor(grad).numpy()
    np.testing.assert_array_equal(sums.numpy(), dense[[0, 1, 4, 4, 4]])


@pytest.mark.parametrize("sparse", [True, False])
def test_fgm_perturbs_by_normalised_gradient_and_restores_bits(sparse):
    rng = np.random.default_rng(0)
    table = keras.Variable(rng.normal(size=(8, 3)).astype("float32"), name="emb")
    original = _np(table)
    grad = tf.IndexedSlices(
        tf.constant(rng.normal(size=(4, 3)).astype("float32")),
        tf.constant([2, 5, 2, 7]), tf.constant([8, 3]),
    )
    dense = tf.convert_to_tensor(grad).numpy()
    fgm = adversarial.FGMPerturbation(table, epsilon=0.5)
    restore = fgm.perturb(grad if sparse else tf.constant(dense))
    expected = original + 0.5 * dense / np.linalg.norm(dense)
    np.testing.assert_allclose(_np(table), expected, rtol=1e-6, atol=1e-7)
    untouched = [0, 1, 3, 4, 6]
    np.testing.assert_array_equal(_np(table)[untouched], original[untouched])
    restore()
    assert _bits_equal([_np(table)], [original])


def test_fgm_zero_gradient_is_no_perturbation():
    table = keras.Variable(np.ones((3, 2), "float32"))
    restore = adversarial.FGMPerturbation(table, 1.0).perturb(tf.zeros((3, 2)))
    np.testing.assert_array_equal(_np(table), np.ones((3, 2)))
    restore()


def test_awp_formula_clip_and_gate():
    w0 = np.array([[1.0, -2.0], [0.5, 4.0]], "float32")
    g = np.array([[3.0, 0.0], [0.0, -4.0]], "float32")
    var = keras.Variable(w0)
    awp = adversarial.AWPPerturbation([var], learning_rate=0.1, epsilon=0.05)
    restore = awp.perturb([tf.constant(g)], tf.constant(False))
    np.testing.assert_array_equal(_np(var), w0)  # gate closed: untouched
    restore()
    restore = awp.perturb([tf.constant(g)], tf.constant(True))
    step = 0.1 * g / np.linalg.norm(g) * np.linalg.norm(w0)
    expected = np.clip(w0 + step, w0 - 0.05 * np.abs(w0), w0 + 0.05 * np.abs(w0))
    np.testing.assert_allclose(_np(var), expected, rtol=1e-6)
    assert not np.array_equal(_np(var), w0)
    restore()
    assert _bits_equal([_np(var)], [w0])


def test_awp_default_targets_are_attention_and_ffn_kernels():
    model = build_tiny()
    chosen = adversarial.select_awp_variables(model.trainable_variables)
    paths = sorted(v.path for v in chosen)
    assert len(paths) == 12, paths  # 2 layers x (q, k, v, attention out, ffn in, ffn out)
    assert all(p.endswith("/kernel") for p in paths)
    assert not any("embedding" in p or "pooled" in p or "head" in p for p in paths)
    only_query = adversarial.select_awp_variables(model.trainable_variables, r"query/kernel$")
    assert len(only_query) == 2
    with pytest.raises(ValueError, match="matched no trainable variable"):
        adversarial.select_awp_variables(model.trainable_variables, r"no_such_layer")


def _fit_one_step(mode, learning_rate, epochs=1, **kwargs):
    model = build_tiny()
    trainer = TrainingModel(model, adversarial=mode, **kwargs)
    trainer.compile(optimizer=keras.optimizers.SGD(learning_rate))
    x, y = make_batch(8)
    history = trainer.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0)
    return model, history.history


@pytest.mark.parametrize("mode,kwargs", [("fgm", {}), ("awp", {"awp_start_loss": 10.0})])
def test_training_step_restores_weights_bit_exactly(mode, kwargs):
    before = weights_of(build_tiny())
    model, history = _fit_one_step(mode, learning_rate=0.0, **kwargs)
    assert _bits_equal(weights_of(model), before)
    # The adversarial pass really ran on perturbed weights.
    assert history["adv_loss"][0] != pytest.approx(history["loss"][0], abs=1e-6)
    assert np.isfinite(history["adv_loss"][0])


def test_awp_waits_for_the_loss_ema():
    plain, plain_history = _fit_one_step(None, learning_rate=0.5, epochs=2)
    # Loss ~1.4 never gets below 0.05: AWP stays off and training equals plain training.
    gated, history = _fit_one_step(
        "awp", learning_rate=0.5, epochs=2, awp_start_loss=0.05, awp_loss_decay=0.5
    )
    np.testing.assert_allclose(history["loss"], plain_history["loss"], rtol=1e-6)
    assert _bits_equal(weights_of(gated), weights_of(plain))
    assert history["adv_loss"] == [0.0, 0.0]
    first, second = history["loss"]
    assert history["awp_loss_ema"][0] == pytest.approx(first, rel=1e-6)
    assert history["awp_loss_ema"][1] == pytest.approx(0.5 * first + 0.5 * second, rel=1e-6)


def test_bad_arguments_are_named():
    model = build_tiny()
    with pytest.raises(ValueError, match="adversarial must be one of"):
        TrainingModel(model, adversarial="pgd")
    with pytest.raises(ValueError, match="word_embeddings"):
        TrainingModel(keras.Sequential([keras.layers.Dense(4)]), adversarial="fgm")
    with pytest.raises(ValueError, match="fgm_epsilon"):
        TrainingModel(model, adversarial="fgm", fgm_epsilon=0.0)
    with pytest.raises(ValueError, match="optimizer only"):
        TrainingModel(model).compile(optimizer="sgd", loss="mse")
