"""The translation building blocks: request batching, the sqlite cache, the table backend, the
demo translator over the generated data, and the plan that de-duplicates and counts."""

import sqlite3

import pandas as pd
import pytest

from esci_tf.errors import DataError
from esci_tf.data.synthetic import generate_esci
from esci_tf.data.translation.base import Translator, TranslatorSetupError
from esci_tf.data.translation.batching import CharacterRate, batches
from esci_tf.data.translation.cache import TranslationCache
from esci_tf.data.translation.demo import DemoTranslator
from esci_tf.data.translation.engine import TranslationPlan
from esci_tf.data.translation.table import TableTranslator, write_table

LANGUAGES = {"us": "en", "es": "es", "jp": "ja"}


class Recording(Translator):
    """Upper-cases; records each batch; None for texts in `unknown`."""

    name = "recording"
    max_segments = 3
    max_request_chars = 12
    batch_chars = 10

    def __init__(self, unknown=()):
        self.calls, self.unknown = [], set(unknown)

    def translate(self, texts, source, target):
        self.calls.append(list(texts))
        return [None if t in self.unknown else t.upper() for t in texts]


def test_batches_respect_segments_and_characters():
    texts = ["a" * n for n in (3, 3, 3, 3, 20, 1, 1, 1, 1)]
    groups = [list(b) for b in batches(texts, max_segments=3, max_chars=7)]
    assert groups == [[0, 1], [2, 3], [4], [5, 6, 7], [8]]
    assert [i for g in groups for i in g] == list(range(len(texts)))


def test_character_rate_waits_out_the_minute():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    rate = CharacterRate(100, clock=lambda: now[0], sleep=sleep)
    rate.wait(60)
    now[0] = 10.0
    rate.wait(30)
    rate.wait(30)  # 120 in the window: waits until the first 60 leave it (t = 60)
    assert slept == [50.0]
    rate.wait(40)
    assert slept == [50.0]  # 30 + 30 + 40 within the minute since t = 10


def test_plan_deduplicates_skips_empty_and_counts(tmp_path):
    cache = TranslationCache(str(tmp_path / "c.sqlite"), {"backend": "recording"})
    translator = Recording(unknown={"zz"})
    requests = {("en", "es"): ["ab", "ab", "", "cd", "zz", "x" * 13, "ef"]}
    plan = TranslationPlan.build(requests, cache)
    assert plan.to_send_texts == 5  # ab, cd, zz, the long one, ef
    plan.run(translator, show_progress=False)
    assert translator.calls == [["ab", "cd", "zz"], ["ef"]]  # the 13-character text is never sent
    summary = plan.summary()
    assert (summary["translated_texts"], summary["failed_texts"], summary["cached_texts"]) == (3, 2, 0)
    reasons = {f["text"]: f["reason"] for f in summary["failures"]}
    assert "no translation" in reasons["zz"] and "longer than one recording request" in reasons["x" * 13]
    assert plan.lookup("en", "es", "") == "" and plan.lookup("en", "es", "zz") is None

    again = TranslationPlan.build(requests, TranslationCache(cache.path, {"backend": "recording"}))
    assert again.to_send_texts == 2 and again.summary()["cached_texts"] == 3  # only the failed ones are left
    other = TranslationPlan.build(requests, TranslationCache(cache.path, {"backend": "another"}))
    assert other.to_send_texts == 5  # another backend's answers are not reused


def test_cache_rejects_a_file_that_is_not_sqlite(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_text("not a database " * 100)
    with pytest.raises(TranslatorSetupError, match="--cache=.*not a usable sqlite"):
        TranslationCache(str(path), {"backend": "demo"})
    with pytest.raises(TranslatorSetupError, match="local path"):
        TranslationCache("gs://bucket/cache.sqlite", {"backend": "demo"})


def test_cache_commits_each_batch(tmp_path):
    path = str(tmp_path / "c.sqlite")
    cache = TranslationCache(path, {"backend": "demo"})
    cache.put("ja", "es", {"黒": "negro"})
    # Another connection (as a process after a kill would open) sees the committed batch.
    rows = sqlite3.connect(path).execute("SELECT source, target, text, translation FROM translations").fetchall()
    assert rows == [("ja", "es", "黒", "negro")]


def test_table_backend_looks_up_and_checks_its_file(tmp_path):
    path = str(tmp_path / "table.parquet")
    write_table([("us", "es", "black", "negro"), ("en", "ja", "black", "黒"), ("jp", "us", "黒", "black")], path)
    table = TableTranslator(path)
    assert table.translate(["black", "red"], "en", "es") == ["negro", None]
    assert table.translate(["black"], "en", "ja") == ["黒"] and table.translate(["黒"], "ja", "en") == ["black"]
    assert table.identity()["table"]["sha256"]

    write_table([("us", "es", "black", "negro"), ("us", "es", "black", "oscuro")], path)
    with pytest.raises(DataError, match=r"row 1: en->es 'black' has two translations \(rows 0 and 1\)"):
        TableTranslator(path)
    write_table([("us", "fr", "black", "noir")], path)
    with pytest.raises(DataError, match="row 0: target_language: unknown locale or language 'fr'"):
        TableTranslator(path)
    pd.DataFrame({"source_text": ["a"]}).to_parquet(path)
    with pytest.raises(DataError, match="missing column"):
        TableTranslator(path)


def test_demo_translator_round_trips_the_generated_data():
    examples, products = generate_esci(40, 0)
    demo = DemoTranslator()
    for source, target in (("us", "es"), ("es", "jp"), ("jp", "us")):
        texts = list(examples.loc[examples["product_locale"] == source, "query"].unique())
        rows = products[products["product_locale"] == source]
        for column in ("product_title", "product_bullet_point", "product_description"):
            texts += list(rows[column].dropna().unique())
        there = demo.translate(texts, LANGUAGES[source], LANGUAGES[target])
        back = demo.translate(there, LANGUAGES[target], LANGUAGES[source])
        assert [t.replace("&amp;", "&") for t in texts] == back  # exact, but for escaped ampersands
        changed = sum(a != b for a, b in zip(texts, there))
        assert changed >= 0.95 * len(texts)  # nearly every text has words to translate
    assert demo.translate(["Acmetek テレビ"], "ja", "ja") == ["Acmetek テレビ"]


def test_argos_backend_is_optional():
    from esci_tf.data.translation import argos
    from trainers.translate import make_translator

    if argos.available():
        pytest.skip("argostranslate is installed here")
    with pytest.raises(TranslatorSetupError, match="--backend=argos needs argostranslate.*pip install argostranslate"):
        make_translator("argos")
