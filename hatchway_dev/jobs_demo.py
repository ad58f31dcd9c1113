"""The job part of the demo: two INTERVENE requests through Kafka, one to Succeeded, one to Failed."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hatchway_dev.client import AirflowClient

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "demo"
JOBS_CONFIG = {"namespace": NAMESPACE, "poll_interval_seconds": 2, "timeout_seconds": 120,
               "deployed_timeout_seconds": 300, "bucket_location": "EUROPE-WEST2"}
EXAMPLE = json.loads((REPO / "include/examples/intervene-job-request.json").read_text())
# The collection folder the example request names: the dev stack's inputs source serves it.
INPUTS_FOLDER = EXAMPLE["globus_details"]["dir_path_on_guest_collection"]


def jobs_config(stack) -> dict:
    """The jobs Variable for a started dev stack: the transfer reads the stack's inputs source."""
    helm = {"seqera_secret_name": "seqera-credentials", **stack["inputs"].helm_settings()}
    return {**JOBS_CONFIG, "helm": helm}


@dataclass
class JobOutcome:
    job_id: str
    run_id: str
    expected: str
    state: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.state == self.expected


def example_request(job_id: str, files: list[dict] | None = None) -> dict:
    """The example request for ``job_id``; ``files``: the inputs source's (encrypted sizes)."""
    body = copy.deepcopy(EXAMPLE)
    body["pipeline_param"]["id"] = job_id
    if files is not None:
        body["globus_details"]["files"] = files
    return body


def send_requests(bootstrap: str, job_ids: list[str], files: list[dict] | None = None, timeout: float = 60) -> None:
    """Produce one example request per job id and wait until the broker has them all."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": int(timeout * 1000)})
    errors: list = []
    for job_id in job_ids:
        producer.produce("pipeline-launch", key=job_id.encode(), value=json.dumps(example_request(job_id, files)).encode(),
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
    if producer.flush(timeout) or errors:
        raise RuntimeError(f"job requests not delivered to Kafka within {timeout:.0f}s: {errors or 'flush timed out'}")


def run_jobs(client: AirflowClient, stack, *, on_poll: Callable[[], None] | None = None,
             out: Callable[[str], None] = print) -> list[JobOutcome]:
    """Send a request that succeeds and one whose Seqera run fails; wait for both runs."""
    from confluent_kafka import Producer

    from hatchway.domain.jobs import JobNames

    seqera, kafka = stack["seqera"], stack["kafka"]
    stamp = time.strftime("%H%M%S")
    jobs = [(f"INTP{stamp}00001", "success", {"kind": "succeed", "after": 3}),
            (f"INTP{stamp}00002", "failed", {"kind": "fail", "after": 2, "exit_status": 12,
                                             "error_report": "Process `PGSC_CALC:SCORE` failed\nexit 12"})]
    for dag_id in ("job_run", "job_intake"):
        client.wait_for_dag(dag_id, on_poll=on_poll)
        client.unpause(dag_id)
    for job_id, _, course in jobs:
        seqera.set_course(JobNames(NAMESPACE, job_id).run_name, **course)
    send_requests(kafka.bootstrap, [job_id for job_id, _, _ in jobs], stack["inputs"].files())
    out(f"sent {len(jobs)} job requests to Kafka topic pipeline-launch")
    outcomes = []
    for job_id, expected, _ in jobs:
        run_id = JobNames(NAMESPACE, job_id).dag_run_id
        t0 = time.monotonic()
        client.wait_for_new_run("job_run", run_id, on_poll=on_poll)
        state = client.wait_for_run("job_run", run_id, timeout=600, on_poll=on_poll)["state"]
        outcome = JobOutcome(job_id, run_id, expected, state, time.monotonic() - t0)
        out(f"{'job_run':<22} {run_id:<30} {state:<8} {outcome.seconds:6.1f}s  (expected {expected})")
        outcomes.append(outcome)
    client.pause("job_intake")
    return outcomes


def status_messages(stack, topic: str = "pipeline-status", timeout: float = 30) -> list[dict]:
    from hatchway_dev.kafka_mock import read_topic

    return [json.loads(m.value()) for m in read_topic(stack["kafka"].bootstrap, topic, timeout=timeout)]


def bucket_rows(stack) -> list[tuple[str, str]]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    gcs = stack["gcs"]
    client = storage.Client(project=gcs.project, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": gcs.url})
    return [(b.name, "kept") for b in client.list_buckets()]


def cancel_job(client: AirflowClient, stack, *, on_poll: Callable[[], None] | None = None,
               timeout: float = 300) -> JobOutcome:
    """A job whose Seqera run never ends, cancelled by a person (run marked failed) while it waits."""
    from confluent_kafka import Producer

    from hatchway.domain.jobs import JobNames

    job_id = f"INTP{time.strftime('%H%M%S')}00009"
    names = JobNames(NAMESPACE, job_id)
    stack["seqera"].set_course(names.run_name, kind="running")
    client.unpause("job_intake")
    send_requests(stack["kafka"].bootstrap, [job_id], stack["inputs"].files())
    t0 = time.monotonic()
    client.wait_for_new_run("job_run", names.dag_run_id, on_poll=on_poll)
    deadline = time.monotonic() + timeout
    while not any(t["task_id"] == "wait_for_seqera" and t["state"] == "deferred"
                  for t in client.task_instances("job_run", names.dag_run_id)):
        if time.monotonic() > deadline:
            raise TimeoutError("wait_for_seqera never deferred")
        if on_poll:
            on_poll()
        time.sleep(1)
    client.mark_failed("job_run", names.dag_run_id)
    teardowns = {"finish", "stop_launch", "cleanup_buckets"}
    while True:
        states = {t["task_id"]: t["state"] for t in client.task_instances("job_run", names.dag_run_id)}
        if all(states.get(t) in ("success", "failed", "skipped", "upstream_failed") for t in teardowns):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"teardowns did not finish after the cancel: {states}")
        if on_poll:
            on_poll()
        time.sleep(1)
    client.pause("job_intake")
    # The scheduler settles the run's state after its teardowns: wait for that, not just them.
    state = client.wait_for_run("job_run", names.dag_run_id, timeout=120, on_poll=on_poll)["state"]
    return JobOutcome(job_id, names.dag_run_id, "failed", state, time.monotonic() - t0)
