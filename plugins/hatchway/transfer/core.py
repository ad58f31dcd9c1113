"""Fetch, decrypt on the fly, upload: one file at a time, one segment at a time, all in memory.

``crypt4gh.lib.decrypt`` is not used: its decorator swallows every ``OSError`` (and
``requests``' errors are ``OSError``s), so a dropped connection would pass for a finished
file. Its building blocks are used instead (``header.deconstruct``, ``body_decrypt``), fed
by :class:`CountedStream`, which also checks the encrypted byte count against the request.

A transfer is an ensure: each committed object is marked with the encrypted size it came
from and its plaintext size and sha256 (:data:`MARK_SOURCE_SIZE`, ...). A file whose object
already carries the request's size and whose stored size equals its marked plaintext size
is skipped, so a retried task moves only what is missing; when nothing is missing, not even
the key is fetched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from hatchway.domain.jobs import GlobusFile
from hatchway.transfer.config import TransferConfig
from hatchway.transfer.keys import fetch_private_key
from hatchway.transfer.storage import Clients, Sink, Source, StorageError, open_sink, open_source, stat

log = logging.getLogger(__name__)
MARK_SOURCE = "hatchway-source"
MARK_SOURCE_SIZE = "hatchway-source-size"
MARK_PLAIN_SIZE = "hatchway-plaintext-size"
MARK_SHA256 = "hatchway-sha256"


class TransferError(Exception):
    """A file could not be transferred; the message names the file and the reason."""


class SizeMismatch(TransferError):
    """The encrypted file is not the size the request says."""


@dataclass(frozen=True)
class Transferred:
    """One file done: where it went and how big it was, encrypted and plain."""

    source: str
    destination: str
    encrypted_bytes: int
    plaintext_bytes: int
    seconds: float
    sha256: str = ""
    skipped: bool = False


class CountedStream:
    """A source stream that reads exactly, counts, and enforces the expected byte count.

    crypt4gh expects ``read(n)``/``readinto(buf)`` to fill completely unless at the end;
    network streams return short reads, so this loops. Reaching the end with a count other
    than ``expected``, or passing ``expected`` at any point, raises :class:`SizeMismatch`
    there and then, before the sink is committed.

    :param raw: the source stream.
    :param expected: the encrypted size from the request.
    :param name: the file, for messages.
    """

    def __init__(self, raw: Any, expected: int, name: str) -> None:
        self.raw, self.expected, self.name = raw, expected, name
        self.count = 0
        self.eof = False

    def _check(self) -> None:
        if self.count > self.expected:
            raise SizeMismatch(f"{self.name}: more than {self.expected} bytes arrived (the request's size); "
                               "the file is not the one requested")
        if self.eof and self.count != self.expected:
            raise SizeMismatch(f"{self.name}: {self.count} bytes arrived, the request says {self.expected}")

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(self.expected - self.count + 1, 1)
        chunks, wanted = [], size
        while wanted > 0 and not self.eof:
            try:
                data = self.raw.read(wanted)
            except Exception as exc:  # noqa: BLE001 - the network's failures all mean the same here
                raise TransferError(f"{self.name}: download failed after {self.count} bytes: "
                                    f"{type(exc).__name__}: {exc}") from None
            if not data:
                self.eof = True
                break
            chunks.append(data)
            wanted -= len(data)
            self.count += len(data)
            self._check()
        self._check()
        return b"".join(chunks)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read to the end (a file with an edit list may stop early): the count must match."""
        while not self.eof:
            self.read(1 << 16)


def decrypt_stream(keys: list, stream: CountedStream, sink: Sink, what: str, digest: Any = None) -> int:
    """Decrypt ``stream`` into ``sink``.

    :param keys: crypt4gh's key list, ``[(0, secret_key, None)]``.
    :param digest: a hashlib object fed every plaintext byte (optional).
    :return: the plaintext byte count.
    :raises TransferError: not Crypt4GH, wrong key, or a damaged segment.
    """
    from crypt4gh import header, lib

    written = 0

    def write(data) -> None:
        nonlocal written
        if digest is not None:
            digest.update(data)
        try:
            sink.write(data)
        except Exception as exc:  # noqa: BLE001 - any SDK failure: name the object, not the SDK
            raise StorageError(f"{what}: upload to {sink.url} failed after {written} bytes: "
                               f"{type(exc).__name__}: {exc}") from None
        written += len(data)

    try:
        session_keys, edit_list = header.deconstruct(stream, keys)
    except TransferError:
        raise
    except ValueError as exc:
        if "No supported encryption method" in str(exc):
            raise TransferError(f"{what}: the private key does not open this file's header "
                                "(wrong key, or the file was encrypted for someone else)") from None
        raise TransferError(f"{what}: not a Crypt4GH file ({exc})") from None
    output = lib.limited_output(offset=0, limit=None, process=write)
    next(output)
    try:
        if edit_list is None:
            lib.body_decrypt(stream, session_keys, output, 0)
        else:
            lib.body_decrypt_parts(stream, session_keys, output, edit_list=list(edit_list))
    except TransferError:
        raise
    except (ValueError, AssertionError) as exc:
        raise TransferError(f"{what}: a segment does not decrypt (damaged or tampered file: "
                            f"{type(exc).__name__})") from None
    stream.drain()
    return written


