"""Entity markers as TensorFlow ops: "[BRAND] nike [/BRAND]" around brands, colors, sizes and
model numbers of cleaned text, inside the graph (what trainers.predict and a SavedModel run).

The rules: brand and color gazetteers (built from the catalogue by esci_tf.preprocessing.entities, saved
with the template settings), sizes/quantities/units in en/es/ja, and model numbers (hyphenated
codes of ASCII letters and digits with at least one of each, 4+ characters, not an ordinal
"2nd"/"1990s" nor a "2-year" compound). Matching is case-insensitive (model numbers: as
written) and keeps the original text. Latin-script entries need Latin word boundaries
(no Latin letter or digit on either side); CJK entries do not. Of overlapping matches the longest
wins (ties: the earlier start, then BRAND, COLOR, SIZE, MODEL), and markers never nest.

RE2, the regex engine of TF's string ops, has no lookbehind or lookahead, so:
1. every maximal run of Latin letters and digits is marked: LETTER_RUN (\\x01) twice before a run
   that starts with a letter, DIGIT_RUN (\\x03) before one that starts with a digit, RUN_END
   (\\x02) after it (cleaned text has no control characters). A word boundary is then a mark
   that a pattern matches, and an entry is marked the same way as text. Where a rule looks
   ahead ("in" is a unit unless a number follows) the pattern takes what follows and the match
   is trimmed back; the doubled letter mark leaves the next size match its start;
2. each matcher (the brand gazetteer, the color gazetteer, the size patterns, model-number
   chains) is one RE2 pattern scanned by tensorflow_text.regex_split_with_offsets, which finds
   the leftmost-first non-overlapping matches; a gazetteer of more than GAZETTEER_CHUNK entries
   is split into several patterns (RE2 refuses a program past its memory budget; measured: 20,000
   entries compile, 100,000 do not). Each pattern scans on its own, so a match that starts
   inside an earlier match of another chunk is still a candidate (the longest then wins), where
   one scan of the whole gazetteer would have skipped it;
3. a model-number chain ("ab-12-cd") takes its first hyphen suffix that passes the rules, as a
   scan that tried each start of the chain would;
4. overlaps are resolved in a tf.while_loop: each round accepts every candidate that no
   better-ranked live candidate overlaps, and drops the candidates it overlaps (the same result
   as one greedy pass in rank order);
5. the markers are written in at the accepted spans and the run marks removed.

>>> import tensorflow as tf
>>> markers = EntityMarkers(brands=["nike"], colors=["black"])
>>> [t.decode() for t in markers.tag(tf.constant(["Nike shoes black size 10, WH-1000XM4"])).numpy()]
['[BRAND] Nike [/BRAND] shoes [COLOR] black [/COLOR] [SIZE] size 10 [/SIZE], [MODEL] WH-1000XM4 [/MODEL]']
"""

import re

import tensorflow as tf
import tensorflow_text as tf_text

from esci_tf.special_tokens import ENTITY_TOKENS

LETTER_RUN, RUN_END, DIGIT_RUN = "\x01", "\x02", "\x03"
# A Latin-script letter or digit: what a Latin-script match must not touch on either side.
LATIN_ALNUM = "0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"  # without × and ÷
GAZETTEER_CHUNK = 5000  # entries per RE2 pattern
ENTITY_ORDER = ("BRAND", "COLOR", "SIZE", "MODEL")  # the tie-break order

# Units after a number ("_" stands for a space), matched through a trie: the longest spelling
# wins ("gallons" over "gal").
UNITS = tuple(unit.replace("_", " ") for unit in """oz fl_oz fl._oz fl.oz floz ounce ounces lb lbs pound pounds g gr gram grams kg kilo kilos kilogram
    kilograms mg mcg ml l ltr liter liters litre litres gal gallon gallons qt quart quarts pt pint pints
    inch inches ft feet foot cm mm m meter meters metre metres yd yard yards km
    gb tb mb kb mah wh w watt watts kw v volt volts amp amps hz khz mhz ghz mp
    pack packs pk pc pcs piece pieces count ct pair pairs set sets sheet sheets roll rolls
    capsule capsules tablet tablets softgels serving servings bag bags box boxes bottle bottles
    can cans lm bit leds
    gramos litro litros pulgada pulgadas pieza piezas unidad unidades paquete paquetes metro metros
    centímetros milímetros onzas libras hojas rollos cápsulas
    個 枚 本 組 足 袋 箱 巻 入 入り 錠 粒 包 個入 個入り 枚入 枚入り 本入 本入り セット ケース パック
    インチ リットル ミリリットル グラム キロ センチ ミリ 着 台 缶 ロール""".split())

