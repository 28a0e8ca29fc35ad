"""FrameEncoder: the template then the PairPreprocessor, and preprocessing.json round trips."""

import numpy as np
import pytest

from esci_tf.data.reader import load_esci
from esci_tf.data.synthetic import write_esci_files
from esci_tf.preprocessing.template import TemplateSettings, format_pairs
from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
from esci_tf.preprocessing.frame_encoder import FrameEncoder


@pytest.fixture(scope="module")
def frame_and_products(tmp_path_factory):
    import pandas as pd

    paths = write_esci_files(6, 1, str(tmp_path_factory.mktemp("files")))
    merged, _ = load_esci(*paths, task="all")
    return merged, pd.read_parquet(paths[1])


def test_encode_is_template_then_preprocessor_and_round_trips(frame_and_products, tmp_path):
    frame, products = frame_and_products
    preprocessor = PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", 32)
    template = TemplateSettings.for_catalog(products, field_style="tokens", entity_markers=True)
    encoder = FrameEncoder(preprocessor, template)
    features, tokens_cut = encoder.encode(frame)
    queries, texts = format_pairs(frame, tagger=template.tagger(), field_style="tokens")
    expected = preprocessor(queries, texts)
    for key, value in expected.items():
        np.testing.assert_array_equal(features[key], value.numpy(), err_msg=key)
    assert tokens_cut.shape == (len(frame),)
    encoder.save(str(tmp_path))
    loaded = FrameEncoder.load(str(tmp_path))
    assert loaded.template == template and loaded.max_length == 32
    np.testing.assert_array_equal(loaded.features(frame)["token_ids"], features["token_ids"])
    empty, cut = encoder.encode(frame.iloc[:0])
    assert empty["token_ids"].shape == (0, 32) and cut.shape == (0,)


def test_missing_preprocessing_names_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match="--model_dir must be the --output_dir"):
        FrameEncoder.load(str(tmp_path))
