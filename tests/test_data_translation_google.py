"""The Cloud Translation v3 backend through the real google-cloud-translate client against a local
fake of the REST API: requests within the limits, retries on 429 / 503 / 403 rate limit, a
permanent 400 naming its batch, credential problems in one line, Unicode round trips, and a run
killed mid-way that a rerun finishes paying for nothing twice."""

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

pytest.importorskip("google.cloud.translate_v3")

from esci_tf.data.synthetic import write_esci_files  # noqa: E402
from esci_tf.data.translation.base import TranslationError, TranslatorSetupError  # noqa: E402
from esci_tf.data.translation.cache import TranslationCache  # noqa: E402
from esci_tf.data.translation.engine import TranslationPlan  # noqa: E402
from trainers.translate import translate_files  # noqa: E402
from translate_fixtures import FakeTranslationAPI, fake_translation, google_translator, untag  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_requests_stay_within_the_api_limits():
    texts = [f"texto número {i} " + "ñ" * (i % 50) for i in range(2500)]
    with FakeTranslationAPI() as api:
        answers = google_translator(api).translate(texts[:3], "es", "ja")
        assert answers == [fake_translation(t, "ja") for t in texts[:3]]
        project, location, body = api.requests[0]
        assert (project, location) == ("test-project", "global")
        assert body == {"contents": texts[:3], "mimeType": "text/plain", "sourceLanguageCode": "es",
                        "targetLanguageCode": "ja"}

        translator = google_translator(api, batch_chars=5000)
        plan = TranslationPlan.build({("es", "ja"): texts}, _MemoryCache())
        plan.run(translator, show_progress=False)
        bodies = [body for _, _, body in api.requests[1:]]
        assert all(len(b["contents"]) <= 1024 and sum(map(len, b["contents"])) <= 5000 for b in bodies)
        assert sum(len(b["contents"]) for b in bodies) == len(texts)  # each text sent once
        for body, following in zip(bodies, bodies[1:]):  # full requests: the next text would not fit
            assert len(body["contents"]) == 1024 or sum(map(len, body["contents"])) + len(following["contents"][0]) > 5000
        assert [plan.lookup("es", "ja", t) for t in texts] == [fake_translation(t, "ja") for t in texts]

        many_short = [f"t{i}" for i in range(3000)]
        before = len(api.requests)
        google_translator(api, batch_chars=29_000).translate(many_short[:1024], "en", "es")
        plan = TranslationPlan.build({("en", "es"): many_short}, _MemoryCache())
        plan.run(google_translator(api, batch_chars=29_000), show_progress=False)
        sizes = [len(body["contents"]) for _, _, body in api.requests[before + 1:]]
        assert sizes == [1024, 1024, 952]


def test_retries_429_503_and_403_rate_limit_then_succeeds():
    with FakeTranslationAPI() as api:
        slept = []
        translator = google_translator(api, sleep=slept.append, initial_backoff=1.0, max_backoff=8.0)
        api.failures = [(429, None), (503, None), (403, "RATE_LIMIT_EXCEEDED"), (500, None)]
        assert translator.translate(["zapatillas"], "es", "en") == [fake_translation("zapatillas", "en")]
        assert len(api.requests) == 5 and translator.retries == 4
        # Exponential backoff with jitter: each pause within [0.5, 1] x min(8, 2^attempt).
        for attempt, pause in enumerate(slept):
            assert 0.5 * min(8, 2 ** attempt) <= pause <= min(8, 2 ** attempt)


def test_gives_up_after_max_retries_naming_the_batch():
    with FakeTranslationAPI() as api:
        api.failures = [(503, None)] * 3
        with pytest.raises(TranslationError, match="first 'mochila roja': gave up after 2 retries: 503"):
            google_translator(api, max_retries=2).translate(["mochila roja"], "es", "en")


