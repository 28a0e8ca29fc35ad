"""A deterministic generator of ESCI-like data (us/es/jp) in the official schema.

Queries are brand + color + product type (sometimes without the brand, sometimes with an
attribute). Each query gets 8-20 judged products whose label follows from the text:
Exact = same type, brand, color (and attribute); Substitute = same type, another brand or
color; Complement = an accessory of that type; Irrelevant = another product type. Products
live in a per-locale catalog, so a product can be judged for several queries. Word lists are
in esci_tf/assets/synthetic_words.json.
"""

import functools
import json
import os
import re
import string

import numpy as np
import pandas as pd

from esci_tf.labels import SHORT_LABELS

WORDS_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "synthetic_words.json")

LOCALE_SHARES = {"us": 0.6, "es": 0.2, "jp": 0.2}
# E, S, C, I shares, roughly those of the real task-1 data.
LABEL_SHARES = (0.45, 0.25, 0.08, 0.22)
TEST_SHARE = 0.2
SMALL_VERSION_SHARE = 0.6
NUM_MODELS = 12  # product variants per (type, brand, color)

EXAMPLE_COLUMNS = [
    "example_id", "query", "query_id", "product_id", "product_locale", "esci_label",
    "small_version", "large_version", "split",
]
PRODUCT_COLUMNS = [
    "product_id", "product_title", "product_description", "product_bullet_point",
    "product_brand", "product_color", "product_locale",
]


@functools.lru_cache(maxsize=1)
def load_words() -> dict:
    """The per-locale word lists (types with their accessories, brands, colors, templates)."""
    with open(WORDS_PATH, encoding="utf-8") as f:
        return json.load(f)


