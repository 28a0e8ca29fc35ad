"""The model input of the paper: (query, product text) pairs from a merged ESCI frame.

Segment A is the cleaned query. Segment B starts with the locale's language token, then
(optionally) the first `prompt_tokens` prompt tokens, then the fields:
"color: <color> brand: <brand> description: <title> <bullet points> <description>"
(field_style="text") or the same with special_tokens.FIELD_TOKENS in place of the words
(field_style="tokens"). Empty fields are left out with their label. Fields are cleaned first;
with entity markers, the query and the description are tagged and the brand and color fields
are marked whole as BRAND and COLOR. The formatting, markers included, is TF ops
(esci_tf.preprocessing.template_ops and entity_ops, what the SavedModel runs); this module
holds the settings and feeds frames through it.

`TemplateSettings` is the template a run uses (field style, prompt tokens, entity markers with
their gazetteers); it is saved with the model (preprocessing.json, the FieldsPreprocessor's
config; the SavedModel's graph holds the gazetteers as patterns) so prediction and serving
format products the same way.

>>> import pandas as pd
>>> frame = pd.DataFrame({"query": ["red shoes"], "product_locale": ["us"], "product_color": ["Red"],
...     "product_brand": ["Acme"], "product_title": ["Running shoe"], "product_bullet_point": [""],
...     "product_description": [""]})
>>> TemplateSettings().format(frame)
(['red shoes'], ['[L_US] color: Red brand: Acme description: Running shoe'])
"""

import dataclasses
import functools

import numpy as np
import pandas as pd

from esci_tf.preprocessing.cleaning import as_text
from esci_tf.preprocessing.entities import catalog_gazetteers, entity_markers
from esci_tf.errors import DataError
from esci_tf.preprocessing.template_ops import MAX_FIELD_CHARS, RAW_FIELDS, FieldFormatter
from esci_tf.special_tokens import LANGUAGE_TOKENS

REQUIRED_COLUMNS = RAW_FIELDS  # the columns a frame to format needs
FORMAT_BATCH = 2048  # rows formatted per call of the graph


def format_pairs(df: pd.DataFrame, tagger=None, field_style: str = "text",
                 prompt_tokens: int = 0, max_field_chars: int | None = MAX_FIELD_CHARS) -> tuple[list, list]:
    """(queries, product_texts), one pair per row of a merged frame (see reader.load_esci).

    The formatting is esci_tf.preprocessing.template_ops (TF ops; `tagger`: an
    entity_ops.EntityMarkers, e.g. esci_tf.preprocessing.entities.entity_markers(...), or None); this
    checks the frame and feeds it in batches.
    `max_field_chars` bounds each raw field before cleaning and the joined description
    before tagging: past ~512 tokens no model reads it, and it bounds the cost of a
    catalogue's longest descriptions (None keeps everything).
    """
    return _format_frame(df, FieldFormatter(field_style, prompt_tokens, tagger, max_field_chars))


def check_frame(df: pd.DataFrame) -> None:
    """DataError unless the frame has the template's columns and only known locales (naming rows)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"frame to format lacks column(s) {', '.join(missing)}")
    check_locales(df)


def check_locales(df: pd.DataFrame) -> None:
    """DataError unless every product_locale of the frame has a language token (naming rows)."""
    unknown = ~df["product_locale"].isin(list(LANGUAGE_TOKENS)).to_numpy()
    if unknown.any():
        rows = df.index[unknown]
        raise DataError(
            f"unknown product_locale {df.at[rows[0], 'product_locale']!r} at frame row(s) "
            f"{', '.join(map(str, rows[:5]))}; expected one of {', '.join(LANGUAGE_TOKENS)}",
            row=int(rows[0]),
        )


def frame_fields(df: pd.DataFrame) -> dict:
    """The raw string fields of a frame's rows, as the template's ops take them ("" for missing)."""
    return {name: np.array([as_text(v) for v in df[name].tolist()], object) for name in REQUIRED_COLUMNS
            if name in df.columns}


def _format_frame(df: pd.DataFrame, formatter) -> tuple[list, list]:
    check_frame(df)
    queries, products = [], []
    for start in range(0, len(df), FORMAT_BATCH):
        query_texts, product_texts = formatter(frame_fields(df.iloc[start:start + FORMAT_BATCH]))
        queries += [t.decode("utf-8") for t in query_texts.numpy()]
        products += [t.decode("utf-8") for t in product_texts.numpy()]
    return queries, products


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
        return cls(field_style, prompt_tokens, True, *catalog_gazetteers(products))

    def tagger(self):
        """The entity tagger of these settings (entity_ops.EntityMarkers, built once per
        gazetteer pair), or None."""
        return _tagger(self.entity_brands, self.entity_colors) if self.entity_markers else None

    def formatter(self):
        """The template_ops.FieldFormatter of these settings (raw fields -> the two segments), one
        per process for equal settings, so its graph is traced once."""
        return _formatter(self)

    def format(self, frame: pd.DataFrame) -> tuple[list, list]:
        """(queries, product_texts) of every row of a merged frame (see format_pairs)."""
        return _format_frame(frame, self.formatter())

    def to_dict(self) -> dict:
        """The on-disk form (preprocessing.json "template", the FieldsPreprocessor's config)."""
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
def _formatter(settings: TemplateSettings):
    return FieldFormatter(settings.field_style, settings.prompt_tokens, settings.tagger())


@functools.lru_cache(maxsize=8)
def _tagger(brands: tuple, colors: tuple):
    return entity_markers(brands, colors)
