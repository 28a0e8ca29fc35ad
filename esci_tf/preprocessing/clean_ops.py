"""Text cleaning as TensorFlow ops: raw catalogue text -> plain text a tokenizer can use.

`clean_strings(texts)` maps a string tensor to its cleaned form inside a graph (TF core and
tensorflow-text ops only, so a SavedModel served by TF Serving cleans exactly as training did):

1. invalid UTF-8 is replaced by U+FFFD;
2. HTML: hidden elements (script, style, head, title, noscript) and comments are removed, block
   tags (<br>, <li>, <p>, ...) become line breaks, other tags are removed, character references
   (&amp; &#233; &#x2764;) are decoded; three rounds undo double escaping ("&lt;li&gt;");
3. keycaps and emoji runs become spaces;
4. Unicode NFKC (tensorflow_text.normalize_utf8): full-width ASCII and half-width katakana are
   unified, "ñ", accents, kana and kanji are kept;
5. per code point (a range table built from Python's unicodedata when the layer is built and
   stored in the graph): control characters, bullets and decorative symbols (category So except
   "°") become spaces, line breaks become "\\n", format/private-use/unassigned characters are
   dropped, "<" and ">" (no markup is left) become spaces, the fraction slash becomes "/";
6. runs of one punctuation mark collapse to one ("!!!" -> "!"); combining marks right after a
   space are dropped;
7. whitespace collapses; lines become items separated by " | ";
8. literal special tokens ("[BRAND]", "[L_US]") become "(BRAND)", "(L_US)", so user text never
   injects a marker.

>>> import tensorflow as tf
>>> [t.decode() for t in clean_strings(tf.constant(["<b>Red</b>&amp;Blue!!! ★ shoes", "ＡＢＣ　１２３"])).numpy()]
['Red&Blue! shoes', 'ABC 123']
"""

import functools
import html
import html.entities
import re
import unicodedata

import emoji
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from esci_tf.special_tokens import ALL_SPECIAL_TOKENS

SEPARATOR = " | "
HTML_ROUNDS = 3

_BLOCK_TAGS = ("br p div li ul ol tr td th table h1 h2 h3 h4 h5 h6 hr dt dd section article header footer "
               "blockquote pre").split()
_HIDDEN_TAGS = ("script", "style", "head", "title", "noscript")
_KEPT_SYMBOLS = frozenset("°")
_BULLETS = frozenset("•‣◦∙⁃※▪▫")
_LINE_BREAKS = frozenset("\n\r\u2028\u2029\x0b\x0c\x85")
_COMBINING_AFTER_SPACE = "\u0300-\u036f\u3099\u309a"

# Code point actions of the range table.
KEEP, DROP, SPACE, NEWLINE, SLASH = range(5)
_PUNCT_FLAG = 8  # added to the action: the output character is neither \w nor whitespace

_TAG_BODY = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_HIDDEN_PATTERN = "|".join(
    rf"<{tag}\b{_TAG_BODY}>(?s:.*?)</{tag}\s*>" for tag in _HIDDEN_TAGS)
_BLOCK_PATTERN = rf"</?(?:{'|'.join(_BLOCK_TAGS)})\b{_TAG_BODY}/?>|</?(?:{'|'.join(_BLOCK_TAGS)})/?>"
_OTHER_TAG_PATTERN = rf"<!--(?s:.*?)-->|</?[A-Za-z]{_TAG_BODY}>|<[!?][^>]*>"
_SPECIAL_LITERAL = r"(?i)\[(" + "|".join(re.escape(t[1:-1]) for t in sorted(ALL_SPECIAL_TOKENS, key=len, reverse=True)) + r")\]"


_BMP_SIZE = 0x10000
_PLAIN_ASCII = "[ -;=?-~]*"
# A printable ASCII punctuation mark twice in a row (what the code point step would shorten).
_REPEAT_HINT = "(?s).*(?:" + "|".join(re.escape(c * 2) for c in "!\"#$%&'()*+,-./:;=?@[\\]^`{|}~") + ").*"


def _update_where(texts, mask, function):
    """texts with function applied to the elements where mask is true (only those are computed)."""
    changed = tf.cast(tf.where(mask)[:, 0], tf.int32)
    kept = tf.cast(tf.where(~mask)[:, 0], tf.int32)
    return tf.dynamic_stitch([kept, changed], [tf.gather(texts, kept), function(tf.gather(texts, changed))])


