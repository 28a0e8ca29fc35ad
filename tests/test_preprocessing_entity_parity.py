"""Entity markers as TF ops tag as the Python tagger did before them.

The oracle is tests/legacy_entity_tagger.py (the Python tagger esci-tf used until entity markers
became esci_tf.preprocessing.entity_ops). Compared on every cleaned real text of the ESCI sample
(queries, titles, bullets, descriptions, brands, colors) with the sample's own gazetteers, on the
formatted pairs of the sample, and on hand-written cases around the rules RE2 has no lookaround
for (word boundaries, "in" before a number, a model number's lookaheads). The us/es/jp demo data
with entity markers: tests/test_preprocessing_text_parity.py (the same oracle).

KNOWN_DIFFERENCES lists every text where the ops' output differs from the oracle's, with the
reason it is the better output; the tests fail on any difference not listed (and on a listed
one that went away, so the list stays true).
"""

import legacy_text_path as legacy
import pandas as pd
import pytest
import tensorflow as tf
from legacy_entity_tagger import CatalogEntityTagger

from esci_tf.preprocessing.cleaning import clean_texts
from esci_tf.preprocessing.entities import catalog_gazetteers
from esci_tf.data.reader import load_esci
from esci_tf.preprocessing.template import TemplateSettings

TEXT_COLUMNS = ("product_title", "product_bullet_point", "product_description", "product_brand", "product_color")

# Texts on which the ops differ from the Python oracle: text -> (ops output, reason). None of the
# sample's real texts: only this hand-written case.
KNOWN_DIFFERENCES = {
    "abcd-1é": ("abcd-1é", "the oracle tags \"[MODEL] abcd [/MODEL]-1é\": its has-a-digit lookahead read "
                "past the code into \"-1é\" (a run with a non-ASCII letter, so no part of any code); "
                "\"abcd\" has no digit, and a model number needs one"),
}

EDGE_BRANDS = ("nike", "under armour", "under", "ソニー", "sony", "lg", "x-men", "3m", "電子lg")
EDGE_COLORS = ("black", "navy blue", "negro", "ブラック", "blue")
EDGE_CASES = [
    "Nike running shoes black size 10", "sony WH-1000XM4 headphones, 2 pack, 10.5 oz, 32GB, XL",
    "Filter A1234 for model GE5010, SO-482, 3-pack, 2-year warranty", "UNDER ARMOUR hoodie Navy Blue",
    "algae nikes blackout 1990s 2nd 4K", "2 in 1 charger in all sizes", "rug 36x24, 10 x 20 cm, 2x-large",
    "zapatillas Nike negro talla 38, 500ml, 2 unidades", "サイズ L の靴", "サイズ10.5", "ソニーブラック電子lg",
    "ソニーのヘッドホンWH-1000XM4ブラック、500ml×24本、2個セット3枚入り", "Nike Nike black black ブラックソニー",
    # "in" before a number is no unit; after "in", the next word may start a size
    "10 in tablet", "10 x 3 in 5", "16.6-21.6in XL: neck", "6in X-Large", "10 in", "10 in,",
    # model numbers: lookaheads past the code, a failed start inside a chain, ordinals, compounds
    "A00- White", "M14- CCW", "ab1- z", "2nd-abc1 x", "2-year-x1y2", "3rd-party", "1990S", "ab1-cdé", "AB12--CD34",
    "abcd-1é", "WH-1000XM4-B", "x-men 3m 10.5 fl. oz 2 fl oz", "Ångström 10ml", "extra large XXL 2XL xx-small",
    "size xl, sizes 10, sz10, tamaño m", "", "単3形 4本パック 1.5V", "10x20x30cm 36 × 24",
]


def _tag(markers, texts):
    tag = tf.function(markers.tag, input_signature=[tf.TensorSpec([None], tf.string)])
    out = []
    for start in range(0, len(texts), 512):
        out += [t.decode() for t in tag(tf.constant(texts[start:start + 512], tf.string)).numpy()]
    return out


def _differences(texts, brands, colors):
    oracle = CatalogEntityTagger(brands, colors)
    expected = [oracle.tag(t, "us") for t in texts]
    actual = _tag(TemplateSettings(entity_markers=True, entity_brands=brands, entity_colors=colors).tagger(), texts)
    return {t: a for t, e, a in zip(texts, expected, actual) if e != a}, actual


def _check(differences):
    unexplained = {t: out for t, out in differences.items() if KNOWN_DIFFERENCES.get(t, (None,))[0] != out}
    assert not unexplained, f"{len(unexplained)} new difference(s), e.g. {list(unexplained.items())[:3]}"


def test_edge_cases_tag_as_before():
    differences, actual = _differences(EDGE_CASES, EDGE_BRANDS, EDGE_COLORS)
    _check(differences)
    assert set(differences) == {t for t in KNOWN_DIFFERENCES if t in EDGE_CASES}
    tagged = dict(zip(EDGE_CASES, actual))
    # Cases that need what RE2 lacks, tagged as the oracle tags them:
    assert tagged["16.6-21.6in XL: neck"] == "16.6-[SIZE] 21.6in [/SIZE] [SIZE] XL [/SIZE]: neck"
    assert tagged["10 x 3 in 5"] == "[SIZE] 10 x 3 [/SIZE] in 5"
    assert tagged["A00- White"] == "[MODEL] A00 [/MODEL]- White"
    assert tagged["2nd-abc1 x"] == "2nd-[MODEL] abc1 [/MODEL] x"
    assert tagged["ソニーブラック電子lg"] == "[BRAND] ソニー [/BRAND][COLOR] ブラック [/COLOR][BRAND] 電子lg [/BRAND]"


@pytest.fixture(scope="module")
def sample(esci_sample_dir):
    frame, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet")
    return esci_sample_dir, frame, catalog_gazetteers(frame)


def test_every_real_text_tags_as_before(sample):
    directory, _, (brands, colors) = sample
    texts = set(pd.read_parquet(directory / "examples.parquet")["query"].dropna())
    products = pd.read_parquet(directory / "products.parquet")
    for column in TEXT_COLUMNS:
        texts |= set(products[column].dropna())
    texts = sorted(set(clean_texts(sorted(texts))) - {""})
    assert len(texts) > 10_000 and len(brands) > 100
    differences, actual = _differences(texts, brands, colors)
    _check(differences)
    listed_real = {t for t in KNOWN_DIFFERENCES if t in set(texts)}
    assert listed_real <= set(differences), "a listed difference no longer occurs: update KNOWN_DIFFERENCES"
    assert sum("[MODEL]" in t for t in actual) > 500 and sum("[SIZE]" in t for t in actual) > 1000


def _pairs_as_before(frame, template):
    oracle = CatalogEntityTagger(template.entity_brands, template.entity_colors)
    expected = legacy.format_pairs(frame, tagger=oracle, field_style=template.field_style,
                                   prompt_tokens=template.prompt_tokens)
    actual = template.format(frame)
    for wanted, got in zip(expected, actual):  # (queries, product texts)
        differences = [(w, g) for w, g in zip(wanted, got) if w != g]
        assert not differences, f"{len(differences)} pair(s) differ, e.g. {differences[:2]}"
    return actual


def test_real_sample_pairs_format_as_before(sample):
    _, frame, (brands, colors) = sample
    frame = frame.drop_duplicates(["query", "product_id"])
    template = TemplateSettings("tokens", 2, True, brands, colors)
    _, products = _pairs_as_before(frame, template)
    assert sum("[BRAND]" in p for p in products) > len(products) // 2

