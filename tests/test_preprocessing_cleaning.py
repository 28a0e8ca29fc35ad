"""esci_tf.preprocessing.cleaning: HTML, emoji, control characters, symbols, NFKC, special-token injection."""

import math
import re
import unicodedata

import pytest

from esci_tf.preprocessing.cleaning import clean_text, clean_texts, normalize_key
from esci_tf.preprocessing.clean_ops import SEPARATOR
from esci_tf.data.reader import load_esci
from esci_tf.special_tokens import ALL_SPECIAL_TOKENS

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\ufeff]")


@pytest.mark.parametrize("missing", [None, float("nan"), math.nan])
def test_missing_is_empty(missing):
    assert clean_text(missing) == ""


def test_html_tags_entities_and_block_separators():
    assert clean_text("<p>Soft <b>cotton</b> shirt</p><ul><li>Machine wash</li><li>Size M</li></ul>") == (
        "Soft cotton shirt | Machine wash | Size M"
    )
    assert clean_text("line one<br>line two<br/><br />line three") == "line one | line two | line three"
    assert clean_text("Tom &amp; Jerry &quot;box&quot; 5&#8221; &eacute;") == 'Tom & Jerry "box" 5” é'
    assert clean_text("<script>var x = 1;</script><style>p {}</style>Visible") == "Visible"


def test_double_escaped_html_from_the_catalogue():
    raw = "<p>&lt;ul&gt;&lt;li&gt;Queen bed&lt;/li&gt;&lt;li&gt;Two 25&amp;ldquo; units&lt;/li&gt;</p>"
    assert clean_text(raw) == "Queen bed | Two 25“ units"


def test_stray_angle_brackets_are_not_kept():
    assert clean_text("Impedance:<200Ω, ratio 3 > 2, ＜full＞") == "Impedance: 200Ω, ratio 3 2, full"


def test_emoji_controls_and_decorative_symbols():
    assert clean_text("Great 👍🏽 gift ❤️ for mom 👨‍👩‍👧 1️⃣") == "Great gift for mom"
    assert clean_text("●Sharp ★★★ blade ►fast ✔ tested • safe") == "Sharp blade fast tested safe"
    assert clean_text("a\x00b\x07c\u200bd\ufeff\te\r\nf") == "a b cd e | f"
    assert clean_text("Nike™ Air®") == "Nike Air"
    assert clean_text("Heat to 350°F") == "Heat to 350°F"


def test_repeated_punctuation_and_whitespace():
    assert clean_text("WOW!!!!   best    price....  ---  ok???") == "WOW! best price. - ok?"
    assert clean_text("  \n\n  ") == ""
    assert clean_text("a\n\n\nb |  | c") == f"a{SEPARATOR}b{SEPARATOR}c"


def test_spanish_text_is_kept():
    assert clean_text("¡Zapatillas para niño, tamaño pequeño! Envío rápido… ¿Qué más?") == (
        "¡Zapatillas para niño, tamaño pequeño! Envío rápido. ¿Qué más?"
    )
    decomposed = unicodedata.normalize("NFD", "año acción")
    assert clean_text(decomposed) == "año acción"


def test_japanese_text_is_kept_and_nfkc_normalised():
    assert clean_text("【送料無料】ソニー　ヘッドホン「ＷＨ－１０００ＸＭ４」ﾌﾞﾗｯｸ 500ｍｌ") == (
        "【送料無料】ソニー ヘッドホン「WH-1000XM4」ブラック 500ml"
    )
    assert clean_text("約2個入り。※注意") == "約2個入り。 注意"
    assert clean_text("①②③ ½") == "123 1/2"


def test_special_token_strings_are_neutralised():
    text = clean_text("best [BRAND] ever [/brand] [L_US] ［P0］ [[F_DESC]] " + " ".join(ALL_SPECIAL_TOKENS))
    for token in ALL_SPECIAL_TOKENS:
        assert token not in text and token.lower() not in text.lower()
    assert text.startswith("best (BRAND) ever (/brand) (L_US) (P0) (F_DESC)")
    # A zero-width space cannot smuggle one in either.
    assert "[BRAND]" not in clean_text("[BR\u200bAND]")


def test_normalize_key():
    assert normalize_key("  Nike   AIR\tMax ") == "nike air max"
    assert normalize_key("ＮＩＫＥ") == "nike"
    assert normalize_key(None) == ""


def test_real_descriptions(esci_sample_dir):
    df, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet")
    products = df.drop_duplicates("product_id")
    raw = (products["product_title"] + "\n" + products["product_bullet_point"] + "\n"
           + products["product_description"]).tolist()
    raw = raw[:3000]
    cleaned = clean_texts(raw)
    for before, after in zip(raw, cleaned):
        assert "<" not in after and "&amp;" not in after and "&lt;" not in after
        assert not CONTROL.search(after), repr(after)
        # Non-ASCII letters (é, ñ, ü, kana, Ω...) survive cleaning.
        letters = {c for c in unicodedata.normalize("NFKC", before) if c.isalpha() and not c.isascii()}
        assert letters <= set(after), sorted(letters - set(after))
        assert after  # every product has a title
    assert any("ñ" in t or "é" in t for t in cleaned)
