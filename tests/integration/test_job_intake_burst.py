"""Bursts: 50 requests at once become 50 runs in one intake round, none stranded, none twice,
also when the intake's worker is killed in the middle of the burst."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import run_dag, task_states, xcom_values
from support.jobs import job_runs, request

TESTS = Path(__file__).resolve().parents[1]
BURST = 50


def _expected(first: int) -> set[str]:
    return {f"job__intp{n:011d}" for n in range(first, first + BURST)}


def test_burst_of_fifty_becomes_fifty_runs_in_one_round(jobs, airflow_db):
    jobs.produce([request(n) for n in range(1000, 1000 + BURST)])
    run = run_dag("job_intake")
    assert run.state == "success", task_states(run)
    summary = xcom_values(run)["drain_intake:return_value"]
    assert len(summary["triggered"]) == BURST and summary["duplicates"] == []
    assert _expected(1000) <= set(job_runs())


def test_burst_survives_the_intake_worker_being_killed(jobs, airflow_db):
    jobs.produce([request(n) for n in range(2000, 2000 + BURST)])
    expected = _expected(2000)
    worker = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.path[:0] = ['.', '../plugins']\n"
                               "from support import run_dag\nrun_dag('job_intake')"],
        cwd=TESTS, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(expected & set(job_runs())) < 5:
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)  # mid-burst: some runs made, offsets not committed
    worker.wait()
    made_before = expected & set(job_runs())
    assert 0 < len(made_before) < BURST, "the kill should land in the middle of the burst"

    run = run_dag("job_intake")  # the next round, as @continuous starts it
    assert run.state == "success", task_states(run)
    summary = xcom_values(run)["drain_intake:return_value"]
    assert set(job_runs()) >= expected
    assert len(summary["triggered"]) + len(summary["duplicates"]) == BURST
    assert {f"job__{j.lower()}" for j in summary["duplicates"]} == made_before
