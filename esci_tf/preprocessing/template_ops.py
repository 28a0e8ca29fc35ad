"""The paper's input template as TensorFlow ops: raw ESCI fields -> (query text, product text).

Segment A is the cleaned query. Segment B starts with the locale's language token, then the
first `prompt_tokens` prompt tokens, then "color: <color> brand: <brand> description: <title>
<bullet points> <description>" (field_style="text"; field_style="tokens" writes
special_tokens.FIELD_TOKENS instead of the words). Empty fields are left out with their label.
Each raw field is cut to `max_field_chars` characters before cleaning (at a space near the end
when there is one), and so is the joined description.

Two steps, with entity markers (esci_tf.preprocessing.entity_ops) between them when a run has
them: `clean_fields` (raw fields -> cleaned query, color, brand, description) and `assemble`
(cleaned fields -> the two segments); `FieldFormatter` is all three with the settings of a run.

>>> import tensorflow as tf
>>> fields = {"query": tf.constant(["<b>red</b> shoes"]), "product_locale": tf.constant(["us"]),
...           "product_color": tf.constant(["Red"]), "product_title": tf.constant(["Running shoe"])}
>>> queries, products = assemble(clean_fields(fields))
>>> queries.numpy()[0].decode(), products.numpy()[0].decode()
('red shoes', '[L_US] color: Red description: Running shoe')
"""

import tensorflow as tf

from esci_tf.preprocessing.clean_ops import TextCleaner, clean_strings
from esci_tf.special_tokens import FIELD_TOKENS, LANGUAGE_TOKENS, PROMPT_TOKENS

FIELD_STYLES = ("text", "tokens")
FIELD_WORDS = {"color": "color:", "brand": "brand:", "description": "description:"}
DESCRIPTION_PARTS = ("product_title", "product_bullet_point", "product_description")
# The raw string fields a model scores: a missing one is empty.
RAW_FIELDS = ("query", "product_locale", "product_title", "product_brand", "product_color",
              "product_bullet_point", "product_description")
MAX_FIELD_CHARS = 3000  # more than 512 tokens of English, Spanish or Japanese text
_CUT_WINDOW = 50  # a cut text ends at its last space within this many characters of the cut


def check_prompt_tokens(prompt_tokens: int) -> None:
    """ValueError unless 0 <= prompt_tokens <= len(PROMPT_TOKENS)."""
    if not 0 <= prompt_tokens <= len(PROMPT_TOKENS):
        raise ValueError(f"prompt_tokens must be in [0, {len(PROMPT_TOKENS)}], got {prompt_tokens}")


def field_labels(field_style: str) -> dict:
    """The labels written before the color, brand and description fields."""
    if field_style == "text":
        return FIELD_WORDS
    if field_style == "tokens":
        return FIELD_TOKENS
    raise ValueError(f"field_style must be one of {FIELD_STYLES}, got {field_style!r}")


def cut(texts, max_chars: int | None):
    """Texts longer than max_chars characters cut to max_chars, then back to their last space
    within the last 50 characters when there is one (None: unchanged)."""
    if max_chars is None:
        return texts
    if max_chars <= _CUT_WINDOW:
        raise ValueError(f"max_chars must be more than {_CUT_WINDOW}, got {max_chars}")
    length = tf.strings.length(texts, unit="UTF8_CHAR")
    long = length > max_chars
    head_chars = max_chars - _CUT_WINDOW
    head = tf.strings.substr(texts, 0, head_chars, unit="UTF8_CHAR")
    tail = tf.strings.substr(texts, tf.minimum(length, head_chars), tf.fill(tf.shape(length), _CUT_WINDOW),
                             unit="UTF8_CHAR")
    has_space = tf.strings.regex_full_match(tail, "(?s).* .*")
    tail_cut = tf.where(has_space, tf.strings.regex_replace(tail, "(?s)^(.*) [^ ]*$", "\\1"), tail)
    return tf.where(long, head + tail_cut, texts)


def _join_nonempty(parts):
    """" ".join of the non-empty strings of each row (the parts have no leading, trailing or
    double spaces, as cleaned text has none)."""
    joined = tf.strings.reduce_join(tf.stack(parts, axis=1), axis=1, separator=" ")
    return tf.strings.regex_replace(tf.strings.regex_replace(joined, "  +", " "), "^ | $", "")


def field(fields: dict, name: str):
    """String tensor [B] of one raw field; a missing field is empty."""
    if name in fields and fields[name] is not None:
        return tf.reshape(tf.convert_to_tensor(fields[name], tf.string), [-1])
    reference = next(v for v in fields.values() if v is not None)
    return tf.fill(tf.shape(tf.reshape(tf.convert_to_tensor(reference, tf.string), [-1])), "")


