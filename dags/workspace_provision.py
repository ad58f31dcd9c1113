"""workspace_provision: ensure every AWS resource of a researcher's Nextflow workspace."""

from __future__ import annotations

from airflow.sdk import DAG, Param, chain

from hatchway.dag_defaults import DEFAULT_ARGS, owner_param, workspace_param
from hatchway.operators.workspace import (
    EnsureComputeEnvironmentOperator,
    WorkspaceStepOperator,
    hold_workspace_lock,
)

with DAG(
    dag_id="workspace_provision",
    schedule=None,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "workspace", "aws"],
    max_active_runs=8,
    render_template_as_native_obj=True,
    params={
        "workspace": workspace_param(),
        "owner": owner_param(),
        "cost_center": Param(None, type=["null", "string"], maxLength=256, title="Cost center",
                             description="cost-allocation tag value (default: the workspace name)"),
    },
    doc_md="""
### Provision a Nextflow workspace
Ensures, for one workspace and owner: a VPC with a Squid proxy (or the shared network),
a Batch compute environment and job queue (or a share of the fair-share queue), the
user's prefix `s3://<bucket>/<workspace>/`, an IAM role for jobs and an IAM user for the
person, and one access key kept only in Secrets Manager. Every step is an ensure: run it
again and nothing changes. One lifecycle run of a workspace at a time: `acquire_lock`
waits (deferred) while another provision or teardown of it runs. Configuration: the `hatchway_config` Variable (README).
""",
) as dag:
    ws = {"workspace": "{{ params.workspace }}", "workspace_owner": "{{ params.owner }}",
          "cost_center": "{{ params.cost_center }}"}
    plan = WorkspaceStepOperator(task_id="plan", step="plan", retries=0, **ws)
    network = WorkspaceStepOperator(task_id="ensure_network", step="ensure_network", **ws)
    storage = WorkspaceStepOperator(task_id="ensure_storage", step="ensure_storage", **ws)
    job_role = WorkspaceStepOperator(task_id="ensure_job_role", step="ensure_job_role", multiple_outputs=True,
                                     **ws)
    compute = EnsureComputeEnvironmentOperator(task_id="ensure_compute_environment",
                                               inputs={"network": network.output}, **ws)
    queue = WorkspaceStepOperator(task_id="ensure_job_queue", step="ensure_job_queue", multiple_outputs=True,
                                  inputs={"compute_environment_arn": compute.output}, **ws)
    user = WorkspaceStepOperator(task_id="ensure_user", step="ensure_user",
                                 inputs={"job_queue_arn": queue.output["arn"],
                                         "job_role_arn": job_role.output["job_role_arn"]}, **ws)
    key = WorkspaceStepOperator(task_id="ensure_access_key", step="ensure_access_key",
                                inputs={"job_queue_arn": queue.output["arn"]}, **ws)
    record = WorkspaceStepOperator(task_id="record", step="record", **ws)

    chain(plan, [network, storage, job_role])
    chain(network, compute, queue)
    chain([queue, job_role], user, key)
    chain([key, storage], record)
    # Two runs of one workspace would race through the ensures: one at a time.
    hold_workspace_lock(dag, "{{ params.workspace }}")
