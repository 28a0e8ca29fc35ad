"""Entity gazetteers: the brands and colors of a catalogue that entity markers tag.

`catalog_gazetteers(products_df)` keeps the normalised (cleaned, lowercased, single-spaced)
product_brand and product_color values seen at least twice, without junk values ("generic",
"multicolor") and colors with digits. They are saved with the template settings
(esci_tf.preprocessing.template.TemplateSettings: preprocessing.json, the model's config), and
`entity_markers(brands, colors)` builds the tagger from them: TF ops
(esci_tf.preprocessing.entity_ops), so the exported model tags raw fields as training did.
"""

import collections

import pandas as pd

from esci_tf.preprocessing.cleaning import clean_texts

# Catalogue values that name no brand or color.
JUNK_BRANDS = frozenset(
    {"unknown", "generic", "n/a", "na", "none", "no brand", "nobrand", "unbranded", "not applicable",
     "does not apply", "various", "other", "brand", "misc", "miscellaneous", "default", "null",
     "sin marca", "genérico", "generico", "ノーブランド", "ノーブランド品"}
)
JUNK_COLORS = frozenset(
    {"n/a", "na", "none", "multi", "multicolor", "multicolour", "multi-color", "multicolored",
     "as shown", "as picture", "as pictured", "assorted", "various", "mixed", "default",
     "standard", "one color", "see description", "color", "colour", "null", "other", "classic",
     "original", "basic", "regular", "normal", "new",
     "varios", "multicolore", "マルチカラー", "写真参照", "画像参照"}
)


def gazetteer_keys(values) -> list:
    """Each value cleaned, lowercased and single-spaced: the form gazetteer entries take."""
    return [" ".join(text.lower().split()) for text in clean_texts(values)]


def build_gazetteer(values, min_count: int = 2, min_length: int = 2, max_words: int = 4,
                    max_chars: int = 40, junk=frozenset(), allow_digits: bool = True) -> set:
    """Normalised catalogue values seen at least min_count times, without junk entries."""
    counts = collections.Counter(gazetteer_keys(values))
    kept = set()
    for value, n in counts.items():
        if n < min_count or len(value) < min_length or len(value) > max_chars:
            continue
        if len(value.split()) > max_words or value in junk:
            continue
        if not any(c.isalpha() for c in value):
            continue
        if not allow_digits and any(c.isdigit() for c in value):
            continue
        kept.add(value)
    return kept


def normalize_gazetteers(brands=(), colors=()) -> tuple:
    """(brands, colors) as sorted tuples of normalised entries; a value that is both a brand
    and a color is a color."""
    colors = frozenset(filter(None, gazetteer_keys(list(colors))))
    brands = frozenset(filter(None, gazetteer_keys(list(brands)))) - colors
    return tuple(sorted(brands)), tuple(sorted(colors))


def catalog_gazetteers(products: pd.DataFrame, min_brand_count: int = 2, min_color_count: int = 2,
                       min_length: int = 2) -> tuple:
    """(brands, colors) from product_brand and product_color of a products (or merged) frame,
    normalised (see normalize_gazetteers)."""
    missing = [c for c in ("product_brand", "product_color") if c not in products.columns]
    if missing:
        raise ValueError(f"products frame lacks column(s) {', '.join(missing)}")
    if "product_id" in products.columns and "product_locale" in products.columns:
        products = products.drop_duplicates(["product_id", "product_locale"])
    brands = build_gazetteer(products["product_brand"], min_brand_count, min_length, junk=JUNK_BRANDS)
    colors = build_gazetteer(products["product_color"], min_color_count, min_length, max_words=3,
                             junk=JUNK_COLORS, allow_digits=False)
    return normalize_gazetteers(brands, colors)


def entity_markers(brands=(), colors=(), **kwargs):
    """The entity tagger (esci_tf.preprocessing.entity_ops.EntityMarkers) for gazetteer
    values (normalised here); kwargs: tag_sizes, tag_models."""
    from esci_tf.preprocessing.entity_ops import EntityMarkers

    return EntityMarkers(*normalize_gazetteers(brands, colors), **kwargs)