def _squeeze(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s+,", ",", text)


def _capitalize(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


class _Catalog:
    """Products created on demand, one per distinct spec, with deterministic ids and text."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.rows = {}
        self.ids = set()

    def _new_id(self) -> str:
        alphabet = np.array(list(string.ascii_uppercase + string.digits))
        while True:
            pid = "B0" + "".join(self.rng.choice(alphabet, 8))
            if pid not in self.ids:
                self.ids.add(pid)
                return pid

    def product(self, locale, type_key, brand, color, attribute="", model=0, accessory=None):
        spec = (locale, type_key, brand, color, attribute, model, accessory)
        if spec not in self.rows:
            self.rows[spec] = self._make(spec)
        return self.rows[spec]["product_id"]

    def _make(self, spec) -> dict:
        locale, type_key, brand, color, attribute, model, accessory = spec
        words = load_words()[locale]
        type_name = words["types"][type_key][0]
        prefix = brand[:2].upper() if brand.isascii() else "JP"
        model_code = f"{prefix}-{100 + 37 * model + len(type_key)}"
        fields = dict(brand=brand, color=color, type=type_name, attribute=attribute, model=model_code)
        if accessory is None:
            title = words["title"].format(**fields)
        else:
            title = words["accessory_title"].format(accessory=accessory, **fields)
        rng = self.rng
        description = None
        if rng.random() < 0.7:  # like the real data, many products have no description
            sentences = rng.choice(words["description"], size=3, replace=False)
            body = " ".join(_capitalize(s.format(**fields)) for s in sentences)
            wrap = rng.integers(3)
            if wrap == 0:
                description = f"<p>{body}</p>"
            elif wrap == 1:
                description = f"<b>{brand}</b><br>{body}<br/>"
            else:
                description = body.replace("&", "&amp;")
        bullets = None
        if rng.random() < 0.85:
            chosen = rng.choice(words["bullets"], size=3, replace=False)
            bullets = "\n".join(b.format(**fields) for b in chosen)
        return {
            "product_id": self._new_id(),
            "product_title": _squeeze(title),
            "product_description": description,
            "product_bullet_point": bullets,
            "product_brand": brand if rng.random() < 0.95 else None,
            "product_color": color if rng.random() < 0.9 else None,
            "product_locale": locale,
        }

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows.values()), columns=PRODUCT_COLUMNS)


def _pick_other(rng, options, exclude):
    others = [o for o in options if o != exclude]
    return others[rng.integers(len(others))]


def _judged_product(catalog, rng, locale, label, query_spec, used_models):
    """A product id for one judged pair with the given label (index into E,S,C,I)."""
    words = load_words()[locale]
    type_key, brand, color, attribute = query_spec
    type_keys = list(words["types"])
    if label == 0:  # Exact: same type, brand (any when the query has none), color, attribute
        product_brand = brand or words["brands"][rng.integers(len(words["brands"]))]
        free = [m for m in range(NUM_MODELS) if (product_brand, m) not in used_models]
        model = free[rng.integers(len(free))] if free else int(rng.integers(NUM_MODELS))
        used_models.add((product_brand, model))
        return catalog.product(locale, type_key, product_brand, color, attribute, model)
    if label == 1:  # Substitute: same type, another brand and/or another color
        change = rng.integers(3) if brand else 1  # 0 brand, 1 color, 2 both
        product_brand = brand or words["brands"][rng.integers(len(words["brands"]))]
        product_color = color
        if change in (0, 2):
            product_brand = _pick_other(rng, words["brands"], brand)
        if change in (1, 2):
            product_color = _pick_other(rng, words["colors"], color)
        attr = attribute if rng.random() < 0.5 else ""
        return catalog.product(locale, type_key, product_brand, product_color, attr, int(rng.integers(NUM_MODELS)))
    if label == 2:  # Complement: an accessory of the queried type
        accessories = words["types"][type_key][1]
        accessory = accessories[rng.integers(len(accessories))]
        acc_brand = words["brands"][rng.integers(len(words["brands"]))]
        acc_color = words["colors"][rng.integers(len(words["colors"]))]
        return catalog.product(locale, type_key, acc_brand, acc_color, model=int(rng.integers(3)), accessory=accessory)
    # Irrelevant: another product type, any brand and color
    other_type = _pick_other(rng, type_keys, type_key)
    return catalog.product(
        locale, other_type, words["brands"][rng.integers(len(words["brands"]))],
        words["colors"][rng.integers(len(words["colors"]))], "", int(rng.integers(NUM_MODELS)))


def _query_text(rng, locale, query_spec) -> str:
    words = load_words()[locale]
    type_key, brand, color, attribute = query_spec
    templates = words["query"] if brand else words["query_no_brand"]
    text = templates[rng.integers(len(templates))].format(
        brand=brand, color=color, type=words["types"][type_key][0])
    if attribute:
        text += " " + attribute
    return _squeeze(text)


def generate_esci(num_queries: int = 300, seed: int = 0):
    """(examples_df, products_df) in the official ESCI schema; the same for the same arguments."""
    if num_queries < 1:
        raise ValueError(f"num_queries must be >= 1, got {num_queries}")
    rng = np.random.default_rng(seed)
    words = load_words()
    catalog = _Catalog(rng)
    locales = list(LOCALE_SHARES)
    seen_queries = set()
    rows = []
    query_id = 0
    while query_id < num_queries:
        locale = locales[rng.choice(len(locales), p=list(LOCALE_SHARES.values()))]
        lw = words[locale]
        type_keys = list(lw["types"])
        spec = (
            type_keys[rng.integers(len(type_keys))],
            lw["brands"][rng.integers(len(lw["brands"]))] if rng.random() < 0.75 else "",
            lw["colors"][rng.integers(len(lw["colors"]))],
            lw["attributes"][rng.integers(len(lw["attributes"]))] if rng.random() < 0.3 else "",
        )
        query = _query_text(rng, locale, spec)
        if (locale, query) in seen_queries:
            continue
        seen_queries.add((locale, query))
        split = "test" if rng.random() < TEST_SHARE else "train"
        small = int(rng.random() < SMALL_VERSION_SHARE)
        num_products = int(rng.integers(8, 21))
        labels = rng.choice(4, size=num_products, p=LABEL_SHARES)
        used_models, judged = set(), set()
        for label in labels:
            product_id = _judged_product(catalog, rng, locale, int(label), spec, used_models)
            if product_id in judged:  # a product is judged once per query
                continue
            judged.add(product_id)
            rows.append((query, query_id, product_id, locale, SHORT_LABELS[label], small, 1, split))
        query_id += 1
    examples = pd.DataFrame(rows, columns=EXAMPLE_COLUMNS[1:])
    examples.insert(0, "example_id", np.arange(len(examples), dtype=np.int64))
    examples["query_id"] = examples["query_id"].astype(np.int64)
    examples["small_version"] = examples["small_version"].astype(np.int64)
    examples["large_version"] = examples["large_version"].astype(np.int64)
    return examples, catalog.frame()


def write_esci_files(num_queries: int, seed: int, directory: str, prefix: str = "synthetic_") -> tuple:
    """generate_esci's examples and products as <directory>/<prefix>examples.parquet and
    <prefix>products.parquet (local or gs://); returns the two paths."""
    import io

    import tensorflow as tf

    examples, products = generate_esci(num_queries, seed)
    tf.io.gfile.makedirs(directory)
    paths = tuple(f"{directory.rstrip('/')}/{prefix}{name}.parquet" for name in ("examples", "products"))
    for frame, path in zip((examples, products), paths):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        with tf.io.gfile.GFile(path, "wb") as stream:
            stream.write(buffer.getvalue())
    return paths
