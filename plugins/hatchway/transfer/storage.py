"""Streaming sources of encrypted files and streaming sinks of plaintext objects.

Nothing here touches local disk: a source is a network stream read in segments, a sink
holds at most one upload chunk in memory. A sink only becomes an object on
:meth:`Sink.commit`; :meth:`Sink.abort` cancels the upload and removes any object, so a
failed file never leaves plaintext (or a partial object) behind.

After a commit the transfer marks the object (:meth:`Sink.mark`: GCS metadata, S3 object
tags) with the encrypted size it came from and its plaintext size and sha256; :func:`stat`
reads the object's size and marks back, so a retried transfer can skip a file already done.
"""

from __future__ import annotations

import logging
import os
from typing import Any, BinaryIO
from urllib.parse import quote

from hatchway.transfer.config import split_bucket_url

log = logging.getLogger(__name__)


class StorageError(Exception):
    """A source or destination failed; the message says which object and why."""


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def gcs_client():
    from google.cloud import storage

    # With STORAGE_EMULATOR_HOST set the client goes anonymous to the emulator by itself.
    return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT"))


def s3_client():
    import boto3

    # Endpoint overrides (moto) come from AWS_ENDPOINT_URL[_S3], which boto3 reads itself.
    return boto3.client("s3")


class Clients:
    """The storage clients a transfer uses: given (an Airflow task passes its connections'),
    or made from the environment on first use (the command line).

    :param gcs: a ``google.cloud.storage.Client``.
    :param s3: a boto3 S3 client.
    """

    def __init__(self, gcs: Any = None, s3: Any = None) -> None:
        self._gcs, self._s3 = gcs, s3

    def gcs(self) -> Any:
        if self._gcs is None:
            self._gcs = gcs_client()
        return self._gcs

    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = s3_client()
        return self._s3


# -- sources
class Source:
    """Opens encrypted files by name under a base location."""

    def open(self, filename: str) -> tuple[BinaryIO, int | None]:
        """:return: a stream of the file and its length when the server says it (else ``None``)."""
        raise NotImplementedError

    def describe(self, filename: str) -> str:
        raise NotImplementedError


