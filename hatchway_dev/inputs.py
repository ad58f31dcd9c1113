"""The dev stack's job inputs: a Globus HTTPS collection serving Crypt4GH files (bearer token
required) and an HTTP key handler, each a stdlib server in a thread of the driving process.

The demo, the Celery leg and the job tests use it, so ``transfer_inputs`` decrypts real files
everywhere. :class:`InputsSource` fits it into a :class:`~hatchway_dev.endpoints.DevStack`.
"""


from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from crypt4gh import lib, sodium
from crypt4gh.keys import c4gh

SOURCE_TOKEN = "globus-token-NOT-A-REAL-ONE-5d1a"
KEY_HANDLER_TOKEN = "key-handler-token-NOT-A-REAL-ONE-0b7e"


class Keypair:
    """A Crypt4GH keypair made in memory; ``armored()`` is what a key handler returns."""

    def __init__(self) -> None:
        self.secret = os.urandom(32)
        self.public = sodium.derive_pk(self.secret)

    def armored(self, passphrase: str | None = None) -> bytes:
        body = base64.b64encode(c4gh.encode_private_key(self.secret, passphrase.encode() if passphrase else None,
                                                        b"hatchway test"))
        return b"-----BEGIN CRYPT4GH PRIVATE KEY-----\n" + body + b"\n-----END CRYPT4GH PRIVATE KEY-----\n"

    def secret_forms(self) -> list[bytes]:
        """Every way the private key could show up in a log."""
        return [self.secret.hex().encode(), self.secret.hex().upper().encode(), base64.b64encode(self.secret),
                self.armored().split(b"\n")[1][:40]]


def encrypt(plain: bytes, recipient: Keypair) -> bytes:
    out = io.BytesIO()
    sender = os.urandom(32)  # the sender's secret key: any will do
    lib.encrypt([(0, sender, recipient.public)], io.BytesIO(plain), out)
    return out.getvalue()


class LoopbackServer:
    """A threaded HTTP server on a free loopback port, serving ``handler``."""

    def __init__(self, handler) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class InputsStandIn:
    """A collection with ``files`` (plaintext by name) under ``directory``, and its key handler.

    :attr gets: GET requests the collection answered; :attr key_fetches: keys served.
    """

    def __init__(self, directory: str, files: dict[str, bytes]) -> None:
        self.keys = Keypair()
        self.directory = directory
        self.plaintexts = dict(files)
        self.encrypted = {f"{name}.c4gh": encrypt(plain, self.keys) for name, plain in files.items()}
        self.gets = 0
        self.key_fetches = 0
        self.collection = LoopbackServer(self._collection_handler())
        self.key_handler = LoopbackServer(self._key_handler())

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.plaintexts[name]).hexdigest()

    def files(self) -> list[dict]:
        return [{"filename": name, "size": len(data)} for name, data in self.encrypted.items()]

    def _collection_handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                stand_in.gets += 1
                if self.headers.get("Authorization") != f"Bearer {SOURCE_TOKEN}":
                    self.send_error(401)
                    return
                directory, _, name = unquote(self.path.lstrip("/")).rpartition("/")
                data = stand_in.encrypted.get(name) if directory == stand_in.directory else None
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _key_handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {KEY_HANDLER_TOKEN}":
                    self.send_error(401)
                    return
                stand_in.key_fetches += 1
                key = stand_in.keys.armored()
                self.send_response(200)
                self.send_header("Content-Length", str(len(key)))
                self.end_headers()
                self.wfile.write(key)

        return Handler

    def close(self) -> None:
        self.collection.close()
        self.key_handler.close()


# The example request's files, with plaintext that looks like PLINK 2 output.
DEMO_PLAINTEXTS = {
    "hapnest.psam": b"#IID\tSEX\n" + b"".join(b"s%05d\t1\n" % i for i in range(300)),
    "hapnest.pvar": b"#CHROM\tPOS\tID\tREF\tALT\n" + b"".join(b"1\t%d\trs%d\tA\tG\n" % (i, i) for i in range(2000)),
    "hapnest.pgen": bytes(range(256)) * 512,
}


class InputsSource:
    """The stand-in as a dev-stack service (no process of its own: threads of the driver).

    :param directory: the collection folder the requests name (``dir_path_on_guest_collection``).
    :param files: plaintext by file name (without ``.c4gh``).
    """

    name = "inputs"

    def __init__(self, directory: str, files: dict[str, bytes] | None = None) -> None:
        self.directory = directory
        self.plaintexts = dict(files or DEMO_PLAINTEXTS)
        self.stand_in: InputsStandIn | None = None

    def start(self, workdir: Path) -> "InputsSource":
        self.stand_in = InputsStandIn(self.directory, self.plaintexts)
        return self

    def check(self) -> None:
        """Threads of this process: alive as long as the driver is."""

    def stop(self) -> None:
        if self.stand_in:
            self.stand_in.close()
            self.stand_in = None

    def files(self) -> list[dict]:
        """The request's ``globus_details.files``: the encrypted sizes."""
        return self.stand_in.files()

    def helm_settings(self) -> dict[str, str]:
        """Where the jobs config's ``helm`` section finds the collection and the key handler."""
        return {"globus_base_url": self.stand_in.collection.url,
                "key_handler_url": f"{self.stand_in.key_handler.url}/keys"}

    def airflow_env(self) -> dict[str, str]:
        """The transfer's credentials, as the ``hatchway_transfer`` connection (extras are masked)."""
        import json

        return {"AIRFLOW_CONN_HATCHWAY_TRANSFER": json.dumps({"conn_type": "generic", "extra": {
            "source_token": SOURCE_TOKEN, "key_handler_token": KEY_HANDLER_TOKEN}})}
