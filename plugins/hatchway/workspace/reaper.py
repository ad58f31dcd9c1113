"""The reaper's checks: idle workspaces, expired data, orphaned resources, the job-queue quota."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from hatchway import metrics
from hatchway.domain.workspace import PlatformConfig, WorkspaceState, utcnow
from hatchway.workspace import activity, expiry
from hatchway.workspace.clients import AwsClients
from hatchway.workspace.inventory import delete_resources, inventory, summary
from hatchway.workspace.provision import list_records

log = logging.getLogger(__name__)


def find_idle(clients: AwsClients, config: PlatformConfig, ttl_hours: int | None = None,
              now: datetime | None = None) -> list[str]:
    """Active workspaces whose last activity (:mod:`hatchway.workspace.activity`) is older than the TTL.

    Activity is use, not age: a run in the workspace, a Batch job in its queue or share, the
    last use of its access key. Only a workspace with none of them within the TTL is idle.
    """
    ttl = (ttl_hours or config.idle_ttl_hours) * 3600
    now = now or utcnow()
    reader = activity.ActivityReader(clients, config, now, ttl)
    idle = []
    for record in list_records(clients, config):
        if record.state is not WorkspaceState.ACTIVE:
            continue
        last = reader.last_activity(record)
        if last.idle_for(now) > ttl:
            idle.append(record.workspace)
            log.info("workspace %s idle since %s (last %s)", record.workspace, last.at.isoformat(), last.source)
        elif last.source != "provision":
            log.info("workspace %s in use: last %s at %s", record.workspace, last.source, last.at.isoformat())
    log.info("%d idle workspace(s) past %d h: %s", len(idle), ttl // 3600, idle)
    metrics.incr("reaper.idle_workspaces", len(idle))
    return sorted(idle)


def sweep_expired(clients: AwsClients, config: PlatformConfig, holder: str) -> dict[str, Any]:
    """Delete the data of torn-down workspaces whose expiry has passed (see :mod:`hatchway.workspace.expiry`)."""
    report = expiry.sweep(clients, config, holder)
    metrics.incr("reaper.expired_workspaces", len(report["expired"]))
    return report


def sweep_orphans(clients: AwsClients, config: PlatformConfig, delete: bool,
                  now: datetime | None = None) -> dict[str, Any]:
    """This deployment's resources tagged with a workspace that has no record; deleted when ``delete``.

    A provision makes its resources before it writes the record, so a workspace is never
    orphaned while a lifecycle run holds its lock, nor while any of its resources is younger
    than ``orphan_grace_hours`` (where AWS tells a creation time): those are reported as
    ``in_flight`` and left alone.
    """
    from hatchway.workspace.lock import WorkspaceLock

    now = now or utcnow()
    grace = config.orphan_grace_hours * 3600
    known = {r.workspace for r in list_records(clients, config)}
    candidates = [r for r in inventory(clients, platform=config.prefix) if r.workspace not in known]
    in_flight = set()
    for workspace in sorted({r.workspace for r in candidates}):
        held = WorkspaceLock(clients, config, workspace).current()
        young = any((age := r.age_seconds(now)) is not None and age < grace
                    for r in candidates if r.workspace == workspace)
        if young or (held and not held.expired(now)):
            in_flight.add(workspace)
    orphans = [r for r in candidates if r.workspace not in in_flight]
    for r in orphans:
        log.warning("orphan %s %s (workspace %s, owner %s)", r.kind, r.name, r.workspace, r.owner)
    if in_flight:
        log.info("not orphans yet (a lifecycle run holds the lock, or younger than %s h): %s",
                 config.orphan_grace_hours, sorted(in_flight))
    deleted = delete_resources(clients, orphans) if delete and orphans else []
    metrics.incr("reaper.orphans_deleted", len(deleted))
    return {"orphans": summary(orphans), "deleted": len(deleted), "in_flight": sorted(in_flight)}


def queue_quota(clients: AwsClients, config: PlatformConfig) -> dict[str, Any]:
    count = sum(len(p["jobQueues"]) for p in clients.batch.get_paginator("describe_job_queues").paginate())
    report = {"job_queues": count, "limit": config.job_queue_limit, "queue_mode": config.queue_mode.value,
              "free": max(0, config.job_queue_limit - count)}
    log.info("Batch job queues: %(job_queues)d of %(limit)d (%(queue_mode)s mode)", report)
    return report