_RUN = re.compile(f"[{LATIN_ALNUM}]+")
_MARK = r"[\x01\x02\x03]"  # any run mark
_M = r"(?:\x02|\x03|\x01\x01)?"  # where the text may have a run mark
_LETTER_START = r"\x01?\x01"  # one of the two may have been taken by the match before (_INCH)
_START = rf"(?:\x03|{_LETTER_START})"
_END = r"\x02"
_NUMBER = rf"[0-9]+(?:{_M}[.,/]{_M}[0-9]+)?"
# "in" only when no number follows ("10 in tablet", not "2 in 1"): what follows is consumed
# and trimmed off the match afterwards (_INCH_CONTEXT).
_INCH = r"in\x02(?:$| $| \x01| [^\x01\x03]|[^ \x01\x03])"
_INCH_CONTEXT = r"(?i)(in\x02)(?: [^\x01\x03]|[^ \x01\x03])$"
# Model numbers: chains of ASCII alphanumeric runs joined by single hyphens.
# The hyphens after a chain count towards its 4+ characters (as in a lookahead), but are no
# part of the match. Chains without a digit are no model numbers: the pattern skips them.
_SEGMENT = r"(?:\x03|\x01\x01)[0-9A-Za-z]+"
_MODEL_CHAIN = (rf"(?:{_SEGMENT}\x02-)*(?:\x03|\x01\x01)[A-Za-z]*[0-9][0-9A-Za-z]*(?:\x02-{_SEGMENT})*\x02-*")


def mark_runs_text(text: str, start_mark: bool = True) -> str:
    """A Python string marked as `mark_runs` marks tensors (start_mark=False: without the
    first run's start mark, for entries that need no boundary before them)."""
    marked = _RUN.sub(lambda m: (DIGIT_RUN if m.group(0)[0] in "0123456789" else 2 * LETTER_RUN)
                      + m.group(0) + RUN_END, text)
    return marked if start_mark else marked.lstrip(LETTER_RUN + DIGIT_RUN)


def mark_runs(texts):
    """Each maximal Latin letter/digit run wrapped in its start mark and RUN_END."""
    marked = tf.strings.regex_replace(texts, f"([{LATIN_ALNUM}]+)", 2 * LETTER_RUN + "\\1" + RUN_END)
    return tf.strings.regex_replace(marked, "\x01\x01([0-9])", DIGIT_RUN + "\\1")


def _escape(char: str) -> str:
    if char in (LETTER_RUN, RUN_END, DIGIT_RUN):
        return f"\\x{ord(char):02x}"
    if char.isascii() and not char.isalnum():
        return "\\" + char
    return char


def trie_pattern(words) -> str:
    """An RE2 pattern matching any of `words` (non-empty literal strings, at least one), the
    longest at a position first, shaped as a trie."""
    trie = {}
    for word in words:
        if not word:
            raise ValueError("trie_pattern: an empty word would match everywhere")
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = True

    def emit(node):
        branches = [_escape(c) + emit(child) for c, child in sorted(node.items()) if c]
        if "" in node:
            return "(?:" + "|".join(branches) + "|)" if branches else ""
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    if not trie:
        raise ValueError("trie_pattern needs at least one word")
    return emit(trie)


def gazetteer_patterns(entries) -> list:
    """RE2 patterns (case-insensitive, on marked text) for lowercase gazetteer entries, at most
    GAZETTEER_CHUNK entries each."""
    entries = sorted(set(entries))
    return ["(?i)" + trie_pattern(mark_runs_text(e) for e in entries[i:i + GAZETTEER_CHUNK])
            for i in range(0, len(entries), GAZETTEER_CHUNK)]


