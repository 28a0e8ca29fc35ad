"""A local fake of the Cloud Translation v3 REST API (POST /v3/projects/{p}/locations/{l}:translateText)
for the real google-cloud-translate client, on 127.0.0.1.

It answers {"translations": [{"translatedText": ...}]} with a reversible translation (the text
tagged with the target language, an earlier tag replaced), records every request, can be told
to fail the next requests with given HTTP statuses, and can hold one request unanswered (to kill
a client while it waits)."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TAG = re.compile(r"^⟦[a-z]{2}⟧ ")
_PATH = re.compile(r"^/v3/projects/(?P<project>[^/]+)/locations/(?P<location>[^/:]+):translateText")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                503: "UNAVAILABLE"}


def fake_translation(text: str, target: str) -> str:
    """What the fake answers: the text tagged with its target language (a tag already there is
    replaced, so translating back gives the original text tagged with its own language)."""
    return f"⟦{target}⟧ " + _TAG.sub("", text)


def untag(text: str) -> str:
    return _TAG.sub("", text)


class FakeTranslationAPI:
    """The fake server; use as a context manager. `endpoint` is the client's api_endpoint."""

    def __init__(self):
        self.requests = []  # (project, location, body) of every request, in arrival order
        self.failures = []  # (status, reason) for the next requests, in order
        self.hold_request = None  # the request number (1-based) to hold unanswered
        self.held = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                match = _PATH.match(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8"))
                with fake.lock:
                    fake.requests.append((match and match["project"], match and match["location"], body))
                    number = len(fake.requests)
                    failure = fake.failures.pop(0) if fake.failures else None
                if number == fake.hold_request:
                    fake.held.set()
                    fake.release.wait(60)
                    return
                if match is None:
                    return self._answer(404, {"error": {"code": 404, "message": f"no route {self.path}"}})
                if failure is not None:
                    status, reason = failure
                    error = {"code": status, "message": f"fake {status} {reason or ''}".strip(),
                             "status": STATUS_NAMES.get(status, "UNKNOWN")}
                    if reason:
                        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                                             "domain": "translate.googleapis.com"}]
                    return self._answer(status, {"error": error})
                target = body["targetLanguageCode"]
                self._answer(200, {"translations": [{"translatedText": fake_translation(t, target)}
                                                    for t in body["contents"]]})

            def _answer(self, status, value):
                data = json.dumps(value, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def sent_texts(self, answered_only: bool = False) -> list:
        """(source, target, text) of every text sent (answered_only: not the held request's)."""
        texts = []
        for number, (_, _, body) in enumerate(self.requests, 1):
            if answered_only and number == self.hold_request:
                continue
            texts += [(body["sourceLanguageCode"], body["targetLanguageCode"], t) for t in body["contents"]]
        return texts


def google_translator(api, **settings):
    """The real client (REST transport, anonymous credentials) pointed at the fake; no sleeping."""
    from google.auth.credentials import AnonymousCredentials

    from esci_tf.data.translation.google_v3 import GoogleTranslator

    settings.setdefault("sleep", lambda seconds: None)
    return GoogleTranslator("test-project", "global", "rest", api.endpoint, AnonymousCredentials(), **settings)
