"""The Python entity tagger esci-tf used until entity markers became TF ops
(esci_tf.preprocessing.entity_ops): the oracle of tests/test_preprocessing_entity_parity.py.
Kept as it was; the gazetteers themselves are still built by esci_tf.preprocessing.entities.

Entity markers: "[BRAND] nike [/BRAND]" around brands, colors, sizes and model numbers.

`CatalogEntityTagger(brands, colors)` turns brand and color gazetteers (esci_tf.preprocessing.entities
.catalog_gazetteers) into trie-shaped regular expressions, and adds patterns for sizes/quantities/units (en/es/ja) and model numbers. Matching is
case-insensitive and keeps the original text. Latin-script entries need word boundaries;
CJK entries do not (Japanese has no spaces). Of overlapping matches the longest wins
(ties: BRAND, COLOR, SIZE, MODEL), and markers never nest.
"""

import re

from esci_tf.preprocessing.entities import gazetteer_keys as _gazetteer_keys
from esci_tf.preprocessing.entity_ops import UNITS as _UNITS
from esci_tf.special_tokens import ENTITY_TOKENS

# A Latin-script letter or digit: what a Latin-script match must not touch on either side.
_LATIN_ALNUM = "0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"  # without × and ÷
_BEFORE = f"(?<![{_LATIN_ALNUM}])"
_AFTER = f"(?![{_LATIN_ALNUM}])"
_BEFORE_FIRST = f"(?<![{_LATIN_ALNUM}].)"  # placed after the first character of a match
_LATIN_CHAR = re.compile(f"[{_LATIN_ALNUM}]")

_NUMBER = r"\d+(?:[.,/]\d+)?"
# "in" only when no number follows ("10 in tablet", not "2 in 1").
_INCH = r"in(?!\s?\d)" + _AFTER


# Alphanumeric codes with at least one digit and one letter, 4+ characters: WH-1000XM4, A1234.
# Ordinals, decades and number-word compounds ("2nd", "1990s", "2-year") are not models.
_MODEL_PATTERN = (
    rf"{_BEFORE}(?!\d+(?:st|nd|rd|th|s){_AFTER})(?!\d+(?:-[A-Za-z]+)+{_AFTER})"
    r"(?=[0-9A-Za-z-]*\d)(?=[0-9A-Za-z-]*[A-Za-z])"
    r"(?=[0-9A-Za-z-]{4,})[0-9A-Za-z]+(?:-[0-9A-Za-z]+)*" + _AFTER
)


class EntityTagger:
    """Wraps entities of a text in special_tokens.ENTITY_TOKENS markers."""

    def tag(self, text: str, locale: str) -> str:
        """The text with entities wrapped in markers."""
        raise NotImplementedError

    def wrap(self, text: str, entity_type: str) -> str:
        """The whole text marked as one entity (e.g. a product's brand field)."""
        if not text:
            return text
        open_token, close_token = ENTITY_TOKENS[entity_type]
        return f"{open_token} {text} {close_token}"


class NullTagger(EntityTagger):
    """Tags nothing."""

    def tag(self, text: str, locale: str) -> str:
        return text

    def wrap(self, text: str, entity_type: str) -> str:
        return text