def size_pattern() -> str:
    """Sizes, quantities and units in en/es/ja, on marked text."""
    units = trie_pattern(mark_runs_text(unit, start_mark=False) for unit in UNITS)
    times = rf"(?:{_M}\s?{_M}[x×*]{_M}\s?{_M}{_NUMBER})"
    letter_size = r"(?:x{0,3}[sl]|m|[0-9]?x[sl])"
    patterns = [
        # 10.5 oz, 2 pack, 3-pack, 500ml, 32GB, 2個, 3枚入り, 10 x 20 cm
        rf"\x03{_NUMBER}{times}{{0,2}}{_M}[\s-]?{_M}(?:{units}|{_INCH})",
        # dimensions without a unit: 10x20, 36 x 24 x 12
        rf"\x03{_NUMBER}{times}{{1,2}}{_END}",
        # size 10, size xl, talla 38, talla m (letter sizes after a space: not "sizes")
        rf"{_LETTER_START}(?:size|sz|talla|tamaño|taille)(?:{_M}\s?{_M}{_NUMBER}|{_M}\s{_M}{letter_size}){_END}",
        # サイズ L, サイズ10
        rf"サイズ{_M}\s?{_M}(?:[0-9]+(?:{_M}\.{_M}[0-9]+)?|x{{0,3}}[sl]|m|[0-9]x[sl]){_END}",
        # standalone clothing sizes
        rf"{_START}(?:[0-9]?x{{1,3}}[sl]|[0-9]?x{{1,2}}{_M}-?{_M}(?:small|large)|extra{_M}[- ]{_M}(?:small|large)){_END}",
    ]
    return "(?i)" + "|".join(patterns)


def _matches(marked, pattern):
    """(row, begin, piece) of each leftmost-first non-overlapping match in marked texts [B]:
    int64 row and byte offset, the matched string."""
    pieces, begins, _ = tf_text.regex_split_with_offsets(marked, pattern, pattern)
    flat = pieces.flat_values
    is_match = tf.strings.regex_full_match(flat, pattern)
    return (tf.boolean_mask(pieces.value_rowids(), is_match), tf.boolean_mask(begins.flat_values, is_match),
            tf.boolean_mask(flat, is_match))


def _spans(row, begin, piece, priority: int):
    """Candidates (row, begin, end, length, priority) from matched pieces: byte offsets of the
    first and after the last character of the match (run marks and trailing spaces left out),
    length in characters; empty ones dropped."""
    lead = tf.cast(tf.strings.length(piece) - tf.strings.length(tf.strings.regex_replace(piece, r"^[\x01\x03]+", "")),
                   tf.int64)
    trimmed = tf.strings.regex_replace(piece, r"[\s\x01\x02\x03]+$", "")
    end = begin + tf.cast(tf.strings.length(trimmed), tf.int64)
    length = tf.cast(tf.strings.length(tf.strings.regex_replace(trimmed, _MARK, ""), unit="UTF8_CHAR"), tf.int64)
    keep = length > 0
    return [tf.boolean_mask(v, keep) for v in (row, begin + lead, end, length)] + [
        tf.fill(tf.shape(tf.boolean_mask(row, keep)), tf.constant(priority, tf.int64))]


