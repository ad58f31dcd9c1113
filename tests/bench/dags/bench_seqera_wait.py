"""Bench-only DAGs for ``tests/bench/test_bench_worker_slots.py``: many runs waiting on Seqera.

Not a Hatchway DAG (the repository's ``dags/`` holds those): the bench points a throw-away
Airflow's dags folder at this folder alone. Pytest does not collect it (no ``test_`` prefix).

Each run waits for the Seqera run named like the DAG run id (the bench creates those runs in
the simulator first), with the same operator and trigger in both DAGs:

- ``bench_wait_deferred``: ``WaitForSeqeraOperator(deferrable=True)``: the wait is a trigger in
  the triggerer; no worker slot is held while waiting.
- ``bench_wait_from_trigger``: ``WaitForSeqeraOperator(start_from_trigger=True)``: the
  scheduler hands the wait straight to the triggerer, which ends the task too: no worker at all.
- ``bench_wait_blocking``: the baseline, ``deferrable=False``: the same trigger runs inside the
  task, so each waiting run holds a worker slot until its Seqera run ends. Its search is the
  run's own name (one list call per poll, as a lone waiter would ask), not the shared prefix:
  a waiter alone in its process pages through every run of the deployment otherwise.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from hatchway.operators.seqera import WaitForSeqeraOperator

RUN_PREFIX = "bench-wait-"  # every DAG run id (and so every Seqera run name) starts with this
POLL_INTERVAL = float(os.environ.get("HATCHWAY_BENCH_POLL_INTERVAL", "5"))
MAX_ACTIVE = 4000  # the bench's N must never be capped by the DAG

for dag_id, deferrable, from_trigger in (("bench_wait_deferred", True, False), ("bench_wait_from_trigger", True, True),
                                         ("bench_wait_blocking", False, False)):
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=MAX_ACTIVE,
        max_active_tasks=MAX_ACTIVE,
        tags=["hatchway-bench"],
        default_args={"owner": "hatchway", "retries": 0},
        doc_md=__doc__,
    ) as dag:
        WaitForSeqeraOperator(
            task_id="wait",
            run_name="{{ run_id }}",
            search_prefix=RUN_PREFIX if deferrable else "{{ run_id }}",
            poll_interval=POLL_INTERVAL,
            deferrable=deferrable,
            start_from_trigger=from_trigger,
        )
    globals()[dag_id] = dag
