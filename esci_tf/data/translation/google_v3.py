"""Google Cloud Translation v3 (`translateText`) through google-cloud-translate (the `translate`
extra: pip install 'esci-tf[translate]').

One request per batch (batching.batches: at most 1,024 texts and `batch_chars` code points,
5,000 by default, never over the API's 30,000), the project's characters per minute kept under
`chars_per_minute` (6,000,000 by default), and retries with exponential backoff and jitter on the
answers that mean "later": 429, 403 rate-limit reasons, 5xx, timeouts and dropped connections.
Credentials and permission problems stop the run with one line saying what to fix (with
`connect=False` the client is made at the first request, so a dry run needs no credentials and
`setup_problem()` says what a real run would lack); any other
refusal (400: a bad language code, a text the API rejects) raises TranslationError naming the
batch. `api_endpoint` points the client at an emulator or a test server (`http://host:port`
for plain HTTP with the REST transport).
"""

import random
import time

from esci_tf.data.translation.base import Translator, TranslationError, TranslatorSetupError
from esci_tf.data.translation.batching import CharacterRate

TRANSPORTS = ("rest", "grpc")
RATE_LIMIT_REASONS = {"ratelimitexceeded", "userratelimitexceeded", "rate_limit_exceeded", "quotaexceeded",
                      "resource_exhausted"}
INSTALL_HINT = "pip install 'esci-tf[translate]' (google-cloud-translate)"


def _api():
    try:
        from google.api_core import exceptions
        from google.cloud import translate_v3
    except ImportError as error:
        raise TranslatorSetupError(f"--backend=google needs google-cloud-translate: {INSTALL_HINT} ({error})") from error
    return translate_v3, exceptions


def is_rate_limit(error) -> bool:
    """A 403 that asks to slow down (rateLimitExceeded and friends), not a missing permission."""
    reasons = {str(getattr(error, "reason", "") or "").lower()}
    for item in getattr(error, "errors", None) or ():
        if isinstance(item, dict):
            reasons.add(str(item.get("reason", "")).lower())
    message = str(getattr(error, "message", error)).lower()
    return bool(reasons & RATE_LIMIT_REASONS) or "rate limit" in message or "ratelimit" in message


