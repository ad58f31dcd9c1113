"""The Crypt4GH private key: fetched from the key handler, parsed in memory, never logged.

The key never touches disk (``crypt4gh.keys.get_private_key`` only reads files, so the
armoured text is parsed here from bytes) and never appears in a message: errors name the
secret id and version, never the key or the handler's answer.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import time
from urllib.parse import quote

from hatchway.domain.jobs import SecretKeyDetails
from hatchway.transfer.config import KeyHandler

log = logging.getLogger(__name__)

KEY_BYTES = 32
C4GH_MAGIC = b"c4gh-v1"
SSH_MAGIC = b"openssh-key-v1\x00"
# AWS Secrets Manager version ids are 32-64 characters (UUIDs); anything shorter, like the
# request's "1", is looked up as a staging label.
_AWS_VERSION_ID = re.compile(r"^[A-Za-z0-9-]{32,64}$")
_RETRIES = 3


class PrivateKeyError(Exception):
    """The private key could not be fetched or used; the message never carries key material."""


def _what(secret: SecretKeyDetails) -> str:
    return f"secret {secret.secret_id} version {secret.secret_id_version}"


def key_handler_url(template: str, secret: SecretKeyDetails) -> str:
    """The key handler URL for one secret.

    :param template: a URL with ``{secret_id}`` and ``{secret_id_version}``, or a base URL to
        which both are appended as path segments.
    """
    sid, ver = quote(secret.secret_id, safe=""), quote(secret.secret_id_version, safe="")
    if "{secret_id}" in template:
        return template.replace("{secret_id}", sid).replace("{secret_id_version}", ver)
    return f"{template.rstrip('/')}/{sid}/{ver}"


def _fetch_http(handler: KeyHandler, secret: SecretKeyDetails, token: str | None, timeout: float) -> bytes:
    import requests

    url = key_handler_url(handler.url or "", secret)
    headers = {"Accept": "application/json, text/plain, application/octet-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(1, _RETRIES + 1):
        try:
            resp = requests.get(url, headers=headers, timeout=(10, timeout))
        except requests.RequestException as exc:
            # Only the exception's class: its text can carry the URL with credentials in it.
            problem = f"key handler unreachable ({type(exc).__name__})"
        else:
            if resp.status_code == 200:
                return resp.content
            # The body is not quoted: a confused handler could echo secrets into it.
            problem = f"key handler answered HTTP {resp.status_code}"
            if resp.status_code in (401, 403):
                raise PrivateKeyError(f"{problem} for {_what(secret)}: check HATCHWAY_KEY_HANDLER_TOKEN")
            if resp.status_code == 404:
                raise PrivateKeyError(f"{problem}: the key handler has no {_what(secret)}")
            if resp.status_code < 500 and resp.status_code != 429:
                raise PrivateKeyError(f"{problem} for {_what(secret)}")
        if attempt < _RETRIES:
            time.sleep(2 ** attempt)
    raise PrivateKeyError(f"{problem} for {_what(secret)}, {_RETRIES} attempts")


def _fetch_secretsmanager(handler: KeyHandler, secret: SecretKeyDetails) -> bytes:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("secretsmanager", region_name=handler.region, endpoint_url=handler.endpoint_url)
    version = secret.secret_id_version
    selector = {"VersionId": version} if _AWS_VERSION_ID.match(version) else {"VersionStage": version}
    try:
        answer = client.get_secret_value(SecretId=secret.secret_id, **selector)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        if code == "ResourceNotFoundException":
            raise PrivateKeyError(f"Secrets Manager has no {_what(secret)} (version looked up as "
                            f"{next(iter(selector))})") from None
        raise PrivateKeyError(f"Secrets Manager refused {_what(secret)}: {code}") from None
    except BotoCoreError as exc:
        raise PrivateKeyError(f"Secrets Manager unreachable for {_what(secret)} ({type(exc).__name__})") from None
    if answer.get("SecretBinary") is not None:
        return bytes(answer["SecretBinary"])
    return answer.get("SecretString", "").encode()


def _unlock(blob: bytes, passphrase: str | None, secret: SecretKeyDetails) -> bytes:
    from crypt4gh.keys import c4gh, ssh

    stream = io.BytesIO(blob)

    def ask() -> str:
        if not passphrase:
            raise PrivateKeyError(f"the private key of {_what(secret)} is locked: set HATCHWAY_KEY_PASSPHRASE")
        return passphrase

    try:
        if blob.startswith(C4GH_MAGIC):
            stream.read(len(C4GH_MAGIC))
            return bytes(c4gh.parse_private_key(stream, ask))
        if blob.startswith(SSH_MAGIC):
            stream.read(len(SSH_MAGIC))
            return bytes(ssh.parse_private_key(stream, ask)[0])
    except PrivateKeyError:
        raise
    except SystemExit:
        # crypt4gh exits the interpreter on a bad passphrase; this is a failure to report.
        raise PrivateKeyError(f"the private key of {_what(secret)} could not be unlocked: wrong passphrase "
                        "or damaged key") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing here
        raise PrivateKeyError(f"the private key of {_what(secret)} is not a valid key ({type(exc).__name__})") from None
    raise PrivateKeyError(f"the private key of {_what(secret)} is neither a Crypt4GH nor an OpenSSH key")


def parse_private_key(payload: bytes, secret: SecretKeyDetails, passphrase: str | None = None) -> bytes:
    """The 32-byte X25519 secret key from what a key handler returned.

    Accepted: an armoured Crypt4GH (or OpenSSH ed25519) private key, possibly locked; a JSON
    object carrying one under ``private_key``, ``privateKey``, ``key``, ``secret`` or ``value``;
    or the base64 of the 32 raw bytes; or the raw bytes themselves.

    :raises PrivateKeyError: nothing usable (the message carries no key material).
    """
    if len(payload) == KEY_BYTES and b"-----" not in payload:
        try:
            payload.decode("ascii")
        except UnicodeDecodeError:
            return bytes(payload)
    text = payload.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            raise PrivateKeyError(f"the key handler's answer for {_what(secret)} is not valid JSON") from None
        for field in ("private_key", "privateKey", "key", "secret", "value"):
            if isinstance(doc, dict) and isinstance(doc.get(field), str):
                return parse_private_key(doc[field].encode(), secret, passphrase)
        raise PrivateKeyError(f"the key handler's JSON answer for {_what(secret)} names no private key field")
    if text.startswith("-----BEGIN "):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines[-1].startswith("-----END "):
            raise PrivateKeyError(f"the private key of {_what(secret)} is not complete PEM")
        try:
            blob = base64.b64decode("".join(lines[1:-1]), validate=True)
        except (binascii.Error, ValueError):
            raise PrivateKeyError(f"the private key of {_what(secret)} is not valid PEM") from None
        key = _unlock(blob, passphrase, secret)
    else:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise PrivateKeyError(f"the key handler's answer for {_what(secret)} is not a private key") from None
    if len(key) != KEY_BYTES:
        raise PrivateKeyError(f"the private key of {_what(secret)} is {len(key)} bytes, not {KEY_BYTES}")
    return key


def fetch_private_key(handler: KeyHandler, secret: SecretKeyDetails, *, token: str | None = None,
                      passphrase: str | None = None, timeout: float = 60) -> bytes:
    """Fetch and parse the private key of ``secret``.

    :param handler: the key handler.
    :param secret: which secret and version.
    :param token: bearer token for the HTTP key handler.
    :param passphrase: passphrase of a locked key.
    :param timeout: seconds to wait for the key handler.
    :return: the 32-byte secret key.
    :raises PrivateKeyError: the key is missing, refused or unusable.
    """
    if handler.kind == "http":
        payload = _fetch_http(handler, secret, token, timeout)
    else:
        payload = _fetch_secretsmanager(handler, secret)
    log.info("Fetched the private key of %s from the %s key handler", _what(secret), handler.kind)
    return parse_private_key(payload, secret, passphrase)
