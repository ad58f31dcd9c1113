"""workspace_reaper: tear down idle workspaces, delete expired data, report (and remove) orphans, watch the queue quota."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param

from hatchway.dag_defaults import DEFAULT_ARGS
from hatchway.operators.workspace import ReaperOperator

with DAG(
    dag_id="workspace_reaper",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "workspace", "aws"],
    render_template_as_native_obj=True,
    params={
        "idle_ttl_hours": Param(None, type=["null", "integer"], minimum=1, title="Idle TTL (hours)",
                                description="override the configured idle_ttl_hours"),
        "delete_orphans": Param(False, type="boolean", title="Delete orphans",
                                description="delete resources tagged for a workspace Hatchway does not know"),
    },
    doc_md="""
### Reap workspaces
Hourly: workspaces idle past the TTL are handed to `workspace_teardown` (data kept);
the data of torn-down workspaces past their expiry is deleted (`sweep_expired`);
resources tagged `hatchway:workspace` for no known workspace are listed in the
`sweep_orphans` XCom and log, and deleted when `delete_orphans` is set; the Batch
job-queue count is reported against the account limit.
""",
) as dag:
    idle = ReaperOperator(task_id="find_idle", action="find_idle", idle_ttl_hours="{{ params.idle_ttl_hours }}")
    TriggerDagRunOperator.partial(
        task_id="teardown_idle", trigger_dag_id="workspace_teardown",
        trigger_run_id="reaper__{{ run_id }}__{{ ti.map_index }}",
    ).expand(conf=idle.output)
    ReaperOperator(task_id="sweep_expired", action="sweep_expired")
    ReaperOperator(task_id="sweep_orphans", action="sweep_orphans", delete_orphans="{{ params.delete_orphans }}")
    ReaperOperator(task_id="queue_quota", action="queue_quota")
