"""Entity markers: the gazetteers (esci_tf.preprocessing.entities) and the tagger's ops
(esci_tf.preprocessing.entity_ops): size/model patterns, longest match, en/es/ja."""

import re
import types

import pandas as pd
import pytest
import tensorflow as tf

from esci_tf.preprocessing.cleaning import clean_text
from esci_tf.preprocessing.entities import build_gazetteer, catalog_gazetteers, entity_markers
from esci_tf.data.reader import load_esci
from esci_tf.special_tokens import ENTITY_TOKENS

MARKER = re.compile(r"\[/?(BRAND|COLOR|SIZE|MODEL)\]")


def catalogue():
    brands = ["Nike", "nike", "Under Armour", "UNDER ARMOUR", "Under", "Under", "ソニー", "ソニー",
              "Sony", "SONY", "Generic", "Generic", "Once", "LG", "LG", "black", "black"]
    colors = ["Black", "black", "Navy Blue", "navy blue", "Negro", "negro", "ブラック", "ブラック",
              "Multicolor", "Multicolor", "Red 2", "Red 2", "Rare", "Blue", "blue"]
    n = max(len(brands), len(colors))
    return pd.DataFrame({"product_brand": brands + [""] * (n - len(brands)),
                         "product_color": colors + [""] * (n - len(colors))})


def ops_tagger(brands, colors):
    """The gazetteers and the ops tagger, with tag(text, locale) on one string."""
    markers = entity_markers(brands, colors)
    tag = tf.function(markers.tag, input_signature=[tf.TensorSpec([None], tf.string)])
    return types.SimpleNamespace(brands=set(brands), colors=set(colors), markers=markers,
                                 tag=lambda text, locale: tag(tf.constant([text])).numpy()[0].decode())


@pytest.fixture(scope="module")
def tagger():
    return ops_tagger(*catalog_gazetteers(catalogue()))


def test_gazetteer_normalises_and_filters(tagger):
    assert {"nike", "under armour", "under", "ソニー", "sony", "lg"} <= tagger.brands
    assert "generic" not in tagger.brands  # junk value
    assert "once" not in tagger.brands  # seen once
    assert "black" not in tagger.brands and "black" in tagger.colors  # both: tagged as color
    assert {"black", "navy blue", "negro", "ブラック", "blue"} <= tagger.colors
    assert "multicolor" not in tagger.colors and "red 2" not in tagger.colors and "rare" not in tagger.colors
    assert build_gazetteer(["Ab", "Ab", "x", "x"], min_count=2, min_length=2) == {"ab"}


def test_english(tagger):
    assert tagger.tag("Nike running shoes black size 10", "us") == (
        "[BRAND] Nike [/BRAND] running shoes [COLOR] black [/COLOR] [SIZE] size 10 [/SIZE]"
    )
    assert tagger.tag("sony WH-1000XM4 headphones, 2 pack, 10.5 oz, 32GB, XL", "us") == (
        "[BRAND] sony [/BRAND] [MODEL] WH-1000XM4 [/MODEL] headphones, [SIZE] 2 pack [/SIZE], "
        "[SIZE] 10.5 oz [/SIZE], [SIZE] 32GB [/SIZE], [SIZE] XL [/SIZE]"
    )
    assert tagger.tag("Filter A1234 for model GE5010, SO-482, 3-pack, 2-year warranty", "us") == (
        "Filter [MODEL] A1234 [/MODEL] for model [MODEL] GE5010 [/MODEL], [MODEL] SO-482 [/MODEL], "
        "[SIZE] 3-pack [/SIZE], 2-year warranty"
    )


def test_longest_match_wins_and_original_case_is_kept(tagger):
    # "under armour" beats "under"; "navy blue" beats "blue".
    assert tagger.tag("UNDER ARMOUR hoodie Navy Blue", "us") == (
        "[BRAND] UNDER ARMOUR [/BRAND] hoodie [COLOR] Navy Blue [/COLOR]"
    )
    assert tagger.tag("under the bed", "us") == "[BRAND] under [/BRAND] the bed"