class GoogleTranslator(Translator):
    """Cloud Translation v3 for one project and location (see the module docstring)."""

    name = "google"
    paid = True

    def __init__(self, project: str, location: str = "global", transport: str = "rest",
                 api_endpoint: str | None = None, credentials=None, batch_chars: int = 5_000,
                 max_segments: int = 1024, chars_per_minute: int = 6_000_000, max_retries: int = 8,
                 initial_backoff: float = 1.0, max_backoff: float = 64.0, timeout: float = 120.0,
                 model: str | None = None, sleep=time.sleep, clock=time.monotonic, seed: int = 0,
                 connect: bool = True):
        if not project:
            raise TranslatorSetupError("--backend=google needs --project (the Google Cloud project to bill)")
        if transport not in TRANSPORTS:
            raise TranslatorSetupError(f"--transport={transport!r}: expected one of {', '.join(TRANSPORTS)}")
        if not 0 < batch_chars <= self.max_request_chars or not 0 < max_segments <= 1024:
            raise TranslatorSetupError(f"--batch_chars={batch_chars} / --max_segments={max_segments}: Cloud "
                                       f"Translation takes at most 1024 texts and {self.max_request_chars} code "
                                       "points per request")
        self.project, self.location, self.transport = project, location, transport
        self.api_endpoint, self.model, self.credentials = api_endpoint, model, credentials
        self.batch_chars, self.max_segments = int(batch_chars), int(max_segments)
        self.max_retries, self.initial_backoff, self.max_backoff = max_retries, initial_backoff, max_backoff
        self.timeout, self.sleep = timeout, sleep
        self.rate = CharacterRate(chars_per_minute, clock=clock, sleep=sleep)
        self.random = random.Random(seed)
        self.retries = 0  # retried requests so far (summary.json)
        self.client = self._exceptions = None
        if connect:
            self.connect()

    def connect(self) -> None:
        """Makes the client (once): TranslatorSetupError when the package or credentials are missing."""
        if self.client is not None:
            return
        translate_v3, self._exceptions = _api()
        options = {"api_endpoint": self.api_endpoint} if self.api_endpoint else None
        try:
            self.client = translate_v3.TranslationServiceClient(
                credentials=self.credentials, transport=self.transport, client_options=options)
        except Exception as error:  # google.auth.exceptions.DefaultCredentialsError and kin
            raise self._credentials_error(error) from error

    def setup_problem(self) -> str | None:
        """What would stop a real run from starting (the package, the credentials), or None; for a
        dry run, which makes no client."""
        try:
            self.connect()
        except TranslatorSetupError as error:
            return str(error)
        return None

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def identity(self) -> dict:
        return {"backend": self.name, "model": self.model or "nmt"}

    def _credentials_error(self, error) -> TranslatorSetupError:
        return TranslatorSetupError(
            f"--backend=google: no usable Google Cloud credentials ({type(error).__name__}: {error}); run "
            "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a service "
            "account key with the Cloud Translation API User role")

    def _request(self, texts, source, target) -> dict:
        request = {"parent": self.parent, "contents": list(texts), "mime_type": "text/plain",
                   "source_language_code": source, "target_language_code": target}
        if self.model:
            request["model"] = f"{self.parent}/models/{self.model}"
        return request

    def _retryable(self, error) -> bool:
        exceptions = self._exceptions
        if isinstance(error, (exceptions.TooManyRequests, exceptions.ResourceExhausted, exceptions.ServerError,
                              exceptions.DeadlineExceeded, exceptions.ServiceUnavailable)):
            return True
        if isinstance(error, (exceptions.PermissionDenied, exceptions.Forbidden)):  # gRPC / HTTP 403
            return is_rate_limit(error)
        return isinstance(error, (ConnectionError, TimeoutError)) or type(error).__module__.startswith("requests.")

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_backoff, self.initial_backoff * 2 ** attempt)
        return delay * (0.5 + 0.5 * self.random.random())

    def translate(self, texts, source, target) -> list:
        texts = list(texts)
        if not texts:
            return []
        self.connect()
        where = (f"batch of {len(texts)} texts ({sum(map(len, texts))} characters) {source}->{target}, "
                 f"first {texts[0][:80]!r}")
        self.rate.wait(sum(map(len, texts)))
        exceptions = self._exceptions
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.translate_text(request=self._request(texts, source, target), retry=None,
                                                      timeout=self.timeout)
                break
            except (exceptions.Unauthenticated,) as error:
                raise self._credentials_error(error) from error
            except Exception as error:  # noqa: BLE001 (sorted into retry / setup / refused below)
                if self._retryable(error) and attempt < self.max_retries:
                    self.retries += 1
                    self.sleep(self._backoff(attempt))
                    continue
                if isinstance(error, (exceptions.PermissionDenied, exceptions.Forbidden)):
                    raise TranslatorSetupError(
                        f"--backend=google: permission denied for project {self.project} ({error.message}); "
                        "enable the Cloud Translation API and grant the Cloud Translation API User role") from error
                if type(error).__module__.startswith("google.auth"):
                    raise self._credentials_error(error) from error
                code = getattr(error, "code", None)
                detail = getattr(error, "message", None) or str(error)
                gave_up = f"gave up after {self.max_retries} retries: " if self._retryable(error) else ""
                raise TranslationError(f"Cloud Translation refused the {where}: {gave_up}"
                                       f"{code or type(error).__name__} {detail}") from error
        translations = [t.translated_text for t in response.translations]
        if len(translations) != len(texts):
            raise TranslationError(f"Cloud Translation answered {len(translations)} translations for the {where}")
        return translations
