"""wes_run: one WES run from the front door -> launch -> wait on Seqera -> harvest STAC -> always clean."""

from __future__ import annotations

from airflow.sdk import DAG, Param, chain

from hatchway.dag_defaults import DEFAULT_ARGS, run_timeout
from hatchway.domain.wes_tasks import (
    TASK_CLEAN,
    TASK_CRATE,
    TASK_HARVEST,
    TASK_LAUNCH,
    TASK_STOP,
    TASK_USAGE,
    TASK_WAIT,
    WES_DAG_ID,
)
from hatchway.notifiers.notice import NoticeNotifier
from hatchway.operators.container import TASK_BUILD, BuildContainerOperator
from hatchway.operators.wes import (
    CleanWorkOperator,
    HarvestOutputsOperator,
    LaunchWorkflowOperator,
    PrepareRunOperator,
    RecordUsageOperator,
    StopWorkflowOperator,
    WaitForWorkflowOperator,
    WriteCrateOperator,
)

with DAG(
    dag_id=WES_DAG_ID,
    schedule=None,
    catchup=False,
    max_active_runs=100,
    dagrun_timeout=run_timeout(),  # a backstop: Airflow skips the teardowns, run_reaper sweeps
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "wes"],
    params={
        "run_id": Param(type="string", title="WES run id", description="32 hex digits, given by the front door"),
        "calling": Param(type="string", title="Calling workspace"),
        "deploying": Param(type="string", title="Deploying workspace"),
        "executing": Param(type="string", title="Executing workspace"),
        "bucket": Param(type="string", title="Platform bucket"),
        "workflow": Param(type="object", title="Workflow", description="name, version, engine and source"),
        "params": Param({}, type="object", title="Workflow params"),
        "engine_parameters": Param({}, type="object", title="Engine parameters"),
        "tags": Param({}, type="object", title="Tags"),
        "container": Param(None, type=["null", "object"], title="Container",
                           description="an image, or packages Wave builds first (the door's workflow_engine_parameters.container)"),
    },
    doc_md="""
### Run a deployed workflow for the WES front door
The front door (`/hatchway/ga4gh/wes/v1`) starts these runs with run id `wes__<WES run id>`
and a conf it resolved from the caller's token and the workflow's access policy. With a
`container` (`workflow_engine_parameters.container`), `build_container` builds it on Wave (or
takes the image it names) and every process runs in it; a failed build fails the run. `launch`
starts the workflow on Seqera Platform in the executing workspace, `wait_for_workflow` waits
in the triggerer, `harvest_outputs` writes STAC Items into the calling workspace's
`processing-results/<run id>/` catalog. The teardowns always run, also after a failure or a
cancel (`POST /runs/{id}/cancel` marks this run failed): `stop_workflow` cancels a live Seqera
run, `record_usage` records what the run used and its estimated cost in Hatchway's store
(charged to the executing workspace and its cost centre), `write_crate` writes the run's
Workflow Run RO-Crate beside its catalog, `clean_work` removes the run's area in the executing workspace, except when the harvest
started and did not finish: then the outputs stay there (the task log and the WES run log name
the `s3://` URL) and clearing `harvest_outputs` with its downstream finishes the job.
The launch tags the run with the executing workspace's provisioned cost centre (none if the
workspace has no record).
""",
) as dag:
    prepare = PrepareRunOperator(task_id="prepare")
    built = NoticeNotifier("hatchway.notifiers.notices.container_build_notice")
    build = BuildContainerOperator(task_id=TASK_BUILD, source="wes", on_success_callback=built,
                                   on_failure_callback=built)
    launch = LaunchWorkflowOperator(task_id=TASK_LAUNCH)
    wait = WaitForWorkflowOperator(task_id=TASK_WAIT)
    harvest = HarvestOutputsOperator(task_id=TASK_HARVEST)
    stop = StopWorkflowOperator(task_id=TASK_STOP)
    ended = NoticeNotifier("hatchway.notifiers.notices.wes_run_notice")  # mail/webhook, as the workspace asks
    clean = CleanWorkOperator(task_id=TASK_CLEAN, on_success_callback=ended, on_failure_callback=ended)

    usage = RecordUsageOperator(task_id=TASK_USAGE)
    crate = WriteCrateOperator(task_id=TASK_CRATE)

    chain(prepare, build, launch, wait, harvest, stop, usage, crate, clean)
    stop.as_teardown(setups=prepare)
    usage.as_teardown(setups=prepare)
    crate.as_teardown(setups=prepare)
    clean.as_teardown(setups=prepare)
