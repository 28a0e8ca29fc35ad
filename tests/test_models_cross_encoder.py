"""CrossEncoder: every head option builds, trains a step, and round-trips through .keras."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from esci_tf import labels, special_tokens
from esci_tf.labels import ranking_score
from esci_tf.models import (
    CrossEncoder, build_cross_encoder, multi_sample_dropout_rates, recommended_policy,
)
from tests.model_fixtures import TINY_BERT as TINY

B, L = 4, 12
# _batch's separator: the id the xlm_roberta / deberta_v3 tokenizers give </s> / [SEP].
SEPARATOR_ID = 2


def _batch(seed=0, separator_id=SEPARATOR_ID):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 100, size=(B, L)).astype("int32")
    ids[:, 4] = separator_id  # the query is positions 1..3
    segments = np.zeros((B, L), "int32")
    segments[:, 5:] = 1
    mask = np.ones((B, L), "int32")
    mask[:, 10:] = 0
    segments[mask == 0] = 0
    ids[mask == 0] = 0
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def _labels():
    return labels.one_hot([0, 1, 2, 3])


def _train_save_reload(model, tmp_path):
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True,
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(_batch(), _labels(), batch_size=B, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert sum(changed) > len(changed) // 2

    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, CrossEncoder)
    batch = _batch(seed=1)
    np.testing.assert_array_equal(reloaded(batch).numpy(), model(batch).numpy())
    return reloaded


HEAD_OPTIONS = {
    "cls": dict(),
    "weighted_layers": dict(pooling="weighted_layers", num_pooled_layers=2),
    "multi_sample_dropout": dict(multi_sample_dropout=4),
    "cross_attention": dict(cross_attention=True),
    "all": dict(pooling="weighted_layers", num_pooled_layers=2, multi_sample_dropout=3,
                cross_attention=True),
}


@pytest.mark.parametrize("option", sorted(HEAD_OPTIONS))
def test_bert_head_options_train_save_reload(option, tmp_path):
    model = build_cross_encoder("bert", backbone_config=TINY, **HEAD_OPTIONS[option])
    logits = model(_batch())
    assert logits.shape == (B, 4) and logits.dtype == tf.float32
    reloaded = _train_save_reload(model, tmp_path)
    assert reloaded.get_config() == model.get_config()


@pytest.mark.parametrize("backbone", ["xlm_roberta", "deberta_v3", "rembert"])
def test_other_backbones_with_all_heads(backbone, tmp_path):
    config = dict(TINY, input_embedding_dim=16) if backbone == "rembert" else TINY
    model = build_cross_encoder(backbone, backbone_config=config, separator_token_id=SEPARATOR_ID,
                                **HEAD_OPTIONS["all"])
    expected = "segment_ids" if backbone == "rembert" else "separator"
    assert model.query_segment_from == expected
    _train_save_reload(model, tmp_path)


def test_inference_is_deterministic_and_training_is_not():
    model = build_cross_encoder("bert", backbone_config=TINY, multi_sample_dropout=3)
    batch = _batch()
    np.testing.assert_array_equal(model(batch).numpy(), model(batch, training=False).numpy())
    assert not np.array_equal(model(batch, training=True).numpy(), model(batch).numpy())


def test_word_embeddings_is_the_grown_table():
    model = build_cross_encoder("xlm_roberta", backbone_config=TINY)
    table = model.word_embeddings
    assert isinstance(table, keras.Variable)
    assert table.shape == (100 + len(special_tokens.ALL_SPECIAL_TOKENS), 32)
    assert table is model.backbone.token_embedding.embeddings


def test_prompt_token_rows_are_trained():
    model = build_cross_encoder("bert", backbone_config=TINY)
    prompt_ids = [special_tokens.special_token_id(t, 100) for t in special_tokens.PROMPT_TOKENS[:2]]
    batch = _batch()
    batch["token_ids"][:, 5:7] = prompt_ids  # "[P0] [P1]" at the start of the product
    with tf.GradientTape() as tape:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)(
            _labels(), model(batch, training=True))
    grads = dict(zip([id(v) for v in model.trainable_weights],
                     tape.gradient(loss, model.trainable_weights)))
    grad = tf.convert_to_tensor(grads[id(model.word_embeddings)]).numpy()
    assert np.abs(grad[prompt_ids]).sum() > 0
    unused = special_tokens.special_token_id(special_tokens.PROMPT_TOKENS[-1], 100)
    assert np.abs(grad[unused]).sum() == 0


def test_cross_attention_query_masks_from_segments_and_separator():
    batch = _batch()
    bert = build_cross_encoder("bert", backbone_config=TINY, cross_attention=True)
    xlmr = build_cross_encoder("xlm_roberta", backbone_config=TINY, cross_attention=True,
                               separator_token_id=SEPARATOR_ID)
    q_seg, p_seg = (np.asarray(m) for m in bert._query_product_masks(batch))
    q_sep, p_sep = (np.asarray(m) for m in xlmr._query_product_masks(batch))
    expected_query = np.zeros((B, L), bool)
    expected_query[:, 1:4] = True
    np.testing.assert_array_equal(q_sep, expected_query)
    np.testing.assert_array_equal(q_seg, np.pad(expected_query[:, :4], ((0, 0), (0, L - 4)))
                                  | (np.arange(L) == 4))
    expected_product = np.zeros((B, L), bool)
    expected_product[:, 5:10] = True
    np.testing.assert_array_equal(p_seg, expected_product)
    np.testing.assert_array_equal(p_sep, expected_product)


def test_mixed_bfloat16_keeps_float32_logits():
    model = build_cross_encoder("bert", backbone_config=TINY, cross_attention=True,
                                pooling="weighted_layers", num_pooled_layers=2,
                                dtype_policy="mixed_bfloat16")
    assert model.backbone.dtype_policy.name == "mixed_bfloat16"
    assert model.word_embeddings.dtype == "float32"
    logits = model(_batch())
    assert logits.dtype == tf.float32
    assert np.all(np.isfinite(logits.numpy()))


def test_auto_policy_is_the_recommended_one():
    model = build_cross_encoder("bert", backbone_config=TINY, dtype_policy="auto")
    assert model.backbone.dtype_policy.name == recommended_policy()
    assert model.dtype_policy.name == recommended_policy()


def test_xla_compiled_forward_matches_eager():
    model = build_cross_encoder("xlm_roberta", backbone_config=TINY, separator_token_id=SEPARATOR_ID,
                                **HEAD_OPTIONS["all"])
    batch = _batch()
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
    np.testing.assert_allclose(compiled(batch).numpy(), model(batch).numpy(), atol=1e-5)


def test_ranking_scores_use_paper_gains():
    logits = np.log(np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0.5, 0.5, 0, 0]])
                    + 1e-12).astype("float32")
    np.testing.assert_allclose(ranking_score(logits, from_logits=True), [1.0, 0.1, 0.01, 0.55], atol=1e-6)


def test_multi_sample_dropout_rates():
    assert multi_sample_dropout_rates(0, 0.1) == (0.1,)
    np.testing.assert_allclose(multi_sample_dropout_rates(5, 0.1), [0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match="multi_sample_dropout"):
        multi_sample_dropout_rates(-1, 0.1)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        build_cross_encoder("bert")
    with pytest.raises(ValueError, match="unknown backbone 'gpt'"):
        build_cross_encoder("gpt", backbone_config=TINY)
    with pytest.raises(ValueError, match="pooling must be one of"):
        build_cross_encoder("bert", backbone_config=TINY, pooling="max")
    with pytest.raises(ValueError, match="num_pooled_layers=3 but the backbone has 2 layers"):
        build_cross_encoder("bert", backbone_config=TINY, pooling="weighted_layers",
                            num_pooled_layers=3)


def test_mean_pooling_averages_the_real_tokens_without_a_pooler():
    model = build_cross_encoder("bert", backbone_config=TINY, pooling="mean")
    assert model.pooler is None
    batch = _batch()
    batch["padding_mask"][1, 5:] = 0
    sequence = model.encoder({k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")})
    sequence = np.asarray(sequence[-1] if isinstance(sequence, (list, tuple)) else sequence)
    mask = batch["padding_mask"][..., None].astype("float32")
    pooled = (sequence * mask).sum(axis=1) / mask.sum(axis=1)
    expected = pooled @ np.asarray(model.head.classifier.kernel) + np.asarray(model.head.classifier.bias)
    np.testing.assert_allclose(np.asarray(model(batch)), expected, atol=1e-5)
    changed = dict(batch, token_ids=batch["token_ids"].copy())
    changed["token_ids"][1, 6] = 7  # a padded position: the logits do not move
    np.testing.assert_allclose(np.asarray(model(changed))[1], np.asarray(model(batch))[1], atol=1e-6)
