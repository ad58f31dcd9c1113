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
workspace costs at most one listing (shared by the whole pass), and only a workspace that
still looks idle costs IAM and Batch calls (the shared queue is read once per pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import ClientError

from hatchway.domain.names import PlatformNames, WorkspaceNames
from hatchway.domain.workspace import TAG_WORKSPACE, PlatformConfig, QueueMode, WorkspaceRecord
from hatchway.workspace.clients import AwsClients, is_not_found

MARKERS = ".hatchway/activity/"
SUFFIX = ".touch"  # so that one workspace's key is never a prefix of another's
LIVE_JOBS = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
DESCRIBE_BATCH = 100  # the most job ids one DescribeJobs call takes


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


def shared_queue_activity(clients: AwsClients, config: PlatformConfig, since: datetime,
                          now: datetime) -> dict[str, datetime]:
    """Each workspace's latest job in the shared queue created since ``since`` (or live), attributed
    by the job's workspace tag or share identifier: one listing and DescribeJobs in hundreds for all."""
    summaries = _queue_jobs(clients, PlatformNames(config.prefix).shared_job_queue, since)
    ids = [j["jobId"] for j in summaries]
    latest: dict[str, datetime] = {}
    for i in range(0, len(ids), DESCRIBE_BATCH):
        for job in clients.batch.describe_jobs(jobs=ids[i:i + DESCRIBE_BATCH])["jobs"]:
            for key in filter(None, ((job.get("tags") or {}).get(TAG_WORKSPACE), job.get("shareIdentifier"))):
                at = _job_time(job, now)
                latest[key] = max(at, latest.get(key, at))
    return latest


class ActivityReader:
    """Reads the workspaces' last use for one reaper pass, sharing what serves them all.

    The run markers and the shared queue's jobs are read once per pass (lazily); IAM and a
    per-user queue are asked only for a workspace that still looks idle.

    :param now: the pass's time.
    :param ttl_seconds: idle past this; a sign of use younger than it ends the look.
    """

    def __init__(self, clients: AwsClients, config: PlatformConfig, now: datetime, ttl_seconds: float) -> None:
        self.clients, self.config, self.now, self.ttl = clients, config, now, ttl_seconds
        self._touches: dict[str, datetime] | None = None
        self._shared: dict[str, datetime] | None = None

    @property
    def since(self) -> datetime:
        return self.now - timedelta(seconds=self.ttl)

    def touches(self) -> dict[str, datetime]:
        if self._touches is None:
            self._touches = touched(self.clients, self.config)
        return self._touches

    def batch_last_used(self, names: WorkspaceNames) -> datetime | None:
        """The workspace's latest Batch job: its own queue's, or its jobs in the shared queue."""
        if self.config.queue_mode is QueueMode.PER_USER:
            jobs = _queue_jobs(self.clients, names.job_queue, self.since)
            return max((_job_time(j, self.now) for j in jobs), default=None)
        if self._shared is None:
            self._shared = shared_queue_activity(self.clients, self.config, self.since, self.now)
        found = [self._shared.get(k) for k in (names.workspace, names.share_identifier)]
        return max((f for f in found if f is not None), default=None)

    def last_activity(self, record: WorkspaceRecord) -> Activity:
        """The workspace's latest sign of use; stops looking at the first one younger than the TTL."""
        names = WorkspaceNames(self.config.prefix, record.workspace)
        latest = Activity(record.workspace, record.last_active_at, "provision")
        looks = (
            ("run", lambda: self.touches().get(record.workspace)),
            ("access key", lambda: key_last_used(self.clients, names)),
            ("batch job", lambda: self.batch_last_used(names)),
        )
        for source, look in looks:
            if latest.idle_for(self.now) <= self.ttl:
                break
            at = look()
            if at is not None and at > latest.at:
                latest = Activity(record.workspace, at, source)
        return latest
