"""Queue modes: Hatchery's per-user queues up to the account limit, and the shared fair-share queue."""

from __future__ import annotations

import json

import pytest

from hatchway.domain.names import WorkspaceNames
from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest
from hatchway.workspace.inventory import inventory
from hatchway.workspace.provision import Workspace, WorkspaceError
from support import run_dag, task_states
from conftest import TEST_CONFIG


def _fill_queue_quota(aws, count: int) -> None:
    """Make ``count`` job queues that are not Hatchway's (the account's other users)."""
    batch, ec2 = aws.batch, aws.ec2
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="others", Description="others", VpcId=vpc)["GroupId"]
    role = aws.iam.get_role(RoleName="hatchway-batch-service")["Role"]["Arn"]
    profile = aws.iam.get_instance_profile(InstanceProfileName="hatchway-batch-instance")["InstanceProfile"]["Arn"]
    ce = batch.create_compute_environment(
        computeEnvironmentName="others-ce", type="MANAGED", serviceRole=role, state="ENABLED",
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 4, "instanceTypes": ["m5.large"],
                          "subnets": [subnet], "securityGroupIds": [sg], "instanceRole": profile})
    for i in range(count):
        batch.create_job_queue(jobQueueName=f"others-{i}", state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{"order": 1,
                                                         "computeEnvironment": ce["computeEnvironmentArn"]}])


def test_per_user_mode_fails_fast_at_the_queue_quota_naming_shared_mode(aws, airflow_db):
    assert run_dag("platform_bootstrap").state == "success"
    _fill_queue_quota(aws, 50)
    run = run_dag("workspace_provision", workspace="alice", owner="alice@example.org")
    assert run.state == "failed" and task_states(run)["plan"] == "failed"
    assert inventory(aws, "alice") == []  # failed before anything was made

    workspace = Workspace(aws, PlatformConfig(**TEST_CONFIG), WorkspaceRequest(workspace="alice", owner="a"))
    with pytest.raises(WorkspaceError) as err:
        workspace.plan()
    assert "50 Batch job queues" in str(err.value) and '"queue_mode": "shared"' in str(err.value)


def test_existing_workspace_is_not_refused_at_the_quota(aws, airflow_db):
    assert run_dag("platform_bootstrap").state == "success"
    assert run_dag("workspace_provision", workspace="alice", owner="alice@example.org").state == "success"
    _fill_queue_quota(aws, 49)
    again = run_dag("workspace_provision", workspace="alice", owner="alice@example.org")
    assert again.state == "success", task_states(again)


def _fill_roles(aws, room: int) -> None:
    """Other users' roles until the account has ``room`` roles left under its quota."""
    from concurrent.futures import ThreadPoolExecutor

    summary = aws.iam.get_account_summary()["SummaryMap"]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: aws.iam.create_role(RoleName=f"someone-else-{n:04d}", AssumeRolePolicyDocument=trust),
                      range(summary["RolesQuota"] - summary["Roles"] - room)))


def test_a_workspace_past_the_accounts_iam_role_quota_fails_before_anything_is_made(aws, airflow_db, set_config):
    set_config(queue_mode="shared")
    assert run_dag("platform_bootstrap").state == "success"
    _fill_roles(aws, room=1)
    assert run_dag("workspace_provision", workspace="alice", owner="alice@example.org").state == "success"
    shared = PlatformConfig(**{**TEST_CONFIG, "queue_mode": "shared"})
    bob = WorkspaceRequest(workspace="bob", owner="bob@example.org")
    alice = Workspace(aws, shared, WorkspaceRequest(workspace="alice", owner="alice@example.org"))
    assert alice.plan()["exists"]  # the quota is full now, but alice needs nothing new

    run = run_dag("workspace_provision", workspace="bob", owner="bob@example.org")
    assert run.state == "failed" and task_states(run)["plan"] == "failed"
    assert inventory(aws, "bob") == []
    with pytest.raises(WorkspaceError) as err:
        Workspace(aws, shared, bob).plan()
    assert "IAM roles per account" in str(err.value) and "1000 of 1000 used" in str(err.value)
    assert "Service Quotas" in str(err.value)
    # A quota raised in Service Quotas, told to Hatchway: bob fits.
    raised = shared.model_copy(update={"iam_quotas": {"Roles": 1005}})
    assert not Workspace(aws, raised, bob).plan()["exists"]


def test_shared_mode_gives_each_workspace_a_share_of_one_queue(aws, airflow_db, set_config):
    set_config(queue_mode="shared")
    assert run_dag("platform_bootstrap").state == "success"
    for who in ("alice", "bob"):
        run = run_dag("workspace_provision", workspace=who, owner=f"{who}@example.org")
        assert run.state == "success", task_states(run)
    queues = aws.batch.describe_job_queues()["jobQueues"]
    assert [q["jobQueueName"] for q in queues] == ["hatchway-shared-queue"]
    assert queues[0]["schedulingPolicyArn"].endswith("/hatchway-fair-share")
    for who in ("alice", "bob"):
        assert {r.kind for r in inventory(aws, who)} == {"secret", "iam_user", "iam_role", "iam_policy"}
        arn = f"arn:aws:iam::{aws.account}:policy/hatchway/hatchway-{who}-user"
        version = aws.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        doc = aws.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        submit = next(s for s in doc["Statement"] if s["Sid"] == "SubmitToOwnQueue")
        assert submit["Resource"][0] == queues[0]["jobQueueArn"]
        assert submit["Condition"]["StringEquals"]["batch:ShareIdentifier"] == \
            WorkspaceNames("hatchway", who).share_identifier
    secret = json.loads(aws.secrets.get_secret_value(SecretId="hatchway/workspaces/bob/aws-access-key")["SecretString"])
    assert secret["job_queue"] == queues[0]["jobQueueArn"]
    purge = run_dag("workspace_teardown", workspace="alice", purge=True)
    assert purge.state == "success" and inventory(aws, "alice") == []
    assert [q["jobQueueName"] for q in aws.batch.describe_job_queues()["jobQueues"]] == ["hatchway-shared-queue"]