def test_a_permanent_400_is_reported_with_its_batch(tmp_path):
    texts = ["bolso negro", "bolso azul", "reloj"]
    with FakeTranslationAPI() as api:
        translator = google_translator(api, batch_chars=22)  # two batches: 2 texts, then 1
        api.failures = [(400, None)]
        with pytest.raises(TranslationError, match=r"batch of 2 texts .*es->en, first 'bolso negro'.*400"):
            translator.translate(texts[:2], "es", "en")
        assert len(api.requests) == 1  # a 400 is not retried

        cache = TranslationCache(str(tmp_path / "cache.sqlite"), translator.identity())
        api.failures = [(400, None)]
        plan = TranslationPlan.build({("es", "en"): texts}, cache).run(translator, show_progress=False)
        summary = plan.summary()
        assert summary["failed_texts"] == 2 and summary["translated_texts"] == 1
        assert {f["text"] for f in summary["failures"]} == {"bolso negro", "bolso azul"}
        assert "first 'bolso negro'" in summary["failures"][0]["reason"]
        assert cache.get("es", "en", texts) == {"reloj": fake_translation("reloj", "en")}  # the good batch is kept


def test_permission_denied_is_one_setup_line():
    with FakeTranslationAPI() as api:
        api.failures = [(403, "IAM_PERMISSION_DENIED")]
        with pytest.raises(TranslatorSetupError, match="permission denied for project test-project"):
            google_translator(api).translate(["x"], "en", "es")
        assert len(api.requests) == 1


def test_missing_credentials_is_one_setup_line(monkeypatch, tmp_path):
    from esci_tf.data.translation.google_v3 import GoogleTranslator

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(TranslatorSetupError, match="no usable Google Cloud credentials.*gcloud auth"):
        GoogleTranslator("p", api_endpoint="http://127.0.0.1:9")
    with pytest.raises(TranslatorSetupError, match="--project"):
        GoogleTranslator("")


def test_japanese_and_spanish_round_trip():
    texts = ["zapatillas de correr niño, talla 32 — 100% algodón", "ワイヤレス イヤホン 🎧 ノイズキャンセリング",
             "café «crème» ½ kg", "鞄\u3000黒\u00a0(大容量)"]
    with FakeTranslationAPI() as api:
        translator = google_translator(api)
        forward = translator.translate(texts, "es", "ja")
        back = translator.translate(forward, "ja", "es")
        assert [untag(t) for t in back] == texts
        assert api.requests[1][2]["contents"] == forward  # sent back exactly as received


def test_kill_mid_run_then_rerun_translates_nothing_twice(tmp_path):
    examples, products = write_esci_files(8, 3, str(tmp_path / "data"))
    out = tmp_path / "translated"
    command = [sys.executable, "-m", "trainers.translate", f"--examples={examples}", f"--products={products}",
               "--backend=google", "--project=test-project", "--anonymous_credentials", "--batch_chars=400",
               "--targets=es,jp,us", f"--output_dir={out}"]
    with FakeTranslationAPI() as api:
        api.hold_request = 6  # five batches answered (and committed), the sixth never answered
        process = subprocess.Popen([*command, f"--api_endpoint={api.endpoint}"], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert api.held.wait(120), process.communicate(timeout=5)[0][-2000:]
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        first_run = api.sent_texts(answered_only=True)
        assert len(first_run) > 0 and not (out / "examples.parquet").exists()

        api.hold_request = None
        held_count = len(api.requests)
        printed = []  # the rerun in this process (the same code as the CLI's main)
        summary = translate_files(examples, products, str(out), google_translator(api, batch_chars=400),
                                  ["es", "jp", "us"], show_progress=False, echo=printed.append)
        second_run = [(s, t, x) for _, _, body in api.requests[held_count:]
                      for s, t, x in [(body["sourceLanguageCode"], body["targetLanguageCode"], c)
                                      for c in body["contents"]]]
    assert not set(first_run) & set(second_run)  # nothing answered before is paid for again
    assert len(second_run) == len(set(second_run))
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["cached_texts"] == len(first_run)
    assert summary["translated_texts"] == len(second_run)
    assert summary["failed_texts"] == 0 and summary["distinct_texts"] == len(first_run) + len(second_run)
    translated = pd.read_parquet(out / "examples.parquet")
    source = pd.read_parquet(examples)
    assert len(translated) == 2 * int((source["split"] == "train").sum())  # every pair into two locales
    assert "estimated cost $" in printed[0] and f"{len(second_run)} texts" in printed[0]


class _MemoryCache:
    """A cache that keeps nothing (for tests of batching alone)."""

    def get(self, source, target, texts):
        return {}

    def put(self, source, target, translations):
        pass
