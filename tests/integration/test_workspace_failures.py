"""Make each provision step fail once, right after its work; a purge then leaves nothing."""

from __future__ import annotations

import pytest

from hatchway.workspace.inventory import inventory
from hatchway.workspace.lock import WorkspaceLock
from hatchway.workspace.provision import Workspace
from support import run_dag, task_states

STEPS = ["plan", "ensure_network", "ensure_storage", "ensure_job_role", "ensure_compute_environment",
         "ensure_job_queue", "ensure_user", "ensure_access_key", "record"]
# The lock tasks call WorkspaceLock, not Workspace: (task, class, method).
LOCK_STEPS = [("acquire_lock", WorkspaceLock, "acquire"), ("release_lock", WorkspaceLock, "release")]
ALICE = {"workspace": "alice", "owner": "alice@example.org"}
BUCKET = "hatchway-test-data"


def test_every_provision_task_is_covered(airflow_db):
    from support import _dagbag

    assert sorted(_dagbag().get_dag("workspace_provision").task_ids) == sorted(STEPS + [t for t, _, _ in LOCK_STEPS])


@pytest.mark.parametrize("task,owner,method", LOCK_STEPS)
def test_a_fault_in_the_lock_leaves_it_free_for_the_purge(task, owner, method, aws, airflow_db, fail_after):
    assert run_dag("platform_bootstrap").state == "success"
    with fail_after(owner, method):
        run = run_dag("workspace_provision", **ALICE)
    assert task_states(run)[task] == "failed"
    # The release is a teardown: it ran after a failed acquire, and its own failure does not
    # hide the outcome of the work (which succeeded).
    assert run.state == ("failed" if task == "acquire_lock" else "success")
    assert task_states(run)["release_lock"] in ("success", "failed")
    assert aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=".hatchway/locks/").get("KeyCount", 0) == 0
    purge = run_dag("workspace_teardown", workspace="alice", purge=True)
    assert purge.state == "success", task_states(purge)
    assert inventory(aws, "alice") == []


@pytest.mark.parametrize("step", STEPS)
def test_failed_provision_then_purge_leaves_no_tagged_resource(step, aws, airflow_db, fail_after):
    assert run_dag("platform_bootstrap").state == "success"
    with fail_after(Workspace, step):
        failed = run_dag("workspace_provision", **ALICE)
    assert failed.state == "failed"
    assert task_states(failed)[step] == "failed"
    left = inventory(aws, "alice")
    prefix = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="alice/").get("KeyCount", 0)
    if step != "plan":
        assert left or prefix, f"the fault after {step} should strike after something was made"

    purge = run_dag("workspace_teardown", workspace="alice", purge=True)
    assert purge.state == "success", task_states(purge)
    assert inventory(aws, "alice") == []
    assert aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="alice/").get("KeyCount", 0) == 0
    assert aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=".hatchway/workspaces/alice").get("KeyCount", 0) == 0


def test_failed_provision_converges_when_run_again(aws, airflow_db, fail_after):
    assert run_dag("platform_bootstrap").state == "success"
    with fail_after(Workspace, "ensure_user"):
        assert run_dag("workspace_provision", **ALICE).state == "failed"
    again = run_dag("workspace_provision", **ALICE)
    assert again.state == "success", task_states(again)
    assert len([r for r in inventory(aws, "alice") if r.kind == "vpc"]) == 1
    assert len(aws.iam.list_access_keys(UserName="hatchway-alice-user")["AccessKeyMetadata"]) == 1
