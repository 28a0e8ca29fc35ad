"""The cleaning and template as TF ops give what the Python text path gave before them.

The oracle is tests/legacy_text_path.py (the Python cleaning and template esci-tf used until
they became esci_tf.preprocessing.clean_ops / template_ops). Compared on every real text of the
ESCI sample (queries, titles, bullets, descriptions, brands, colors), the us/es/jp demo data and
hand-written edge cases, as cleaned text and as the token ids the model reads.

KNOWN_DIFFERENCES lists every input where the graph's output differs from the oracle's, with
the reason it is the better output; the tests fail on any difference not listed (and on a
listed one that went away, so the list stays true).
"""

import legacy_text_path as legacy
import numpy as np
import pandas as pd
import pytest

from esci_tf.preprocessing.cleaning import clean_texts
from esci_tf.data.reader import load_esci
from esci_tf.data.synthetic import generate_esci
from esci_tf.preprocessing.template import TemplateSettings, format_pairs
from esci_tf.preprocessing.fields_preprocessor import RAW_FIELDS, FieldsPreprocessor
from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
from esci_tf.preprocessing.tokenizer_loader import load_tokenizer

TEXT_COLUMNS = ("query", "product_title", "product_bullet_point", "product_description", "product_brand",
                "product_color")

# Inputs on which the graph differs from the Python oracle: input -> (graph output, reason).
# None so far: every real text of the sample and every edge case below cleans the same.
KNOWN_DIFFERENCES = {}

EDGE_CASES = [
    "🎧🎧", "<b>headphones</b>", "AT&T &amp co", "a&ampfoo", "R&D&nothing", "this&notes", "&#x2764;&#65;&#128;&#0;",
    "&#000000065;&#x000041;&#99999999999;&#xD800;&#x110000;&#1;", "x &lt;li&gt;item&lt;/li&gt; y",
    "&amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt;", "!!!???...", "ＡＢＣ　１２３", "ﾃﾚﾋﾞ ｶﾞｲﾄﾞ", "１/２ ½ ⁄", " e\u0301 a\u0300",
    "a <br/> b<br>c</p>d", "<script>var x = '<b>';</script>shown<style>p {}</style>", "<!-- note --> kept",
    "<a href=\"x>y\">link</a>", "2 < 3 > 1", "[BRAND] nike [l_us] [/size]", "&nbsp;|| a ||b|", "1\ufe0f\u20e3 keycap",
    "👨‍👩‍👧 family 🇯🇵 flag", "line1\r\n\r\nline2\u2028x\x0by\x85z", "tab\there\x00nul\u200bzw\ufeffbom",
    "★★★ 5 stars ✔ ➜ → ■ ♥", "25°C 100% ©®™", "niño canción pingüino", "日本語のテキスト、全角！！", "", "   ",
    "<title>hidden</title>after", "<li>one<li>two", "emoji 😀 mid 😀😀 end",
]


def python_tagger(template):
    """The Python entity tagger of a template's gazetteers (tests/legacy_entity_tagger.py), or None."""
    from legacy_entity_tagger import CatalogEntityTagger

    return CatalogEntityTagger(template.entity_brands, template.entity_colors) if template.entity_markers else None


def _oracle_and_graph(texts):
    return [legacy.clean_text(t) for t in texts], clean_texts(texts)


def _differences(texts, expected, actual):
    return {t: a for t, e, a in zip(texts, expected, actual) if e != a}


def _check(differences):
    unexplained = {t: out for t, out in differences.items() if t not in KNOWN_DIFFERENCES}
    assert not unexplained, f"{len(unexplained)} new difference(s), e.g. {list(unexplained.items())[:3]}"


def test_edge_cases_clean_as_before():
    expected, actual = _oracle_and_graph(EDGE_CASES)
    _check(_differences(EDGE_CASES, expected, actual))
    assert actual[0] == "" and actual[1] == "headphones"  # the two queries


def test_every_real_text_cleans_as_before(esci_sample_dir):
    examples = pd.read_parquet(esci_sample_dir / "examples.parquet")
    products = pd.read_parquet(esci_sample_dir / "products.parquet")
    texts = set(examples["query"].dropna())
    for column in TEXT_COLUMNS[1:]:
        texts |= set(products[column].dropna())
    texts = sorted(texts)
    assert len(texts) > 10_000
    expected, actual = _oracle_and_graph(texts)
    differences = _differences(texts, expected, actual)
    _check(differences)
    listed_real = {t for t in KNOWN_DIFFERENCES if t in set(texts)}
    assert listed_real <= set(differences), "a listed difference no longer occurs: update KNOWN_DIFFERENCES"


def _demo_frame():
    examples, products = generate_esci(num_queries=60, seed=3)
    frame = examples.merge(products, on=["product_id", "product_locale"], how="left")
    for column in RAW_FIELDS:
        frame[column] = frame[column].fillna("")
    assert set(frame["product_locale"]) == {"us", "es", "jp"}
    return frame


@pytest.fixture(scope="module")
def pair_preprocessor():
    return PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", max_length=128)


def _token_ids(frame, template, pair_preprocessor):
    """(oracle ids, graph ids): the legacy Python template + PairPreprocessor, and the FieldsPreprocessor."""
    queries, products = legacy.format_pairs(frame, tagger=python_tagger(template), field_style=template.field_style,
                                            prompt_tokens=template.prompt_tokens)
    oracle = pair_preprocessor(queries, products)["token_ids"].numpy()
    layer = FieldsPreprocessor(pair_preprocessor, template)
    graph = []
    for start in range(0, len(frame), 1024):
        rows = frame.iloc[start:start + 1024]
        graph.append(layer({name: rows[name].tolist() for name in RAW_FIELDS})["token_ids"].numpy())
    return oracle, np.concatenate(graph)


@pytest.mark.parametrize("template", [TemplateSettings(), TemplateSettings("tokens", prompt_tokens=3)],
                         ids=["text", "tokens+prompts"])
def test_demo_data_tokenizes_as_before(template, pair_preprocessor):
    frame = _demo_frame()
    oracle, graph = _token_ids(frame, template, pair_preprocessor)
    np.testing.assert_array_equal(graph, oracle)
    assert format_pairs(frame, field_style=template.field_style, prompt_tokens=template.prompt_tokens) == \
        legacy.format_pairs(frame, field_style=template.field_style, prompt_tokens=template.prompt_tokens)


def test_demo_data_with_entity_markers_formats_as_before():
    frame = _demo_frame()
    template = TemplateSettings.for_catalog(frame, "tokens", 2, entity_markers=True)
    assert template.entity_brands
    expected = legacy.format_pairs(frame, tagger=python_tagger(template), field_style="tokens", prompt_tokens=2)
    assert template.format(frame) == expected
    assert any("[BRAND]" in p for p in expected[1]) and any("[MODEL]" in p for p in expected[1])


def test_real_sample_tokenizes_as_before(esci_sample_dir, pair_preprocessor):
    frame, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet")
    oracle, graph = _token_ids(frame, TemplateSettings(), pair_preprocessor)
    assert len(graph) == len(frame) > 5000
    np.testing.assert_array_equal(graph, oracle)


def test_the_code_point_table_skips_only_unassigned_and_private_planes():
    from esci_tf.preprocessing.clean_ops import code_point_table

    fast, full = code_point_table(), code_point_table(full_scan=True)
    np.testing.assert_array_equal(fast[0], full[0])
    np.testing.assert_array_equal(fast[1], full[1])
