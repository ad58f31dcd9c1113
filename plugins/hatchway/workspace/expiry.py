"""Data expiry of torn-down workspaces: one marker object each, swept by the reaper.

S3 keeps one lifecycle configuration per bucket, replaced whole on every put and capped at
1,000 rules: one rule per workspace would be a read-modify-write that concurrent teardowns
lose, for at most 1,000 workspaces. Instead a teardown writes ``.hatchway/expiry/<ws>.json``
(its own object: a put, never a merge), a re-provision deletes it, and the hourly reaper
deletes the data of every marker whose time has passed, inside the workspace's lifecycle
lock so a re-provision in flight cannot lose its data to a sweep that read the marker first.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from hatchway.domain.workspace import PlatformConfig, utcnow
from hatchway.workspace.clients import AwsClients, is_not_found

log = logging.getLogger(__name__)

MARKERS = ".hatchway/expiry/"
DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def marker_key(workspace: str) -> str:
    return f"{MARKERS}{workspace}.json"


@dataclass(frozen=True)
class Expiry:
    workspace: str
    prefix: str
    expires_at: datetime


def mark(clients: AwsClients, config: PlatformConfig, workspace: str, prefix: str, expires_at: datetime) -> None:
    """Record that ``prefix`` is to be deleted at ``expires_at`` (replaces an earlier marker)."""
    body = {"workspace": workspace, "prefix": prefix, "expires_at": expires_at.isoformat()}
    clients.s3.put_object(Bucket=config.bucket, Key=marker_key(workspace), Body=json.dumps(body).encode(),
                          ContentType="application/json")


def read(clients: AwsClients, config: PlatformConfig, workspace: str) -> Expiry | None:
    try:
        body = clients.s3.get_object(Bucket=config.bucket, Key=marker_key(workspace))["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    raw = json.loads(body)
    return Expiry(raw["workspace"], raw["prefix"], datetime.fromisoformat(raw["expires_at"]))


def clear(clients: AwsClients, config: PlatformConfig, workspace: str) -> bool:
    """Lift the workspace's expiry; returns whether there was one.

    Looked up first so that a provision of a live workspace makes no mutating call.
    """
    key = marker_key(workspace)
    try:
        clients.s3.head_object(Bucket=config.bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    clients.s3.delete_object(Bucket=config.bucket, Key=key)
    return True


def pending(clients: AwsClients, config: PlatformConfig) -> list[Expiry]:
    """Every expiry recorded in the bucket, soonest first."""
    found = []
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=config.bucket, Prefix=MARKERS):
        for obj in page.get("Contents", []):
            workspace = obj["Key"][len(MARKERS):].removesuffix(".json")
            expiry = read(clients, config, workspace)
            if expiry is not None:
                found.append(expiry)
    return sorted(found, key=lambda e: (e.expires_at, e.workspace))


def versioned(clients: AwsClients, bucket: str) -> bool:
    """Whether the bucket keeps versions (now or once did: suspended buckets keep old ones)."""
    return clients.s3.get_bucket_versioning(Bucket=bucket).get("Status") in ("Enabled", "Suspended")


def delete_prefix(clients: AwsClients, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix`` (every version and delete marker too if the
    bucket is versioned, in batches of 1,000) and abort its unfinished uploads.

    Returns how many objects (or versions) were deleted.
    """
    s3, deleted = clients.s3, 0
    # Unfinished multipart uploads hold storage but are no objects: they go first.
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    with_versions = versioned(clients, bucket)
    # Each round lists from the start of the prefix and deletes what it got: a listing
    # continued past keys (or versions) it already deleted can lose its place.
    while batch := _first_keys(s3, bucket, prefix, with_versions):
        deleted += _delete(s3, bucket, batch)
    return deleted


def _first_keys(s3: Any, bucket: str, prefix: str, with_versions: bool) -> list[dict[str, str]]:
    if not with_versions:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=DELETE_BATCH)
        return [{"Key": o["Key"]} for o in listed.get("Contents", [])]
    listed = s3.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=DELETE_BATCH)
    return [{"Key": o["Key"], "VersionId": o["VersionId"]}
            for o in listed.get("Versions", []) + listed.get("DeleteMarkers", [])][:DELETE_BATCH]


def _delete(s3: Any, bucket: str, batch: list[dict[str, str]]) -> int:
    errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
    if errors:
        raise RuntimeError(f"S3 refused to delete {len(errors)} object(s), e.g. {errors[0]}")
    return len(batch)


def sweep(clients: AwsClients, config: PlatformConfig, holder: str, now: datetime | None = None) -> dict[str, Any]:
    """Delete the data of every workspace whose expiry has passed; report what was done.

    Each deletion runs inside the workspace's lifecycle lock and re-reads the marker there:
    a provision holding the lock is skipped (the next sweep sees its marker gone), and one
    that lifted the expiry before the lock was taken is noticed.

    :param holder: who takes the locks (the reaper's DAG run).
    :param now: the time to compare expiries with (default: now).
    """
    from hatchway.workspace.lock import WorkspaceLock

    now = now or utcnow()
    expired, busy, waiting = [], [], []
    for expiry in pending(clients, config):
        if expiry.expires_at > now:
            waiting.append({"workspace": expiry.workspace, "expires_at": expiry.expires_at.isoformat()})
            continue
        lock = WorkspaceLock(clients, config, expiry.workspace)
        taken = lock.acquire(holder)
        if not taken["acquired"]:
            busy.append({"workspace": expiry.workspace, "holder": taken["holder"]})
            continue
        try:
            current = read(clients, config, expiry.workspace)
            if current is None or current.expires_at > now:
                continue  # re-provisioned (or torn down again) since the listing
            deleted = delete_prefix(clients, config.bucket, current.prefix)
            clients.s3.delete_object(Bucket=config.bucket, Key=marker_key(expiry.workspace))
        finally:
            lock.release(holder)
        log.info("expired workspace %s: deleted %d object(s) under %s", expiry.workspace, deleted, current.prefix)
        expired.append({"workspace": expiry.workspace, "prefix": current.prefix, "deleted_objects": deleted})
    return {"expired": expired, "busy": busy, "pending": waiting}
