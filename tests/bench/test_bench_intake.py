"""Intake of a 1,000-request burst through the real job_intake DAG (``make bench``)."""

from __future__ import annotations

import time

import pytest

from support import run_dag, xcom_values
from support.jobs import job_runs, request

pytestmark = pytest.mark.bench
BURST = 1000


def test_intake_of_a_thousand_request_burst(jobs, airflow_db, bench_table):
    first = 500_000
    expected = {f"job__intp{n:011d}" for n in range(first, first + BURST)}
    jobs.produce([request(n) for n in range(first, first + BURST)])
    t0 = time.monotonic()
    rounds, triggered, duplicates = 0, [], []
    while rounds < 10 and not expected <= set(job_runs()):
        summary = xcom_values(run_dag("job_intake"))["drain_intake:return_value"]
        triggered += summary["triggered"]
        duplicates += summary["duplicates"]
        rounds += 1
    minutes = (time.monotonic() - t0) / 60
    made = expected & set(job_runs())
    print(f"\nintake of a {BURST}-request burst: {len(made)} runs created, {BURST - len(made)} lost, "
          f"{len(triggered) - len(set(triggered))} duplicated, {len(duplicates)} redelivered as duplicates, "
          f"{rounds} round(s), {minutes:.2f} min to the last run "
          f"({len(made) / (minutes * 60):.0f} runs/s)")
    lost, doubled = BURST - len(made), len(triggered) - len(set(triggered))
    bench_table.add(f"intake, {BURST}-request burst: lost / duplicated", f"{lost} / {doubled}", "-", None, "0 / 0",
                    lost == 0 and doubled == 0)
    bench_table.add(f"intake, {BURST}-request burst: to the last run", f"{minutes:.2f} min",
                    "-", f"{len(made) / (minutes * 60):.0f} runs/s")
    assert lost == 0 and doubled == 0
