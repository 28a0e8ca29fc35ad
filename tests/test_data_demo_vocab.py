"""The shipped demo SentencePiece vocabulary and its deterministic retraining."""

import os

import keras_hub
import numpy as np
import sentencepiece as spm
import tensorflow as tf

from esci_tf.data import demo_vocab
from esci_tf.data.synthetic import generate_esci
from esci_tf.preprocessing import load_tokenizer


def test_shipped_model_is_small_with_xlmr_control_pieces():
    assert os.path.getsize(demo_vocab.DEMO_SPM_PATH) < 1024 * 1024
    processor = spm.SentencePieceProcessor(model_file=demo_vocab.DEMO_SPM_PATH)
    assert [processor.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert processor.pad_id() == -1
    assert 500 <= processor.vocab_size() <= 2000


def test_loads_with_xlm_roberta_tokenizer_and_covers_es_jp():
    with open(demo_vocab.DEMO_SPM_PATH, "rb") as f:
        tokenizer = keras_hub.models.XLMRobertaTokenizer(proto=f.read())
    assert type(load_tokenizer("xlm_roberta")) is keras_hub.models.XLMRobertaTokenizer
    examples, products = generate_esci(60, seed=99)  # not the seed the vocab was trained on
    tokenize = tf.function(lambda x: tokenizer(x), input_signature=[tf.TensorSpec([None], tf.string)])
    for locale in ("es", "jp", "us"):
        texts = list(examples.loc[examples.product_locale == locale, "query"].unique())
        texts += list(products.loc[products.product_locale == locale, "product_title"])
        ids = tokenize(tf.constant(texts)).flat_values.numpy()
        unk_rate = float(np.mean(ids == tokenizer.unk_token_id))
        assert unk_rate < 0.01, (locale, unk_rate)
        # Words are not shredded into single characters.
        assert len(ids) < 0.5 * sum(len(t) for t in texts), locale


def test_retraining_is_deterministic():
    corpus = demo_vocab.build_corpus(num_queries=30, seed=5)
    assert corpus == demo_vocab.build_corpus(num_queries=30, seed=5)
    assert not any("[L_" in line for line in corpus)  # special tokens never reach SentencePiece
    first = demo_vocab.train_spm(corpus, vocab_size=400)
    assert first == demo_vocab.train_spm(corpus, vocab_size=400)
    processor = spm.SentencePieceProcessor(model_proto=first)
    assert processor.id_to_piece(0) == "<unk>" and processor.id_to_piece(1) == "<s>"
