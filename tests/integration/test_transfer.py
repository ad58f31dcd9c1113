"""``python -m hatchway.transfer`` for real: Crypt4GH files over HTTP, keys from a key handler
(a local HTTP service, or moto's Secrets Manager), plaintext into the GCS emulator or moto S3.

The plaintext exists only in this test's memory and in the buckets: the encrypted files are
on disk (they are what a Globus collection serves), the plaintext never is. Each run gets an
empty TMPDIR, HOME and working directory, and the test checks they stay empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import pytest

from hatchway_dev.endpoints import GcsEmulator
from hatchway_dev.inputs import Keypair, LoopbackServer, encrypt

REPO = Path(__file__).resolve().parents[2]
PROJECT = "hatchway-transfer-test"
KIB, MIB = 1024, 1024 * 1024
SOURCE_TOKEN = "globus-token-NOT-A-REAL-ONE-7f3e"
KEY_HANDLER_TOKEN = "key-handler-token-NOT-A-REAL-ONE-91ac"
PASSPHRASE = "correct horse battery staple"
DIR = "test@ebi.ac.uk/Sample-Set-1"


# -- keys and files
def _plaintexts() -> dict[str, bytes]:
    # Names as in the INTERVENE request; one file spans many 64 KiB segments and upload chunks.
    return {
        "hapnest.psam": b"#IID\tSEX\n" + b"".join(b"sample%05d\t%d\n" % (i, i % 2 + 1) for i in range(600)),
        "hapnest.pvar": b"#CHROM\tPOS\tID\tREF\tALT\n" + b"".join(b"1\t%d\trs%d\tA\tG\n" % (i * 7, i)
                                                                   for i in range(40_000)),
        "hapnest.pgen": os.urandom(6 * MIB + 4321),
    }


@pytest.fixture(scope="module")
def keys() -> Keypair:
    return Keypair()


@pytest.fixture(scope="module")
def plaintexts() -> dict[str, bytes]:
    return _plaintexts()


@pytest.fixture(scope="module")
def collection(tmp_path_factory, keys, plaintexts) -> Path:
    """The 'Globus collection': encrypted files only, for the recipient ``keys``."""
    root = tmp_path_factory.mktemp("collection")
    folder = root / DIR
    folder.mkdir(parents=True)
    for name, plain in plaintexts.items():
        (folder / f"{name}.c4gh").write_bytes(encrypt(plain, keys))
    return root


def _files(collection: Path, **size_delta: int) -> list[dict]:
    return [{"filename": p.name, "size": p.stat().st_size + size_delta.get(p.name.split(".")[1], 0)}
            for p in sorted((collection / DIR).iterdir())]


# -- local HTTP services (stdlib servers in threads)
@pytest.fixture(scope="module")
def file_server(collection):
    """Serves the collection; needs the bearer token; ``omit_length`` streams without Content-Length."""
    state = {"omit_length": False, "gets": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # close-delimited bodies, so a missing length is legal

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            from urllib.parse import unquote

            state["gets"] += 1
            if self.headers.get("Authorization") != f"Bearer {SOURCE_TOKEN}":
                self.send_error(401)
                return
            path = collection / unquote(self.path.lstrip("/"))
            if not path.resolve().is_relative_to(collection.resolve()) or not path.is_file():
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if not state["omit_length"]:
                self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            try:
                with open(path, "rb") as f:
                    while chunk := f.read(100_000):  # odd chunks: reads must not assume segment alignment
                        self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the transfer stops reading when it has seen enough

    server = LoopbackServer(Handler)
    server.state = state
    yield server
    server.close()


@pytest.fixture(scope="module")
def key_handler(keys):
    """An HTTP key handler: ``GET /keys/<secret id>/<version>`` with a bearer token -> armoured key."""
    served: dict[tuple[str, str], bytes] = {}
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            asked.append(self.path)
            if self.headers.get("Authorization") != f"Bearer {KEY_HANDLER_TOKEN}":
                self.send_error(401)
                return
            parts = self.path.strip("/").split("/")
            key = served.get((parts[1], parts[2])) if len(parts) == 3 and parts[0] == "keys" else None
            if key is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(key)))
            self.end_headers()
            self.wfile.write(key)

    server = LoopbackServer(Handler)
    server.served = served
    server.asked = asked
    yield server
    server.close()


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    emulator = GcsEmulator(project=PROJECT)
    emulator.start(tmp_path_factory.mktemp("gcs"))
    yield emulator
    emulator.stop()


@pytest.fixture
def gcs_bucket(gcs, monkeypatch):
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    client = storage.Client(project=PROJECT)
    bucket = client.create_bucket(f"ns-intp{uuid.uuid4().hex[:12]}-work")
    yield bucket
    from google.api_core.exceptions import Conflict

    try:
        bucket.delete(force=True)
    except Conflict:
        # The emulator ignores the DELETE that cancels a resumable session (GCS honours it),
        # so a bucket with a cancelled upload stays "busy" there. It is in memory anyway.
        pass


# -- running the command
class Run:
    """A finished transfer: exit status, output, and the sandbox it ran in."""

    def __init__(self, proc: subprocess.CompletedProcess, sandbox: Path) -> None:
        self.returncode, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.sandbox = sandbox


def run_transfer(tmp_path: Path, config: dict, env: dict[str, str]) -> Run:
    """Run ``python -m hatchway.transfer --config`` with empty TMPDIR/HOME/cwd to watch."""
    sandbox = tmp_path / "sandbox"
    for sub in ("tmp", "home", "cwd"):
        (sandbox / sub).mkdir(parents=True, exist_ok=True)
    config_file = tmp_path / "transfer.json"
    config_file.write_text(json.dumps(config))
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO / "plugins"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": str(sandbox / "tmp"),
        "HOME": str(sandbox / "home"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        **env,
    }
    proc = subprocess.run([sys.executable, "-m", "hatchway.transfer", "--config", str(config_file)],
                          cwd=sandbox / "cwd", env=full_env, capture_output=True, timeout=180)
    return Run(proc, sandbox)


def assert_no_local_plaintext(run: Run, plaintexts: dict[str, bytes], *also: Path) -> None:
    leftovers = [p for p in run.sandbox.rglob("*") if p.is_file()]
    assert leftovers == [], f"the transfer wrote local files: {leftovers}"
    probes = [plain[len(plain) // 2:len(plain) // 2 + 64] for plain in plaintexts.values()]
    for root in also:
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            assert not any(probe in data for probe in probes), f"plaintext found in {path}"


def assert_no_secrets_in_output(run: Run, keys: Keypair) -> None:
    output = run.stdout + run.stderr
    for secret in [*keys.secret_forms(), SOURCE_TOKEN.encode(), KEY_HANDLER_TOKEN.encode(), PASSPHRASE.encode()]:
        assert secret not in output, "a secret reached the transfer's output"


def http_config(file_server, key_handler, collection, destination: str, secret: dict, **size_delta) -> dict:
    return {
        "source": {"base_url": file_server.url, "dir": DIR, "files": _files(collection, **size_delta)},
        "destination": destination,
        "key_handler": {"kind": "http", "url": f"{key_handler.url}/keys"},
        "secret_key": secret,
        "chunk_size": 256 * KIB,  # several resumable chunks per multi-MB file
    }


def new_secret() -> dict:
    return {"secret_id": str(uuid.uuid4()).upper(), "secret_id_version": "1"}


# -- tests
def test_transfer_decrypts_into_gcs_with_http_key_handler(tmp_path, gcs, gcs_bucket, file_server, key_handler,
                                                          collection, keys, plaintexts):
    secret = new_secret()
    key_handler.served[(secret["secret_id"], "1")] = keys.armored()
    config = http_config(file_server, key_handler, collection, f"gs://{gcs_bucket.name}/data", secret)

    run = run_transfer(tmp_path, config, {"STORAGE_EMULATOR_HOST": gcs.url, "HATCHWAY_SOURCE_TOKEN": SOURCE_TOKEN,
                                          "HATCHWAY_KEY_HANDLER_TOKEN": KEY_HANDLER_TOKEN})

    assert run.returncode == 0, run.stderr.decode()
    stored = {blob.name: blob.download_as_bytes() for blob in gcs_bucket.list_blobs()}
    assert stored == {f"data/{name}": plain for name, plain in plaintexts.items()}
    assert_no_local_plaintext(run, plaintexts, tmp_path, REPO / "plugins", collection)
    assert_no_secrets_in_output(run, keys)


def test_transfer_to_s3_with_locked_key_from_secrets_manager(tmp_path, moto_server, file_server, collection,
                                                             keys, plaintexts):
    secret = new_secret()
    sm = boto3.client("secretsmanager", endpoint_url=moto_server.url, region_name="us-east-1")
    sm.create_secret(Name=secret["secret_id"], SecretString="placeholder")
    # The request's version "1" is a staging label in Secrets Manager.
    sm.put_secret_value(SecretId=secret["secret_id"], SecretString=keys.armored(PASSPHRASE).decode(),
                        VersionStages=["1"])
    s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    bucket = f"ns-intp{uuid.uuid4().hex[:12]}-work"
    s3.create_bucket(Bucket=bucket)
    config = {
        "source": {"base_url": file_server.url, "dir": DIR, "files": _files(collection)},
        "destination": f"s3://{bucket}/data",
        "key_handler": {"kind": "secretsmanager", "region": "us-east-1", "endpoint_url": moto_server.url},
        "secret_key": secret,
        "chunk_size": 5 * MIB,  # the 6 MiB file goes up in two multipart parts
    }

    run = run_transfer(tmp_path, config, {"AWS_ENDPOINT_URL_S3": moto_server.url, "HATCHWAY_SOURCE_TOKEN": SOURCE_TOKEN,
                                          "HATCHWAY_KEY_PASSPHRASE": PASSPHRASE})

    assert run.returncode == 0, run.stderr.decode()
    for name, plain in plaintexts.items():
        assert s3.get_object(Bucket=bucket, Key=f"data/{name}")["Body"].read() == plain
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_no_local_plaintext(run, plaintexts, tmp_path)
    assert_no_secrets_in_output(run, keys)


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_transfer_reads_from_a_bucket_source(tmp_path, gcs, gcs_bucket, moto_server, key_handler, collection,
                                             keys, plaintexts, scheme):
    from google.cloud import storage

    secret = new_secret()
    key_handler.served[(secret["secret_id"], "1")] = keys.armored()
    source_bucket = f"ns-intp{uuid.uuid4().hex[:12]}-inbox"
    if scheme == "gs":
        inbox = storage.Client(project=PROJECT).create_bucket(source_bucket)
        for path in (collection / DIR).iterdir():
            inbox.blob(f"inbox/{DIR}/{path.name}").upload_from_filename(str(path))
    else:
        s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
        s3.create_bucket(Bucket=source_bucket)
        for path in (collection / DIR).iterdir():
            s3.upload_file(str(path), source_bucket, f"inbox/{DIR}/{path.name}")
    config = {
        "source": {"base_url": f"{scheme}://{source_bucket}/inbox", "dir": DIR, "files": _files(collection)},
        "destination": f"gs://{gcs_bucket.name}/data",
        "key_handler": {"kind": "http", "url": f"{key_handler.url}/keys/{{secret_id}}/{{secret_id_version}}"},
        "secret_key": secret,
        "chunk_size": 256 * KIB,
    }

    run = run_transfer(tmp_path, config, {"STORAGE_EMULATOR_HOST": gcs.url, "AWS_ENDPOINT_URL_S3": moto_server.url,
                                          "HATCHWAY_KEY_HANDLER_TOKEN": KEY_HANDLER_TOKEN})

    assert run.returncode == 0, run.stderr.decode()
    stored = {blob.name: blob.download_as_bytes() for blob in gcs_bucket.list_blobs()}
    assert stored == {f"data/{name}": plain for name, plain in plaintexts.items()}
    assert_no_local_plaintext(run, plaintexts, tmp_path)


@pytest.mark.parametrize("server_sends_length", [True, False], ids=["content-length", "no-content-length"])
def test_wrong_size_fails_and_leaves_no_object(tmp_path, gcs, gcs_bucket, file_server, key_handler, collection,
                                               keys, plaintexts, server_sends_length):
    secret = new_secret()
    key_handler.served[(secret["secret_id"], "1")] = keys.armored()
    # One byte more than the file: without a Content-Length the whole multi-MB file is
    # decrypted and uploaded chunk by chunk before the count can be compared.
    config = http_config(file_server, key_handler, collection, f"gs://{gcs_bucket.name}/data", secret, pgen=1)
    config["source"]["files"] = [f for f in config["source"]["files"] if f["filename"] == "hapnest.pgen.c4gh"]
    file_server.state["omit_length"] = not server_sends_length
    try:
        run = run_transfer(tmp_path, config, {"STORAGE_EMULATOR_HOST": gcs.url,
                                              "HATCHWAY_SOURCE_TOKEN": SOURCE_TOKEN,
                                              "HATCHWAY_KEY_HANDLER_TOKEN": KEY_HANDLER_TOKEN})
    finally:
        file_server.state["omit_length"] = False

    assert run.returncode == 1
    size = (collection / DIR / "hapnest.pgen.c4gh").stat().st_size
    message = run.stderr.decode()
    assert "hapnest.pgen.c4gh" in message and str(size) in message and str(size + 1) in message
    # With a length the server's word is enough to refuse up front; without one, the count
    # at the end of the stream is what fails the file.
    assert ("the source has" if server_sends_length else "bytes arrived") in message
    assert list(gcs_bucket.list_blobs()) == []
    assert_no_local_plaintext(run, plaintexts, tmp_path)


def test_wrong_key_fails_and_leaves_no_object(tmp_path, gcs, gcs_bucket, file_server, key_handler, collection,
                                              keys, plaintexts):
    secret = new_secret()
    stranger = Keypair()
    key_handler.served[(secret["secret_id"], "1")] = stranger.armored()
    config = http_config(file_server, key_handler, collection, f"gs://{gcs_bucket.name}/data", secret)

    run = run_transfer(tmp_path, config, {"STORAGE_EMULATOR_HOST": gcs.url, "HATCHWAY_SOURCE_TOKEN": SOURCE_TOKEN,
                                          "HATCHWAY_KEY_HANDLER_TOKEN": KEY_HANDLER_TOKEN})

    assert run.returncode == 1
    assert b"private key does not open" in run.stderr
    assert list(gcs_bucket.list_blobs()) == []
    assert_no_secrets_in_output(run, stranger)


def test_key_handler_refusal_is_a_clear_failure(tmp_path, gcs, gcs_bucket, file_server, key_handler, collection,
                                                keys):
    secret = new_secret()
    key_handler.served[(secret["secret_id"], "1")] = keys.armored()
    config = http_config(file_server, key_handler, collection, f"gs://{gcs_bucket.name}/data", secret)

    run = run_transfer(tmp_path, config, {"STORAGE_EMULATOR_HOST": gcs.url, "HATCHWAY_SOURCE_TOKEN": SOURCE_TOKEN,
                                          "HATCHWAY_KEY_HANDLER_TOKEN": "a-wrong-token"})

    assert run.returncode == 1
    assert b"HTTP 401" in run.stderr and secret["secret_id"].encode() in run.stderr
    assert list(gcs_bucket.list_blobs()) == []


def test_bad_configuration_exits_2_naming_the_field(tmp_path):
    run = run_transfer(tmp_path, {"source": {"base_url": "http://example.org", "files": []}}, {})

    assert run.returncode == 2
    assert b"source.base_url" in run.stderr and b"destination" in run.stderr


def test_a_retried_transfer_skips_files_already_transferred(tmp_path, gcs, gcs_bucket, file_server, key_handler,
                                                            collection, keys, plaintexts):
    import hashlib

    secret = new_secret()
    key_handler.served[(secret["secret_id"], "1")] = keys.armored()
    config = http_config(file_server, key_handler, collection, f"gs://{gcs_bucket.name}/data", secret)
    env = {"STORAGE_EMULATOR_HOST": gcs.url, "HATCHWAY_SOURCE_TOKEN": SOURCE_TOKEN,
           "HATCHWAY_KEY_HANDLER_TOKEN": KEY_HANDLER_TOKEN}
    assert run_transfer(tmp_path, config, env).returncode == 0
    first = {b.name: (b.generation, b.metadata) for b in gcs_bucket.list_blobs()}
    for name, plain in plaintexts.items():
        assert first[f"data/{name}"][1]["hatchway-sha256"] == hashlib.sha256(plain).hexdigest()

    gets, fetches = file_server.state["gets"], len(key_handler.asked)
    again = run_transfer(tmp_path, config, env)

    assert again.returncode == 0, again.stderr.decode()
    assert file_server.state["gets"] == gets and len(key_handler.asked) == fetches  # nothing fetched
    assert {b.name: (b.generation, b.metadata) for b in gcs_bucket.list_blobs()} == first  # nothing rewritten
    assert b"already in" in again.stderr


def test_an_object_without_the_transfer_marks_is_transferred_again(tmp_path, gcs, gcs_bucket, file_server,
                                                                   key_handler, collection, keys, plaintexts):
    secret = new_secret()
    key_handler.served[(secret["secret_id"], "1")] = keys.armored()
    config = http_config(file_server, key_handler, collection, f"gs://{gcs_bucket.name}/data", secret)
    # Same size, no marks: e.g. copied by hand, or an attempt that died before marking it.
    gcs_bucket.blob("data/hapnest.psam").upload_from_string(b"x" * len(plaintexts["hapnest.psam"]))
    env = {"STORAGE_EMULATOR_HOST": gcs.url, "HATCHWAY_SOURCE_TOKEN": SOURCE_TOKEN,
           "HATCHWAY_KEY_HANDLER_TOKEN": KEY_HANDLER_TOKEN}

    assert run_transfer(tmp_path, config, env).returncode == 0
    stored = {blob.name: blob.download_as_bytes() for blob in gcs_bucket.list_blobs()}
    assert stored == {f"data/{name}": plain for name, plain in plaintexts.items()}
