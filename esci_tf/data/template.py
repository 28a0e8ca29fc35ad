"""The model input of the paper: (query, product text) pairs from a merged ESCI frame.

Segment A is the cleaned query. Segment B starts with the locale's language token, then
(optionally) the first `prompt_tokens` prompt tokens, then the fields:
"color: <color> brand: <brand> description: <title> <bullet points> <description>"
(field_style="text") or the same with special_tokens.FIELD_TOKENS in place of the words
(field_style="tokens"). Empty fields are left out with their label. Fields are cleaned with
clean_text first; with an entity tagger, the query and the description are tagged and the
brand and color fields are marked whole as BRAND and COLOR. Texts are built once per
distinct query and per distinct product.

`TemplateSettings` is the template a run uses (field style, prompt tokens, entity markers with
their gazetteers); it is saved with the model (preprocessing.json, the SavedModel's
template.json) so prediction and serving format products the same way.

>>> import pandas as pd
>>> frame = pd.DataFrame({"query": ["red shoes"], "product_locale": ["us"], "product_color": ["Red"],
...     "product_brand": ["Acme"], "product_title": ["Running shoe"], "product_bullet_point": [""],
...     "product_description": [""]})
>>> TemplateSettings().format(frame)
(['red shoes'], ['[L_US] color: Red brand: Acme description: Running shoe'])
"""

import dataclasses
import functools

import pandas as pd

from esci_tf.data.cleaning import clean_text
from esci_tf.data.entities import CatalogEntityTagger, EntityTagger
from esci_tf.data.errors import DataError
from esci_tf.special_tokens import FIELD_TOKENS, LANGUAGE_TOKENS, PROMPT_TOKENS

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


@dataclasses.dataclass(frozen=True)
class TemplateSettings:
    """The template of a run: field style, prompt tokens and entity markers (with the brand and
    color gazetteers of the catalogue the run was built from)."""

    field_style: str = "text"
    prompt_tokens: int = 0
    entity_markers: bool = False
    entity_brands: tuple = ()
    entity_colors: tuple = ()

    @classmethod
    def for_catalog(cls, products: pd.DataFrame | None, field_style: str = "text", prompt_tokens: int = 0,
                    entity_markers: bool = False) -> "TemplateSettings":
        """Settings whose gazetteers (entity_markers only) come from a products table."""
        if not entity_markers:
            return cls(field_style, prompt_tokens)
        if products is None:
            raise ValueError("entity markers need the products table to build their gazetteers")
        tagger = CatalogEntityTagger.from_products(products)
        return cls(field_style, prompt_tokens, True, tuple(sorted(tagger.brands)), tuple(sorted(tagger.colors)))

    def tagger(self) -> EntityTagger | None:
        """The entity tagger of these settings (built once per gazetteer pair), or None."""
        return _tagger(self.entity_brands, self.entity_colors) if self.entity_markers else None

    def format(self, frame: pd.DataFrame) -> tuple[list, list]:
        """(queries, product_texts) of every row of a merged frame (see format_pairs)."""
        return format_pairs(frame, tagger=self.tagger(), field_style=self.field_style,
                            prompt_tokens=self.prompt_tokens)

    def to_dict(self) -> dict:
        """The on-disk form (preprocessing.json "template", template.json)."""
        values = {"field_style": self.field_style, "prompt_tokens": self.prompt_tokens,
                  "entity_markers": self.entity_markers}
        if self.entity_markers:
            values.update(entity_brands=list(self.entity_brands), entity_colors=list(self.entity_colors))
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TemplateSettings":
        return cls(values.get("field_style", "text"), int(values.get("prompt_tokens", 0)),
                   bool(values.get("entity_markers", False)), tuple(values.get("entity_brands", ())),
                   tuple(values.get("entity_colors", ())))


@functools.lru_cache(maxsize=8)
def _tagger(brands: tuple, colors: tuple) -> CatalogEntityTagger:
    return CatalogEntityTagger(brands, colors)
