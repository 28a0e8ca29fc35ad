"""PairPreprocessor: atomic special tokens, packing layouts, truncation, shapes, config."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from esci_tf.errors import DataError
from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
from esci_tf.models.bert.tokenizer import HFBertTokenizer
from esci_tf.special_tokens import ALL_SPECIAL_TOKENS, special_token_id
from tests import preprocessing_fixtures

BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "blue", "nike", "shoe", "##s",
              "running", "size", "10", ",", "case", "for", "phone", "cafe", "creme"]
LONG_PRODUCT = " ".join(["red running shoes size 10"] * 20)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """One small tokenizer per backbone kind."""
    root = tmp_path_factory.mktemp("spm")
    result = {
        "bert": HFBertTokenizer(vocabulary=BERT_VOCAB, lowercase=True),
        "xlm_roberta": load_tokenizer("xlm_roberta"),
    }
    for kind in ("deberta_v3", "rembert"):
        result[kind] = load_tokenizer(kind, preprocessing_fixtures.write_spm_dir(kind, str(root / kind)))
    return result


BACKBONES = ("bert", "xlm_roberta", "deberta_v3", "rembert")
MAX_LENGTH = 32


@pytest.fixture(scope="module")
def preprocessors(tokenizers):
    """One PairPreprocessor per backbone, shared so that each is traced once."""
    return {b: PairPreprocessor(tokenizers[b], b, max_length=MAX_LENGTH) for b in BACKBONES}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_special_tokens_are_atomic_with_their_ids(backbone, tokenizers, preprocessors):
    tokenizer = tokenizers[backbone]
    preprocessor = preprocessors[backbone]
    base = tokenizer.vocabulary_size()
    # Every special token, glued to words and to each other, must come out whole.
    text = "red" + "nike".join(ALL_SPECIAL_TOKENS) + "shoe [L_US][P7] blue"
    ids = preprocessor.tokenize([text]).to_list()[0]
    specials = [i for i in ids if i >= base]
    expected = [special_token_id(t, base) for t in ALL_SPECIAL_TOKENS] + [special_token_id("[L_US]", base),
                                                                          special_token_id("[P7]", base)]
    assert specials == expected
    assert preprocessor.vocabulary_size == base + len(ALL_SPECIAL_TOKENS)
    assert max(ids) < preprocessor.vocabulary_size
    # Words around the markers are tokenized as without them.
    plain = preprocessor.tokenize(["red shoe"]).to_list()[0]
    marked = preprocessor.tokenize(["[BRAND] red [/BRAND] shoe"]).to_list()[0]
    assert [i for i in marked if i < base] == plain


def test_bert_layout_and_segments(preprocessors):
    features = preprocessors["bert"]((["red shoe"], ["[L_US] blue nike"]))
    vocab = {t: i for i, t in enumerate(BERT_VOCAB)}
    l_us = special_token_id("[L_US]", len(BERT_VOCAB))
    expected = [vocab["[CLS]"], vocab["red"], vocab["shoe"], vocab["[SEP]"], l_us, vocab["blue"], vocab["nike"],
                vocab["[SEP]"]]
    padding = MAX_LENGTH - len(expected)
    np.testing.assert_array_equal(features["token_ids"][0], expected + [vocab["[PAD]"]] * padding)
    np.testing.assert_array_equal(features["segment_ids"][0], [0, 0, 0, 0, 1, 1, 1, 1] + [0] * padding)
    np.testing.assert_array_equal(features["padding_mask"][0], [1] * 8 + [0] * padding)


def test_xlm_roberta_layout(tokenizers, preprocessors):
    tokenizer = tokenizers["xlm_roberta"]
    preprocessor = preprocessors["xlm_roberta"]
    features = preprocessor(["cafetera negro"], ["[L_ES] cafetera Zentro"])
    token_ids = features["token_ids"].numpy()[0]
    query = preprocessor.tokenize(["cafetera negro"]).to_list()[0]
    product = preprocessor.tokenize(["[L_ES] cafetera Zentro"]).to_list()[0]
    expected = [0] + query + [2, 2] + product + [2]  # <s> A </s></s> B </s>
    assert tokenizer.start_token_id == 0 and tokenizer.end_token_id == 2 and tokenizer.pad_token_id == 1
    np.testing.assert_array_equal(token_ids[: len(expected)], expected)
    assert (token_ids[len(expected):] == 1).all()
    assert (features["segment_ids"].numpy() == 0).all()  # XLM-R has one token type
    np.testing.assert_array_equal(features["padding_mask"].numpy()[0], [1] * len(expected) + [0] * (MAX_LENGTH - len(expected)))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_truncation_keeps_the_query_whole(backbone, preprocessors):
    preprocessor = preprocessors[backbone]
    query = "red shoe size 10"
    query_ids = preprocessor.tokenize([query]).to_list()[0]
    features, overflow = preprocessor.encode_with_overflow([query, "red"], [LONG_PRODUCT, "blue"])
    token_ids = features["token_ids"].numpy()
    assert token_ids[0, 1: 1 + len(query_ids)].tolist() == query_ids
    assert features["padding_mask"].numpy()[0].all()  # the product filled the rest
    total = len(query_ids) + len(preprocessor.tokenize([LONG_PRODUCT]).to_list()[0]) + preprocessor.num_added_tokens
    assert overflow.numpy().tolist() == [total - MAX_LENGTH, 0]
    # A query longer than max_length alone is cut to fit; the product then gets nothing.
    features, _ = preprocessor.encode_with_overflow([LONG_PRODUCT], ["blue"])
    assert features["padding_mask"].numpy().all()


def test_static_shapes_in_tf_data_and_tf_function(preprocessors):
    preprocessor = preprocessors["xlm_roberta"]
    dataset = tf.data.Dataset.from_tensor_slices((["a b", "c", "d"], ["[L_US] e", "f", "g"])).batch(2)
    dataset = dataset.map(lambda q, p: preprocessor((q, p)))
    for key, spec in dataset.element_spec.items():
        assert spec.shape.as_list() == [None, 32] and spec.dtype == tf.int32, key
    batches = list(dataset)
    assert [b["token_ids"].shape[0] for b in batches] == [2, 1]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def serve(queries, products):
        return preprocessor(queries, products)

    concrete = serve.get_concrete_function()
    for key, spec in concrete.structured_outputs.items():
        assert spec.shape.as_list() == [None, 32], key
    eager = preprocessor(["a b"], ["[L_US] e"])
    np.testing.assert_array_equal(serve(tf.constant(["a b"]), tf.constant(["[L_US] e"]))["token_ids"],
                                  eager["token_ids"])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_config_round_trip(backbone, preprocessors):
    preprocessor = preprocessors[backbone]
    config = preprocessor.get_config()
    json.dumps(config)  # plain JSON, vocabulary inlined
    restored = PairPreprocessor.from_config(config)
    assert restored.vocabulary_size == preprocessor.vocabulary_size
    queries, products = ["red shoe [P0]", "phone case"], ["[L_JP] blue nike shoes", LONG_PRODUCT]
    for key, value in preprocessor(queries, products).items():
        np.testing.assert_array_equal(restored(queries, products)[key], value, err_msg=key)


def test_keras_serialization_of_registered_classes(preprocessors):
    preprocessor = preprocessors["rembert"]  # PairPreprocessor and RemBertTokenizer are ours
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(preprocessor))
    queries, products = ["red shoe"], ["[L_ES] blue"]
    np.testing.assert_array_equal(again(queries, products)["token_ids"], preprocessor(queries, products)["token_ids"])


def test_encode_in_batches_batches_and_counts_truncation(preprocessors):
    preprocessor = preprocessors["bert"]
    queries = ["red shoe"] * 5
    products = ["blue", LONG_PRODUCT, "nike", LONG_PRODUCT, "phone case"]
    features, tokens_cut = preprocessor.encode_in_batches(queries, products, batch_size=2)
    num_truncated = int(np.count_nonzero(tokens_cut))
    assert num_truncated == 2
    whole = preprocessor(queries, products)
    for key in ("token_ids", "segment_ids", "padding_mask"):
        assert features[key].dtype == np.int32 and features[key].shape == (5, MAX_LENGTH)
        np.testing.assert_array_equal(features[key], whole[key])
    empty, tokens_cut = preprocessor.encode_in_batches([], [])
    none_cut = int(np.count_nonzero(tokens_cut))
    assert empty["token_ids"].shape == (0, MAX_LENGTH) and none_cut == 0


def test_bad_input_errors(tokenizers, preprocessors):
    preprocessor = preprocessors["bert"]
    with pytest.raises(DataError, match="row 1"):
        preprocessor.encode_in_batches(["a", None], ["b", "c"])
    with pytest.raises(DataError, match="2 queries but 1 product"):
        preprocessor.encode_in_batches(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="unknown backbone"):
        PairPreprocessor(tokenizers["bert"], "roberta")
    with pytest.raises(ValueError, match="max_length"):
        PairPreprocessor(tokenizers["bert"], "bert", max_length=2)
    with pytest.raises(ValueError, match="vector"):
        preprocessor(tf.constant([["a", "b"]]), tf.constant([["c", "d"]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="as many queries"):
        preprocessor(["a", "b"], ["c"])


SEPARATOR_PIECES = {"bert": "[SEP]", "xlm_roberta": "</s>", "deberta_v3": "[SEP]", "rembert": "[SEP]"}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_separator_id_is_read_from_the_tokenizer(backbone, tokenizers, preprocessors):
    tokenizer, preprocessor = tokenizers[backbone], preprocessors[backbone]
    separator = preprocessor.separator_token_id
    assert tokenizer.get_vocabulary()[separator] == SEPARATOR_PIECES[backbone]
    assert separator == (tokenizer.end_token_id if backbone == "xlm_roberta" else tokenizer.sep_token_id)
    query = preprocessor.tokenize(["red shoe"]).to_list()[0]
    token_ids = preprocessor(["red shoe"], ["blue"])["token_ids"].numpy()[0]
    assert token_ids[1 + len(query)] == separator  # the query ends at the separator


def test_cross_encoder_finds_the_query_by_the_preprocessors_separator(preprocessors):
    from esci_tf.models import build_cross_encoder

    preprocessor = preprocessors["xlm_roberta"]
    vocabulary_size = preprocessor.base_vocabulary_size
    config = dict(vocabulary_size=vocabulary_size, num_layers=1, num_heads=2, hidden_dim=16,
                  intermediate_dim=32, max_sequence_length=MAX_LENGTH + 2)
    model = build_cross_encoder("xlm_roberta", backbone_config=config, cross_attention=True,
                                tokenizer_vocabulary_size=vocabulary_size,
                                separator_token_id=preprocessor.separator_token_id)
    features = {k: v.numpy() for k, v in preprocessor(["red shoe"], ["[L_US] blue nike"]).items()}
    query, product = (np.asarray(m)[0] for m in model._query_product_masks(features))
    num_query = len(preprocessor.tokenize(["red shoe"]).to_list()[0])
    num_product = len(preprocessor.tokenize(["[L_US] blue nike"]).to_list()[0])
    assert np.flatnonzero(query).tolist() == list(range(1, 1 + num_query))
    # <s> A </s></s> B </s>: B starts after both separators.
    start = 1 + num_query + 2
    assert np.flatnonzero(product).tolist() == list(range(start, start + num_product))
    with pytest.raises(ValueError, match="pass separator_token_id=preprocessor.separator_token_id"):
        build_cross_encoder("xlm_roberta", backbone_config=config, cross_attention=True)


@pytest.mark.parametrize("backbone, old_module", [
    ("bert", "esci_tf.preprocessing.bert_tokenizer"),
    ("rembert", "esci_tf.preprocessing.rembert_tokenizer"),
])
def test_configs_saved_before_the_family_folders_still_load(backbone, old_module, preprocessors):
    preprocessor = preprocessors[backbone]
    config = json.loads(json.dumps(preprocessor.get_config()))
    config["tokenizer"]["module"] = old_module  # where the class lived when it was saved
    restored = PairPreprocessor.from_config(config)
    queries, products = ["red shoe"], ["[L_ES] blue nike"]
    np.testing.assert_array_equal(restored(queries, products)["token_ids"],
                                  preprocessor(queries, products)["token_ids"])


@pytest.mark.parametrize("backbone", ["xlm_roberta", "deberta_v3"])  # the SentencePiece families' tokenizers
def test_made_before_a_seed_is_set_still_encodes_and_equal_ones_share_one_graph(backbone, tokenizers):
    # tf.random.set_seed clears TensorFlow's eager kernel caches, which took tensorflow-text's
    # kernel-owned SentencePiece model with them ("Resource ..._SentencepieceOp... does not exist").
    # A tokenizer of its own (deserialized from the config), used before the seed is set.
    first = PairPreprocessor.from_config(PairPreprocessor(tokenizers[backbone], backbone, max_length=20).get_config())
    pairs = (["red shoes [SEP] x"], [LONG_PRODUCT])
    expected = first.encode_with_overflow(*pairs)[0]["token_ids"].numpy()
    expected_pieces = first.tokenize(["red shoes"]).to_list()
    tf.random.set_seed(3)
    second = PairPreprocessor.from_config(first.get_config())
    for preprocessor in (first, second):
        np.testing.assert_array_equal(preprocessor.encode_with_overflow(*pairs)[0]["token_ids"].numpy(), expected)
        assert preprocessor.tokenize(["red shoes"]).to_list() == expected_pieces
    # One traced graph per tokenizer and settings in the process: equal configs share it.
    assert second.fingerprint() == first.fingerprint()
    assert second._traced("encode") is first._traced("encode")
    assert PairPreprocessor(first.tokenizer, backbone, max_length=21).fingerprint() != first.fingerprint()
