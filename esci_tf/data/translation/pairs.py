"""Translated ESCI pairs in the official schema: what to translate, and the translated files.

Every judged pair of locale L becomes, for each target locale T != L, a pair of the translated
query and the translated product, with product_locale T. The translated product gets a new id
that records its source (`translated_product_id`), and the pair keeps its origin:
`original_query_id` (the folds group by it), `original_example_id` and `source_locale`. Translated
queries get new query ids (one per original query and target) and examples new example ids,
both past the source file's, so the files can be read next to the originals. A pair any of whose
texts has no translation is left out and counted.

>>> translated_product_id("B07XYZ", "us", "jp")
'B07XYZ~us-jp'
"""

import numpy as np
import pandas as pd

from esci_tf.data.augmentation import ORIGINAL_EXAMPLE_ID, ORIGINAL_QUERY_ID, SOURCE_LOCALE
from esci_tf.data.translation.base import language_of

# --fields names -> product columns; queries are always translated.
PRODUCT_FIELDS = {"title": "product_title", "bullet_point": "product_bullet_point",
                  "description": "product_description", "brand": "product_brand", "color": "product_color"}
DEFAULT_FIELDS = ("title", "bullet_point", "description")
EXAMPLE_OUTPUT_COLUMNS = ["example_id", "query", "query_id", "product_id", "product_locale", "esci_label",
                          "small_version", "large_version", "split", ORIGINAL_QUERY_ID, ORIGINAL_EXAMPLE_ID,
                          SOURCE_LOCALE]
PRODUCT_OUTPUT_COLUMNS = ["product_id", "product_title", "product_description", "product_bullet_point",
                          "product_brand", "product_color", "product_locale", "source_product_id", "source_product_locale"]


def translated_product_id(product_id: str, source: str, target: str) -> str:
    """The id of a product translated from locale `source` to `target`."""
    return f"{product_id}~{source}-{target}"


def _columns(fields) -> list:
    return [PRODUCT_FIELDS[f] for f in fields]


def directions(frame: pd.DataFrame, targets) -> list:
    """(source locale, target locale) pairs to translate, sorted."""
    return sorted((source, target) for source in frame["product_locale"].unique() for target in targets
                  if target != source)


def translation_requests(frame: pd.DataFrame, targets, fields=DEFAULT_FIELDS) -> dict:
    """{(source language, target language): texts} of a merged frame (reader.load_esci): its
    queries and the chosen product fields, for every target locale but a row's own."""
    columns = _columns(fields)
    requests = {}
    for source, target in directions(frame, targets):
        rows = frame[frame["product_locale"] == source]
        products = rows.drop_duplicates("product_id")
        texts = list(rows["query"].unique())
        for column in columns:
            texts += list(products[column].unique())
        requests.setdefault((language_of(source), language_of(target)), []).extend(texts)
    return requests


def translated_frames(frame: pd.DataFrame, plan, targets, fields=DEFAULT_FIELDS, example_start: int = 0,
                      query_start: int = 0) -> tuple:
    """(examples, products, counts): the translated pairs and products (see the module docstring).
    `plan`: an engine.TranslationPlan that has run; example_start / query_start: the first new ids."""
    columns = _columns(fields)
    example_parts, product_parts, counts = [], [], {}
    next_example, next_query = int(example_start), int(query_start)
    for source, target in directions(frame, targets):
        languages = (language_of(source), language_of(target))
        rows = frame[frame["product_locale"] == source].reset_index(drop=True)
        query = rows["query"].map(lambda text: plan.lookup(*languages, text))
        texts = {column: rows[column].map(lambda text: plan.lookup(*languages, text)) for column in columns}
        complete = query.notna().to_numpy() & np.logical_and.reduce([t.notna().to_numpy() for t in texts.values()])
        key = f"{source}->{target}"
        counts[key] = {"pairs": int(complete.sum()), "pairs_left_out": int((~complete).sum())}
        rows, query = rows[complete], query[complete]
        if rows.empty:
            continue
        codes, uniques = pd.factorize(rows["query_id"], sort=True)
        new_pid = rows["product_id"].map(lambda pid: translated_product_id(pid, source, target))
        example_parts.append(pd.DataFrame({
            "example_id": next_example + np.arange(len(rows), dtype=np.int64),
            "query": query.to_numpy(), "query_id": next_query + codes.astype(np.int64),
            "product_id": new_pid.to_numpy(), "product_locale": target,
            "esci_label": rows["esci_label"].to_numpy(), "small_version": rows["small_version"].to_numpy(),
            "large_version": rows["large_version"].to_numpy(), "split": rows["split"].to_numpy(),
            ORIGINAL_QUERY_ID: rows["query_id"].to_numpy(np.int64),
            ORIGINAL_EXAMPLE_ID: rows["example_id"].to_numpy(np.int64), SOURCE_LOCALE: source}))
        next_example += len(rows)
        next_query += len(uniques)
        product = {column: rows[column].to_numpy() for column in PRODUCT_FIELDS.values()}
        product.update({column: texts[column][complete].to_numpy() for column in columns})
        products = pd.DataFrame({"product_id": new_pid.to_numpy(), **product, "product_locale": target,
                                 "source_product_id": rows["product_id"].to_numpy(), "source_product_locale": source})
        product_parts.append(products.drop_duplicates("product_id"))
    examples = (pd.concat(example_parts, ignore_index=True) if example_parts
                else pd.DataFrame(columns=EXAMPLE_OUTPUT_COLUMNS))
    products = (pd.concat(product_parts, ignore_index=True) if product_parts
                else pd.DataFrame(columns=PRODUCT_OUTPUT_COLUMNS))
    for column in PRODUCT_FIELDS.values():  # missing fields stay missing, as in the official files
        products[column] = products[column].replace("", None)
    return examples[EXAMPLE_OUTPUT_COLUMNS], products[PRODUCT_OUTPUT_COLUMNS], counts
