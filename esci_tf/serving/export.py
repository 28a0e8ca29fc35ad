"""Exports a trained CrossEncoder with its FieldsPreprocessor as a SavedModel for TF Serving.

Signatures. Every declared input is required (TF Serving's Predict API refuses a request that
lacks one), so clients send "" for an empty field:
- `serving_default`: the raw ESCI fields, string [B] each: query, product_locale ("us", "es",
  "jp"), product_title, product_brand, product_color, product_bullet_point,
  product_description -> score [B] (P(E) + 0.1 P(S) + 0.01 P(C)), probabilities [B, 4]
  (E, S, C, I), logits [B, 4], valid bool [B] (see below). Cleaning, the template,
  tokenization and packing run in the graph (the model's FieldsPreprocessor, the same object
  trainers.predict runs).
- `rank`: one query: query and product_locale, string scalars; N products: the product_*
  fields, string [N] -> score [N], probabilities [N, 4], logits [N, 4], valid [N] and order
  int32 [N] (product indices by descending score, ties in input order).
- `score_tokens(token_ids, segment_ids, padding_mask)`: int32 [B, max_length] -> score,
  probabilities, logits, for callers that tokenize themselves (or read TFRecords); no `valid`.

An empty query. `valid` is False for a row whose query has no text left after cleaning (blank,
or emoji and symbols only: "🎧🎧", "★★★"), the queries tfrecords.build refuses to train on
(esci_tf.data.validation, empty_query). Such a row is still scored, as trainers.predict scores
it (the model then judges the product text alone, which no training pair taught it), so its
score looks like any other: a client tells it by `valid` and decides (ask for a query, show
the products unranked). The ensemble export (esci_tf.serving.ensemble_export) has the same
output.

Every model takes raw fields, whatever its template settings: entity markers
(--entity_markers) are TF ops of the FieldsPreprocessor too, their gazetteers in the graph.

Locales. A run trained with --locales serves those locales only: a request with a row of another
product_locale fails (InvalidArgumentError naming the locales), as trainers.predict refuses such
rows; its warm-up requests hold rows of its locales only. The locales are recorded in
assets.extra/esci_tf.json ({"locales": [...] or null}, `served_locales(directory)`), which the
Beam scoring reads to refuse such a row with one line before the graph does.

The SavedModel is built with keras.export.ExportArchive (it tracks the variables and lookup
tables the endpoints use) and written as <base>/<version>/ (esci_tf.serving.versions) with
TF Serving warm-up requests (esci_tf.serving.warmup).

Example:
    path = export_saved_model(model, fields_preprocessor, "/tmp/esci_export")  # .../1
    served = tf.saved_model.load(path).signatures["serving_default"]
    served(query=tf.constant(["red shoes"]), product_locale=tf.constant(["us"]),
           product_title=tf.constant(["<b>Red</b> running shoe"]), product_brand=tf.constant([""]), ...)
"""

import keras
import numpy as np
import tensorflow as tf

from esci_tf import files
from esci_tf.labels import GAINS
from esci_tf.preprocessing.fields_preprocessor import RAW_FIELDS
from esci_tf.serving import versions, warmup

QUERY_FIELDS = ("query", "product_locale")  # one per request in `rank`
PRODUCT_FIELDS = tuple(name for name in RAW_FIELDS if name not in QUERY_FIELDS)
TOKEN_INPUTS = ("token_ids", "segment_ids", "padding_mask")
VALID_OUTPUT = "valid"  # False: the query is empty after cleaning (see the module docstring)

# The warm-up rows: markup, an emoji, Japanese and Spanish text, empty fields.
WARMUP_ROWS = {
    "query": ["<b>running shoes</b> 🏃", "ワイヤレス イヤホン", "zapatillas de running"],
    "product_locale": ["us", "jp", "es"],
    "product_title": ["Men's Running Shoe &amp; Trainer", "完全ワイヤレスイヤホン Bluetooth 5.3", "Zapatillas para correr"],
    "product_brand": ["Acme", "", "Marca"],
    "product_color": ["Black", "ホワイト", ""],
    "product_bullet_point": ["Breathable mesh\nCushioned sole", "", "Suela de goma"],
    "product_description": ["<p>Lightweight.</p>", "", ""],
}


