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

from hatchway import s3
from hatchway.domain.workspace import PlatformConfig, utcnow
from hatchway.workspace.clients import AwsClients, is_not_found

log = logging.getLogger(__name__)

MARKERS = ".hatchway/expiry/"


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
            deleted = s3.empty(clients.s3, config.bucket, current.prefix)
            clients.s3.delete_object(Bucket=config.bucket, Key=marker_key(expiry.workspace))
        finally:
            lock.release(holder)
        log.info("expired workspace %s: deleted %d object(s) under %s", expiry.workspace, deleted, current.prefix)
        expired.append({"workspace": expiry.workspace, "prefix": current.prefix, "deleted_objects": deleted})
    return {"expired": expired, "busy": busy, "pending": waiting}