def _code_point_class(points) -> str:
    """An RE2 character class body for a set of code points, as ranges."""
    points = sorted(points)
    ranges, start = [], None
    for i, p in enumerate(points):
        if start is None:
            start = p
        if i + 1 == len(points) or points[i + 1] != p + 1:
            ranges.append(f"\\x{{{start:x}}}" if start == p else f"\\x{{{start:x}}}-\\x{{{p:x}}}")
            start = None
    return "".join(ranges)


@functools.lru_cache(maxsize=1)
def _emoji_run_pattern() -> str:
    """Emoji runs: a character that can start an emoji (emoji package data; the supplementary
    emoji planes as one range), then more of them with joiners, variation selectors and tags."""
    starts = {ord(k[0]) for k in emoji.EMOJI_DATA if ord(k[0]) <= 0xFFFF} - set(map(ord, "#*0123456789"))
    starts |= set(range(0x1F000, 0x20000))
    start = _code_point_class(starts)
    follow = _code_point_class(starts | {0xFE0F, 0x200D, 0x20E3} | set(range(0xE0020, 0xE0080)))
    return f"[{start}][{follow}]*"


def _action(char: str) -> int:
    category = unicodedata.category(char)
    if char in _LINE_BREAKS:
        return NEWLINE
    if char in _BULLETS or char in "<>" or category in ("Cc", "Zl", "Zp") or char.isspace():
        return SPACE
    if category in ("Cf", "Co", "Cs", "Cn"):
        return DROP
    if category == "So" and char not in _KEPT_SYMBOLS:
        return SPACE
    if char == "\u2044":
        return SLASH
    return KEEP


_WORD = re.compile(r"\w")


# Planes with assigned characters; every other code point is unassigned or private use (both
# dropped), so the table needs no per-character lookup there (tests check this against a full scan).
_ASSIGNED_PLANES = ((0x0000, 0x40000), (0xE0000, 0xF0000))


def _code(point: int) -> int:
    char = chr(point)
    action = _action(char)
    out = {KEEP: char, SLASH: "/"}.get(action)
    punct = out is not None and not _WORD.match(out) and not out.isspace()
    return action + (_PUNCT_FLAG if punct else 0)


@functools.lru_cache(maxsize=2)
def code_point_table(full_scan: bool = False) -> tuple:
    """(range starts int32 [R], codes int32 [R]): the action of every code point (KEEP, DROP, SPACE,
    NEWLINE, SLASH), plus _PUNCT_FLAG when the character it becomes is punctuation (neither \\w nor
    whitespace), run-length encoded over 0..0x10FFFF."""
    planes = ((0, 0x110000),) if full_scan else _ASSIGNED_PLANES
    starts, codes, previous, end = [], [], None, 0
    for first, last in planes:
        if first > end and previous != DROP:  # the gap: unassigned or private use
            starts.append(end)
            codes.append(DROP)
            previous = DROP
        for point in range(first, last):
            code = _code(point)
            if code != previous:
                starts.append(point)
                codes.append(code)
                previous = code
        end = last
    if end < 0x110000 and previous != DROP:
        starts.append(end)
        codes.append(DROP)
    return np.array(starts, np.int32), np.array(codes, np.int32)


_CHARREF = r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)"  # html.unescape's
_HTML_HINT = r"(?s).*(?:<[A-Za-z/!?]|&(?:#\d+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);).*"


