"""When a workspace was last used: what the reaper calls idle.

A workspace's record says when it was provisioned; use leaves other traces, and the latest
of them is its last activity:

- **runs**: a lifecycle that runs work in the workspace (``wes_run`` at launch and at its
  end) touches ``.hatchway/activity/<workspace>.touch``; the object's ``LastModified`` is the time,
  so one listing reads every workspace's;
- **Batch jobs** in the workspace's own queue, or tagged with it (or its share) in the
  shared queue: a live job means now, a finished one its stop time;
- **the access key**: IAM's last use of any of the workspace user's keys.

The cheap signals are read first and the first recent one ends the look, so an active
workspace costs one listing, and only a workspace that looks idle costs IAM and Batch calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import ClientError

from hatchway.domain.names import PlatformNames, WorkspaceNames
from hatchway.domain.workspace import TAG_WORKSPACE, PlatformConfig, QueueMode, WorkspaceRecord
from hatchway.workspace.clients import AwsClients, is_not_found

log = logging.getLogger(__name__)

MARKERS = ".hatchway/activity/"
LIVE_JOBS = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
DESCRIBE_BATCH = 100  # the most job ids one DescribeJobs call takes


SUFFIX = ".touch"  # so that one workspace's key is never a prefix of another's


def marker_key(workspace: str) -> str:
    return f"{MARKERS}{workspace}{SUFFIX}"


@dataclass(frozen=True)
class Activity:
    """A workspace's latest sign of use, and which signal it came from."""

    workspace: str
    at: datetime
    source: str

    def idle_for(self, now: datetime) -> float:
        return (now - self.at).total_seconds()


def touch(clients: AwsClients, config: PlatformConfig, workspace: str, by: str) -> None:
    """Record that ``workspace`` is in use now (a put of its own object: concurrent touches never conflict).

    :param by: what used it (e.g. ``wes_run <run id>``), kept as the object's body for whoever looks.
    """
    clients.s3.put_object(Bucket=config.bucket, Key=marker_key(workspace), Body=by.encode()[:1024],
                          ContentType="text/plain")


def touched(clients: AwsClients, config: PlatformConfig) -> dict[str, datetime]:
    """Every workspace's last touch, from one listing (paged past 1,000 workspaces)."""
    found: dict[str, datetime] = {}
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=config.bucket, Prefix=MARKERS):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(MARKERS):].removesuffix(SUFFIX)] = obj["LastModified"]
    return found


def key_last_used(clients: AwsClients, names: WorkspaceNames) -> datetime | None:
    """The latest use IAM records of any access key of the workspace's user (None: never, or no user)."""
    try:
        keys = clients.iam.list_access_keys(UserName=names.user)["AccessKeyMetadata"]
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    used = [clients.iam.get_access_key_last_used(AccessKeyId=k["AccessKeyId"])["AccessKeyLastUsed"].get("LastUsedDate")
            for k in keys]
    return max((u for u in used if u is not None), default=None)


def _job_time(job: dict[str, Any], now: datetime) -> datetime:
    if job.get("status") in LIVE_JOBS:
        return now
    last = max(job.get(k) or 0 for k in ("createdAt", "startedAt", "stoppedAt"))
    return datetime.fromtimestamp(last / 1000, tz=timezone.utc)


def _queue_jobs(clients: AwsClients, queue: str, since: datetime) -> list[dict[str, Any]]:
    """The queue's jobs created since ``since`` (every status, one filtered listing) and its live ones."""
    batch, jobs = clients.batch, {}
    after = [{"name": "AFTER_CREATED_AT", "values": [str(int(since.timestamp() * 1000))]}]
    listings = [{"filters": after}] + [{"jobStatus": s} for s in ("RUNNING", "RUNNABLE")]
    try:
        for args in listings:
            for page in batch.get_paginator("list_jobs").paginate(jobQueue=queue, **args):
                jobs.update({j["jobId"]: j for j in page["jobSummaryList"]})
    except ClientError as exc:
        if "does not exist" in str(exc):
            return []
        raise
    return list(jobs.values())


def batch_last_used(clients: AwsClients, config: PlatformConfig, names: WorkspaceNames, since: datetime,
                    now: datetime) -> datetime | None:
    """The latest Batch job of the workspace created since ``since`` (or live): its own queue's,
    or in shared mode the shared queue's jobs tagged with it or carrying its share identifier."""
    if config.queue_mode is QueueMode.PER_USER:
        jobs = _queue_jobs(clients, names.job_queue, since)
    else:
        summaries = _queue_jobs(clients, PlatformNames(config.prefix).shared_job_queue, since)
        ids = [j["jobId"] for j in summaries]
        jobs = []
        for i in range(0, len(ids), DESCRIBE_BATCH):
            for job in clients.batch.describe_jobs(jobs=ids[i:i + DESCRIBE_BATCH])["jobs"]:
                if (job.get("tags") or {}).get(TAG_WORKSPACE) == names.workspace \
                        or job.get("shareIdentifier") == names.share_identifier:
                    jobs.append(job)
    return max((_job_time(j, now) for j in jobs), default=None)


def last_activity(clients: AwsClients, config: PlatformConfig, record: WorkspaceRecord, now: datetime,
                  ttl_seconds: float, touches: dict[str, datetime] | None = None) -> Activity:
    """The workspace's latest sign of use; stops looking at the first one younger than the TTL."""
    names = WorkspaceNames(config.prefix, record.workspace)
    latest = Activity(record.workspace, record.last_active_at, "provision")
    touches = touched(clients, config) if touches is None else touches
    looks = (
        ("run", lambda: touches.get(record.workspace)),
        ("access key", lambda: key_last_used(clients, names)),
        ("batch job", lambda: batch_last_used(clients, config, names, now - timedelta(seconds=ttl_seconds), now)),
    )
    for source, look in looks:
        if latest.idle_for(now) <= ttl_seconds:
            break
        at = look()
        if at is not None and at > latest.at:
            latest = Activity(record.workspace, at, source)
    return latest
