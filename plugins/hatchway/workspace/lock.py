"""One lifecycle run of a workspace at a time: a lease lock in the platform bucket.

Two provisions of one workspace racing through the ensures would both find nothing and
both create (two VPCs, two Squid instances). The lock is one object,
``.hatchway/locks/<workspace>.json``, created with an S3 conditional write
(``If-None-Match: *``): of any number of workers, exactly one create succeeds. The object
names its holder (``dag_id/run_id``) and an expiry; a lock past its expiry belonged to a run
that crashed and is taken over with ``If-Match`` on its ETag, so two takers cannot both win.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from hatchway.domain.names import WorkspaceNames
from hatchway.domain.workspace import PlatformConfig, utcnow
from hatchway.workspace.clients import AwsClients, error_code, is_not_found

# 412: the condition failed; 409: a concurrent conditional write to the same key won.
LOST = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass(frozen=True)
class Held:
    holder: str
    expires_at: datetime
    etag: str

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class WorkspaceLock:
    """The lease lock of one workspace.

    :param clients: AWS clients.
    :param config: the deployment's configuration (bucket, lease).
    :param workspace: the workspace name.
    """

    #: seconds between a won write and its read-back (see :meth:`_verified`)
    settle_seconds = 0.2

    def __init__(self, clients: AwsClients, config: PlatformConfig, workspace: str):
        self.s3 = clients.s3
        self.bucket = config.bucket
        self.lease = timedelta(seconds=config.lock_lease_seconds)
        self.key = WorkspaceNames(config.prefix, workspace).lock_key

    def current(self) -> Held | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        body = json.loads(obj["Body"].read())
        return Held(body["holder"], datetime.fromisoformat(body["expires_at"]), obj["ETag"])

    def acquire(self, holder: str) -> dict[str, Any]:
        """Take the lock for ``holder`` if it is free, expired or already theirs (a retried task).

        Returns ``{"acquired": bool, "holder": <who holds it now>}``; never waits.
        """
        now = utcnow()
        try:
            won = self._put(holder, now, IfNoneMatch="*")
        except ClientError as exc:
            if error_code(exc) != "NoSuchBucket":
                raise
            # No platform bucket, nothing to guard: no step can make anything, and the
            # run's first step (plan) fails saying to run platform_bootstrap.
            return {"acquired": True, "holder": holder, "bucket_missing": True}
        if won:
            return self._verified(holder)
        held = self.current()
        if held is None:  # released between our write and our read: try once more
            return self._verified(holder) if self._put(holder, now, IfNoneMatch="*") else self._busy()
        if held.holder == holder:
            return {"acquired": True, "holder": holder}
        if held.expired(now) and self._put(holder, now, IfMatch=held.etag):
            return self._verified(holder)
        return {"acquired": False, "holder": held.holder}

    def release(self, holder: str) -> bool:
        """Delete the lock if ``holder`` holds it; someone else's lock is left alone."""
        held = self.current()
        if held is None or held.holder != holder:
            return False
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=held.etag)
        except ClientError as exc:
            if error_code(exc) in LOST or is_not_found(exc):
                return False  # taken over after our lease ran out: no longer ours to delete
            raise
        return True

    def _put(self, holder: str, now: datetime, **condition: str) -> bool:
        # A nonce keeps ETags distinct, so If-Match can tell one holder's write from another's.
        body = json.dumps({"holder": holder, "acquired_at": now.isoformat(),
                           "expires_at": (now + self.lease).isoformat(), "nonce": uuid.uuid4().hex})
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body.encode(),
                               ContentType="application/json", **condition)
        except ClientError as exc:
            if error_code(exc) in LOST:
                return False
            raise
        return True

    def _verified(self, holder: str) -> dict[str, Any]:
        # S3 decides conditional writes atomically. The local emulator checks, then writes,
        # so two near-simultaneous creates can both succeed there, the later one landing
        # milliseconds after; reading back after a short pause lets only that one win.
        time.sleep(self.settle_seconds)
        held = self.current()
        if held is not None and held.holder == holder:
            return {"acquired": True, "holder": holder}
        return {"acquired": False, "holder": held.holder if held else None}

    def _busy(self) -> dict[str, Any]:
        held = self.current()
        return {"acquired": False, "holder": held.holder if held else None}
