"""Fast, clear checks of gs:// paths before an entry point reads or writes them.

Without them a missing credential or bucket shows late and badly: pyarrow's GCS client retries an
OAuth token for minutes, TensorFlow's says "Could not resolve host" and nothing of credentials.
`check_inputs({flag: path})` and `check_output(path, flag)` ask Cloud Storage's JSON API a
request or two per path (seconds at most, no retries) and raise CloudPathError, one line naming
the flag, the path and what is missing:

- credentials: none found (the order the clients look: GOOGLE_APPLICATION_CREDENTIALS, the
  gcloud application-default file, a Google Compute Engine / Cloud TPU VM's service account),
  or refused;
- network: Cloud Storage (or the token server) cannot be reached;
- bucket: it does not exist;
- permission: the account may not list (reads) or create and delete (writes: a probe object
  `.tmp.access_check.*` is written and deleted) objects there;
- the input itself: no such object, or no object under a directory or a glob's fixed prefix.

Paths other than gs:// are left alone. STORAGE_EMULATOR_HOST (the variable gcsfs honours) points
the checks at a local server and needs no credentials; GOOGLE_AUTH_TOKEN_FOR_TESTING (the one
TensorFlow's GCS client honours) is used as the token.

>>> split_gs_path("gs://bucket/runs/a/")
('bucket', 'runs/a/')
>>> literal_prefix("runs/data/train-*.tfrecord.gz")
'runs/data/train-'
>>> check_inputs({"examples": "local/examples.parquet", "products": None})
>>> check_output("runs/local", "output_dir")
"""

import os
import socket
import time
import urllib.parse

from esci_tf.errors import DataError

SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
GOOGLE_ENDPOINT = "https://storage.googleapis.com"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
TEST_TOKEN_ENV = "GOOGLE_AUTH_TOKEN_FOR_TESTING"
TIMEOUT = (5.0, 15.0)  # seconds to connect, to read an answer
PROBE_PREFIX = ".tmp.access_check."  # files.TEMP_PREFIX: a killed check's probe is removed with the run's leftovers
_DMI_PRODUCT = "/sys/class/dmi/id/product_name"
_HOW_TO_AUTHENTICATE = ("run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a "
                        "service-account key file, or run on a Cloud TPU / Compute Engine VM with a service account")


class CloudPathError(DataError):
    """A gs:// path that cannot be used; the message names the flag, the path and why."""


def split_gs_path(path: str) -> tuple:
    """(bucket, object name or prefix) of a gs:// path."""
    rest = str(path)[len("gs://"):]
    bucket, _, name = rest.partition("/")
    return bucket, name