def _model_spans(marked, priority: int):
    """Model-number candidates: each chain's first hyphen suffix with a digit, a letter and 4+
    characters whose first run is no ordinal ("2nd", "1990s") and that is no "2-year" compound."""
    row, begin, piece = _matches(marked, _MODEL_CHAIN)
    content = tf.strings.regex_replace(piece, _MARK, "")
    code = tf.strings.regex_replace(content, "-+$", "")
    hyphens_after = tf.cast(tf.strings.length(content) - tf.strings.length(code), tf.int64)
    segments = tf.strings.split(code, "-")
    values, chain = segments.flat_values, segments.value_rowids()
    chains = tf.size(piece)
    starts = segments.row_starts()
    index = tf.range(tf.size(values, out_type=tf.int64)) - tf.gather(starts, chain)
    size = tf.cast(tf.strings.length(values), tf.int64)

    def suffix_sum(flags):  # sum over this segment and the rest of its chain
        x = tf.cast(flags, tf.int64)
        before = tf.cumsum(x, exclusive=True)
        return tf.gather(tf.math.unsorted_segment_sum(x, chain, chains), chain) - (
            before - tf.gather(before, tf.gather(starts, chain)))

    last = tf.equal(index, tf.gather(segments.row_lengths(), chain) - 1)
    letters_next = tf.concat([tf.strings.regex_full_match(values[1:], "[A-Za-z]+"), [False]], axis=0)
    compound = tf.strings.regex_full_match(values, "[0-9]+") & letters_next & ~last
    ordinal = tf.strings.regex_full_match(values, "[0-9]+(?:st|nd|rd|th|s)")
    chars = suffix_sum(size + 1) - 1  # the segments and the hyphens between them
    passes = ((suffix_sum(tf.strings.regex_full_match(values, ".*[0-9].*")) > 0)
              & (suffix_sum(tf.strings.regex_full_match(values, ".*[A-Za-z].*")) > 0)
              & (chars + tf.gather(hyphens_after, chain) >= 4) & ~ordinal & ~compound)
    large = tf.constant(2 ** 40, tf.int64)
    first = tf.math.unsorted_segment_min(tf.where(passes, index, large), chain, chains)
    found = first < large
    # In the marked piece a segment takes its start mark (1 or 2 bytes), its characters,
    # RUN_END and "-"; the suffix's characters start after its start mark.
    mark = tf.where(tf.strings.regex_full_match(values, "[0-9].*"), tf.constant(1, tf.int64), 2)
    is_first = tf.equal(index, tf.gather(first, chain))
    before_first = tf.math.unsorted_segment_sum(tf.where(index < tf.gather(first, chain), mark + size + 2, 0),
                                                chain, chains)
    code_begin = begin + before_first + tf.math.unsorted_segment_sum(tf.where(is_first, mark, 0), chain, chains)
    length = tf.math.unsorted_segment_sum(tf.where(is_first, chars, 0), chain, chains)
    end = begin + tf.cast(tf.strings.length(piece), tf.int64) - hyphens_after - 1
    return [tf.boolean_mask(v, found) for v in (row, code_begin, end, length)] + [
        tf.fill(tf.shape(tf.boolean_mask(row, found)), tf.constant(priority, tf.int64))]


def _rank_order(row, begin, length, priority):
    """Indices sorting candidates by row, then longest first, earlier start, tie-break order."""
    order = tf.argsort(priority, stable=True)
    for key in (begin, -length, row):
        order = tf.gather(order, tf.argsort(tf.gather(key, order), stable=True))
    return order


def _accept(row, begin, end, rows):
    """bool [N]: the candidates (in rank order, rows contiguous) a greedy pass in that order
    keeps, each not overlapping any kept before it."""
    n = tf.size(row, out_type=tf.int64)
    row_start = tf.math.unsorted_segment_min(tf.range(n), row, rows)
    earlier = tf.ragged.range(tf.gather(row_start, row), tf.range(n))  # same-row candidates ranked before
    later, first = earlier.value_rowids(), earlier.flat_values
    overlap = (tf.gather(begin, first) < tf.gather(end, later)) & (tf.gather(begin, later) < tf.gather(end, first))
    later, first = tf.boolean_mask(later, overlap), tf.boolean_mask(first, overlap)

    def any_earlier(flags):  # per candidate: whether an overlapping earlier one has the flag
        hits = tf.math.unsorted_segment_max(tf.cast(tf.gather(flags, first), tf.int32), later, n)
        return hits > 0

    def step(alive, accepted):
        new = alive & ~any_earlier(alive)
        return alive & ~new & ~any_earlier(new), accepted | new

    alive = tf.ones([n], tf.bool)
    _, accepted = tf.while_loop(lambda alive, _: tf.reduce_any(alive), step, (alive, tf.zeros([n], tf.bool)))
    return accepted


