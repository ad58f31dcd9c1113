"""Measure a finished run's usage (engine figures, bytes stored) and record it in the store.

Called by each lifecycle's ``record_usage`` teardown, on success, failure and cancel, before
the run's area is removed. Recording is keyed by the Airflow run: a retry replaces the row.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hatchway.domain.notify import Notice
from hatchway.domain.wave import parse_time
from hatchway.domain.usage import (Budget, PriceTable, Usage, budget_refusal, crossed, month_start, price,
                                   seqera_engine_cost, seqera_tasks)


def area_bytes(s3_client: Any, bucket: str, prefix: str, *, split: str | None = None) -> tuple[int, int]:
    """Bytes stored under ``prefix`` (every page of the listing), and of those under ``split``."""
    total = under = 0
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            total += obj["Size"]
            if split and obj["Key"].startswith(split):
                under += obj["Size"]
    return total, under


def seqera_run_usage(hook: Any, run_name: str, table: PriceTable, *, workspace_id: int | None = None,
                     work_bytes: int = 0, results_bytes: int = 0, workflow_id: str | None = None,
                     now: datetime | None = None) -> tuple[Usage, dict[str, Any]]:
    """The usage of the Seqera run (``workflow_id`` when the launch said it, else found by
    ``run_name``; none launched: nothing used, state ``NOT_LAUNCHED``), and what is known of it:
    ``state``, ``started_at``, ``ended_at`` and ``workflow`` (the engine's facts a crate names:
    ``commit``, ``engine_version``, ``start``, ``complete``, ``status``, ``error``)."""
    now = now or datetime.now(timezone.utc)
    if not workflow_id:
        workflow_id = (hook.find_workflow(run_name, workspace_id=workspace_id) or {}).get("id")
    if not workflow_id:
        usage = price("nextflow", [], table, wall_seconds=0, work_bytes=work_bytes, results_bytes=results_bytes)
        return usage, {"state": "NOT_LAUNCHED", "started_at": None, "ended_at": now, "engine_run_id": None,
                       "workflow": {}}
    described = hook.get_workflow(workflow_id, workspace_id=workspace_id)  # with its progress load
    workflow = described.get("workflow") or {}
    tasks = seqera_tasks(hook.list_tasks(workflow_id, workspace_id=workspace_id))
    started, ended = parse_time(workflow.get("start")), parse_time(workflow.get("complete"))
    wall = ((ended or now) - started).total_seconds() if started else 0.0
    usage = price("nextflow", tasks, table, wall_seconds=wall, work_bytes=work_bytes, results_bytes=results_bytes,
                  engine_cost=seqera_engine_cost(described.get("progress")))
    facts = {"commit": workflow.get("commitId"), "status": workflow.get("status"),
             "engine_version": (workflow.get("nextflow") or {}).get("version") or workflow.get("nextflowVersion"),
             "start": workflow.get("start"), "complete": workflow.get("complete"),
             "error": workflow.get("errorMessage")}
    return usage, {"state": workflow.get("status") or "UNKNOWN", "started_at": started, "ended_at": ended or now,
                   "engine_run_id": workflow_id, "workflow": facts}


def cromwell_run_usage(metadata: dict[str, Any] | None, table: PriceTable, *, work_bytes: int = 0,
                       results_bytes: int = 0, now: datetime | None = None) -> tuple[Usage, dict[str, Any]]:
    """The usage of a Cromwell workflow from its metadata (sub-workflows expanded; None: none
    submitted, nothing used, state ``NOT_SUBMITTED``), and what is known of it: ``state``,
    ``started_at``, ``ended_at`` and ``workflow`` (the facts a crate names: ``name``, ``status``,
    ``start``, ``end``, ``error``, the first failure's message)."""
    from hatchway.domain.usage import cromwell_tasks

    now = now or datetime.now(timezone.utc)
    if metadata is None:
        usage = price("wdl", [], table, wall_seconds=0, work_bytes=work_bytes, results_bytes=results_bytes)
        return usage, {"state": "NOT_SUBMITTED", "started_at": None, "ended_at": now, "engine_run_id": None,
                       "workflow": {}}
    started, ended = parse_time(metadata.get("start")), parse_time(metadata.get("end"))
    wall = ((ended or now) - started).total_seconds() if started else 0.0
    usage = price("wdl", cromwell_tasks(metadata), table, wall_seconds=wall, work_bytes=work_bytes,
                  results_bytes=results_bytes)
    failures = metadata.get("failures") or []
    facts = {"name": metadata.get("workflowName"), "status": metadata.get("status"), "start": metadata.get("start"),
             "end": metadata.get("end"), "error": failures[0].get("message") if failures else None}
    return usage, {"state": metadata.get("status") or "Unknown", "started_at": started, "ended_at": ended or now,
                   "engine_run_id": metadata.get("id"), "workflow": facts}


def month_refusal(store: Any, workspace: str, budget: Budget | None, currency: str,
                  now: datetime | None = None) -> str | None:
    """Why a new run of ``workspace`` is refused now: its month's estimated cost in ``store``
    has reached ``budget`` (None: it may start; no budget: nothing to check)."""
    if budget is None:
        return None
    now = now or datetime.now(timezone.utc)
    return budget_refusal(workspace, store.spent(workspace, month_start(now)), budget, currency, now)


def record_run_usage(usage: Usage, seen: dict[str, Any], *, dag_id: str, dag_run_id: str, run_id: str,
                     executing: str, calling: str | None, cost_center: str | None,
                     budget: Budget | None = None) -> Notice | None:
    """Write the run's usage to Hatchway's store (``$HATCHWAY_DB_URL``), replacing an earlier
    recording of the same Airflow run. Migrates first: a worker may record before the door
    has ever started (a no-op once the schema is current).

    With a ``budget``: the first recording of a run that takes the workspace's month past the
    soft limit or the budget returns a ``budget`` notice (a retry's recording returns none).
    """
    from hatchway.store import Store, UsageRecord

    with Store.migrated_from_env() as store:
        earlier = store.get_usage(dag_id, dag_run_id)
        record = store.record_usage(UsageRecord(
            dag_id=dag_id, dag_run_id=dag_run_id, run_id=run_id, executing_workspace=executing,
            calling_workspace=calling, cost_center=cost_center, state=seen["state"], started_at=seen["started_at"],
            ended_at=seen["ended_at"], usage=usage))
        if budget is None or earlier is not None:
            return None
        start = month_start(record.ended_at)
        after = store.spent(executing, start)
    line = crossed(after - usage.estimated_cost, after, budget)
    if line is None:
        return None
    return Notice(kind="budget", workspace=executing, run_id=f"{start:%Y-%m}",
                  state="BUDGET_SPENT" if line == "budget" else "SOFT_LIMIT", ok=False,
                  details={"spent": round(after, 2), "budget": budget.amount, "soft_limit": budget.soft_limit,
                           "currency": usage.currency, "last_run": run_id})


def usage_line(run_id: str, usage: Usage, state: str) -> str:
    return (f"run {run_id} ({state}): {usage.cpu_hours:.2f} CPU-hours, {usage.memory_gib_hours:.2f} GiB-hours, "
            f"{usage.task_count} tasks, estimated {usage.estimated_cost:.4f} {usage.currency}")