def transfer_file(source: Source, file: GlobusFile, config: TransferConfig, keys: list,
                  clients: Clients | None = None) -> Transferred:
    """Move one file: open, decrypt segment by segment into the sink, check, commit.

    :raises TransferError: the file failed; its object (if any) has been removed.
    """
    plain_name = file.filename.removesuffix(".c4gh")
    where = source.describe(file.filename)
    started = time.monotonic()
    raw, length = source.open(file.filename)
    try:
        if length is not None and length != file.size:
            # The server said so up front: nothing is written at all.
            raise SizeMismatch(f"{file.filename}: the source has {length} bytes, the request says {file.size}")
        sink = open_sink(config.destination, plain_name, config.chunk_size, clients)
        digest = hashlib.sha256()
        try:
            stream = CountedStream(raw, file.size, file.filename)
            plain = decrypt_stream(keys, stream, sink, file.filename, digest)
            try:
                stored = sink.commit()
            except Exception as exc:  # noqa: BLE001 - any SDK failure: name the object
                raise StorageError(f"{file.filename}: finishing the upload to {sink.url} failed: "
                                   f"{type(exc).__name__}: {exc}") from None
            if stored != plain:
                raise TransferError(f"{file.filename}: {sink.url} holds {stored} bytes after the upload, "
                                    f"{plain} were written")
        except BaseException:
            sink.abort()
            raise
    finally:
        raw.close()
    sha256 = digest.hexdigest()
    try:
        # Last: an object without its marks is transferred again by a retry, never skipped.
        sink.mark({MARK_SOURCE: file.filename, MARK_SOURCE_SIZE: str(file.size), MARK_PLAIN_SIZE: str(plain),
                   MARK_SHA256: sha256})
    except Exception as exc:  # noqa: BLE001 - any SDK failure: name the object
        raise StorageError(f"{file.filename}: marking {sink.url} as transferred failed: "
                           f"{type(exc).__name__}: {exc}") from None
    return Transferred(where, sink.url, stream.count, plain, time.monotonic() - started, sha256)


def already_transferred(config: TransferConfig, file: GlobusFile, clients: Clients | None = None) -> Transferred | None:
    """The record of ``file`` when its object is complete from an earlier transfer, else ``None``."""
    plain_name = file.filename.removesuffix(".c4gh")
    found = stat(config.destination, plain_name, clients)
    if found is None:
        return None
    size, marks = found
    if (marks.get(MARK_SOURCE) != file.filename or marks.get(MARK_SOURCE_SIZE) != str(file.size)
            or marks.get(MARK_PLAIN_SIZE) != str(size) or not marks.get(MARK_SHA256)):
        return None
    return Transferred(file.filename, f"{config.destination}/{plain_name}", file.size, size, 0.0,
                       marks[MARK_SHA256], skipped=True)


def run(config: TransferConfig, env: dict[str, str] | None = None,
        clients: Clients | None = None) -> list[Transferred]:
    """Transfer every file of ``config``.

    :param config: what to move.
    :param env: the environment to read credentials from (default: ``os.environ``).
    :param clients: the storage clients (default: made from the environment).
    :return: one record per file, in order.
    :raises TransferError: on the first file that fails (files before it stay transferred;
        the job's teardown removes the work bucket).
    """
    env = os.environ if env is None else env
    clients = clients or Clients()
    done: dict[str, Transferred] = {}
    try:
        for file in config.source.files:
            if (found := already_transferred(config, file, clients)) is not None:
                log.info("%s: already in %s (%d plaintext bytes, sha256 %s): skipped", file.filename,
                         found.destination, found.plaintext_bytes, found.sha256)
                done[file.filename] = found
    except StorageError as exc:
        raise TransferError(str(exc)) from None
    if len(done) == len(config.source.files):
        return [done[f.filename] for f in config.source.files]
    secret_key = fetch_private_key(config.key_handler, config.secret_key,
                                   token=env.get("HATCHWAY_KEY_HANDLER_TOKEN") or None,
                                   passphrase=env.get("HATCHWAY_KEY_PASSPHRASE") or None,
                                   timeout=min(config.timeout, 60))
    keys = [(0, secret_key, None)]
    source = open_source(config.source.base_url, config.source.dir,
                         token=env.get("HATCHWAY_SOURCE_TOKEN") or None,
                         timeout=config.timeout, chunk_size=config.chunk_size, clients=clients)
    for file in config.source.files:
        if file.filename in done:
            continue
        try:
            result = transfer_file(source, file, config, keys, clients)
        except StorageError as exc:
            raise TransferError(str(exc)) from None
        log.info("%s -> %s: %d encrypted bytes (as requested), %d plaintext bytes, %.1f s",
                 result.source, result.destination, result.encrypted_bytes, result.plaintext_bytes,
                 result.seconds)
        done[file.filename] = result
    return [done[f.filename] for f in config.source.files]
