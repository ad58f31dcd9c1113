"""Harvest a run's outputs as STAC Items into the calling workspace's static catalog.

A run writes under the *executing* workspace's prefix; the *calling* workspace may not be
able to read there (a user-service workflow runs in another workspace), so every output
is copied, server side, into the calling workspace's catalog prefix before it is
described. Nothing is ever written, copied or deleted outside that prefix.

A harvest converges: item ids, keys and JSON are functions of the run and its outputs
only, so a retried task writes the same bytes to the same keys, and keys an interrupted
earlier attempt left under the catalog prefix that this harvest did not write are removed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mimetypes
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pystac
from pystac.extensions.file import FileExtension

from hatchway.domain.names import check_s3_bucket, check_workspace_name
from hatchway.domain.wes import catalog_prefix, harvest_marker_key, outputs_prefix, run_prefix
from hatchway.s3 import split_s3

CATALOG_FILE = "catalog.json"
DATA_ASSET = "data"
PROPERTY_PREFIX = "hatchway:"
# sha2-256 in multihash form: function code 0x12, digest length 0x20 (32 bytes).
SHA256_MULTIHASH = "1220"
CHUNK = 1 << 20
_MAX_ERRORS = 5
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

# The standard library's built-in table only (no /etc/mime.types), so every worker guesses
# the same type and a retry on another machine writes the same catalog.
_MIME = mimetypes.MimeTypes()
_MEDIA_TYPES = {".vcf": "text/plain", ".geojson": "application/geo+json",
                ".parquet": "application/vnd.apache.parquet"}
_ENCODED_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
                  "br": "application/x-brotli"}


class OutOfScopeWriteError(RuntimeError):
    """A write, copy or delete was about to touch a key outside the calling workspace's
    catalog prefix: refused before any request is sent."""


@dataclass(frozen=True)
class RunOutputs:
    """A finished run whose outputs are to be harvested.

    :param run_id: the run's id (one path segment of the output and catalog prefixes).
    :param workflow_name: the workflow that ran.
    :param workflow_version: its version.
    :param calling_workspace: the workspace that asked for the run; the catalog goes there.
    :param executing_workspace: the workspace the run executed in; its outputs are there.
    :param bucket: the platform bucket holding every workspace's prefix.
    :param finished_at: when the run finished (timezone-aware; kept in UTC).
    """

    run_id: str
    workflow_name: str
    workflow_version: str
    calling_workspace: str
    executing_workspace: str
    bucket: str
    finished_at: datetime

    def __post_init__(self) -> None:
        check_workspace_name(self.calling_workspace)
        check_workspace_name(self.executing_workspace)
        check_s3_bucket(self.bucket)
        _check_segment(self.run_id, "run id")
        if self.finished_at.tzinfo is None or self.finished_at.utcoffset() is None:
            raise ValueError("finished_at must be timezone-aware")
        object.__setattr__(self, "finished_at", self.finished_at.astimezone(timezone.utc))


@dataclass(frozen=True)
class HarvestResult:
    """:param catalog_url: ``s3://`` URL of the catalog's ``catalog.json``.
    :param item_ids: one STAC Item id per output file, in output-path order."""

    catalog_url: str
    item_ids: list[str]


def _check_segment(value: str, what: str) -> str:
    if not value or "/" in value or value in {".", ".."} or not value.isprintable():
        raise ValueError(f"{what} must be one printable path segment without '/' (got {value!r})")
    return value


def item_id_for(relative_path: str) -> str:
    """A STAC-id-safe, deterministic id for an output, from its path under the outputs prefix.

    The readable part alone could collide (``a/b`` and ``a_b``), so a digest of the exact
    path follows it.
    """
    readable = _SAFE.sub("-", relative_path.replace("/", "_")).lstrip("._-")[:80] or "output"
    return f"{readable}-{hashlib.sha256(relative_path.encode()).hexdigest()[:10]}"


def _filename(relative_path: str) -> str:
    # Safe characters only, so the asset's relative href is the key, unescaped.
    return _SAFE.sub("_", posixpath.basename(relative_path)).lstrip(".") or "data"


def media_type(filename: str) -> str | None:
    """The media type of a file from its extension; ``None`` when unknown (STAC leaves it out)."""
    suffix = posixpath.splitext(filename.lower())[1]
    if suffix == ".zst":
        return "application/zstd"
    guessed, encoding = _MIME.guess_type(filename.lower(), strict=False)
    if encoding:
        return _ENCODED_TYPES.get(encoding)
    return _MEDIA_TYPES.get(suffix, guessed)


def multihash_sha256(chunks: Iterator[bytes]) -> tuple[str, int]:
    """``(multihash hex, size)`` of a stream, as the STAC file extension writes them."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return SHA256_MULTIHASH + digest.hexdigest(), size


