"""cromwell_server_teardown: stop a workspace's Cromwell server, or purge it."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from hatchway.dag_defaults import DEFAULT_ARGS, workspace_param
from hatchway.operators.cromwell_server import CromwellServerOperator
from hatchway.operators.workspace import hold_workspace_lock

with DAG(
    dag_id="cromwell_server_teardown",
    schedule=None,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "cromwell", "workspace", "aws"],
    render_template_as_native_obj=True,
    params={
        "workspace": workspace_param(),
        "purge": Param(False, type="boolean", title="Purge",
                       description="also delete the database, its credentials and the task definitions"),
    },
    doc_md="""
### Tear down a workspace's Cromwell server
Scales the service to 0 and deletes it; the database and its credentials stay. With
`purge=true`, the task definitions are deregistered, the RDS instance deleted (with a final
snapshot unless `server.skip_final_snapshot`), the secret deleted without recovery, and the
deployment's cluster too once no other server is left in it.
""",
) as dag:
    args = {"workspace": "{{ params.workspace }}", "purge": "{{ params.purge }}"}
    # Two paths; each skips itself unless `purge` selects it.
    CromwellServerOperator(task_id="stop_server", step="stop", **args)
    CromwellServerOperator(task_id="purge_server", step="purge", **args)
    hold_workspace_lock(dag, "{{ params.workspace }}")
