"""The reaper's checks: idle workspaces, orphaned resources, the job-queue quota."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from hatchway.domain.workspace import PlatformConfig, WorkspaceState, utcnow
from hatchway.workspace.clients import AwsClients
from hatchway.workspace.inventory import delete_resources, inventory, summary
from hatchway.workspace.provision import list_records

log = logging.getLogger(__name__)


def find_idle(clients: AwsClients, config: PlatformConfig, ttl_hours: int | None = None,
              now: datetime | None = None) -> list[str]:
    """Active workspaces whose last activity is older than the TTL."""
    ttl = (ttl_hours or config.idle_ttl_hours) * 3600
    now = now or utcnow()
    idle = [r.workspace for r in list_records(clients, config)
            if r.state is WorkspaceState.ACTIVE and r.idle_for(now) > ttl]
    log.info("%d idle workspace(s) past %d h: %s", len(idle), ttl // 3600, idle)
    return sorted(idle)


def sweep_orphans(clients: AwsClients, config: PlatformConfig, delete: bool) -> dict[str, Any]:
    """Resources tagged with a workspace that has no record; deleted when ``delete`` is set."""
    known = {r.workspace for r in list_records(clients, config)}
    orphans = [r for r in inventory(clients) if r.workspace not in known]
    for r in orphans:
        log.warning("orphan %s %s (workspace %s, owner %s)", r.kind, r.name, r.workspace, r.owner)
    deleted = delete_resources(clients, orphans) if delete and orphans else []
    return {"orphans": summary(orphans), "deleted": len(deleted)}


def queue_quota(clients: AwsClients, config: PlatformConfig) -> dict[str, Any]:
    count = sum(len(p["jobQueues"]) for p in clients.batch.get_paginator("describe_job_queues").paginate())
    report = {"job_queues": count, "limit": config.job_queue_limit, "queue_mode": config.queue_mode.value,
              "free": max(0, config.job_queue_limit - count)}
    log.info("Batch job queues: %(job_queues)d of %(limit)d (%(queue_mode)s mode)", report)
    return report
