"""cromwell_run: a WDL workflow from git -> checked -> submitted to Cromwell -> waited on -> outputs placed."""

from __future__ import annotations

from airflow.sdk import DAG, Param, chain

from hatchway.dag_defaults import DEFAULT_ARGS, workspace_param
from hatchway.notifiers.cromwell import CromwellRunNotifier
from hatchway.notifiers.notice import NoticeNotifier
from hatchway.operators.cromwell import (
    TASK_FETCH,
    TASK_PLACE,
    TASK_SUBMIT,
    TASK_WAIT,
    AbortWorkflowOperator,
    FetchSourceOperator,
    FinishRunOperator,
    PlaceOutputsOperator,
    RecordUsageOperator,
    SubmitWorkflowOperator,
    WaitForWorkflowOperator,
    WriteCrateOperator,
)

with DAG(
    dag_id="cromwell_run",
    schedule=None,
    catchup=False,
    max_active_runs=100,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "cromwell", "wdl"],
    params={
        "run_id": Param(type="string", title="Run id", description="lowercase letters, digits and '-'",
                        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$"),
        "workspace": workspace_param(),
        "source": Param(type="object", title="Workflow source",
                        description='{"repo": "https://...", "ref": "<tag, branch or commit>", "path": "main.wdl"}'),
        "inputs": Param({}, type="object", title="Workflow inputs"),
        "options": Param({}, type="object", title="Workflow options"),
        "labels": Param({}, type="object", title="Labels"),
        "destination": Param(None, type=["null", "string"], title="Destination",
                             description="s3:// URL (default s3://<bucket>/<workspace>/cromwell/<run id>/)"),
    },
    doc_md="""
### Run a WDL workflow on Cromwell
`fetch_source` clones the repository at the ref over https (allowed hosts and the size limit
are settings), records the commit SHA, and checks the WDL with miniwdl offline: a syntax or
type error fails here with file:line:column, before anything is submitted. `submit` sends
that commit (not the ref) with the workspace's reserved label and `hogGroup`; a retry finds
the workflow it submitted. `wait` waits in the triggerer, one `/query` per server per
interval for every waiting run. `place_outputs` copies every output to the destination,
checks each copy, then deletes the workflow's execution directory. The teardowns always run:
`abort` aborts a live workflow (after a failure or a cancel), `record_usage` records what its
calls used (runtime attributes and times from the metadata) and the estimated cost in
Hatchway's store, `write_crate` writes its Workflow Run RO-Crate beside the outputs, and
`finish` fails the run
unless the workflow succeeded and its outputs were placed, so a cancelled run never reads
success. With `notify_topic` set, the end (COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED)
goes to that Kafka topic. Settings: Variable `hatchway_cromwell_config` (README).
""",
) as dag:
    kafka = CromwellRunNotifier()  # a no-op unless hatchway_cromwell_config names a notify_topic
    notify = [kafka, NoticeNotifier("hatchway.notifiers.notices.cromwell_run_notice")]  # + mail/webhook
    fetch = FetchSourceOperator(task_id=TASK_FETCH, on_failure_callback=notify)
    submit = SubmitWorkflowOperator(task_id=TASK_SUBMIT)
    wait = WaitForWorkflowOperator(task_id=TASK_WAIT)
    place = PlaceOutputsOperator(task_id=TASK_PLACE)
    abort = AbortWorkflowOperator(task_id="abort")
    finish = FinishRunOperator(task_id="finish", on_success_callback=notify, on_failure_callback=notify)

    usage = RecordUsageOperator(task_id="record_usage")
    crate = WriteCrateOperator(task_id="write_crate")

    chain(fetch, submit, wait, place, abort, usage, crate, finish)
    abort.as_teardown(setups=fetch)
    usage.as_teardown(setups=fetch)
    crate.as_teardown(setups=fetch)
    finish.as_teardown(setups=fetch, on_failure_fail_dagrun=True)