METADATA_PARTS = ("assets.extra", "esci_tf.json")  # {"locales": the locales served, or null: every locale}


def in_locales(locale, locales):
    """bool [B]: whether each row's product_locale (string [B]) is one of `locales`."""
    return tf.reduce_any(tf.equal(locale[:, None], tf.constant(list(locales))[None, :]), axis=1)


def locale_checks(locale, locales, what: str) -> list:
    """The graph's refusal of rows outside `locales` (None: every locale is served, no check):
    control dependencies for the outputs; the error names `what` and the rows' locales."""
    if locales is None:
        return []
    covered = in_locales(locale, locales)
    return [tf.debugging.Assert(tf.reduce_all(covered), [
        f"{what} was trained for locale(s) {','.join(locales)} only; rows of other locales:",
        tf.boolean_mask(locale, ~covered)], summarize=5)]


def warmup_rows(locales=None) -> dict:
    """WARMUP_ROWS of the locales served (None: all of them)."""
    keep = [i for i, locale in enumerate(WARMUP_ROWS["product_locale"]) if locales is None or locale in locales]
    return {name: [values[i] for i in keep] for name, values in WARMUP_ROWS.items()}


def write_metadata(directory: str, locales=None) -> None:
    """assets.extra/esci_tf.json of a SavedModel version being written."""
    files.write_json(files.join(directory, *METADATA_PARTS), {"locales": None if locales is None else list(locales)})


def served_locales(directory: str) -> tuple | None:
    """The locales the SavedModel in `directory` serves (None: every locale, or an export written
    before the locales were recorded)."""
    saved = files.read_json(files.join(directory, *METADATA_PARTS), missing_ok=True) or {}
    return None if saved.get("locales") is None else tuple(saved["locales"])


def serving_inputs(frame) -> dict:
    """serving_default's raw-field inputs for every row of a merged ESCI frame
    (esci_tf.data.reader.load_esci): numpy object arrays, "" for a missing value."""
    from esci_tf.preprocessing.template import frame_fields

    present = frame_fields(frame)
    return {name: present.get(name, np.full(len(frame), "", object)) for name in RAW_FIELDS}


def string_specs(names, shape=(None,)) -> dict:
    """{name: string TensorSpec named `name`}: the named inputs of a signature."""
    return {name: tf.TensorSpec(shape, tf.string, name=name) for name in names}


def query_has_text(cleaned_queries):
    """VALID_OUTPUT: bool [B], True where a cleaned query has text (not blank)."""
    return tf.strings.length(tf.strings.strip(cleaned_queries)) > 0


def same_rows(inputs: dict, signature: str):
    """Checks in the graph that every input of `inputs` has as many rows as the first."""
    names = sorted(inputs)
    rows = tf.shape(inputs[names[0]])[0]
    for name in names[1:]:
        tf.debugging.assert_equal(tf.shape(inputs[name])[0], rows, message=(
            f"{signature}: every input needs one value per row; {name} and {names[0]} differ"))


def rank_endpoint(serve, query_names, product_names):
    """`rank` from a batch scoring function: the scalar query inputs are repeated for each of
    the N products; adds `order` (indices by descending score, ties in input order)."""

    def rank(inputs):
        products = {name: inputs[name] for name in product_names}
        same_rows(products, "rank")
        count = tf.shape(products[product_names[0]])[0]
        rows = dict(products, **{name: tf.fill([count], inputs[name]) for name in query_names})
        outputs = dict(serve(rows))
        outputs["order"] = tf.argsort(outputs["score"], direction="DESCENDING", stable=True)
        return outputs

    signature = dict(string_specs(query_names, ()), **string_specs(product_names))
    return rank, signature


def rank_names(input_names) -> tuple:
    """(scalar query inputs, product inputs [N]) of `rank` for serving_default's input names."""
    return tuple(n for n in input_names if n in QUERY_FIELDS), tuple(n for n in input_names if n not in QUERY_FIELDS)


