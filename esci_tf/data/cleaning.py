"""Text cleaning for queries and product fields (English, Spanish, Japanese).

`clean_text` turns raw catalogue text into plain text a tokenizer can use:
HTML tags and entities are removed (also double-escaped HTML such as "&lt;li&gt;"),
block tags (<br>, <li>, <p>, ...) and line breaks become the separator " | ", emoji,
control/format characters and decorative symbols (bullets, stars, arrows, box drawing)
are dropped, runs of the same punctuation mark collapse to one, whitespace collapses,
and the result is Unicode NFKC (full-width ASCII and half-width katakana are unified;
"ñ", accents, kana and kanji are kept). Literal special-token strings
("[BRAND]", "[L_US]", ...) in the raw text are neutralised to "(BRAND)", "(L_US)" so
that user text can never inject a marker.
"""

import html
import math
import re
import unicodedata
from html.parser import HTMLParser

import emoji
import pandas as pd

from esci_tf.special_tokens import ALL_SPECIAL_TOKENS

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


def normalize_key(text) -> str:
    """Matching key: clean_text, casefolded, whitespace collapsed ("Nike  AIR" -> "nike air")."""
    return " ".join(clean_text(text).casefold().split())
