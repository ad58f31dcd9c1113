"""job_intake: drain the intake topic, one job_run per job, offsets committed after the runs exist."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from hatchway.dag_defaults import DEFAULT_ARGS
from hatchway.operators.jobs import DrainIntakeOperator

with DAG(
    dag_id="job_intake",
    schedule="@continuous",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "jobs", "kafka"],
    params={},
    doc_md="""
### Job intake
Runs continuously, one round at a time: consumes the intake topic (`pipeline-launch`) with the
apache-kafka provider's consumer hook, validates each request, sends what is invalid to the
dead-letter topic with the reason (and a Failed status when the job id can be read and that
job has no `job_run` run yet: a damaged copy of a job with a run is only dead-lettered), starts
one `job_run` per valid job with the run id `job__<job id>` (a duplicate or a redelivery
finds its run and starts nothing), and commits offsets only after that. A burst is drained
in batches within one round, so no message waits for a later one.
""",
) as dag:
    DrainIntakeOperator(task_id="drain_intake", max_messages=1000, max_seconds=60, idle_seconds=5)