def literal_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard."""
    cut = min([i for i in (pattern.find(c) for c in "*?[") if i >= 0], default=len(pattern))
    return pattern[:cut]


def check_inputs(paths: dict) -> None:
    """Checks each gs:// input in {flag: file, directory or glob} (None and other paths are
    skipped); raises CloudPathError."""
    paths = {flag: str(path) for flag, path in paths.items() if _is_gs(path)}
    if paths:
        client = _Client(*next(iter(paths.items())))
        for flag, path in paths.items():
            client.check_read(flag, path)


def check_output(path, flag: str, directory: bool = True) -> None:
    """Checks that a gs:// output directory (or file, directory=False) can be written: the bucket
    exists and the account may create and delete objects there. Other paths are skipped."""
    if _is_gs(path):
        _Client(flag, str(path)).check_write(flag, str(path), directory)


def _is_gs(path) -> bool:
    return path is not None and str(path).startswith("gs://")


def _on_google_vm() -> bool:
    """A Compute Engine / Cloud TPU VM (its DMI product name, as google-auth checks), or a
    metadata server named by GCE_METADATA_HOST; never with NO_GCE_CHECK=true."""
    if os.environ.get("NO_GCE_CHECK", "").lower() == "true":
        return False
    if os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_IP"):
        return True
    try:
        with open(_DMI_PRODUCT) as stream:
            return stream.read().strip().startswith("Google")
    except OSError:
        return False


def _where(flag: str, path: str) -> str:
    return f"--{flag}={path}"


class _Client:
    """The JSON API of Cloud Storage (or the emulator) with the credentials the clients would use."""

    def __init__(self, flag: str, path: str):
        import requests

        self._requests = requests
        self.session = requests.Session()
        emulator = os.environ.get(EMULATOR_ENV)
        if emulator:
            self.endpoint = emulator if "://" in emulator else f"http://{emulator}"
            self.endpoint = self.endpoint.rstrip("/")
            self.account = "the emulator"
            return
        self.endpoint = GOOGLE_ENDPOINT
        token = os.environ.get(TEST_TOKEN_ENV)
        if token:
            self.account = f"the token in {TEST_TOKEN_ENV}"
        else:
            token, self.account = self._token(flag, path)
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _token(self, flag: str, path: str) -> tuple:
        """(access token, account description) of the application-default credentials."""
        import google.auth
        import google.auth.exceptions
        from google.auth import _cloud_sdk
        from google.auth.transport.requests import Request

        where = _where(flag, path)
        key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if key_file and not os.path.exists(key_file):
            raise CloudPathError(f"{where}: no Google Cloud credentials: GOOGLE_APPLICATION_CREDENTIALS names "
                                 f"{key_file}, which does not exist")
        user_file = _cloud_sdk.get_application_default_credentials_path()
        try:
            if key_file or os.path.exists(user_file):
                credentials, _ = google.auth.default(scopes=[SCOPE])
            elif _on_google_vm():
                from google.auth import compute_engine

                credentials = compute_engine.Credentials()
            else:
                raise CloudPathError(f"{where}: no Google Cloud credentials found on this machine; "
                                     + _HOW_TO_AUTHENTICATE)
        except google.auth.exceptions.DefaultCredentialsError as error:
            raise CloudPathError(f"{where}: the Google Cloud credentials cannot be read: {error}") from None
        account = getattr(credentials, "service_account_email", None) or getattr(credentials, "account", None) \
            or "the application-default credentials"
        base = Request(self.session)

        def bounded(*args, **kwargs):
            kwargs["timeout"] = TIMEOUT[1]
            return base(*args, **kwargs)

        try:
            credentials.refresh(bounded)
        except google.auth.exceptions.TransportError as error:
            raise CloudPathError(f"{where}: cannot reach Google's token server to use {account} (network): "
                                 f"{_short(error)}") from None
        except google.auth.exceptions.RefreshError as error:
            raise CloudPathError(f"{where}: the Google Cloud credentials ({account}) were refused: {_short(error)}; "
                                 + _HOW_TO_AUTHENTICATE) from None
        return credentials.token, account

    def _call(self, flag: str, path: str, method: str, url: str, **kwargs):
        try:
            return self.session.request(method, self.endpoint + url, timeout=TIMEOUT, **kwargs)
        except self._requests.RequestException as error:
            host = urllib.parse.urlparse(self.endpoint).netloc
            raise CloudPathError(f"{_where(flag, path)}: cannot reach Cloud Storage at {host} (network): "
                                 f"{_short(error)}") from None

    def _refused(self, flag: str, path: str, response, action: str) -> CloudPathError:
        bucket = split_gs_path(path)[0]
        message = _error_message(response)
        where = _where(flag, path)
        if response.status_code == 404:
            return CloudPathError(f"{where}: bucket gs://{bucket} does not exist (create it with `gcloud storage "
                                  f"buckets create gs://{bucket}`, or fix the name)")
        if response.status_code == 401:
            return CloudPathError(f"{where}: the Google Cloud credentials ({self.account}) were refused "
                                  f"(HTTP 401: {message}); " + _HOW_TO_AUTHENTICATE)
        if response.status_code == 403:
            return CloudPathError(f"{where}: permission denied: {self.account} may not {action} in gs://{bucket} "
                                  f"(HTTP 403: {message})")
        return CloudPathError(f"{where}: Cloud Storage answered HTTP {response.status_code} to {action}: {message}")

    def _list(self, flag: str, path: str, prefix: str) -> list:
        bucket, _ = split_gs_path(path)
        response = self._call(flag, path, "GET", f"/storage/v1/b/{_quote(bucket)}/o",
                              params={"prefix": prefix, "maxResults": "1"})
        if response.status_code != 200:
            raise self._refused(flag, path, response, "list objects")
        return [item["name"] for item in response.json().get("items", [])]

    def check_read(self, flag: str, path: str) -> None:
        """The object exists; or, for a directory or glob, an object under its fixed prefix."""
        bucket, name = split_gs_path(path)
        if not bucket:
            raise CloudPathError(f"{_where(flag, path)}: no bucket in the path (gs://BUCKET/...)")
        prefix = literal_prefix(name)
        if prefix != name or not name or name.endswith("/"):  # a glob or a directory
            if not self._list(flag, path, prefix) and not self._list(flag, path, prefix.rstrip("/") + "/"):
                raise CloudPathError(f"{_where(flag, path)}: no file matches it (nothing under gs://{bucket}/{prefix})")
            return
        found = self._list(flag, path, name)
        if found and found[0] == name:
            return
        if not self._list(flag, path, name.rstrip("/") + "/"):  # an object, or a directory holding files
            raise CloudPathError(f"{_where(flag, path)}: not found (gs://{bucket} has no such object)")

    def check_write(self, flag: str, path: str, directory: bool) -> None:
        """The bucket exists and the account may create and delete objects in the directory
        `path` (or `path`'s directory): atomic writes rename, a copy then a delete."""
        bucket, name = split_gs_path(path)
        if not bucket:
            raise CloudPathError(f"{_where(flag, path)}: no bucket in the path (gs://BUCKET/...)")
        self._list(flag, path, name)
        folder = name.rstrip("/") if directory else name.rpartition("/")[0]
        probe = "/".join(filter(None, [folder, f"{PROBE_PREFIX}{socket.gethostname()}.{os.getpid()}.{time.time_ns()}"]))
        response = self._call(flag, path, "POST", f"/upload/storage/v1/b/{_quote(bucket)}/o",
                              params={"uploadType": "media", "name": probe}, data=b"",
                              headers={"Content-Type": "application/octet-stream"})
        if response.status_code not in (200, 201):
            raise self._refused(flag, path, response, "create objects")
        response = self._call(flag, path, "DELETE", f"/storage/v1/b/{_quote(bucket)}/o/{_quote(probe)}")
        if response.status_code not in (200, 204, 404):
            raise self._refused(flag, path, response, "delete objects (a run replaces its files: "
                                "roles/storage.objectAdmin)")


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _error_message(response) -> str:
    """Cloud Storage's own error message (its JSON body), or the start of the body."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return " ".join((response.text or response.reason or "").split())[:200]


_REASONS = ("failed to resolve", "name or service not known", "temporary failure in name resolution",
            "connection refused", "timed out", "network is unreachable", "unable to connect to proxy",
            "certificate verify failed")


def _short(error: BaseException) -> str:
    """The reason of a requests / google-auth network error, on one line."""
    text = " ".join(str(error).split())
    found = [reason for reason in _REASONS if reason in text.lower().replace("_", " ")]
    return ", ".join(found) if found else text[:200]