def _check_scope(bucket: str, key: str, allowed_bucket: str, allowed_prefix: str) -> None:
    if bucket != allowed_bucket or not key.startswith(allowed_prefix) or ".." in key.split("/"):
        raise OutOfScopeWriteError(
            f"refusing to write s3://{bucket}/{key}: only s3://{allowed_bucket}/{allowed_prefix} may be written")


class S3StacIO(pystac.StacIO):
    """pystac reads and writes through one boto3 S3 client.

    :param client: a boto3 S3 client (from the amazon provider's ``S3Hook``).
    :param write_prefix: ``s3://bucket/prefix/`` under which writes are allowed; ``None``
        (the default) makes this a read-only reader.
    """

    def __init__(self, client: Any, write_prefix: str | None = None):
        super().__init__()
        self.client = client
        self.scope = split_s3(write_prefix) if write_prefix else None
        self.written: set[str] = set()

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        bucket, key = split_s3(os.fspath(source))
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        bucket, key = split_s3(os.fspath(dest))
        if self.scope is None:
            raise OutOfScopeWriteError(f"this reader writes nothing (asked to write s3://{bucket}/{key})")
        _check_scope(bucket, key, *self.scope)
        self.client.put_object(Bucket=bucket, Key=key, Body=txt.encode("utf-8"), ContentType="application/json")
        self.written.add(key)

    def json_dumps(self, json_dict: dict[str, Any], *args: Any, **kwargs: Any) -> str:
        # The standard library, whether or not orjson is installed: same input, same bytes.
        return json.dumps(json_dict, indent=2, ensure_ascii=False) + "\n"


# -- validation against the STAC item schema held locally

@functools.cache
def local_schema_registry() -> Any:
    """A ``referencing.Registry`` of the STAC and GeoJSON schemas bundled with pystac.

    Its retrieve function refuses every URI: a reference that is not held locally is an
    error here, never a download at run time.
    """
    from pystac.validation.local_validator import get_local_schema_cache
    from referencing import Registry, Resource

    def refuse(uri: str) -> Resource:
        raise LookupError(f"schema {uri} is not held locally and is never downloaded; "
                          "add it to the local schema registry")

    resources = [(uri, Resource.from_contents(schema)) for uri, schema in get_local_schema_cache().items()]
    return Registry(retrieve=refuse).with_resources(resources).crawl()


@functools.cache
def item_validator() -> Any:
    """The Draft 7 validator of the core STAC item schema, its references resolved locally."""
    from jsonschema import Draft7Validator
    from pystac.validation.local_validator import get_local_schema_cache
    from pystac.version import STACVersion

    uri = f"https://schemas.stacspec.org/v{STACVersion.DEFAULT_STAC_VERSION}/item-spec/json-schema/item.json"
    schema = get_local_schema_cache()[uri]
    return Draft7Validator(schema, registry=local_schema_registry(),
                           format_checker=Draft7Validator.FORMAT_CHECKER)


