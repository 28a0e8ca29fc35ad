"""The demo data's own translator: the generated us/es/jp data (esci_tf.data.synthetic) is built
from word lists that are aligned across the locales (the same product types, colors,
attributes, accessories, description sentences and bullets at the same keys and positions), so
its text can be translated exactly and offline, deterministically. Brand names and model codes
stay as they are (they are names); anything the lists do not know is left untranslated.

`python -m trainers.demo_translation --examples X --products Y --targets es,jp,us --output T`
writes the translation table (esci_tf.data.translation.table) of every text trainers.translate
asks for, so the demo runs `--backend table` end to end.

>>> demo = DemoTranslator()
>>> demo.translate(["Acmetek black smartphone wireless", "gray laptop"], "en", "es")
['teléfono móvil Acmetek negro inalámbrico', 'ordenador portátil gris']
>>> demo.translate(["High quality smart watch from Vexa. Perfect for everyday use."], "en", "ja")
['Vexaの高品質なスマートウォッチです。 毎日の使用に最適です。']
>>> demo.translate(["Color: red\\nModel AC-105"], "en", "es")
['Color: rojo\\nModelo AC-105']
"""

import functools
import re

from esci_tf.data.synthetic import load_words
from esci_tf.data.translation.base import Translator, language_of

LANGUAGE_LOCALES = {"en": "us", "es": "es", "ja": "jp"}
SLOTS = ("brand", "color", "type", "attribute", "model", "accessory")
_MODEL = r"[A-Z0-9]{2}-\d+"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _squeeze(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text).strip(" ")
    return re.sub(r" +,", ",", text)


class _Locale:
    """One locale's words: phrase -> meaning (a language-independent key) and back."""

    def __init__(self, locale: str):
        words = load_words()[locale]
        self.words = words
        self.jp = locale == "jp"
        self.meaning, self.phrase = {}, {}
        for type_key, (name, accessories) in words["types"].items():
            self._add(("type", type_key), name)
            for index, accessory in enumerate(accessories):
                self._add(("accessory", type_key, index), accessory)
        for slot in ("colors", "attributes"):
            for index, phrase in enumerate(words[slot]):
                self._add((slot, index), phrase)
        # Brands are names: any locale's may appear in a text (a translated one keeps its own).
        self.brands = sorted({brand for locale_words in load_words().values() for brand in locale_words["brands"]})
        # Templates, each with its language-independent key.
        self.templates = {}
        for group in ("query", "query_no_brand", "description", "bullets"):
            for index, template in enumerate(words[group]):
                self.templates[(group, index)] = template
        for group in ("title", "accessory_title"):
            self.templates[(group, 0)] = words[group]

    def _add(self, meaning, phrase):
        self.meaning.setdefault(phrase.casefold(), meaning)
        self.phrase[meaning] = phrase

    def slot_pattern(self, slot: str) -> str:
        if slot == "model":
            return _MODEL
        if slot == "brand":
            choices = self.brands
        else:
            kind = {"color": "colors", "attribute": "attributes"}.get(slot, slot)
            choices = [p for m, p in self.phrase.items() if m[0] == kind]
        return "|".join(re.escape(c) for c in sorted(choices, key=len, reverse=True))


@functools.lru_cache(maxsize=None)
def _locale(locale: str) -> _Locale:
    return _Locale(locale)


def _template_regex(template: str, words: _Locale, prefix: str = "") -> str:
    """A regex of a template whose slots match the locale's words; an {attribute} may be empty
    (the generator squeezes the space it leaves)."""
    parts, position, counts = [], 0, {}
    for match in _PLACEHOLDER.finditer(template):
        literal = template[position:match.start()]
        slot = match.group(1)
        counts[slot] = counts.get(slot, 0) + 1
        name = f"{prefix}{slot}{counts[slot]}"
        group = f"(?P<{name}>{words.slot_pattern(slot)})"
        if slot == "attribute" and literal.endswith(" "):
            parts.append(re.escape(literal[:-1]) + f"(?: {group})?")
        elif slot == "attribute":
            parts.append(re.escape(literal) + f"{group}?")
        else:
            parts.append(re.escape(literal) + group)
        position = match.end()
    parts.append(re.escape(template[position:]))
    pattern = "".join(parts).replace("&", "&(?:amp;)?")  # descriptions may escape their ampersands
    return pattern.replace(r"\ ,", " ?,").replace(r"\ ", r"\s+")