class EntityMarkers(tf.Module):
    """The entity tagger as ops: `tag(texts)` marks entities of cleaned texts [B], `wrap` marks
    whole fields. `brands`, `colors`: lowercase gazetteer entries (a value in both is a color)."""

    def __init__(self, brands=(), colors=(), tag_sizes: bool = True, tag_models: bool = True):
        super().__init__(name="entity_markers")
        colors = sorted(set(filter(None, colors)))
        brands = sorted(set(filter(None, brands)) - set(colors))
        self.matchers = []  # (entity type index, RE2 pattern)
        self.matchers += [(0, p) for p in gazetteer_patterns(brands)]
        self.matchers += [(1, p) for p in gazetteer_patterns(colors)]
        if tag_sizes:
            self.matchers.append((2, size_pattern()))
        self.tag_models = tag_models

    def tag(self, texts):
        """String tensor [B] -> the texts with each entity wrapped as "[TYPE] text [/TYPE]"."""
        texts = tf.convert_to_tensor(texts, tf.string)
        marked = mark_runs(texts)
        candidates = []
        for priority, pattern in self.matchers:
            row, begin, piece = _matches(marked, pattern)
            if priority == 2:
                piece = tf.strings.regex_replace(piece, _INCH_CONTEXT, "\\1")
            candidates.append(_spans(row, begin, piece, priority))
        if self.tag_models:
            candidates.append(_model_spans(marked, 3))
        if not candidates:
            return texts
        row, begin, end, length, priority = [tf.concat(parts, axis=0) for parts in zip(*candidates)]
        order = _rank_order(row, begin, length, priority)
        row, begin, end, priority = (tf.gather(x, order) for x in (row, begin, end, priority))
        keep = _accept(row, begin, end, tf.shape(texts, out_type=tf.int64)[0])
        row, begin, end, priority = (tf.boolean_mask(x, keep) for x in (row, begin, end, priority))
        order = tf.argsort(begin, stable=True)
        order = tf.gather(order, tf.argsort(tf.gather(row, order), stable=True))
        row, begin, end, priority = (tf.gather(x, order) for x in (row, begin, end, priority))
        return _write_markers(marked, row, begin, end, priority)

    @staticmethod
    def wrap(texts, entity_type: str):
        """Each non-empty text marked whole as one entity (a product's brand or color field)."""
        open_token, close_token = ENTITY_TOKENS[entity_type]
        return tf.where(texts != "", open_token + " " + texts + " " + close_token, texts)


def _write_markers(marked, row, begin, end, priority):
    """The marked texts with "[TYPE] " before and " [/TYPE]" after each span (sorted by row
    and begin, not overlapping), the run marks removed."""
    n = tf.size(row, out_type=tf.int64)
    same_row = tf.concat([[False], tf.equal(row[1:], row[:-1])], axis=0)
    previous_end = tf.where(same_row, tf.concat([[0], end[:-1]], axis=0)[:n], 0)
    texts = tf.gather(marked, row)
    opens = tf.gather(tf.constant([ENTITY_TOKENS[t][0] + " " for t in ENTITY_ORDER]), priority)
    closes = tf.gather(tf.constant([" " + ENTITY_TOKENS[t][1] for t in ENTITY_ORDER]), priority)
    pieces = (tf.strings.substr(texts, previous_end, begin - previous_end) + opens
              + tf.strings.substr(texts, begin, end - begin) + closes)
    rows = tf.shape(marked, out_type=tf.int64)[0]
    head = tf.strings.unsorted_segment_join(pieces, row, rows)
    last_end = tf.math.unsorted_segment_max(end, row, rows)
    has_span = tf.math.unsorted_segment_sum(tf.ones_like(row), row, rows) > 0
    last_end = tf.where(has_span, last_end, 0)
    tail = tf.strings.substr(marked, last_end, tf.cast(tf.strings.length(marked), tf.int64) - last_end)
    return tf.strings.regex_replace(head + tail, _MARK, "")
