"""Request-to-Deployed latency of job requests through a real Airflow (``make bench``).

A lone request (after a first one that wakes the platform), then a burst of :data:`BURST` INTERVENE requests, goes to the Kafka mock
cluster's intake topic at once; ``job_intake`` (``@continuous``) starts one ``job_run`` per request, and each run sends
Deployed when its launch reached Seqera (after resolve, setup_buckets, transfer_inputs and
build_container). The latency of a request is the broker timestamp of its Deployed status
message minus that of the request (both CreateTime, set by producers on this machine). Each
stack runs the same burst:

- ``standalone``: SQLite + LocalExecutor (8 slots), as ``make demo``;
- ``celery``: PostgreSQL + Redis + a Celery worker + scheduler + triggerer, as deployed.

``HATCHWAY_MAX_CONCURRENT_JOBS`` is the burst size, so the figure is the platform's latency, not
a configured queue (with the default 10, request #11 waits for a whole run to end). Asserted:
every request has exactly one run, whose states went out once each and in order
(Requested, Created, Deployed, Succeeded); the latencies are printed, not asserted. The lone
request is what one job waits on an idle platform; the burst is bound by the machine (2 CPUs
here: every task is a process that imports Airflow), so its p50 is mostly queueing for a CPU.
``HATCHWAY_BENCH_LATENCY_BURST`` changes the burst size.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid

import pytest

from hatchway_dev.airflow import Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.demo import airflow_env, dev_stack
from hatchway_dev.jobs_demo import NAMESPACE, send_requests

pytestmark = pytest.mark.bench
BURST = int(os.environ.get("HATCHWAY_BENCH_LATENCY_BURST", "30"))
STACKS = {"standalone": "SQLite + LocalExecutor", "celery": "Postgres + Celery"}
ORDER = ["Requested", "Created", "Deployed", "Succeeded"]


def _messages(bootstrap: str, topic: str, want: int, timeout: float, on_poll) -> list[tuple[float, dict]]:
    """(broker timestamp in s, value) of the topic's messages, read until ``want`` or ``timeout``."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    found: list[tuple[float, dict]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < want:
            for m in consumer.consume(500, timeout=2):
                if not m.error():
                    found.append((m.timestamp()[1] / 1000, json.loads(m.value())))
            on_poll()
    finally:
        consumer.close()
    return found


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


@pytest.mark.parametrize("mode", list(STACKS))
def test_request_to_deployed_latency_per_stack(mode, tmp_path, bench_table):
    # A missing redis-server or PostgreSQL fails the celery stack's start, naming what to install
    # (hatchway_dev.airflow.require_tool).
    from hatchway.domain.jobs import JobNames

    with dev_stack(tmp_path / "endpoints") as stack:
        env = {**airflow_env(stack), "HATCHWAY_MAX_CONCURRENT_JOBS": str(BURST)}
        with Airflow(tmp_path / "airflow", mode=mode, env=env) as airflow:
            client = AirflowClient(airflow.url, airflow.username, airflow.password).login()

            def alive() -> None:
                stack.check()
                airflow.check()

            for dag_id in ("job_run", "job_intake"):
                client.wait_for_dag(dag_id, on_poll=alive)
                client.unpause(dag_id)
            # A first request, not reported, starts job_intake's first round and Airflow's caches:
            # a deployment's intake is always running.
            results = [_burst(stack, size, f"{n}", alive) for n, size in enumerate((1, 1, BURST))]
            runs = {r["dag_run_id"] for r in client.runs("job_run")}

    label = STACKS[mode]
    for (size, wall, latencies, _), what in zip(results[1:], ("a lone request", f"a burst of {BURST}")):
        p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
        print(f"\n{label}: {what} -> {len(latencies)} Deployed in {wall:.0f} s; request to Deployed "
              f"p50 {p50:.1f} s, p99 {p99:.1f} s, max {latencies[-1]:.1f} s")
        bench_table.add(f"intake, request to Deployed, {what}, {label}: p50 / p99",
                        f"{p50:.1f} s / {p99:.1f} s", "-", None, "-", None)
    for size, _, latencies, (job_ids, events) in results:
        assert {JobNames(NAMESPACE, j).dag_run_id for j in job_ids} <= runs  # a run for each request
        assert len(latencies) == size
        assert events == {JobNames(NAMESPACE, j).run_name: ORDER for j in job_ids}  # each state once, in order
    assert len(runs) == 2 + BURST  # and no other run


def _burst(stack, size: int, tag: str, alive) -> tuple[int, float, list[float], tuple[list[str], dict]]:
    """Send ``size`` requests at once and wait for each to end; :return: (size, seconds to the
    last Succeeded, sorted latencies to Deployed, (job ids, each run's status events))."""
    from hatchway.domain.jobs import JobNames

    stamp = time.strftime("%H%M%S")
    job_ids = [f"INTP{stamp}{tag}{i:04d}" for i in range(size)]
    names = {JobNames(NAMESPACE, j).run_name: j for j in job_ids}
    for run_name in names:
        stack["seqera"].set_course(run_name, kind="succeed", after=2)
    t0 = time.monotonic()
    send_requests(stack["kafka"].bootstrap, job_ids, stack["inputs"].files())
    deadline = time.monotonic() + 60 + 30 * size
    while True:
        statuses = [(at, m) for at, m in _messages(stack["kafka"].bootstrap, "pipeline-status", 10**6, 5, alive)
                    if m["run_name"] in names]
        if sum(m["event"] == "Succeeded" for _, m in statuses) >= size or time.monotonic() > deadline:
            break
    wall = time.monotonic() - t0
    sent = {body["pipeline_param"]["id"]: at
            for at, body in _messages(stack["kafka"].bootstrap, "pipeline-launch", 10**6, 10, alive)}
    events: dict[str, list[str]] = {}
    deployed: dict[str, float] = {}
    for at, message in statuses:
        events.setdefault(message["run_name"], []).append(message["event"])
        if message["event"] == "Deployed":
            deployed[message["run_name"]] = at
    latencies = sorted(deployed[name] - sent[job] for name, job in names.items() if name in deployed)
    return size, wall, latencies, (job_ids, events)