def validate_item(item: dict[str, Any]) -> None:
    """Validate a STAC Item (as a dict) against the core item schema, offline.

    :raises ValueError: listing the first errors, most relevant first.
    """
    from jsonschema.exceptions import relevance

    errors = sorted(item_validator().iter_errors(item), key=relevance)
    if not errors:
        return
    lines = list(dict.fromkeys(_describe(error) for error in errors))
    more = f" (and {len(lines) - _MAX_ERRORS} more)" if len(lines) > _MAX_ERRORS else ""
    lines = lines[:_MAX_ERRORS]
    raise ValueError(f"STAC item {item.get('id')!r} is invalid{more}:\n  " + "\n  ".join(lines))


def _describe(error: Any) -> str:
    def where(e: Any) -> str:
        return "/".join(str(p) for p in e.absolute_path) or "<item>"

    line = f"{where(error)}: {error.message[:160]}"
    # oneOf/anyOf say only "not valid under any of the given schemas": add why the branches failed.
    reasons = list(dict.fromkeys(f"{where(e)}: {e.message[:80]}" for e in error.context))
    if reasons:
        line += " [" + "; ".join(reasons[:4]) + ("; ..." if len(reasons) > 4 else "") + "]"
    return line


# -- harvest

def harvest(run: RunOutputs, *, aws_conn_id: str = "aws_default") -> HarvestResult:
    """Copy a run's outputs into the calling workspace and describe them in a STAC catalog.

    :param run: the finished run.
    :param aws_conn_id: the Airflow AWS connection (credentials and endpoint).
    :return: the catalog's URL and the ids of its items (none when the run had no outputs).
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return _Harvest(S3Hook(aws_conn_id=aws_conn_id).get_conn(), run).run()


def harvest_run(run: RunOutputs, *, aws_conn_id: str = "aws_default") -> HarvestResult:
    """:func:`harvest`, guarded so that a harvest that does not finish keeps the outputs.

    The run's harvest marker (:func:`hatchway.domain.wes.harvest_marker_key`) is written in
    the executing workspace's run area before anything else and removed only after the
    catalog is complete; :func:`clean_run_area` keeps the area while it is there. Running this
    again (a retry, a cleared task, a re-triggered run) writes the same Items and then lets the
    clean-up remove the area.

    :param run: the finished run.
    :param aws_conn_id: the Airflow AWS connection.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=aws_conn_id).get_conn()
    marker = harvest_marker_key(run.executing_workspace, run.run_id)
    client.put_object(Bucket=run.bucket, Key=marker, Body=b"harvest started; outputs kept until it finishes\n")
    result = _Harvest(client, run).run()
    client.delete_object(Bucket=run.bucket, Key=marker)
    return result


@dataclass(frozen=True)
class AreaCleanup:
    """What :func:`clean_run_area` did.

    :param removed: objects deleted from the run's area.
    :param kept_outputs: ``s3://`` URL of the outputs left in place because their harvest did
        not finish; None when the area was removed.
    """

    removed: int
    kept_outputs: str | None = None