class _Direction:
    """The compiled translation of one locale into another: one regex whose alternatives are the
    source templates (longest first) and then the single phrases."""

    def __init__(self, source: str, target: str):
        self.source, self.target = _locale(source), _locale(target)
        alternatives, self.kinds = [], []
        templates = sorted(self.source.templates.items(), key=lambda item: -len(_PLACEHOLDER.sub("", item[1])))
        for index, (key, template) in enumerate(templates):
            regex = _template_regex(template, self.source, prefix=f"t{index}_")
            alternatives.append(f"(?P<t{index}>{regex})")
            self.kinds.append(key)
        phrases = sorted(self.source.meaning, key=len, reverse=True)
        phrase_group = "|".join(re.escape(p) for p in phrases)
        alternatives.append(f"(?P<phrase>{phrase_group})")
        body = "|".join(alternatives)
        if not self.source.jp:
            body = rf"(?<!\w)(?:{body})(?!\w)"
        self.regex = re.compile(body, re.IGNORECASE)

    def _slot(self, slot: str, value: str, type_key: str | None) -> str:
        if not value:
            return ""
        if slot in ("brand", "model"):
            return value
        meaning = self.source.meaning.get(value.casefold())
        if meaning is None:
            return value
        if meaning[0] == "accessory" and type_key is not None and meaning[1] != type_key:
            meaning = ("accessory", type_key, meaning[2]) if ("accessory", type_key, meaning[2]) in \
                self.target.phrase else meaning
        return self.target.phrase.get(meaning, value)

    def _replace(self, match) -> str:
        text = match.group(0)
        if match.group("phrase") is not None:
            return self._capitalized(text, self._slot("phrase", text, None))
        index = next(i for i in range(len(self.kinds)) if match.group(f"t{i}") is not None)
        group, number = self.kinds[index]
        values = {name[len(f"t{index}_"):]: value for name, value in match.groupdict().items()
                  if name.startswith(f"t{index}_")}
        type_value = values.get("type1")
        type_meaning = self.source.meaning.get(type_value.casefold()) if type_value else None
        type_key = type_meaning[1] if type_meaning else None
        targets = self.target.words[group]
        target = targets if isinstance(targets, str) else targets[number % len(targets)]
        filled = {slot: self._slot(slot, values.get(f"{slot}1") or "", type_key) for slot in SLOTS}
        translation = _squeeze(target.format(**filled))
        first = _PLACEHOLDER.match(self.source.templates[(group, number)])
        if group in ("description", "bullets") and not self.target.jp:  # sentences
            return translation[:1].upper() + translation[1:]
        if first is None:  # the template starts with its own (capitalized) words
            starts_sentence = text[:1].isupper() and not self.target.jp
            return translation[:1].upper() + translation[1:] if starts_sentence else translation
        if first.group(1) in ("brand", "model"):
            return translation
        return self._capitalized(values.get(f"{first.group(1)}1") or "", translation)

    def _capitalized(self, source: str, translation: str) -> str:
        """Upper-case the translation's first letter where the generator capitalized a word that
        the lists have in lower case (a sentence start)."""
        known = self.source.phrase.get(self.source.meaning.get(source.casefold()), "")
        if source[:1].isupper() and known[:1].islower() and not self.target.jp:
            return translation[:1].upper() + translation[1:]
        return translation

    def translate(self, text: str) -> str:
        return self.regex.sub(self._replace, text)


@functools.lru_cache(maxsize=None)
def _direction(source: str, target: str) -> _Direction:
    return _Direction(source, target)


class DemoTranslator(Translator):
    """Translates the generated demo data between us (en), es and jp (ja); see the module docstring."""

    name = "demo"
    max_segments = 100_000
    max_request_chars = batch_chars = 10_000_000

    def translate(self, texts, source, target) -> list:
        source, target = LANGUAGE_LOCALES[language_of(source)], LANGUAGE_LOCALES[language_of(target)]
        if source == target:
            return list(texts)
        direction = _direction(source, target)
        return [direction.translate(text) for text in texts]


def demo_table_rows(examples: str, products: str, targets=("es", "jp", "us"), fields=None, split: str = "train",
                    task: str = "all"):
    """(source_language, target_language, source_text, translated_text) of every text
    trainers.translate asks for on these files (the demo translator's answers)."""
    from esci_tf.data.reader import load_esci
    from esci_tf.data.translation.pairs import DEFAULT_FIELDS, translation_requests

    frame, _ = load_esci(examples, products, task=task, split=None if split == "all" else split)
    translator = DemoTranslator()
    for (source, target), texts in translation_requests(frame, targets, fields or DEFAULT_FIELDS).items():
        distinct = list(dict.fromkeys(t for t in texts if t))
        for text, translation in zip(distinct, translator.translate(distinct, source, target)):
            yield source, target, text, translation
