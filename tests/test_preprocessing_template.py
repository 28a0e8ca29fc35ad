"""esci_tf.preprocessing.template: the paper's (query, product text) input in en/es/ja."""

import re

import pandas as pd
import pytest

from esci_tf.preprocessing.entities import catalog_gazetteers, entity_markers
from esci_tf.errors import DataError
from esci_tf.data.reader import load_esci
from esci_tf.preprocessing.template import format_pairs
from esci_tf.special_tokens import ALL_SPECIAL_TOKENS, FIELD_TOKENS, LANGUAGE_TOKENS, PROMPT_TOKENS


def merged_frame():
    return pd.DataFrame(
        {
            "query": ["nike shoes black", "zapatillas  niño", "黒い靴", "nike shoes black"],
            "product_locale": ["us", "es", "jp", "us"],
            "product_title": ["Nike Air <b>Max</b>", "Zapatillas para niño", "ブラック　スニーカー", "Nike Air <b>Max</b>"],
            "product_bullet_point": ["Light\nBreathable", "", "軽量", "Light\nBreathable"],
            "product_description": ["Great &amp; comfy!!!", "", "", "Great &amp; comfy!!!"],
            "product_brand": ["Nike", "", "ナイキ", "Nike"],
            "product_color": ["Black", "Azul", "", "Black"],
        }
    )


def test_text_fields_in_three_languages():
    queries, products = format_pairs(merged_frame())
    assert queries == ["nike shoes black", "zapatillas niño", "黒い靴", "nike shoes black"]
    assert products[0] == (
        "[L_US] color: Black brand: Nike description: Nike Air Max Light | Breathable Great & comfy!"
    )
    # Empty brand and description parts are left out with their label.
    assert products[1] == "[L_ES] color: Azul description: Zapatillas para niño"
    assert products[2] == "[L_JP] brand: ナイキ description: ブラック スニーカー 軽量"
    assert products[3] == products[0]
    for text, locale in zip(products, merged_frame()["product_locale"]):
        assert text.startswith(LANGUAGE_TOKENS[locale])


def test_field_tokens_and_prompt_tokens():
    _, products = format_pairs(merged_frame(), field_style="tokens", prompt_tokens=3)
    assert products[1] == "[L_ES] [P0] [P1] [P2] [F_COLOR] Azul [F_DESC] Zapatillas para niño"
    assert products[0].startswith(f"[L_US] [P0] [P1] [P2] {FIELD_TOKENS['color']} Black {FIELD_TOKENS['brand']} Nike")
    assert "color:" not in products[0]
    _, products = format_pairs(merged_frame(), prompt_tokens=len(PROMPT_TOKENS))
    assert products[0].startswith("[L_US] " + " ".join(PROMPT_TOKENS) + " color:")


def test_empty_product_keeps_the_language_token():
    df = merged_frame().iloc[[1]].assign(product_title="", product_color=None)
    assert format_pairs(df)[1] == ["[L_ES]"]


def test_tagger_marks_query_and_description_and_wraps_brand_and_color():
    df = merged_frame()
    tagger = entity_markers(brands={"Nike", "ナイキ"}, colors={"BLACK", "ブラック", "azul"})
    queries, products = format_pairs(df, tagger=tagger)
    assert queries[0] == "[BRAND] nike [/BRAND] shoes [COLOR] black [/COLOR]"
    assert products[0] == (
        "[L_US] color: [COLOR] Black [/COLOR] brand: [BRAND] Nike [/BRAND] "
        "description: [BRAND] Nike [/BRAND] Air Max Light | Breathable Great & comfy!"
    )
    assert products[2] == "[L_JP] brand: [BRAND] ナイキ [/BRAND] description: [COLOR] ブラック [/COLOR] スニーカー 軽量"


def test_injected_markers_in_raw_text_are_neutralised():
    df = merged_frame().iloc[[0]].assign(query="[BRAND] evil [/BRAND] [P0]", product_title="[L_JP] [F_DESC] x")
    queries, products = format_pairs(df)
    assert queries == ["(BRAND) evil (/BRAND) (P0)"]
    assert products[0].count("[L_JP]") == 0 and products[0].count("[F_DESC]") == 0


def test_bad_arguments_and_frames():
    with pytest.raises(ValueError, match="field_style"):
        format_pairs(merged_frame(), field_style="json")
    with pytest.raises(ValueError, match="prompt_tokens"):
        format_pairs(merged_frame(), prompt_tokens=len(PROMPT_TOKENS) + 1)
    with pytest.raises(DataError, match="lacks column.*product_color"):
        format_pairs(merged_frame().drop(columns=["product_color"]))
    with pytest.raises(DataError, match=r"unknown product_locale 'fr' at frame row\(s\) 2"):
        format_pairs(merged_frame().assign(product_locale=["us", "es", "fr", "us"]))
    assert format_pairs(merged_frame().iloc[:0]) == ([], [])


def test_real_sample_pairs(esci_sample_dir):
    df, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet")
    df = df.head(600)
    tagger = entity_markers(*catalog_gazetteers(df))
    queries, products = format_pairs(df, tagger=tagger, field_style="tokens", prompt_tokens=2)
    assert len(queries) == len(products) == 600
    assert all(q for q in queries) and all(p.startswith("[L_US] [P0] [P1] [F_") for p in products)
    assert not any("<" in p or "&amp;" in p for p in products)
    assert sum("[BRAND]" in p for p in products) > 300
    # Every bracketed token left in the text is one of ours.
    assert set(re.findall(r"\[/?[A-Z_0-9]+\]", " ".join(products))) <= set(ALL_SPECIAL_TOKENS)


def test_long_fields_are_bounded_at_a_word():
    df = merged_frame().iloc[[0]].assign(product_description="word " * 2000, product_bullet_point="")
    _, products = format_pairs(df, max_field_chars=100)
    description = products[0].split("description: ", 1)[1]
    assert len(description) <= 100 and description.endswith("word") and description.startswith("Nike Air Max")
    _, products = format_pairs(df, max_field_chars=None)
    assert products[0].count("word") == 2000
