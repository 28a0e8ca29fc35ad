"""The Translator interface, the ESCI locales' language codes and the errors of translation.

>>> language_of("jp"), language_of("us"), language_of("es")
('ja', 'en', 'es')
>>> class Upper(Translator):
...     name = "upper"
...     def translate(self, texts, source, target):
...         return [t.upper() for t in texts]
>>> Upper().translate(["hola"], "es", "en")
['HOLA']
"""

import abc

from esci_tf.errors import DataError, FlagError

# ESCI product_locale -> the language code translation services use (BCP-47).
LOCALE_LANGUAGES = {"us": "en", "es": "es", "jp": "ja"}


def language_of(locale_or_language: str) -> str:
    """The language code of an ESCI locale (us, es, jp) or of a language code itself."""
    value = str(locale_or_language)
    if value in LOCALE_LANGUAGES:
        return LOCALE_LANGUAGES[value]
    if value in LOCALE_LANGUAGES.values():
        return value
    raise ValueError(f"unknown locale or language {value!r}: expected one of "
                     f"{', '.join(LOCALE_LANGUAGES)} or {', '.join(LOCALE_LANGUAGES.values())}")


class TranslationError(DataError):
    """A batch the backend refused for good (bad request, text it cannot translate): the message
    names the batch."""


class TranslatorSetupError(FlagError):
    """The backend cannot work at all: credentials, permission, a missing package or file."""


class Translator(abc.ABC):
    """Translates batches of texts from one language to another.

    `translate(texts, source, target)` returns one translation per text, in order; source and
    target are language codes (language_of). A batch the backend cannot translate raises
    TranslationError; one it has no answer for (a table without the text) returns None there.
    `paid` backends bill per character (trainers.translate prints the estimate first);
    `max_segments` / `max_request_chars` / `batch_chars` bound one request.
    """

    name = "translator"
    paid = False
    max_segments = 1024
    max_request_chars = 30_000
    batch_chars = 5_000

    @abc.abstractmethod
    def translate(self, texts: list, source: str, target: str) -> list:
        """One translation (str, or None when there is none) per text."""

    def identity(self) -> dict:
        """What the cache records about the backend (answers of another backend are not reused)."""
        return {"backend": self.name}

    def setup_problem(self) -> str | None:
        """What would stop a real run (credentials, a package), or None; a dry run reports it."""
        return None
