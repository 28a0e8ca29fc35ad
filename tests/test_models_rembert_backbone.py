"""RemBertBackbone: config round trip, .keras save/load, argument checks."""

import keras
import keras_hub
import numpy as np
import pytest

from esci_tf.models.rembert.backbone import RemBertBackbone

TINY = dict(vocabulary_size=64, num_layers=2, num_heads=4, hidden_dim=32, intermediate_dim=64,
            input_embedding_dim=16, max_sequence_length=32, activation="gelu_tanh")
INPUTS = {
    "token_ids": np.array([[3, 9, 27, 4, 0, 0], [3, 5, 6, 7, 8, 4]], "int32"),
    "segment_ids": np.array([[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]], "int32"),
    "padding_mask": np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], "int32"),
}


def test_outputs_and_decoupled_embedding_width():
    backbone = RemBertBackbone(**TINY)
    outputs = backbone(INPUTS)
    assert outputs["sequence_output"].shape == (2, 6, 32)
    assert outputs["pooled_output"].shape == (2, 32)
    assert backbone.token_embedding.embeddings.shape == (64, 16)
    assert backbone.get_layer("embeddings_projection").kernel.shape == (16, 32)


def test_get_config_from_config_round_trip():
    backbone = RemBertBackbone(**TINY)
    config = backbone.get_config()
    for key, value in TINY.items():
        assert config[key] == value
    clone = RemBertBackbone.from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == backbone.count_params()


def test_keras_file_save_and_load_round_trip(tmp_path):
    backbone = RemBertBackbone(**TINY)
    expected = backbone(INPUTS)
    path = str(tmp_path / "rembert.keras")
    backbone.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, RemBertBackbone)
    actual = restored(INPUTS)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(actual[key].numpy(), expected[key].numpy(), atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        RemBertBackbone(**{**TINY, "num_heads": 5})
    with pytest.raises(ValueError, match="activation 'swish'"):
        RemBertBackbone(**{**TINY, "activation": "swish"})


def test_keras_hub_preset_round_trip(tmp_path):
    backbone = RemBertBackbone(**TINY)
    backbone.save_to_preset(str(tmp_path / "preset"))
    restored = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    assert isinstance(restored, RemBertBackbone)
    np.testing.assert_allclose(restored(INPUTS)["sequence_output"].numpy(),
                               backbone(INPUTS)["sequence_output"].numpy(), atol=1e-6)