def _lower_same_length(text: str) -> str:
    """text.lower(), keeping characters whose lowercase is longer ("İ") so offsets still match."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _trie_regex(words, start_boundary: bool = True) -> str:
    """One regex matching any of `words` (lowercase, to run on lowercased text), longest first,
    shaped as a trie.

    Entries starting (if start_boundary) or ending with a Latin letter or digit get Latin
    word boundaries there.
    """
    trie = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = True

    def emit(node, last_char):
        branches = [re.escape(c) + emit(child, c) for c, child in sorted(node.items()) if c]
        end = _AFTER if _LATIN_CHAR.match(last_char) else ""
        if "" in node:
            if not branches:
                return end
            return "(?:" + "|".join(branches) + ("|" + end if end else "|") + ")"
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    alternatives = []
    for char, child in sorted(trie.items()):
        # The boundary check follows the first character (a 2-wide lookbehind) so that the
        # pattern starts with a literal and the regex engine can skip ahead by first character.
        start = _BEFORE_FIRST if (start_boundary and _LATIN_CHAR.match(char)) else ""
        alternatives.append(re.escape(char) + start + emit(child, char))
    return "(?:" + "|".join(alternatives) + ")" if alternatives else "(?!)"


def _size_regex() -> str:
    """Sizes, quantities and units in en/es/ja."""
    units = _trie_regex(_UNITS, start_boundary=False)
    patterns = [
        # 10.5 oz, 2 pack, 3-pack, 500ml, 32GB, 2個, 3枚入り, 10 x 20 cm
        rf"{_BEFORE}{_NUMBER}(?:\s?[x×*]\s?{_NUMBER}){{0,2}}[\s-]?(?:{units}|{_INCH})",
        # dimensions without a unit: 10x20, 36 x 24 x 12
        rf"{_BEFORE}{_NUMBER}(?:\s?[x×*]\s?{_NUMBER}){{1,2}}{_AFTER}",
        # size 10, size xl, talla 38, talla m, サイズ L, サイズ10 (letter sizes after a space: not "sizes")
        rf"{_BEFORE}(?:size|sz|talla|tamaño|taille)(?:\s?{_NUMBER}|\s(?:x{{0,3}}[sl]|m|\d?x[sl])){_AFTER}",
        r"サイズ\s?(?:\d+(?:\.\d+)?|x{0,3}[sl]|m|\dx[sl])" + _AFTER,
        # standalone clothing sizes
        rf"{_BEFORE}(?:\d?x{{1,3}}[sl]|\d?x{{1,2}}-?(?:small|large)|extra[- ](?:small|large)){_AFTER}",
    ]
    return "|".join(patterns)


class CatalogEntityTagger(EntityTagger):
    """Brand/color gazetteers from a catalogue plus size and model-number patterns."""

    def __init__(self, brands=(), colors=(), tag_sizes: bool = True, tag_models: bool = True):
        """brands/colors: gazetteer entries (normalised here: cleaned, lowercased)."""
        # A value that is both a brand and a color ("black") is tagged as a color.
        self.colors = frozenset(filter(None, _gazetteer_keys(list(colors))))
        self.brands = frozenset(filter(None, _gazetteer_keys(list(brands)))) - self.colors
        # (entity type, compiled regex, runs on the lowercased text), in tie-break order.
        # Lowercase patterns on lowercased text are several times faster than re.IGNORECASE.
        self._matchers = []
        if self.brands:
            self._matchers.append(("BRAND", re.compile(_trie_regex(self.brands)), True))
        if self.colors:
            self._matchers.append(("COLOR", re.compile(_trie_regex(self.colors)), True))
        if tag_sizes:
            self._matchers.append(("SIZE", re.compile(_size_regex()), True))
        if tag_models:
            self._matchers.append(("MODEL", re.compile(_MODEL_PATTERN), False))

    def find(self, text: str) -> list:
        """Non-overlapping (start, end, type) entity spans, longest first, in text order."""
        lowered = _lower_same_length(text)
        candidates = []
        for priority, (entity_type, regex, on_lower) in enumerate(self._matchers):
            for m in regex.finditer(lowered if on_lower else text):
                start, end = m.span()
                while end > start and text[end - 1].isspace():
                    end -= 1
                if end > start:
                    candidates.append((-(end - start), start, priority, end, entity_type))
        candidates.sort()
        taken = []
        for _, start, _, end, entity_type in candidates:
            if all(end <= s or start >= e for s, e, _ in taken):
                taken.append((start, end, entity_type))
        return sorted(taken)

    def tag(self, text: str, locale: str) -> str:
        """The text with each entity wrapped as "[TYPE] original text [/TYPE]".

        `locale` is part of the interface; these patterns cover en/es/ja at once.
        """
        if not text:
            return text
        pieces, position = [], 0
        for start, end, entity_type in self.find(text):
            open_token, close_token = ENTITY_TOKENS[entity_type]
            pieces.append(text[position:start])
            pieces.append(f"{open_token} {text[start:end]} {close_token}")
            position = end
        pieces.append(text[position:])
        return "".join(pieces)

