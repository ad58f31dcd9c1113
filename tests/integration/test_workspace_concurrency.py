"""Lifecycle runs of one workspace never overlap: the lease lock in the platform bucket."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta

from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest, utcnow
from hatchway.workspace.clients import AwsClients
from hatchway.workspace.inventory import inventory
from hatchway.workspace.lock import WorkspaceLock
from hatchway.workspace.provision import Workspace
from conftest import TEST_CONFIG
from support import provision_steps, run_dag, task_states, xcom_values

ALICE = {"workspace": "alice", "owner": "alice@example.org"}
LOCK_KEY = ".hatchway/locks/alice.json"


def _provision_in_lock(url: str, holder: str, spans: list, errors: list) -> None:
    """What one provision run does, in its own thread with its own clients: lock, ensures, release."""
    try:
        clients = AwsClients.from_endpoint(url)
        config = PlatformConfig(**TEST_CONFIG)
        lock = WorkspaceLock(clients, config, "alice")
        deadline = time.monotonic() + 120
        while not lock.acquire(holder)["acquired"]:
            assert time.monotonic() < deadline, f"{holder} never got the lock"
            time.sleep(0.2)
        start = time.monotonic()
        try:
            provision_steps(Workspace(clients, config, WorkspaceRequest(**ALICE)))
        finally:
            spans.append((start, time.monotonic()))
            assert lock.release(holder)
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def test_four_concurrent_provisions_of_one_workspace_leave_one_set_of_resources(aws, airflow_db, moto_server):
    assert run_dag("platform_bootstrap").state == "success"
    spans, errors = [], []
    threads = [threading.Thread(target=_provision_in_lock, args=(moto_server.url, f"run-{i}", spans, errors))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    assert len(spans) == 4
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "two holders were inside the lock at once"

    kinds = Counter(r.kind for r in inventory(aws, "alice"))
    assert kinds["vpc"] == 1 and kinds["ec2_instance"] == 1 and kinds["internet_gateway"] == 1
    assert kinds["compute_environment"] == 1 and kinds["job_queue"] == 1
    assert kinds["iam_user"] == 1 and kinds["iam_role"] == 1 and kinds["iam_policy"] == 2
    assert kinds["secret"] == 1 and kinds["subnet"] == 3
    assert len(aws.iam.list_access_keys(UserName="hatchway-alice-user")["AccessKeyMetadata"]) == 1
    assert aws.s3.list_objects_v2(Bucket="hatchway-test-data", Prefix=LOCK_KEY).get("KeyCount", 0) == 0


def test_only_one_of_many_simultaneous_takers_gets_the_lock(aws, airflow_db):
    assert run_dag("platform_bootstrap").state == "success"
    config = PlatformConfig(**TEST_CONFIG)
    barrier, results = threading.Barrier(6), {}

    def take(i: int) -> None:
        lock = WorkspaceLock(AwsClients.from_endpoint(aws.s3.meta.endpoint_url), config, "alice")
        barrier.wait()
        results[i] = lock.acquire(f"run-{i}")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [i for i, r in results.items() if r["acquired"]]
    assert len(winners) == 1
    holder = f"run-{winners[0]}"
    assert all(r["holder"] == holder for r in results.values() if not r["acquired"])
    lock = WorkspaceLock(aws, config, "alice")
    assert lock.current().holder == holder
    assert lock.acquire(holder)["acquired"], "a retried task of the holder finds its own lock"
    assert not lock.release("run-other") and lock.current().holder == holder
    assert lock.release(holder) and lock.current() is None


def test_an_expired_lease_is_taken_over(aws, airflow_db):
    assert run_dag("platform_bootstrap").state == "success"
    config = PlatformConfig(**{**TEST_CONFIG, "lock_lease_seconds": 1})
    lock = WorkspaceLock(aws, config, "alice")
    assert lock.acquire("crashed-run")["acquired"]
    assert lock.acquire("next-run") == {"acquired": False, "holder": "crashed-run"}
    time.sleep(1.2)
    assert lock.acquire("next-run")["acquired"]
    assert lock.current().holder == "next-run"
    assert not lock.release("crashed-run"), "the crashed run's late release must not free another's lock"


def test_provision_waits_deferred_for_a_busy_workspace_then_runs(aws, airflow_db, set_config):
    """A lock held by another run (that crashed: its lease ends in 3 s) holds the provision back."""
    set_config(lock_poll_seconds=1)
    assert run_dag("platform_bootstrap").state == "success"
    expires = utcnow() + timedelta(seconds=3)
    aws.s3.put_object(Bucket="hatchway-test-data", Key=LOCK_KEY, Body=json.dumps(
        {"holder": "workspace_teardown/crashed", "acquired_at": utcnow().isoformat(),
         "expires_at": expires.isoformat(), "nonce": "x"}).encode())
    run = run_dag("workspace_provision", **ALICE)
    assert run.state == "success", task_states(run)
    assert utcnow() >= expires, "the provision ran before the other run's lease ended"
    states = task_states(run)
    assert states["acquire_lock"] == "success" and states["release_lock"] == "success"
    assert xcom_values(run)["release_lock:return_value"] == {"released": True}
    assert aws.s3.list_objects_v2(Bucket="hatchway-test-data", Prefix=LOCK_KEY).get("KeyCount", 0) == 0


def test_provision_gives_up_on_a_busy_workspace_naming_the_holder(aws, airflow_db, set_config):
    set_config(lock_poll_seconds=1, lock_wait_seconds=2)
    assert run_dag("platform_bootstrap").state == "success"
    assert WorkspaceLock(aws, PlatformConfig(**TEST_CONFIG), "alice").acquire("workspace_teardown/live")["acquired"]
    run = run_dag("workspace_provision", **ALICE)
    assert run.state == "failed"
    states = task_states(run)
    assert states["acquire_lock"] == "failed" and states["plan"] == "upstream_failed"
    assert states["release_lock"] == "success"
    assert inventory(aws, "alice") == []
    assert WorkspaceLock(aws, PlatformConfig(**TEST_CONFIG), "alice").current().holder == "workspace_teardown/live"