def featurizer(fields_preprocessor):
    """tf.function: serving_default's string inputs -> the model's token features and
    VALID_OUTPUT. One traced graph that serving_default and rank call and the warm-up requests
    are tokenized with."""
    pair_preprocessor = fields_preprocessor.pair_preprocessor

    def features(inputs):
        same_rows(inputs, "serving_default")
        queries, products = fields_preprocessor.format(dict(inputs))  # what fields_preprocessor runs,
        # keeping segment A: the cleaned query (and its entity markers)
        return dict(pair_preprocessor(queries, products), **{VALID_OUTPUT: query_has_text(queries)})

    return tf.function(features, input_signature=[string_specs(RAW_FIELDS)])


def build_archive(model, fields_preprocessor, features=None, locales=None) -> keras.export.ExportArchive:
    """An ExportArchive with serving_default, rank and score_tokens for `model` (a CrossEncoder);
    `features`: the featurizer to use (one is made by default); `locales`: the locales it serves
    (None: every locale)."""
    gains = tf.constant(GAINS)
    features = features or featurizer(fields_preprocessor)

    def score_tokens(tokens):
        logits = tf.cast(model(dict(tokens), training=False), tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        return {"score": tf.linalg.matvec(probabilities, gains), "probabilities": probabilities, "logits": logits}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(fields_preprocessor)
    def serve(inputs):
        with tf.control_dependencies(locale_checks(inputs["product_locale"], locales, "the model")):
            encoded = features({name: tf.identity(value) for name, value in inputs.items()})
        return dict(score_tokens({name: encoded[name] for name in TOKEN_INPUTS}), **{VALID_OUTPUT: encoded[VALID_OUTPUT]})

    serve = archive.add_endpoint("serving_default", serve, input_signature=[string_specs(RAW_FIELDS)])
    rank, rank_signature = rank_endpoint(serve, *rank_names(RAW_FIELDS))  # calls serve's graph
    archive.add_endpoint("rank", rank, input_signature=[rank_signature])
    length = fields_preprocessor.max_length
    archive.add_endpoint("score_tokens", score_tokens, input_signature=[
        {name: tf.TensorSpec([None, length], tf.int32, name=name) for name in TOKEN_INPUTS}])
    return archive


def warmup_inputs(input_names, rows: dict | None = None) -> dict:
    """{"serving_default": rows, "rank": the first row's query with every row's product} for
    serving_default's `input_names` (rows: WARMUP_ROWS by default)."""
    rows = {name: np.array(values, object) for name, values in (rows or WARMUP_ROWS).items()}
    query_names, product_names = rank_names(input_names)
    rank = dict({name: rows[name][0] for name in query_names}, **{name: rows[name] for name in product_names})
    return {"serving_default": rows, "rank": rank}


def warmup_requests(fields_preprocessor, features, locales=None) -> dict:
    """{signature: inputs} of a run's warm-up file: WARMUP_ROWS (of `locales`) through each
    signature (`features`: the featurizer, which tokenizes them for score_tokens)."""
    requests = warmup_inputs(RAW_FIELDS, warmup_rows(locales))
    tokens = features({name: tf.constant(values, tf.string) for name, values in requests["serving_default"].items()})
    return dict(requests, score_tokens={name: tokens[name].numpy() for name in TOKEN_INPUTS})


def export_saved_model(model, fields_preprocessor, base: str, version: int | None = None, extra=None,
                       locales=None) -> str:
    """Write the SavedModel to <base>/<version>/ (local or gs://; version: the next free one
    by default, an existing one is an error); returns that directory. `extra(directory)`, when
    given, writes more into the version directory before it appears (the TFLite models of
    esci_tf.serving.tflite), so the version holds all of it or does not exist. `locales`: the
    run's --locales (None: every locale; see the module docstring)."""
    features = featurizer(fields_preprocessor)
    requests = warmup_requests(fields_preprocessor, features, locales)  # traces the featurizer once
    archive = build_archive(model, fields_preprocessor, features, locales)

    def write(directory):
        archive.write_out(directory, verbose=False)
        warmup.write_warmup(directory, requests)
        write_metadata(directory, locales)
        if extra is not None:
            extra(directory)

    return versions.write_version(base, write, version)
