"""job_run: one job request -> buckets -> launch -> wait on Seqera -> status -> always clean."""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param, chain

from hatchway.dag_defaults import DEFAULT_ARGS, run_timeout, shared_schema_param
from hatchway.domain.job_form import request_param_schemas
from hatchway.notifiers.kafka import KafkaStatusNotifier
from hatchway.notifiers.notice import NoticeNotifier
from hatchway.operators.container import TASK_BUILD, BuildContainerOperator
from hatchway.operators.jobs import (
    CleanupBucketsOperator,
    FinishJobOperator,
    LaunchJobOperator,
    RecordUsageOperator,
    ResolveJobOperator,
    SetupBucketsOperator,
    StopLaunchOperator,
    TransferInputsOperator,
    WaitForJobOperator,
    WriteJobCrateOperator,
)

# Runs beyond this wait queued: the INTERVENE limit of concurrent jobs (MAX_CONCURRENT_JOBS).
MAX_CONCURRENT_JOBS = int(os.environ.get("HATCHWAY_MAX_CONCURRENT_JOBS", "10"))
# The reason (the task's exception) is added to the trace; the run is named from the conf when
# resolve failed before it could say.
failed = KafkaStatusNotifier(event="Failed", trace_name="{{ ti.task_id }} failed")
REQUEST_PARAM_TITLES = {
    "globus_details": ("Globus details", "dir_path_on_guest_collection and files (each *.c4gh with a size)"),
    "pipeline_param": ("Pipeline parameters", "id (INTP...), target_genomes, nxf_params_file"),
    "secret_key_details": ("Secret key details", "secret_id (UUID4) and secret_id_version of the Crypt4GH key"),
}

with DAG(
    dag_id="job_run",
    schedule=None,
    catchup=False,
    max_active_runs=MAX_CONCURRENT_JOBS,
    dagrun_timeout=run_timeout(),  # see run_reaper
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "jobs", "intervene"],
    # The INTERVENE request as JSON-schema Params, generated from the pydantic model (pydantic
    # only, a few ms at parse): the form and the REST API refuse a bad conf before a run exists.
    params={**{name: shared_schema_param(description=titles[1], **{"title": titles[0], **schema})
               for name, schema in request_param_schemas().items()
               for titles in [REQUEST_PARAM_TITLES[name]]},
            "container": Param(None, type=["null", "object"], title="Container (optional)",
                               description='{"image": "..."} or {"packages": ["samtools=1.19"], ...}: built by Wave '
                                           "first, the launch runs every process in it")},
    doc_md="""
### Run one job
The conf is a job request as the INTERVENE backend sends it (`job_intake` starts these runs
with the run id `job__<job id>`). `resolve` validates it and names the buckets; the work and
results buckets are a setup task; `transfer_inputs` decrypts the Crypt4GH inputs into the
work bucket (for every launcher; files already there are skipped); with a `container` in the
request, `build_container` builds it on Wave meanwhile (or takes the image it names), and the
launch runs every process in it; `launch` starts the
Nextflow head job (Seqera's launch API or the Helm chart); `wait_for_seqera` waits in the
triggerer. The teardowns always run, also after a failure or a cancel: `finish` sends
Succeeded or Failed exactly once and fails the run when the job failed, `stop_launch` cancels the Seqera run or uninstalls the release, `record_usage` records what the
job used and its estimated cost (its Seqera tasks, its buckets' bytes) in Hatchway's store,
`write_crate` writes its Workflow Run RO-Crate (into the results bucket when it succeeded, and
into Hatchway's store), and `cleanup_buckets` deletes the work bucket (and the results bucket unless the job succeeded).
""",
) as dag:
    resolve = ResolveJobOperator(task_id="resolve", on_failure_callback=failed)
    setup = SetupBucketsOperator(task_id="setup_buckets", on_failure_callback=failed)
    transfer = TransferInputsOperator(task_id="transfer_inputs")
    built = NoticeNotifier("hatchway.notifiers.notices.container_build_notice")
    build = BuildContainerOperator(task_id=TASK_BUILD, source="job", on_success_callback=built,
                                   on_failure_callback=built)
    launch = LaunchJobOperator(task_id="launch")
    wait = WaitForJobOperator(task_id="wait_for_seqera")
    ended = NoticeNotifier("hatchway.notifiers.notices.job_run_notice")  # mail/webhook, as the workspace asks
    finish = FinishJobOperator(task_id="finish", on_success_callback=ended, on_failure_callback=ended)
    stop = StopLaunchOperator(task_id="stop_launch")
    cleanup = CleanupBucketsOperator(task_id="cleanup_buckets")

    usage = RecordUsageOperator(task_id="record_usage")
    crate = WriteJobCrateOperator(task_id="write_crate")

    chain(resolve, setup, [transfer, build], launch, wait, finish, stop, usage, crate, cleanup)
    finish.as_teardown(setups=setup, on_failure_fail_dagrun=True)
    stop.as_teardown(setups=setup)
    usage.as_teardown(setups=setup)
    crate.as_teardown(setups=setup)
    cleanup.as_teardown(setups=setup)
