"""The production-shaped leg: the demo's lifecycle on PostgreSQL + Redis + a Celery worker.

Every component runs in its own process, as in a deployment, so this catches what
``standalone`` hides: tasks that only work in the scheduler's process, state that does not
survive the trip through the broker, SQLite-only SQL.
"""

from __future__ import annotations

import json
import shutil

import pytest

from hatchway_dev.airflow import Airflow
from hatchway_dev.client import AirflowClient
from hatchway_dev.jobs_demo import NAMESPACE, bucket_rows, cancel_job, run_jobs, status_messages
from hatchway.domain.jobs import JobNames
from hatchway_dev.demo import LIFECYCLE, airflow_env, describe_failure, dev_stack, run_lifecycle
from hatchway_dev.settings import REGION

# Not skips: a leg that silently does not run is a leg that never fails.
TOOLS = {
    "redis-server": "run `make system-deps` (apt-get install -y redis-server)",
    "initdb": "install the PostgreSQL 15 server binaries (postgresql-15)",
}


def _access_keys(clients, resources) -> list[dict]:
    keys = []
    for user in (r for r in resources if r.kind == "iam_user"):
        keys += clients.iam.list_access_keys(UserName=user.name)["AccessKeyMetadata"]
    return keys


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_lifecycle_on_postgres_redis_celery(tmp_path):
    for tool, hint in TOOLS.items():
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/lib/postgresql/15/bin")):
            pytest.fail(f"{tool} is not installed: {hint}")
    from hatchway.workspace.clients import AwsClients
    from hatchway.workspace.inventory import inventory

    with dev_stack(tmp_path / "endpoints") as stack:
        airflow = Airflow(tmp_path / "airflow", mode="celery", env=airflow_env(stack))
        with airflow:
            client = AirflowClient(airflow.url, airflow.username, airflow.password).login()

            def alive() -> None:
                stack.check()
                airflow.check()

            results = run_lifecycle(client, LIFECYCLE, on_poll=alive)
            failures = "\n".join(describe_failure(r, airflow.home) for r in results if not r.ok)
            assert [r.state for r in results] == ["success"] * len(LIFECYCLE), failures

            # Jobs through Kafka, the Celery worker and the triggerer, with task retries on, and
            # Seqera misbehaving on 20% of its API calls (5xx, 429, slow, resets, cut-off JSON,
            # answers lost after the work was done): each job ends as Seqera ended it, launched once.
            seqera = stack["seqera"]
            seqera.chaos(rate_5xx=0.04, rate_429=0.04, rate_slow=0.03, rate_reset=0.03, rate_malformed=0.03,
                         rate_lost=0.03, slow_seconds=1, retry_after_seconds=1, seed=20261205)
            outcomes = run_jobs(client, stack, on_poll=alive)
            chaos = seqera.calm()
            assert [(o.state, o.expected) for o in outcomes] == [("success", "success"), ("failed", "failed")]
            assert chaos["counts"]["requests"] > chaos["counts"]["passed"], chaos  # chaos really struck
            names = [JobNames(NAMESPACE, o.job_id).run_name for o in outcomes]
            assert sorted((r["runName"], r["status"]) for r in seqera.runs() if r["runName"] in names) == sorted(
                zip(names, ["SUCCEEDED", "FAILED"]))  # one launch each, ended as scripted
            events: dict[str, list[str]] = {}
            for message in status_messages(stack):
                events.setdefault(message["run_name"], []).append(message["event"])
            ok, bad = (JobNames(NAMESPACE, o.job_id).run_name for o in outcomes)
            assert events[ok] == ["Requested", "Created", "Deployed", "Succeeded"]
            assert events[bad] == ["Requested", "Created", "Deployed", "Failed"]  # exactly once each
            # Each wait started and ended in the triggerer: it has a trigger log and no worker
            # ever ran it (a worker's try writes attempt=<n>.log).
            for o in outcomes:
                wait_logs = sorted(p.name for p in (airflow.home / "logs" / "dag_id=job_run" / f"run_id={o.run_id}"
                                                    / "task_id=wait_for_seqera").glob("attempt=*"))
                assert wait_logs and all(".trigger." in n for n in wait_logs), (o.run_id, wait_logs)

            # A person cancels a waiting job: Failed is sent, Seqera's run is cancelled, buckets go,
            # and the run reports failed, never success (docs/airflow-behaviour.md: cancel and teardown).
            cancelled = cancel_job(client, stack, on_poll=alive)
            assert cancelled.state == "failed"
            name = JobNames(NAMESPACE, cancelled.job_id)
            cancel_events = [m["event"] for m in status_messages(stack) if m["run_name"] == name.run_name]
            assert cancel_events == ["Requested", "Created", "Deployed", "Failed"]
            assert [r["status"] for r in stack["seqera"].runs() if r["runName"] == name.run_name] == ["CANCELLED"]
            left = {b for b, _ in bucket_rows(stack)}
            assert name.work_bucket not in left and name.results_bucket not in left

        # Read while moto still runs: its state lives in that process only.
        clients = AwsClients.from_endpoint(stack["moto"].url, REGION)
        alice, bob = inventory(clients, workspace="alice-demo"), inventory(clients, workspace="bob-demo")
        alice_keys, bob_keys = _access_keys(clients, alice), _access_keys(clients, bob)
        stored = clients.secrets.get_secret_value(SecretId="hatchway/workspaces/alice-demo/aws-access-key")
        secret = json.loads(stored["SecretString"])["aws_secret_access_key"]
        task_logs = [p for p in (airflow.home / "logs").rglob("*") if p.is_file()]

    # Real workers wrote real task log files: the key's secret is in none of them.
    assert task_logs, "no task log files were written"
    assert not [p for p in task_logs if secret in p.read_text(errors="replace")]

    assert {"iam_user", "secret"} <= {r.kind for r in alice}, alice
    assert any(k["Status"] == "Active" for k in alice_keys), f"alice-demo has no active access key: {alice_keys}"
    # Teardown without purge revokes access (the keys and their stored copy), keeps the rest.
    assert not [r for r in bob if r.kind == "secret"], bob
    assert bob_keys == [], f"bob-demo still has access keys: {bob_keys}"