class TextCleaner(tf.Module):
    """The constants of the cleaning graph (a tf.Module, so a SavedModel that holds one keeps its
    entity table); calling it on a string tensor [B] cleans it."""

    def __init__(self):
        super().__init__(name="text_cleaner")
        starts, codes = code_point_table()
        self.starts = tf.constant(starts)
        self.codes = tf.constant(codes)
        self.bmp_codes = tf.constant(np.repeat(codes, np.diff(np.append(starts, 0x110000)))[:_BMP_SIZE].astype(np.int8),
                                     tf.int8)
        names = html.entities.html5
        self.entities = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["&" + n for n in names], list(names.values())), "")
        legacy = sorted((n for n in names if not n.endswith(";")), key=len, reverse=True)
        self.legacy_prefix = "^(&(?:" + "|".join(legacy) + "))(.*)$"
        # Numeric references html.unescape maps to other characters (windows-1252, NUL, CR).
        invalid = dict(sorted(html._invalid_charrefs.items()))
        self.charref_keys = tf.constant(list(invalid), tf.int64)
        self.charref_values = tf.constant([ord(v) for v in invalid.values()], tf.int64)
        self.dropped_points = tf.constant(sorted(html._invalid_codepoints), tf.int64)
        self.emoji_pattern = _emoji_run_pattern()

    def _unescape(self, texts):
        """html.unescape as ops: named (longest legacy prefix when unknown) and numeric references."""
        pieces = tf_text.regex_split(texts, _CHARREF, keep_delim_regex_pattern=_CHARREF)
        flat = pieces.flat_values
        is_reference = tf.strings.regex_full_match(flat, _CHARREF)
        numeric = tf.strings.regex_full_match(flat, "&#.*")
        named = self.entities.lookup(flat)
        prefix = tf.strings.regex_replace(flat, self.legacy_prefix, "\\1")
        has_prefix = tf.strings.regex_full_match(flat, self.legacy_prefix)
        by_prefix = self.entities.lookup(prefix) + tf.strings.regex_replace(flat, self.legacy_prefix, "\\2")
        named = tf.where(named != "", named, tf.where(has_prefix, by_prefix, flat))
        decoded = tf.where(numeric, self._numeric(flat), named)
        flat = tf.where(is_reference, decoded, flat)
        return tf.strings.reduce_join(pieces.with_flat_values(flat), axis=1)

    def _numeric(self, flat):
        """The characters numeric references stand for ("" for others), as html.unescape decodes."""
        hexadecimal = tf.strings.regex_full_match(flat, "&#[xX].*")
        digits = tf.strings.regex_replace(flat, "^&#[xX]?|;$", "")
        digits = tf.where(tf.strings.regex_full_match(flat, "&#.*"), digits, "0")
        digits = tf.strings.regex_replace(digits, "^0+(.)", "\\1")
        too_long = tf.strings.length(digits) > 8
        digits = tf.where(too_long, "0", digits)
        digits = tf.strings.unicode_decode(tf.strings.lower(digits), "UTF-8")  # ragged [N, None] code points
        rows = digits.value_rowids()
        position = tf.range(tf.size(rows, tf.int64), dtype=tf.int64) - tf.gather(digits.row_starts(), rows)
        power = tf.gather(digits.row_lengths(), rows) - 1 - position
        base = tf.gather(tf.where(hexadecimal, tf.constant(16, tf.int64), 10), rows)
        points = tf.cast(digits.flat_values, tf.int64)
        nibbles = tf.where(points >= 97, points - 87, points - 48)
        weights = tf.cast(tf.round(tf.pow(tf.cast(base, tf.float64), tf.cast(power, tf.float64))), tf.int64)
        value = tf.math.unsorted_segment_sum(nibbles * weights, rows, tf.shape(flat, tf.int64)[0])
        value = tf.where(too_long, tf.constant(0x110000, tf.int64), value)
        index = tf.minimum(tf.searchsorted(self.charref_keys, value), tf.size(self.charref_keys) - 1)
        remapped = tf.gather(self.charref_keys, index) == value
        point = tf.where(remapped, tf.gather(self.charref_values, index), value)
        surrogate_or_beyond = ((point >= 0xD800) & (point <= 0xDFFF)) | (point > 0x10FFFF)
        point = tf.where(~remapped & surrogate_or_beyond, tf.constant(0xFFFD, tf.int64), point)
        index = tf.minimum(tf.searchsorted(self.dropped_points, point), tf.size(self.dropped_points) - 1)
        dropped = ~remapped & (tf.gather(self.dropped_points, index) == point)
        chars = tf.strings.unicode_encode(tf.cast(tf.where(dropped, tf.constant(32, tf.int64), point), tf.int32)[:, None], "UTF-8")
        return tf.where(dropped, "", chars)

    def _html_round(self, texts):
        texts = tf.strings.regex_replace(texts, _HIDDEN_PATTERN, "")
        texts = tf.strings.regex_replace(texts, _BLOCK_PATTERN, "\n")
        texts = tf.strings.regex_replace(texts, _OTHER_TAG_PATTERN, "")
        return self._unescape(texts)

    def _strip_html(self, texts):
        """Up to HTML_ROUNDS rounds while a text still looks like HTML, then a last unescape (one
        traced round in a loop: a smaller graph to build)."""
        def html_round(i, texts):
            return i + 1, _update_where(texts, tf.strings.regex_full_match(texts, _HTML_HINT), self._html_round)

        _, texts = tf.while_loop(lambda i, _: i < HTML_ROUNDS, html_round, (tf.constant(0), texts),
                                 shape_invariants=(tf.TensorShape([]), tf.TensorShape([None])))
        return _update_where(texts, tf.strings.regex_full_match(texts, _HTML_HINT), self._unescape)

    def _unicode_steps(self, texts):
        """Keycaps and emoji, NFKC, the code point table and punctuation runs, marks after spaces."""
        texts = tf.strings.regex_replace(texts, "[#*0-9]\\x{fe0f}?\\x{20e3}", " ")
        texts = tf.strings.regex_replace(texts, self.emoji_pattern, " ")
        texts = tf_text.normalize_utf8(texts, "NFKC")
        texts = self._map_code_points(texts)
        return tf.strings.regex_replace(texts, f"([ \\n])[{_COMBINING_AFTER_SPACE}]+", "\\1")

    def _codes(self, points):
        """The table's code of each code point: a direct lookup in the Basic Multilingual Plane, a
        range search for the few others."""
        in_bmp = points < _BMP_SIZE
        codes = tf.cast(tf.gather(self.bmp_codes, tf.where(in_bmp, points, 0)), tf.int32)
        astral = tf.where(~in_bmp)
        astral_codes = tf.gather(self.codes, tf.searchsorted(self.starts, tf.gather_nd(points, astral), side="right") - 1)
        return tf.tensor_scatter_nd_update(codes, astral, astral_codes)

    def _map_code_points(self, texts):
        """The range table applied per code point, dropped characters removed, then runs of one
        punctuation mark cut to their first."""
        points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
        flat, rows = points.flat_values, points.value_rowids()
        code = self._codes(flat)
        action = code % _PUNCT_FLAG
        out = tf.where(action == SPACE, 32, tf.where(action == NEWLINE, 10, tf.where(action == SLASH, 47, flat)))
        kept = action != DROP
        out, rows, punct = tf.boolean_mask(out, kept), tf.boolean_mask(rows, kept), tf.boolean_mask(code >= _PUNCT_FLAG, kept)
        repeat = punct & tf.concat([[False], (out[1:] == out[:-1]) & (rows[1:] == rows[:-1])], axis=0)
        out, rows = tf.boolean_mask(out, ~repeat), tf.boolean_mask(rows, ~repeat)
        ragged = tf.RaggedTensor.from_value_rowids(out, rows, nrows=points.nrows(), validate=False)
        return tf.strings.unicode_encode(ragged, "UTF-8")

    def __call__(self, texts):
        # Printable ASCII without "<" or ">" is valid UTF-8, and the Unicode steps leave it as it
        # is unless it repeats a punctuation mark: most catalogue text skips them.
        transcode = lambda t: tf.strings.unicode_transcode(t, "UTF-8", "UTF-8", errors="replace")  # noqa: E731
        texts = _update_where(texts, ~tf.strings.regex_full_match(texts, _PLAIN_ASCII), transcode)
        texts = self._strip_html(texts)
        needed = ~tf.strings.regex_full_match(texts, _PLAIN_ASCII) | tf.strings.regex_full_match(texts, _REPEAT_HINT)
        texts = _update_where(texts, needed, self._unicode_steps)
        texts = tf.strings.regex_replace(texts, "[ \\n]*\\n[ \\n]*", "\n")
        texts = tf.strings.regex_replace(texts, " +", " ")
        texts = tf.strings.regex_replace(texts, "^[ \\n]+|[ \\n]+$", "")
        texts = tf.strings.regex_replace(texts, "\n", SEPARATOR)
        texts = tf.strings.regex_replace(texts, r" ?\|(?: ?\|)* ?", SEPARATOR)
        texts = tf.strings.regex_replace(texts, r"^[ |]+|[ |]+$", "")
        return tf.strings.regex_replace(texts, _SPECIAL_LITERAL, "(\\1)")


@functools.lru_cache(maxsize=1)
def _cleaner() -> TextCleaner:
    with tf.init_scope():  # constants and the entity table live outside any traced graph
        return TextCleaner()


def clean_strings(texts, cleaner: TextCleaner | None = None):
    """Cleaned form of a string tensor (any shape) inside or outside a graph. Code that is saved
    (a layer, a SavedModel) passes its own `cleaner`; the default is one per process."""
    texts = tf.convert_to_tensor(texts, tf.string)
    shape = tf.shape(texts)
    return tf.reshape((cleaner or _cleaner())(tf.reshape(texts, [-1])), shape)
