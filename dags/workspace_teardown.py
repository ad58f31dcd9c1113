"""workspace_teardown: revoke access and stop compute; keep data with an expiry, or purge all."""

from __future__ import annotations

from airflow.sdk import DAG, Param, chain

from hatchway.dag_defaults import DEFAULT_ARGS, workspace_param
from hatchway.operators.workspace import TeardownStepOperator, hold_workspace_lock

with DAG(
    dag_id="workspace_teardown",
    schedule=None,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "workspace", "aws"],
    render_template_as_native_obj=True,
    params={
        "workspace": workspace_param(),
        "purge": Param(False, type="boolean", title="Purge",
                       description="delete every resource of the workspace, data included"),
    },
    doc_md="""
### Tear down a workspace
Deletes every access key of the user (and the stored copy), stops the Squid proxy and
disables the job queue. Without `purge`, the data stays and is marked to expire after
`expiry_days` (`workspace_reaper` deletes it then; a re-provision lifts the expiry). With `purge=true`, every resource tagged
for the workspace is deleted in dependency order, data and record included.
""",
) as dag:
    args = {"workspace": "{{ params.workspace }}", "purge": "{{ params.purge }}"}
    stop = TeardownStepOperator(task_id="stop_compute", step="stop_compute", **args)
    chain(TeardownStepOperator(task_id="revoke_access", step="revoke_access", **args), stop)
    # Two paths after the stop; each step skips itself unless `purge` selects its path.
    chain(stop, TeardownStepOperator(task_id="expire_data", step="expire_data", **args))
    chain(
        stop,
        TeardownStepOperator(task_id="purge_resources", step="purge_resources", **args),
        TeardownStepOperator(task_id="purge_data", step="purge_data", **args),
    )
    # Last: one lifecycle run of a workspace at a time, around every task above.
    hold_workspace_lock(dag, "{{ params.workspace }}")
