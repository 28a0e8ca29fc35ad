"""The Python text path esci-tf used before cleaning and the template became TF ops (esci_tf.preprocessing.clean_ops, template_ops), kept here only as the oracle of the parity tests (tests/test_preprocessing_text_parity.py): the graph must give the same text, and every difference is listed there with its reason."""

import html
import math
import re
import unicodedata
from html.parser import HTMLParser

import emoji
import pandas as pd

from esci_tf.data.entities import EntityTagger
from esci_tf.errors import DataError
from esci_tf.special_tokens import ALL_SPECIAL_TOKENS, FIELD_TOKENS, LANGUAGE_TOKENS, PROMPT_TOKENS

SEPARATOR = " | "

# Tags whose boundaries separate items of text (a line, a list item, a cell, ...).
_BLOCK_TAGS = frozenset(
    "br p div li ul ol tr td th table h1 h2 h3 h4 h5 h6 hr dt dd section article "
    "header footer blockquote pre".split()
)
# Tags whose content is never shown text.
_HIDDEN_TAGS = frozenset(("script", "style", "head", "title", "noscript"))

# Looks like markup or a character reference, worth running the HTML parser for.
_HTML_HINT = re.compile(r"<[A-Za-z/!?]|&(?:#\d+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")

# Characters that can start an emoji: the BMP ones listed (a bitmap for the regex engine)
# plus the supplementary emoji planes as one range, which keeps the scan fast. A run of such
# characters with their joiners, variation selectors and tags is handed to the emoji
# package; keycaps ("1\ufe0f\u20e3") are matched whole.
_EMOJI_START = "".join(
    re.escape(c) for c in sorted({k[0] for k in emoji.EMOJI_DATA} - set("#*0123456789")) if ord(c) <= 0xFFFF
) + "\U0001F000-\U0001FFFF"
_EMOJI_RUN = re.compile(f"[{_EMOJI_START}][{_EMOJI_START}\ufe0f\u200d\u20e3\U000E0020-\U000E007F]*")
_KEYCAP = re.compile("[#*0-9]\ufe0f?\u20e3")

# Symbols of category So that carry meaning in product text and are kept.
_KEPT_SYMBOLS = frozenset("°")
# Punctuation used as bullets in catalogue text.
_BULLETS = frozenset("•‣◦∙⁃※▪▫")
_LINE_BREAKS = frozenset("\n\r\u2028\u2029\x0b\x0c\x85")

_REPEATED_PUNCT = re.compile(r"([^\w\s])\1+")
_SEPARATOR_PIPES = re.compile(r" ?\|(?: ?\|)* ?")
_ANGLE_BRACKETS = re.compile(r"[<>]")
# Combining marks right after a space (NFKC writes "¨" as " \u0308"); the mark is matched
# first so that the regex engine can skip ahead quickly.
_SPACE_THEN_MARKS = re.compile(r"[\u0300-\u036f\u3099\u309a](?<=\s.)[\u0300-\u036f\u3099\u309a]*")
_SPECIAL_TOKEN_LITERAL = re.compile(
    "|".join(re.escape(t) for t in sorted(ALL_SPECIAL_TOKENS, key=len, reverse=True)),
    re.IGNORECASE,
)


class _CharTable(dict):
    """str.translate table built lazily per code point: drops controls and junk symbols.

    Entries are computed once per distinct character (from unicodedata) and then looked
    up at C speed by str.translate.
    """

    def __missing__(self, code_point):
        char = chr(code_point)
        category = unicodedata.category(char)
        if char in _LINE_BREAKS:
            value = "\n"
        elif char in _BULLETS:
            value = " "
        elif category in ("Cc", "Zl", "Zp"):
            value = " "  # tabs and other control characters act as spaces
        elif category in ("Cf", "Co", "Cs", "Cn"):
            value = None  # zero-width and format characters, private use, unassigned
        elif category == "So" and char not in _KEPT_SYMBOLS:
            value = " "  # decorative symbols: stars, arrows, box drawing, dingbats
        elif char == "\u2044":
            value = "/"  # fraction slash, as NFKC writes "½"
        else:
            value = code_point
        self[code_point] = value
        return value


_CHAR_TABLE = _CharTable()


class _HTMLTextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block tags become line breaks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self._hidden_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN_TAGS:
            self._hidden_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _HIDDEN_TAGS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._hidden_depth:
            self.parts.append(data)


def strip_html(text: str, max_rounds: int = 3) -> str:
    """Text content of an HTML fragment, with entities decoded and block tags as line breaks.

    Repeats up to `max_rounds` times while the result still looks like HTML, which undoes
    double escaping ("&lt;li&gt;" -> "<li>" -> text).
    """
    for _ in range(max_rounds):
        if not _HTML_HINT.search(text):
            break
        parser = _HTMLTextExtractor()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    return html.unescape(text) if _HTML_HINT.search(text) else text


def _is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _replace_emoji(match) -> str:
    return emoji.replace_emoji(match.group(0), replace=" ")


def neutralize_special_tokens(text: str) -> str:
    """Rewrites literal special tokens, "[BRAND]" -> "(BRAND)", so they stay plain text."""
    return _SPECIAL_TOKEN_LITERAL.sub(lambda m: "(" + m.group(0)[1:-1] + ")", text)


