"""The TF Serving op check: it reads every function of a SavedModel and flags ops the stock
2.20 model server lacks (a tensorflow-text op outside ops_lib, Python callbacks), and passes
TensorFlow core and ops_lib ops. (The exported model itself: tests/test_serving_export.py.)"""

import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from esci_tf.serving import ops


@pytest.fixture(scope="module")
def core_ops():
    return ops.tensorflow_core_ops()


def _save(directory, function):
    module = tf.Module()
    module.serve = tf.function(function, input_signature=[tf.TensorSpec([None], tf.string)])
    inner = tf.function(lambda x: tf.strings.upper(x))  # a nested function: its ops live in the library
    module.nested = tf.function(lambda x: inner(x), input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve, "nested": module.nested})
    return str(directory)


def test_core_and_ops_lib_ops_pass(tmp_path, core_ops):
    path = _save(tmp_path, lambda x: {"y": tf_text.normalize_utf8(x, "NFKC")})
    found = ops.saved_model_ops(path)
    assert {"NormalizeUTF8", "StringUpper"} <= found  # a nested function's op is listed
    assert "NormalizeUTF8" not in core_ops and "StringUpper" in core_ops
    assert ops.unservable_ops(path, core_ops) == []


def test_an_op_outside_ops_lib_and_python_callbacks_are_flagged(tmp_path, core_ops):
    def rouge(x):  # RougeL: tensorflow-text registers it, ops_lib (what the server links) does not
        words = tf.strings.split(x)
        return {"f": tf_text.metrics.rouge_l(words, words).f_measure}

    assert ops.unservable_ops(_save(tmp_path / "rouge", rouge), core_ops) == ["RougeL"]
    python = _save(tmp_path / "python", lambda x: {"y": tf.py_function(lambda v: v, [x], tf.string)})
    assert ops.unservable_ops(python, core_ops) == ["EagerPyFunc"]
