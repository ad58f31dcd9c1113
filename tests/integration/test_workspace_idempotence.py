"""A second run for the same workspace makes no mutating AWS call: counted at the moto server."""

from __future__ import annotations

from hatchway.workspace.inventory import inventory
from support import recorded_calls, reset_recording, run_dag, task_states

ALICE = {"workspace": "alice", "owner": "alice@example.org"}


LOCK = "/.hatchway/locks/"


def _mutating(moto_server) -> list[tuple[str, str]]:
    """Mutating calls on the workspace's resources (the run's own lock is taken and given back)."""
    return [(s, a) for s, a, m in recorded_calls(moto_server.recording) if m and LOCK not in a]


def _lock_calls(moto_server) -> list[str]:
    return [a.split(" ")[0] for s, a, m in recorded_calls(moto_server.recording) if m and LOCK in a]


def test_second_provision_makes_no_mutating_call(aws, airflow_db, moto_server):
    assert run_dag("platform_bootstrap").state == "success"
    reset_recording(moto_server.url)
    first = run_dag("workspace_provision", **ALICE)
    assert first.state == "success", task_states(first)
    made = _mutating(moto_server)
    assert ("iam", "CreateUser") in made and ("ec2", "RunInstances") in made
    before = inventory(aws, "alice")

    reset_recording(moto_server.url)
    second = run_dag("workspace_provision", **ALICE)
    assert second.state == "success", task_states(second)
    assert _mutating(moto_server) == []
    assert _lock_calls(moto_server) == ["PUT", "DELETE"]
    assert recorded_calls(moto_server.recording), "the repeat made no call at all: is recording on?"
    assert inventory(aws, "alice") == before


def test_second_bootstrap_makes_no_mutating_call(aws, airflow_db, moto_server):
    assert run_dag("platform_bootstrap").state == "success"
    reset_recording(moto_server.url)
    assert run_dag("platform_bootstrap").state == "success"
    assert _mutating(moto_server) == []


def test_changed_policy_config_converges_with_a_new_policy_version(aws, airflow_db, moto_server, set_config):
    assert run_dag("platform_bootstrap").state == "success"
    assert run_dag("workspace_provision", **ALICE).state == "success"
    set_config(allowed_buckets=["reference-genomes"])
    reset_recording(moto_server.url)
    assert run_dag("workspace_provision", **ALICE).state == "success"
    assert sorted(a for s, a in _mutating(moto_server)) == ["CreatePolicyVersion", "CreatePolicyVersion"]
    arn = f"arn:aws:iam::{aws.account}:policy/hatchway/hatchway-alice-jobs"
    versions = aws.iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 2
