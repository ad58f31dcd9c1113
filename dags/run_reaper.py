"""run_reaper: cancel Seqera runs and delete job buckets that stuck or crashed runs left behind."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from hatchway.dag_defaults import DEFAULT_ARGS
from hatchway.operators.stuck import SweepJobBucketsOperator, SweepSeqeraRunsOperator

with DAG(
    dag_id="run_reaper",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "jobs", "wes"],
    render_template_as_native_obj=True,
    params={
        "grace_hours": Param(None, type=["null", "number"], minimum=0, title="Grace period (hours)",
                             description="minimum age of a job bucket before it is deleted "
                                         "(default: HATCHWAY_DAGRUN_TIMEOUT_HOURS + 1)"),
        "dry_run": Param(False, type="boolean", title="Dry run", description="only report, change nothing"),
    },
    doc_md="""
### Reap stuck runs
Hourly. A `job_run` or `wes_run` failed by its `dagrun_timeout` (`HATCHWAY_DAGRUN_TIMEOUT_HOURS`)
does not run its teardowns (Airflow skips them), nor does a run whose scheduler died.
`sweep_seqera_runs` cancels Seqera runs named like this deployment's runs (`<namespace>-intp...`,
`wes-<id>`) that are live while their Airflow run is finished or missing; `sweep_job_buckets`
deletes GCS job buckets (named `<namespace>-intp...-work|-results`, labelled `hatchway-run`) whose
run failed or is missing, older than the grace period; a succeeded job's results bucket stays.
Each task's XCom and log list what was found, kept and removed.
""",
) as dag:
    SweepSeqeraRunsOperator(task_id="sweep_seqera_runs", cancel="{{ not params.dry_run }}")
    SweepJobBucketsOperator(task_id="sweep_job_buckets", grace_hours="{{ params.grace_hours }}",
                            delete="{{ not params.dry_run }}")
