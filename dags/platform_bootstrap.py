"""platform_bootstrap: prepare an AWS account for Hatchway once (idempotent)."""

from __future__ import annotations

from airflow.sdk import DAG, chain

from hatchway.dag_defaults import DEFAULT_ARGS
from hatchway.operators.workspace import PlatformStepOperator

with DAG(
    dag_id="platform_bootstrap",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "platform", "aws"],
    params={},
    doc_md="""
### Bootstrap the platform
Ensures the account-wide resources every workspace needs: the Batch service role, the
ECS instance role and profile, the shared bucket (public access blocked, tagged), and in
`shared_network` / `shared` queue mode the shared network, fair-share scheduling policy,
compute environment and job queue. Run it once per account, and again after changing
`hatchway_config`: it changes only what differs. Nothing to type in.
""",
) as dag:
    network = PlatformStepOperator(task_id="ensure_shared_network", step="ensure_shared_network")
    chain(
        PlatformStepOperator(task_id="ensure_roles", step="ensure_roles"),
        PlatformStepOperator(task_id="ensure_bucket", step="ensure_bucket"),
        network,
        PlatformStepOperator(task_id="ensure_shared_queue", step="ensure_shared_queue",
                             inputs={"network": network.output}),
    )
