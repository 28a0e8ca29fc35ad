"""Growing the token embedding table for the special tokens."""

import numpy as np
import pytest
import keras_hub

from esci_tf.models import grow_vocabulary
from esci_tf.models.bert.backbone import HFBertBackbone

TINY = dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=16)


def _inputs(vocab_ids):
    ids = np.array([vocab_ids], "int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}


def test_grown_bert_keeps_rows_and_outputs_bit_exact():
    backbone = HFBertBackbone(vocabulary_size=100, hidden_activation="gelu", **TINY)
    grown = grow_vocabulary(backbone, 22)
    assert grown.vocabulary_size == 122 and grown.hidden_activation == "gelu"
    old = backbone.token_embedding.embeddings.numpy()
    new = grown.token_embedding.embeddings.numpy()
    np.testing.assert_array_equal(new[:100], old)
    np.testing.assert_allclose(new[100:], np.broadcast_to(old.mean(axis=0), (22, 32)), atol=1e-6)
    for a, b in zip(backbone.weights, grown.weights):
        if a.path != backbone.token_embedding.embeddings.path:
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = _inputs([5, 7, 99, 3])
    np.testing.assert_array_equal(backbone(x)["sequence_output"].numpy(),
                                  grown(x)["sequence_output"].numpy())
    # Tied output embeddings follow the grown table.
    logits = grown.token_embedding(grown(x)["sequence_output"], reverse=True)
    assert logits.shape == (1, 4, 122)


def test_noise_and_zero_tokens():
    backbone = keras_hub.models.XLMRobertaBackbone(vocabulary_size=50, **TINY)
    assert grow_vocabulary(backbone, 0) is backbone
    grown = grow_vocabulary(backbone, 3, noise_stddev=0.01, seed=1)
    rows = grown.token_embedding.embeddings.numpy()[50:]
    mean = backbone.token_embedding.embeddings.numpy().mean(axis=0)
    assert 0 < np.abs(rows - mean).max() < 0.1
    assert not np.array_equal(rows[0], rows[1])


def test_table_larger_than_tokenizer_reuses_unused_rows():
    # DeBERTa-v3 style: 60 rows but the tokenizer has 50 tokens; 4 special tokens fit.
    backbone = keras_hub.models.DebertaV3Backbone(vocabulary_size=60, bucket_size=8, **TINY)
    grown = grow_vocabulary(backbone, 4, base_vocabulary_size=50)
    assert grown.vocabulary_size == 60
    old = backbone.token_embedding.embeddings.numpy()
    new = grown.token_embedding.embeddings.numpy()
    np.testing.assert_array_equal(new[:50], old[:50])
    np.testing.assert_allclose(new[50:54], np.broadcast_to(old[:50].mean(0), (4, 32)), atol=1e-6)
    np.testing.assert_array_equal(new[54:], old[54:])
    # 12 special tokens do not fit: the table grows to 50 + 12.
    assert grow_vocabulary(backbone, 12, base_vocabulary_size=50).vocabulary_size == 62


def test_bad_sizes_are_errors():
    backbone = keras_hub.models.XLMRobertaBackbone(vocabulary_size=50, **TINY)
    with pytest.raises(ValueError, match="base_vocabulary_size 51 must be in"):
        grow_vocabulary(backbone, 2, base_vocabulary_size=51)
    with pytest.raises(ValueError, match="num_new_tokens must be >= 0"):
        grow_vocabulary(backbone, -1)