class HttpSource(Source):
    """Files under an HTTPS base URL (a Globus HTTPS collection).

    :param base_url: the collection's HTTPS base URL.
    :param directory: folder under it.
    :param token: bearer token (Globus HTTPS needs one for non-public collections).
    :param timeout: seconds of silence before the download fails.
    """

    def __init__(self, base_url: str, directory: str, token: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.directory = directory
        self.token = token
        self.timeout = timeout

    def describe(self, filename: str) -> str:
        # '@' stays: Globus collection paths carry e-mail addresses, and RFC 3986 allows it.
        path = quote(_join(self.directory, filename), safe="/@-._~")
        return f"{self.base_url}/{path}"

    def open(self, filename: str) -> tuple[BinaryIO, int | None]:
        import requests

        url = self.describe(filename)
        # identity: the byte count checked is the file's own, not a compressed transfer's.
        headers = {"Accept-Encoding": "identity"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = requests.get(url, headers=headers, stream=True, timeout=(10, self.timeout))
        except requests.RequestException as exc:
            raise StorageError(f"cannot reach {url}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            resp.close()
            hint = " (check HATCHWAY_SOURCE_TOKEN)" if resp.status_code in (401, 403) else ""
            raise StorageError(f"GET {url} answered HTTP {resp.status_code}{hint}")
        length = resp.headers.get("Content-Length")
        resp.raw.decode_content = False
        return _Closing(resp.raw, resp), int(length) if length and length.isdigit() else None


class _Closing:
    """A response body that closes its response with it."""

    def __init__(self, raw: Any, owner: Any) -> None:
        self._raw, self._owner = raw, owner

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def close(self) -> None:
        self._owner.close()


class S3Source(Source):
    def __init__(self, url: str, directory: str, clients: Clients) -> None:
        _, self.bucket, prefix = split_bucket_url(url)
        self.prefix = _join(prefix, directory)
        self.client = clients.s3()

    def describe(self, filename: str) -> str:
        return f"s3://{self.bucket}/{_join(self.prefix, filename)}"

    def open(self, filename: str) -> tuple[BinaryIO, int | None]:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=_join(self.prefix, filename))
        except ClientError as exc:
            raise StorageError(f"cannot read {self.describe(filename)}: "
                               f"{exc.response.get('Error', {}).get('Code')}") from None
        return obj["Body"], obj.get("ContentLength")


class GcsSource(Source):
    def __init__(self, url: str, directory: str, chunk_size: int, clients: Clients) -> None:
        _, self.bucket, prefix = split_bucket_url(url)
        self.prefix = _join(prefix, directory)
        self.chunk_size = chunk_size
        self.client = clients.gcs()

    def describe(self, filename: str) -> str:
        return f"gs://{self.bucket}/{_join(self.prefix, filename)}"

    def open(self, filename: str) -> tuple[BinaryIO, int | None]:
        from google.api_core.exceptions import GoogleAPIError

        blob = self.client.bucket(self.bucket).blob(_join(self.prefix, filename))
        try:
            blob.reload()
        except GoogleAPIError as exc:
            raise StorageError(f"cannot read {self.describe(filename)}: {type(exc).__name__}") from None
        return blob.open("rb", chunk_size=self.chunk_size), blob.size


def open_source(base_url: str, directory: str, *, token: str | None, timeout: float, chunk_size: int,
                clients: Clients | None = None) -> Source:
    """The source for ``base_url`` (``https://``, ``s3://`` or ``gs://``)."""
    clients = clients or Clients()
    if base_url.startswith("s3://"):
        return S3Source(base_url, directory, clients)
    if base_url.startswith("gs://"):
        return GcsSource(base_url, directory, chunk_size, clients)
    return HttpSource(base_url, directory, token, timeout)


# -- sinks
class Sink:
    """One plaintext object being written; an object only after :meth:`commit`."""

    url: str

    def write(self, data: bytes | bytearray | memoryview) -> int:
        raise NotImplementedError

    def commit(self) -> int:
        """Finish the upload. :return: the object's size as the store reports it."""
        raise NotImplementedError

    def abort(self) -> None:
        """Cancel the upload and make sure no object (partial or older) is left."""
        raise NotImplementedError

    def mark(self, marks: dict[str, str]) -> None:
        """Record ``marks`` on the committed object (GCS metadata, S3 object tags)."""
        raise NotImplementedError


class GcsSink(Sink):
    """A GCS resumable upload, chunk by chunk from memory.

    :param bucket: bucket name.
    :param name: object name.
    :param chunk_size: bytes per chunk (a multiple of 256 KiB).
    """

    def __init__(self, bucket: str, name: str, chunk_size: int, client: Any = None) -> None:
        from google.cloud.storage.fileio import BlobWriter

        self.url = f"gs://{bucket}/{name}"
        self.blob = (client or gcs_client()).bucket(bucket).blob(name)
        # BlobWriter buffers one chunk in memory and sends it on a resumable session; the
        # object exists only once close() sends the last chunk with the total size.
        self.writer = BlobWriter(self.blob, chunk_size=chunk_size, ignore_flush=True,
                                 content_type="application/octet-stream")

    def write(self, data) -> int:
        return self.writer.write(data)

    def commit(self) -> int:
        self.writer.close()
        self.blob.reload()
        return int(self.blob.size or 0)

    def abort(self) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.writer.terminate()
        except Exception as exc:  # noqa: BLE001 - cancelling is best effort; the delete below is not
            log.warning("Cancelling the upload session of %s failed (%s); it expires unfinished",
                        self.url, type(exc).__name__)
        try:
            self.blob.delete()
            log.warning("Deleted %s", self.url)
        except NotFound:
            pass

    def mark(self, marks: dict[str, str]) -> None:
        self.blob.metadata = {**(self.blob.metadata or {}), **marks}
        self.blob.patch()


class S3Sink(Sink):
    """An S3 multipart upload, part by part from memory.

    :param bucket: bucket name.
    :param key: object key.
    :param part_size: bytes per part (at least 5 MiB).
    """

    def __init__(self, bucket: str, key: str, part_size: int, client: Any = None) -> None:
        self.url = f"s3://{bucket}/{key}"
        self.bucket, self.key, self.part_size = bucket, key, part_size
        self.client = client or s3_client()
        self.upload_id = self.client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType="application/octet-stream")["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()

    def _send(self, data: bytes) -> None:
        number = len(self.parts) + 1
        etag = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                       PartNumber=number, Body=data)["ETag"]
        self.parts.append({"ETag": etag, "PartNumber": number})

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) >= self.part_size:
            self._send(bytes(self.buffer[:self.part_size]))
            del self.buffer[:self.part_size]
        return len(data)

    def commit(self) -> int:
        if self.buffer or not self.parts:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                              MultipartUpload={"Parts": self.parts})
        return int(self.client.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"])

    def abort(self) -> None:
        self.buffer.clear()
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception as exc:  # noqa: BLE001 - best effort; the delete below is not
            log.warning("Aborting the multipart upload of %s failed (%s)", self.url, type(exc).__name__)
        self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def mark(self, marks: dict[str, str]) -> None:
        # Tags, not metadata: S3 metadata is fixed when the upload starts, before the
        # plaintext's size and checksum are known.
        self.client.put_object_tagging(Bucket=self.bucket, Key=self.key, Tagging={
            "TagSet": [{"Key": k, "Value": v} for k, v in marks.items()]})


def open_sink(destination: str, filename: str, chunk_size: int, clients: Clients | None = None) -> Sink:
    """A sink for ``filename`` under ``destination`` (``gs://`` or ``s3://``)."""
    clients = clients or Clients()
    scheme, bucket, prefix = split_bucket_url(destination)
    name = _join(prefix, filename)
    try:
        if scheme == "gs":
            return GcsSink(bucket, name, chunk_size, clients.gcs())
        return S3Sink(bucket, name, chunk_size, clients.s3())
    except Exception as exc:  # noqa: BLE001 - any SDK failure: name the object
        raise StorageError(f"cannot start the upload of {scheme}://{bucket}/{name}: {type(exc).__name__}: "
                           f"{exc}") from exc


def stat(destination: str, filename: str, clients: Clients | None = None) -> tuple[int, dict[str, str]] | None:
    """The size and marks of ``filename`` under ``destination``, or ``None`` when it does not exist.

    :raises StorageError: the store could not be asked.
    """
    clients = clients or Clients()
    scheme, bucket, prefix = split_bucket_url(destination)
    name = _join(prefix, filename)
    try:
        if scheme == "gs":
            blob = clients.gcs().bucket(bucket).get_blob(name)
            return None if blob is None else (int(blob.size or 0), dict(blob.metadata or {}))
        from botocore.exceptions import ClientError

        client = clients.s3()
        try:
            size = int(client.head_object(Bucket=bucket, Key=name)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        tags = client.get_object_tagging(Bucket=bucket, Key=name)["TagSet"]
        return size, {t["Key"]: t["Value"] for t in tags}
    except Exception as exc:  # noqa: BLE001 - any SDK failure: name the object
        raise StorageError(f"cannot look up {scheme}://{bucket}/{name}: {type(exc).__name__}: {exc}") from exc
