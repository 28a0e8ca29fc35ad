"""An offline backend: Argos Translate (argostranslate), when the user has installed it and the
language packages (`argospm install translate-en_es` ...). Without them it stops with one line
saying what to install; esci-tf does not depend on it."""

from esci_tf.data.translation.base import Translator, TranslatorSetupError


def _argos():
    try:
        import argostranslate.translate as argos_translate
    except ImportError as error:
        raise TranslatorSetupError("--backend=argos needs argostranslate and its language packages: "
                                   f"pip install argostranslate; argospm install translate-en_es ({error})") from error
    return argos_translate


def available() -> bool:
    """True when argostranslate is importable (its language packages are checked per pair)."""
    try:
        _argos()
    except TranslatorSetupError:
        return False
    return True


class ArgosTranslator(Translator):
    """Translates with the installed Argos Translate packages (one model per language pair)."""

    name = "argos"
    max_segments = 64
    batch_chars = 20_000

    def __init__(self):
        self._module = _argos()
        self._models = {}

    def identity(self) -> dict:
        import importlib.metadata

        return {"backend": self.name, "version": importlib.metadata.version("argostranslate")}

    def _model(self, source: str, target: str):
        if (source, target) not in self._models:
            languages = {language.code: language for language in self._module.get_installed_languages()}
            model = None
            if source in languages and target in languages:
                model = languages[source].get_translation(languages[target])
            if model is None:
                raise TranslatorSetupError(f"--backend=argos: no installed Argos Translate package for {source}->"
                                           f"{target}; argospm install translate-{source}_{target}")
            self._models[(source, target)] = model
        return self._models[(source, target)]

    def translate(self, texts, source, target) -> list:
        model = self._model(source, target)
        return [model.translate(text) for text in texts]
