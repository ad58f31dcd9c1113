"""The broker stalls for 30 s (its process stopped, connections open, nothing answered) while
intake reads and sends: nothing is lost, nothing is doubled, and the next round picks up by
itself. The cluster is the session's librdkafka mock, frozen with SIGSTOP and resumed."""

from __future__ import annotations

import os
import signal
import threading
import time

from support import run_dag, task_states, xcom_values
from support.jobs import job_runs, request

OUTAGE_SECONDS = 30
JOBS = range(3000, 3010)
BAD = (3010, 3011)  # readable job ids, invalid requests: dead letter + one Failed each


def test_a_thirty_second_broker_outage_loses_and_doubles_nothing(jobs, kafka_cluster, airflow_db):
    bad = []
    for n in BAD:
        body = request(n)
        body["globus_details"]["files"][0]["filename"] = "hapnest.pgen"  # not .c4gh
        bad.append(body)
    jobs.produce([request(n) for n in JOBS] + bad)
    expected = {f"job__intp{n:011d}" for n in JOBS}

    pid = kafka_cluster.process.pid
    os.kill(pid, signal.SIGSTOP)
    resumed = threading.Timer(OUTAGE_SECONDS, os.kill, (pid, signal.SIGCONT))
    resumed.start()
    started = time.monotonic()
    try:
        rounds, summaries = 0, []
        while not expected <= set(job_runs()) and rounds < 4:  # @continuous starts the next round
            run = run_dag("job_intake")
            rounds += 1
            assert run.state in ("success", "failed"), task_states(run)
            if run.state == "success":
                summaries.append(xcom_values(run)["drain_intake:return_value"])
    finally:
        resumed.join()
        os.kill(pid, signal.SIGCONT)
    assert time.monotonic() - started >= OUTAGE_SECONDS  # the rounds really ran into the outage

    made = expected & set(job_runs())
    assert made == expected
    triggered = [j for s in summaries for j in s["triggered"]]
    assert sorted(triggered) == sorted(f"INTP{n:011d}" for n in JOBS)  # each once
    assert sum(s["dead_lettered"] for s in summaries) == len(BAD)
    letters = jobs.read("dead_letter_topic", expect=len(BAD))
    assert sorted(m.key() for m in letters) == sorted(f"INTP{n:011d}".encode() for n in BAD)
    failed = [s for s in jobs.statuses(expect=len(BAD)) if s["event"] == "Failed"]
    assert sorted(s["run_name"] for s in failed) == sorted({s["run_name"] for s in failed})  # once per job
    assert len(failed) == len(BAD)
