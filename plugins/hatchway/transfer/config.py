"""What one transfer moves, from where, to where, with which key: the ``--config`` file's model.

The Helm chart writes this file from ``hatchway.domain.helm_values`` (``transfer``); the
command line can give or override every field. Credentials are never in it: they come
from the environment (see :data:`ENV`).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hatchway.domain.jobs import GlobusFile, SecretKeyDetails

# Environment variables read by the transfer (the chart fills them from a Secret).
ENV = {
    "HATCHWAY_KEY_HANDLER_TOKEN": "bearer token for the HTTP key handler",
    "HATCHWAY_KEY_PASSPHRASE": "passphrase of a locked Crypt4GH private key",
    "HATCHWAY_SOURCE_TOKEN": "bearer token for an HTTPS source (a Globus HTTPS collection)",
    "STORAGE_EMULATOR_HOST": "GCS endpoint override (the GCS emulator in tests)",
    "GOOGLE_CLOUD_PROJECT": "GCS project (optional)",
    "AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_SECRETS_MANAGER": "AWS endpoint overrides (moto)",
}

KIB = 1024
MIB = 1024 * KIB
# GCS resumable chunks must be multiples of 256 KiB; S3 multipart parts at least 5 MiB
# (except the last). One chunk is the only plaintext held, and only in memory.
GCS_CHUNK_MULTIPLE = 256 * KIB
S3_MIN_PART = 5 * MIB
DEFAULT_CHUNK_SIZE = 8 * MIB


class ConfigError(ValueError):
    """The transfer's configuration is incomplete or wrong."""


def _loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_http_url(url: str, what: str) -> str:
    """``https://`` anywhere; plain ``http://`` only to a loopback address (local tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _loopback(parts.hostname):
        return url
    raise ValueError(f"{what} {url!r} must be an https:// URL (plain http only to 127.0.0.1/localhost)")


def split_bucket_url(url: str) -> tuple[str, str, str]:
    """``gs://bucket/a/b`` -> ``("gs", "bucket", "a/b")``."""
    parts = urlsplit(url)
    if parts.scheme not in ("gs", "s3") or not parts.netloc:
        raise ValueError(f"{url!r} is not a gs:// or s3:// bucket URL")
    return parts.scheme, parts.netloc, parts.path.strip("/")


class Source(BaseModel):
    """Where the encrypted files are.

    :param base_url: an HTTPS base URL (a Globus HTTPS collection), or ``s3://bucket[/prefix]``
        or ``gs://bucket[/prefix]``.
    :param dir: folder under ``base_url`` (``dir_path_on_guest_collection``).
    :param files: the ``.c4gh`` files with their encrypted sizes in bytes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    dir: str = ""
    files: list[GlobusFile] = Field(min_length=1)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        if v.startswith(("s3://", "gs://")):
            split_bucket_url(v)
            return v.rstrip("/")
        return check_http_url(v, "source base_url").rstrip("/")

    @field_validator("dir")
    @classmethod
    def _dir(cls, v: str) -> str:
        v = v.strip("/")
        if ".." in v.split("/") or any(c in v for c in "\\\n\r\t\0"):
            raise ValueError("source dir must be a relative path without '..'")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Source:
        names = [f.filename for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError("files lists a filename twice")
        return self


class KeyHandler(BaseModel):
    """Where the Crypt4GH private key comes from.

    :param kind: ``http`` (``GET`` on the key handler returns the key) or ``secretsmanager``.
    :param url: key handler URL (``http``); ``{secret_id}`` and ``{secret_id_version}`` are
        filled in, or appended as path segments when absent.
    :param region: AWS region (``secretsmanager``).
    :param endpoint_url: Secrets Manager endpoint override (moto in tests).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["http", "secretsmanager"]
    url: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return v if v is None else check_http_url(v, "key handler url")

    @model_validator(mode="after")
    def _complete(self) -> KeyHandler:
        if self.kind == "http" and not self.url:
            raise ValueError("key handler 'http' needs a url")
        return self


class TransferConfig(BaseModel):
    """One transfer: every file of ``source`` decrypted into ``destination``.

    :param source: the encrypted files.
    :param destination: ``gs://bucket/prefix`` or ``s3://bucket/prefix`` in the work bucket;
        ``<file>.c4gh`` becomes ``<prefix>/<file>``.
    :param key_handler: where the private key comes from.
    :param secret_key: the key's ``secret_id`` and ``secret_id_version``.
    :param chunk_size: upload chunk in bytes (a multiple of 256 KiB; at least 5 MiB for S3).
    :param timeout: seconds of network silence before a request fails.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Source
    destination: str
    key_handler: KeyHandler
    secret_key: SecretKeyDetails
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, ge=GCS_CHUNK_MULTIPLE, le=512 * MIB)
    timeout: float = Field(300, gt=0)

    @field_validator("destination")
    @classmethod
    def _destination(cls, v: str) -> str:
        split_bucket_url(v)
        return v.rstrip("/")

    @field_validator("chunk_size")
    @classmethod
    def _chunk(cls, v: int) -> int:
        if v % GCS_CHUNK_MULTIPLE:
            raise ValueError("chunk_size must be a multiple of 256 KiB (262144 bytes)")
        return v

    @model_validator(mode="after")
    def _s3_part(self) -> TransferConfig:
        if self.destination.startswith("s3://") and self.chunk_size < S3_MIN_PART:
            raise ValueError("chunk_size must be at least 5 MiB for an s3:// destination (multipart rule)")
        return self


def _merge(base: dict, overrides: dict) -> dict:
    # Options not given on the command line are None: they leave the file's value alone.
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            nested = _merge(merged.get(key) if isinstance(merged.get(key), dict) else {}, value)
            if nested:
                merged[key] = nested
        elif value is not None:
            merged[key] = value
    return merged


def load_config(path: str | Path | None, overrides: dict) -> TransferConfig:
    """The config file (if any) with the command line's values on top.

    :param path: a JSON file in the :class:`TransferConfig` shape, or ``None``.
    :param overrides: the same shape; ``None`` values are ignored.
    :raises ConfigError: unreadable file or invalid result (the message names the field).
    """
    data: dict = {}
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a JSON object")
    try:
        return TransferConfig.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                             for err in exc.errors())
        raise ConfigError(f"invalid transfer configuration: {problems}") from None
