"""Special tokens added to every backbone's tokenizer.

They are atomic: the preprocessing splits them out of the text before the backbone's
tokenizer sees it, and maps each to an id past the end of the backbone's vocabulary
(`vocabulary_size + position in ALL_SPECIAL_TOKENS`). A model grows its embedding table
by `len(ALL_SPECIAL_TOKENS)` rows to hold them (see esci_tf.models).

The order of ALL_SPECIAL_TOKENS is part of the on-disk format (TFRecords and checkpoints
store the ids): only ever append.
"""

LOCALES = ("us", "es", "jp")

# One language token per locale, put at the start of the product segment.
LANGUAGE_TOKENS = {"us": "[L_US]", "es": "[L_ES]", "jp": "[L_JP]"}

# Field markers, used when the product template is built with field_style="tokens"
# (the paper's default, field_style="text", writes "color: ... brand: ... description: ...").
FIELD_TOKENS = {"color": "[F_COLOR]", "brand": "[F_BRAND]", "description": "[F_DESC]"}

# Typed entity markers: [BRAND] nike [/BRAND].
ENTITY_TYPES = ("BRAND", "COLOR", "SIZE", "MODEL")
ENTITY_TOKENS = {t: (f"[{t}]", f"[/{t}]") for t in ENTITY_TYPES}

# Trainable prompt tokens ("implicit templates"), inserted by the template when asked.
NUM_PROMPT_TOKENS = 8
PROMPT_TOKENS = tuple(f"[P{i}]" for i in range(NUM_PROMPT_TOKENS))

ALL_SPECIAL_TOKENS = (
    tuple(LANGUAGE_TOKENS[loc] for loc in LOCALES)
    + tuple(FIELD_TOKENS[f] for f in ("color", "brand", "description"))
    + tuple(tok for t in ENTITY_TYPES for tok in ENTITY_TOKENS[t])
    + PROMPT_TOKENS
)


def special_token_id(token: str, base_vocabulary_size: int) -> int:
    """The id a special token gets on top of a backbone vocabulary of the given size."""
    return base_vocabulary_size + ALL_SPECIAL_TOKENS.index(token)