def test_latin_entries_need_word_boundaries(tagger):
    # "lg" inside "algae", "nike" inside "nikes", "black" inside "blackout" are not entities.
    assert tagger.tag("algae nikes blackout 1990s 2nd 4K", "us") == "algae nikes blackout 1990s 2nd 4K"
    assert tagger.tag("2 in 1 charger in all sizes", "us") == "2 in 1 charger in all sizes"
    assert tagger.tag("rug 36x24, 10 x 20 cm, 2x-large", "us") == (
        "rug [SIZE] 36x24 [/SIZE], [SIZE] 10 x 20 cm [/SIZE], [SIZE] 2x-large [/SIZE]"
    )


def test_spanish(tagger):
    assert tagger.tag("zapatillas Nike negro talla 38, 500ml, 2 unidades", "es") == (
        "zapatillas [BRAND] Nike [/BRAND] [COLOR] negro [/COLOR] [SIZE] talla 38 [/SIZE], "
        "[SIZE] 500ml [/SIZE], [SIZE] 2 unidades [/SIZE]"
    )


def test_japanese_needs_no_spaces(tagger):
    text = clean_text("ソニーのヘッドホンＷＨ－１０００ＸＭ４ブラック、500ｍｌ×24本、2個セット3枚入り")
    assert tagger.tag(text, "jp") == (
        "[BRAND] ソニー [/BRAND]のヘッドホン[MODEL] WH-1000XM4 [/MODEL][COLOR] ブラック [/COLOR]、"
        "[SIZE] 500ml [/SIZE]×[SIZE] 24本 [/SIZE]、[SIZE] 2個 [/SIZE]セット[SIZE] 3枚入り [/SIZE]"
    )
    assert tagger.tag("サイズ L の靴", "jp") == "[SIZE] サイズ L [/SIZE] の靴"


def test_markers_never_nest_or_overlap(tagger):
    text = "Nike Nike black black WH-1000XM4 32GB size 10 ブラックソニー"
    tagged = tagger.tag(text, "us")
    depth = 0
    for m in MARKER.finditer(tagged):
        depth += -1 if m.group(0).startswith("[/") else 1
        assert depth in (0, 1)
    assert depth == 0
    assert MARKER.sub("", tagged).split() == text.replace("ブラックソニー", "ブラック ソニー").split()


def test_wrap_and_empty_text(tagger):
    wrapped = tagger.markers.wrap(tf.constant(["Nike", ""]), "BRAND").numpy().tolist()
    assert wrapped == [f"{ENTITY_TOKENS['BRAND'][0]} Nike {ENTITY_TOKENS['BRAND'][1]}".encode(), b""]
    assert tagger.tag("", "us") == ""


def test_a_large_gazetteer_is_split_into_patterns_re2_compiles():
    from esci_tf.preprocessing.entity_ops import GAZETTEER_CHUNK, EntityMarkers

    brands = [f"brand{i:05d}x" for i in range(2 * GAZETTEER_CHUNK + 10)]
    markers = EntityMarkers(brands, ["black"])
    assert [kind for kind, _ in markers.matchers] == [0, 0, 0, 1, 2]
    text = f"brand{GAZETTEER_CHUNK + 3:05d}x black and brand00001x"
    assert markers.tag(tf.constant([text])).numpy()[0].decode() == (
        f"[BRAND] brand{GAZETTEER_CHUNK + 3:05d}x [/BRAND] [COLOR] black [/COLOR] and [BRAND] brand00001x [/BRAND]")


def test_real_catalogue(esci_sample_dir):
    df, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet")
    tagger = ops_tagger(*catalog_gazetteers(df))
    assert {"carhartt", "lego", "nike", "makita"} <= tagger.brands
    assert {"black", "white", "navy"} <= tagger.colors
    titles = [clean_text(t) for t in df.drop_duplicates("product_id")["product_title"].head(500)]
    tagged = [tagger.tag(t, "us") for t in titles]
    assert sum("[BRAND]" in t for t in tagged) > 50 and sum("[SIZE]" in t for t in tagged) > 20
    for before, after in zip(titles, tagged):
        assert re.sub(r"\s", "", MARKER.sub("", after)) == re.sub(r"\s", "", before)
