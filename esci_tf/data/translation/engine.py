"""Translating many texts once: de-duplicate, serve the cache, send the rest in batches, commit
every answered batch to the cache at once.

`TranslationPlan.build(requests, cache)` counts what is cached and what would be sent (the
characters a paid backend bills) before any call; `plan.run(translator)` translates the rest,
batch by batch within the backend's limits, with a progress bar (characters, with ETA). A batch
the backend refuses is recorded as failed with its reason and the run goes on; the plan's
`summary()` counts texts and characters translated, cached and failed per language pair.

>>> import os, tempfile
>>> from esci_tf.data.translation.cache import TranslationCache
>>> from esci_tf.data.translation.demo import DemoTranslator
>>> cache = TranslationCache(os.path.join(tempfile.mkdtemp(), "c.sqlite"), {"backend": "demo"})
>>> plan = TranslationPlan.build({("en", "es"): ["black laptop", "black laptop", "red"]}, cache)
>>> plan.to_send_texts, plan.to_send_chars
(2, 15)
>>> plan.run(DemoTranslator(), show_progress=False).lookup("en", "es", "black laptop")
'ordenador portátil negro'
>>> TranslationPlan.build({("en", "es"): ["red"]}, cache).summary()["cached_texts"]
1
"""

import dataclasses

from tqdm.auto import tqdm

from esci_tf.data.translation.base import TranslationError
from esci_tf.data.translation.batching import batches

MAX_FAILURES_LISTED = 20


@dataclasses.dataclass
class TranslationPlan:
    """Per (source, target) language pair: the distinct texts, those the cache answered, and
    those still to send."""

    cache: object
    texts: dict  # (source, target) -> distinct non-empty texts, first-seen order
    found: dict  # (source, target) -> {text: translation}
    failures: dict = dataclasses.field(default_factory=dict)  # (source, target) -> {text: reason}
    translated: dict = dataclasses.field(default_factory=dict)  # (source, target) -> texts sent and answered

    @classmethod
    def build(cls, requests: dict, cache) -> "TranslationPlan":
        texts, found = {}, {}
        for pair, values in requests.items():
            distinct = list(dict.fromkeys(v for v in values if v))
            texts[pair] = distinct
            found[pair] = cache.get(*pair, distinct)
        return cls(cache, texts, found)

    def pending(self, pair) -> list:
        done, failed = self.found[pair], self.failures.get(pair, {})
        return [t for t in self.texts[pair] if t not in done and t not in failed]

    @property
    def to_send_texts(self) -> int:
        return sum(len(self.pending(pair)) for pair in self.texts)

    @property
    def to_send_chars(self) -> int:
        return sum(len(t) for pair in self.texts for t in self.pending(pair))

    def lookup(self, source: str, target: str, text: str):
        """The translation of `text` ("" for ""), None when it failed or was never asked for."""
        return self.found.get((source, target), {}).get(text) if text else ""

    def run(self, translator, show_progress: bool = True) -> "TranslationPlan":
        """Translate everything pending; each answered batch is committed to the cache at once."""
        bar = tqdm(total=self.to_send_chars, unit="char", unit_scale=True, desc="translating",
                   disable=not show_progress)
        try:
            for pair in self.texts:
                todo = self.pending(pair)
                failed = self.failures.setdefault(pair, {})
                sendable = []
                for text in todo:
                    if len(text) > translator.max_request_chars:
                        failed[text] = (f"{len(text)} characters: longer than one {translator.name} request may be "
                                        f"({translator.max_request_chars})")
                        bar.update(len(text))
                    else:
                        sendable.append(text)
                for batch in batches(sendable, translator.max_segments, translator.batch_chars):
                    chunk = [sendable[i] for i in batch]
                    self._send(translator, pair, chunk, failed)
                    bar.update(sum(map(len, chunk)))
        finally:
            bar.close()
        return self

    def _send(self, translator, pair, chunk, failed) -> None:
        try:
            answers = translator.translate(chunk, *pair)
        except TranslationError as error:
            for text in chunk:
                failed[text] = str(error)
            return
        if len(answers) != len(chunk):
            raise RuntimeError(f"{translator.name} answered {len(answers)} translations for {len(chunk)} texts")
        answered = {}
        for text, answer in zip(chunk, answers):
            if answer is None:
                failed[text] = f"{translator.name} has no translation"
            else:
                answered[text] = answer
        if answered:
            self.cache.put(*pair, answered)
            self.found[pair].update(answered)
            self.translated[pair] = self.translated.get(pair, 0) + len(answered)

    def summary(self) -> dict:
        """Texts and characters per pair: distinct, cached (before this run), translated now, failed."""
        pairs, listed = {}, []
        for pair, texts in self.texts.items():
            failed = self.failures.get(pair, {})
            translated = self.translated.get(pair, 0)
            pairs[f"{pair[0]}->{pair[1]}"] = {
                "texts": len(texts), "characters": sum(map(len, texts)),
                "cached": len(self.found[pair]) - translated, "translated": translated, "failed": len(failed)}
            listed += [{"source": pair[0], "target": pair[1], "text": text[:200], "reason": reason}
                       for text, reason in failed.items()]
        totals = {key: sum(p[key] for p in pairs.values()) for key in ("texts", "characters", "cached",
                                                                        "translated", "failed")}
        return {"pairs": pairs, "distinct_texts": totals["texts"], "distinct_characters": totals["characters"],
                "cached_texts": totals["cached"], "translated_texts": totals["translated"],
                "failed_texts": totals["failed"], "failures": listed[:MAX_FAILURES_LISTED]}