def clean_fields(fields: dict, cleaner=None, max_field_chars: int | None = MAX_FIELD_CHARS) -> dict:
    """Cleaned "query", "color", "brand", "description" (title, bullets and description joined
    and cut) and the raw "locale", each a string tensor [B]; `cleaner`: see clean_strings."""
    raw = {name: field(fields, name) for name in RAW_FIELDS}
    names = ("query", "product_color", "product_brand", *DESCRIPTION_PARTS)
    cleaned = clean_strings(tf.concat([cut(raw[n], max_field_chars) for n in names], axis=0), cleaner)
    query, color, brand, *description = tf.split(cleaned, len(names), axis=0)
    return {"query": query, "color": color, "brand": brand,
            "description": cut(_join_nonempty(description), max_field_chars), "locale": raw["product_locale"]}


def language_tokens(locales):
    """The language token of each locale; an unknown locale fails the op, naming the values."""
    known = tf.constant(list(LANGUAGE_TOKENS))
    matches = tf.equal(locales[:, None], known[None, :])
    tf.debugging.Assert(tf.reduce_all(tf.reduce_any(matches, axis=1)),
                        ["unknown product_locale; expected one of " + ", ".join(LANGUAGE_TOKENS) + "; got",
                         tf.boolean_mask(locales, ~tf.reduce_any(matches, axis=1))], summarize=5)
    return tf.gather(tf.constant(list(LANGUAGE_TOKENS.values())), tf.argmax(tf.cast(matches, tf.int32), axis=1))


def assemble(cleaned: dict, field_style: str = "text", prompt_tokens: int = 0) -> tuple:
    """(query texts, product texts) [B] from clean_fields' output (entity markers, if any,
    already in its query, color, brand and description)."""
    labels = field_labels(field_style)
    check_prompt_tokens(prompt_tokens)
    parts = [language_tokens(cleaned["locale"])]
    parts += [tf.fill(tf.shape(cleaned["query"]), token) for token in PROMPT_TOKENS[:prompt_tokens]]
    for name in ("color", "brand", "description"):
        text = cleaned[name]
        parts.append(tf.where(text != "", labels[name] + " " + text, ""))
    return cleaned["query"], _join_nonempty(parts)


def string_fields(fields) -> dict:
    """The raw fields of a dict as string tensors [B] (lists are converted); "query" and
    "product_locale" are required, other keys than RAW_FIELDS (and "example_id") are an error."""
    if not isinstance(fields, dict):
        raise ValueError(f"raw fields must be a dict keyed by {', '.join(RAW_FIELDS)}, got {type(fields).__name__}")
    unknown = sorted(set(fields) - set(RAW_FIELDS) - {"example_id"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; the raw fields are {', '.join(RAW_FIELDS)}")
    missing = [name for name in ("query", "product_locale") if name not in fields]
    if missing:
        raise ValueError(f"the raw fields lack {', '.join(missing)}")
    out = {}
    for name in RAW_FIELDS:
        if name in fields:
            value = fields[name]
            value = value if isinstance(value, tf.Tensor) else tf.convert_to_tensor(value, tf.string)
            if value.dtype != tf.string:
                raise ValueError(f"field {name} must be strings, got {value.dtype.name}")
            out[name] = tf.reshape(value, [-1])
    return out


class FieldFormatter(tf.Module):
    """A run's template as ops: raw fields dict -> (query texts, product texts), string [B].

    All of it is TF ops (what a SavedModel holds): cleaning, then, with a `tagger`
    (entity_ops.EntityMarkers), entity markers in the cleaned query and description (brand and
    color marked whole), then the template.
    """

    def __init__(self, field_style: str = "text", prompt_tokens: int = 0, tagger=None,
                 max_field_chars: int | None = MAX_FIELD_CHARS):
        super().__init__(name="field_formatter")
        field_labels(field_style)
        check_prompt_tokens(prompt_tokens)
        self.field_style, self.prompt_tokens, self.max_field_chars = field_style, int(prompt_tokens), max_field_chars
        self.tagger = tagger
        with tf.init_scope():  # the cleaner's tables live outside any traced graph
            self.cleaner = TextCleaner()
        # One trace (every field present, [None]); plain ops: nothing for autograph to convert.
        fields_spec = [{name: tf.TensorSpec([None], tf.string) for name in RAW_FIELDS}]
        self._format_traced = tf.function(self._format, input_signature=fields_spec, autograph=False)

    def clean(self, fields: dict) -> dict:
        """clean_fields, then the entity markers (if any) of the cleaned fields."""
        cleaned = clean_fields(fields, self.cleaner, self.max_field_chars)
        if self.tagger is None:
            return cleaned
        return dict(cleaned, query=self.tagger.tag(cleaned["query"]),
                    description=self.tagger.tag(cleaned["description"]),
                    color=self.tagger.wrap(cleaned["color"], "COLOR"),
                    brand=self.tagger.wrap(cleaned["brand"], "BRAND"))

    def assemble(self, cleaned: dict) -> tuple:
        return assemble(cleaned, self.field_style, self.prompt_tokens)

    def _format(self, fields):
        return self.assemble(self.clean(fields))

    def __call__(self, fields) -> tuple:
        fields = string_fields(fields)
        fields = {name: field(fields, name) for name in RAW_FIELDS}
        return self._format_traced(fields) if tf.executing_eagerly() else self._format(fields)
