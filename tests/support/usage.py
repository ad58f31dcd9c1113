"""What an earlier run spent, as its ``record_usage`` teardown would have recorded it: for the
budget tests of the doors and the lifecycles."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def spend(store: Any, workspace: str, run_id: str, cost: float, ended: datetime, *, dag_id: str = "wes_run",
          engine: str = "nextflow", state: str = "SUCCEEDED", currency: str = "USD") -> None:
    """Record a finished run of ``workspace`` that cost ``cost`` (its other figures are nominal)."""
    from hatchway.domain.usage import Usage
    from hatchway.store import UsageRecord

    store.record_usage(UsageRecord(
        dag_id=dag_id, dag_run_id=f"{dag_id}__{run_id}", run_id=run_id, executing_workspace=workspace, state=state,
        ended_at=ended, usage=Usage(engine=engine, cpu_hours=1, memory_gib_hours=1, wall_seconds=60, task_count=1,
                                    failed_tasks=0, estimated_cost=cost, currency=currency)))