def clean_text(text) -> str:
    """Plain, normalised text from a raw query or product field; None/NaN -> ""."""
    if _is_missing(text):
        return ""
    if not isinstance(text, str):
        text = str(text)
    if "<" in text or "&" in text:
        text = strip_html(text)
    if "\u20e3" in text:
        text = _KEYCAP.sub(" ", text)
    text = _EMOJI_RUN.sub(_replace_emoji, text)
    text = unicodedata.normalize("NFKC", text)
    if "<" in text or ">" in text:
        # What is left of "<"/">" (also from "＜") is not markup ("<200Ω", "a -> b"): drop it.
        text = _ANGLE_BRACKETS.sub(" ", text)
    text = text.translate(_CHAR_TABLE)
    text = _SPACE_THEN_MARKS.sub("", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    if "\n" in text:
        lines = (" ".join(line.split()) for line in text.split("\n"))
        text = SEPARATOR.join(line for line in lines if line)
    else:
        text = " ".join(text.split())
    if "|" in text:
        text = _SEPARATOR_PIPES.sub(SEPARATOR, text).strip(" |")
    text = text.strip()
    return neutralize_special_tokens(text)


FIELD_STYLES = ("text", "tokens")
_FIELD_WORDS = {"color": "color:", "brand": "brand:", "description": "description:"}
_DESCRIPTION_PARTS = ("product_title", "product_bullet_point", "product_description")
MAX_FIELD_CHARS = 3000  # more than 512 tokens of English, Spanish or Japanese text
REQUIRED_COLUMNS = ("query", "product_locale", "product_color", "product_brand") + _DESCRIPTION_PARTS


def _labels(field_style: str) -> dict:
    if field_style == "text":
        return _FIELD_WORDS
    if field_style == "tokens":
        return FIELD_TOKENS
    raise ValueError(f"field_style must be one of {FIELD_STYLES}, got {field_style!r}")


def _cut(text, max_chars):
    """text shortened to at most max_chars, at a space when there is one near the end."""
    if max_chars is None or not isinstance(text, str) or len(text) <= max_chars:
        return text
    text = text[:max_chars]
    space = text.rfind(" ", max_chars - 50)
    return text[:space] if space > 0 else text


def product_text(fields: dict, locale: str, tagger: EntityTagger | None = None, field_style: str = "text",
                 prompt_tokens: int = 0, max_field_chars: int | None = MAX_FIELD_CHARS) -> str:
    """Segment B for one product; `fields` maps product_* column names to raw values."""
    labels = _labels(field_style)
    if locale not in LANGUAGE_TOKENS:
        raise ValueError(f"unknown locale {locale!r}; expected one of {', '.join(LANGUAGE_TOKENS)}")

    def cleaned(column):
        return clean_text(_cut(fields.get(column), max_field_chars))

    def entity_field(column, entity_type):
        text = cleaned(column)
        return tagger.wrap(text, entity_type) if (tagger is not None and text) else text

    description = _cut(" ".join(t for t in (cleaned(c) for c in _DESCRIPTION_PARTS) if t), max_field_chars)
    if tagger is not None and description:
        description = tagger.tag(description, locale)
    parts = [LANGUAGE_TOKENS[locale], *PROMPT_TOKENS[:prompt_tokens]]
    for name, text in (("color", entity_field("product_color", "COLOR")),
                       ("brand", entity_field("product_brand", "BRAND")), ("description", description)):
        if text:
            parts += [labels[name], text]
    return " ".join(parts)


def query_text(query, locale: str, tagger: EntityTagger | None = None) -> str:
    """Segment A: the cleaned (and optionally tagged) query."""
    text = clean_text(query)
    return tagger.tag(text, locale) if (tagger is not None and text) else text


def format_pairs(df: pd.DataFrame, tagger: EntityTagger | None = None, field_style: str = "text",
                 prompt_tokens: int = 0, max_field_chars: int | None = MAX_FIELD_CHARS) -> tuple[list, list]:
    """(queries, product_texts), one pair per row of a merged frame (see reader.load_esci).

    `max_field_chars` bounds each raw field before cleaning and the joined description
    before tagging: past ~512 tokens no model reads it, and it bounds the cost of a
    catalogue's longest descriptions (None keeps everything).
    """
    _labels(field_style)
    if not 0 <= prompt_tokens <= len(PROMPT_TOKENS):
        raise ValueError(f"prompt_tokens must be in [0, {len(PROMPT_TOKENS)}], got {prompt_tokens}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"frame to format lacks column(s) {', '.join(missing)}")
    if len(df) == 0:
        return [], []
    unknown = ~df["product_locale"].isin(list(LANGUAGE_TOKENS)).to_numpy()
    if unknown.any():
        rows = df.index[unknown]
        raise DataError(
            f"unknown product_locale {df.at[rows[0], 'product_locale']!r} at frame row(s) "
            f"{', '.join(map(str, rows[:5]))}; expected one of {', '.join(LANGUAGE_TOKENS)}",
            row=int(rows[0]),
        )

    query_keys = list(zip(df["query"].tolist(), df["product_locale"].tolist()))
    queries = {key: query_text(key[0], key[1], tagger) for key in dict.fromkeys(query_keys)}

    product_columns = ["product_locale", "product_color", "product_brand", *_DESCRIPTION_PARTS]
    product_keys = list(df[product_columns].itertuples(index=False, name=None))
    products = {}
    for key in dict.fromkeys(product_keys):
        fields = dict(zip(product_columns, key))
        products[key] = product_text(fields, key[0], tagger, field_style, prompt_tokens, max_field_chars)
    return [queries[k] for k in query_keys], [products[k] for k in product_keys]
