"""SavedModel export: the served signatures give the same scores as the Keras model."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from esci_tf.data.synthetic import generate_esci
from esci_tf.data.reader import load_esci
from esci_tf.data.template import format_pairs
from esci_tf.labels import GAINS
from esci_tf.models import build_cross_encoder
from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
from esci_tf.serving import ScoringModule, export_saved_model
from esci_tf.serving.export import TEMPLATE_ASSET

pytestmark = pytest.mark.slow  # exports and reloads SavedModels

TINY = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}


def _pairs(tmp_path, n=12):
    examples, products = generate_esci(num_queries=4, seed=3)
    examples.to_parquet(tmp_path / "e.parquet")
    products.to_parquet(tmp_path / "p.parquet")
    frame, _ = load_esci(tmp_path / "e.parquet", tmp_path / "p.parquet", task="all")
    queries, texts = format_pairs(frame.head(n))
    return queries, texts


def _tiny_model(max_length, **heads):
    """A random tiny xlm_roberta CrossEncoder on the demo vocabulary, and its preprocessor."""
    preprocessor = PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", max_length)
    model = build_cross_encoder(
        "xlm_roberta",
        backbone_config={**TINY, "vocabulary_size": preprocessor.base_vocabulary_size,
                         "max_sequence_length": 2 * max_length},
        tokenizer_vocabulary_size=preprocessor.base_vocabulary_size,
        separator_token_id=preprocessor.separator_token_id,
        **heads,
    )
    return model, preprocessor


def test_exported_signatures_match_the_keras_model(tmp_path):
    model, preprocessor = _tiny_model(32, cross_attention=True)
    queries, texts = _pairs(tmp_path)
    features = preprocessor(tf.constant(queries), tf.constant(texts))
    expected_logits = model(features, training=False).numpy()
    expected_probs = tf.nn.softmax(expected_logits).numpy()

    export_dir = str(tmp_path / "export")
    export_saved_model(ScoringModule(model, preprocessor), export_dir,
                       template={"field_style": "text", "entity_markers": False})
    with open(os.path.join(export_dir, TEMPLATE_ASSET)) as f:
        assert json.load(f)["field_style"] == "text"

    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["serving_default"](
        query=tf.constant(queries), product_text=tf.constant(texts))
    np.testing.assert_allclose(served["logits"].numpy(), expected_logits, atol=1e-5)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected_probs, atol=1e-5)
    np.testing.assert_allclose(served["score"].numpy(), expected_probs @ GAINS, atol=1e-5)

    by_tokens = loaded.signatures["score_tokens"](
        **{k: tf.constant(v) for k, v in features.items()})
    np.testing.assert_allclose(by_tokens["score"].numpy(), served["score"].numpy(), atol=1e-6)


def test_export_command_on_a_run_directory(tmp_path):
    from esci_tf.data.template import TemplateSettings
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from esci_tf.training import checkpointing
    from trainers.export import export

    model, preprocessor = _tiny_model(24)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    FrameEncoder(preprocessor, TemplateSettings(field_style="text", prompt_tokens=0)).save(str(run_dir))
    checkpointing.keep_if_best(model, str(run_dir), ndcg=0.5, step=1)

    export_dir = export(str(run_dir), str(tmp_path / "export" / "1"))
    served = tf.saved_model.load(export_dir).signatures["serving_default"]
    out = served(query=tf.constant(["red shoes"]), product_text=tf.constant(["[L_US] shoes"]))
    assert out["probabilities"].shape == (1, 4)
    features = preprocessor(tf.constant(["red shoes"]), tf.constant(["[L_US] shoes"]))
    np.testing.assert_allclose(out["logits"].numpy(), model(features).numpy(), atol=1e-5)
