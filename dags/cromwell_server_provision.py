"""cromwell_server_provision: a Cromwell server of the workspace's own (ECS, RDS, Secrets Manager)."""

from __future__ import annotations

from airflow.sdk import DAG, chain

from hatchway.dag_defaults import DEFAULT_ARGS, workspace_param
from hatchway.operators.cromwell_server import CromwellServerOperator
from hatchway.operators.workspace import hold_workspace_lock

with DAG(
    dag_id="cromwell_server_provision",
    schedule=None,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "cromwell", "workspace", "aws"],
    render_template_as_native_obj=True,
    params={"workspace": workspace_param()},
    doc_md="""
### Provision a workspace's Cromwell server
For `mode: per_workspace` in `hatchway_cromwell_config`: ensures the database credentials
(Secrets Manager), a MySQL database (an RDS instance of its own, or a database on
`server.shared_db_instance`), the deployment's ECS cluster, a task definition whose
Cromwell configuration submits to the workspace's Batch queue with its job role under
`s3://<bucket>/<workspace>/cromwell-execution`, and a Fargate service of one task. The
record maps the workspace to the server's endpoint. The workspace must be provisioned.
Every step is an ensure: run it again and nothing changes.
""",
) as dag:
    ws = {"workspace": "{{ params.workspace }}"}
    chain(*[CromwellServerOperator(task_id=step, step=step, **ws, **({"retries": 0} if step == "plan" else {}))
            for step in ("plan", "ensure_secret", "ensure_database", "ensure_cluster", "ensure_task_definition",
                         "ensure_service", "record")])
    hold_workspace_lock(dag, "{{ params.workspace }}")
