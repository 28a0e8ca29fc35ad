"""CrossEncoder with a preprocessor: predict from raw string fields, outputs placed by example id."""

import keras
import numpy as np
import pytest

from esci_tf.models import CrossEncoder, build_cross_encoder
from esci_tf.preprocessing.fields_preprocessor import FieldsPreprocessor
from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
from esci_tf.preprocessing.tokenizer_loader import load_tokenizer

RAW = {
    "query": ["<b>red</b> shoes 🎧", "zapatillas rojas", "赤い 靴", "", "tv"],
    "product_locale": ["us", "es", "jp", "us", "us"],
    "product_title": ["Running shoe", "Zapatilla &amp; más", "ランニングシューズ", "Mug", ""],
    "product_brand": ["Acme", "", "アクメ", "", "Vizio"],
    "product_description": ["<p>light</p>", "", "", "x" * 5000, ""],
}


@pytest.fixture(scope="module")
def model():
    pair = PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", max_length=24)
    preprocessor = FieldsPreprocessor(pair)
    config = dict(vocabulary_size=pair.base_vocabulary_size, num_layers=2, num_heads=2, hidden_dim=32,
                  intermediate_dim=64, max_sequence_length=24)
    return build_cross_encoder("xlm_roberta", backbone_config=config, tokenizer_vocabulary_size=pair.base_vocabulary_size,
                               separator_token_id=pair.separator_token_id, preprocessor=preprocessor)


def test_predict_takes_raw_fields_and_equals_the_token_path(model):
    expected = keras.ops.convert_to_numpy(model(model.preprocessor(RAW), training=False))
    np.testing.assert_allclose(model.predict(RAW, batch_size=2, verbose=0), expected, atol=1e-5)


def test_outputs_carry_example_ids(model):
    ids = np.array([40, 30, 20, 10, 0])
    out = model.predict({**RAW, "example_id": ids}, batch_size=2, verbose=0)
    assert sorted(out) == ["example_id", "logits"]
    np.testing.assert_array_equal(out["example_id"], ids)
    # Reversed rows with their ids: the same logits land on the same ids.
    reversed_rows = {k: v[::-1] for k, v in RAW.items()}
    again = model.predict({**reversed_rows, "example_id": ids[::-1]}, batch_size=3, verbose=0)
    by_id = dict(zip(out["example_id"].tolist(), out["logits"]))
    for example_id, logits in zip(again["example_id"].tolist(), again["logits"]):
        np.testing.assert_allclose(logits, by_id[example_id], atol=1e-5)


def test_preprocessor_is_saved_with_the_model(model, tmp_path):
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, CrossEncoder) and isinstance(reloaded.preprocessor, FieldsPreprocessor)
    np.testing.assert_allclose(reloaded.predict(RAW, verbose=0), model.predict(RAW, verbose=0), atol=1e-5)