def clean_run_area(bucket: str, executing: str, run_id: str, *, aws_conn_id: str = "aws_default") -> AreaCleanup:
    """Remove a run's area in the executing workspace (work dir and raw outputs), unless its
    harvest started and did not finish: then nothing is deleted and the outputs' URL returned.

    A run that never reached its harvest (the workflow failed, a cancel) has no marker, and
    its area is removed as before.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=aws_conn_id)
    marker = harvest_marker_key(executing, run_id)
    if hook.check_for_key(marker, bucket_name=bucket):
        return AreaCleanup(removed=0, kept_outputs=f"s3://{bucket}/{outputs_prefix(executing, run_id)}")
    keys = hook.list_keys(bucket_name=bucket, prefix=run_prefix(executing, run_id)) or []
    for start in range(0, len(keys), 1000):
        hook.delete_objects(bucket=bucket, keys=keys[start:start + 1000])
    return AreaCleanup(removed=len(keys))


class _Harvest:
    def __init__(self, client: Any, run: RunOutputs):
        self.client, self.run_ = client, run
        self.source = outputs_prefix(run.executing_workspace, run.run_id)
        self.target = catalog_prefix(run.calling_workspace, run.run_id)
        self.root_url = f"s3://{run.bucket}/{self.target}"
        self.io = S3StacIO(client, write_prefix=self.root_url)

    def _keys(self, prefix: str) -> list[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.run_.bucket, Prefix=prefix)
        return [obj for page in pages for obj in page.get("Contents", [])]

    def run(self) -> HarvestResult:
        run = self.run_
        outputs = sorted((o for o in self._keys(self.source) if not o["Key"].endswith("/")),
                         key=lambda o: o["Key"])
        items = [self._item(o["Key"][len(self.source):], o["Size"]) for o in outputs]
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise RuntimeError(f"outputs of run {run.run_id} map to the same item id: {sorted(ids)}")

        catalog = pystac.Catalog(
            id=f"processing-results-{run.run_id}",
            title=f"{run.workflow_name} {run.workflow_version}: run {run.run_id}",
            description=(f"Outputs of run {run.run_id} of workflow {run.workflow_name} "
                         f"{run.workflow_version}, executed in workspace {run.executing_workspace}."),
            catalog_type=pystac.CatalogType.SELF_CONTAINED,
        )
        catalog.add_items(items)
        catalog.normalize_hrefs(self.root_url)
        catalog.make_all_asset_hrefs_relative()
        for item in items:  # every item is checked before any is written
            validate_item(item.to_dict(include_self_link=False, transform_hrefs=True))
        catalog.save(pystac.CatalogType.SELF_CONTAINED, stac_io=self.io)
        self._prune()
        return HarvestResult(catalog_url=f"{self.root_url}{CATALOG_FILE}", item_ids=ids)

    def _item(self, relative_path: str, listed_size: int) -> pystac.Item:
        run = self.run_
        item_id = item_id_for(relative_path)
        filename = _filename(relative_path)
        key = f"{self.target}{item_id}/{filename}"
        _check_scope(run.bucket, key, run.bucket, self.target)
        # Managed copy: server side, multipart above the threshold, so no size limit.
        self.client.copy({"Bucket": run.bucket, "Key": self.source + relative_path}, run.bucket, key)
        self.io.written.add(key)
        body = self.client.get_object(Bucket=run.bucket, Key=key)["Body"]
        checksum, size = multihash_sha256(body.iter_chunks(CHUNK))
        if size != listed_size:
            raise RuntimeError(f"output {relative_path} changed while it was harvested "
                               f"({listed_size} bytes listed, {size} copied)")

        item = pystac.Item(
            id=item_id, geometry=None, bbox=None, datetime=run.finished_at,
            properties={
                f"{PROPERTY_PREFIX}run_id": run.run_id,
                f"{PROPERTY_PREFIX}workflow": run.workflow_name,
                f"{PROPERTY_PREFIX}workflow_version": run.workflow_version,
                f"{PROPERTY_PREFIX}calling_workspace": run.calling_workspace,
                f"{PROPERTY_PREFIX}executing_workspace": run.executing_workspace,
            },
        )
        asset = pystac.Asset(href=f"s3://{run.bucket}/{key}", title=relative_path,
                             media_type=media_type(filename), roles=["data"])
        item.add_asset(DATA_ASSET, asset)
        file_ext = FileExtension.ext(asset, add_if_missing=True)
        file_ext.checksum, file_ext.size = checksum, size
        return item

    def _prune(self) -> None:
        stale = sorted(o["Key"] for o in self._keys(self.target) if o["Key"] not in self.io.written)
        for key in stale:
            _check_scope(self.run_.bucket, key, self.run_.bucket, self.target)
        for start in range(0, len(stale), 1000):
            batch = [{"Key": key} for key in stale[start:start + 1000]]
            self.client.delete_objects(Bucket=self.run_.bucket, Delete={"Objects": batch, "Quiet": True})
