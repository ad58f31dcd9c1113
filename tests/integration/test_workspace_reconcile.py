"""A repeat provision with changed settings converges what it finds: tags, vCPU bounds, state."""

from __future__ import annotations

import base64
import json

import pytest

from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest
from hatchway.workspace.clients import tag_dict
from hatchway.workspace.inventory import inventory
from hatchway.workspace.provision import Workspace, WorkspaceError
from conftest import TEST_CONFIG
from support import reset_recording, run_dag, task_states

ALICE = {"workspace": "alice", "owner": "alice@example.org"}
COST = "hatchway:cost-center"


def _batch_requests(moto_server, action: str) -> list[dict]:
    """Bodies of the Batch REST calls ``action`` the moto server recorded."""
    bodies = []
    for line in moto_server.recording.read_text().splitlines():
        rec = json.loads(line)
        if rec["url"].rstrip("/").endswith(f"/v1/{action.lower()}"):
            body = rec.get("body") or "{}"
            if rec.get("body_encoded"):
                body = base64.b64decode(body).decode()
            bodies.append(json.loads(body))
    return bodies


def test_repeat_provision_with_a_new_cost_center_and_max_vcpus_converges(aws, airflow_db, moto_server,
                                                                         set_config):
    assert run_dag("platform_bootstrap").state == "success"
    assert run_dag("workspace_provision", **ALICE).state == "success"
    set_config(max_vcpus=64)
    reset_recording(moto_server.url)
    again = run_dag("workspace_provision", **ALICE, cost_center="genomics-42")
    assert again.state == "success", task_states(again)

    iam = aws.iam
    assert tag_dict(iam.list_role_tags(RoleName="hatchway-alice-jobs")["Tags"])[COST] == "genomics-42"
    assert tag_dict(iam.list_user_tags(UserName="hatchway-alice-user")["Tags"])[COST] == "genomics-42"
    for policy in ("hatchway-alice-jobs", "hatchway-alice-user"):
        arn = f"arn:aws:iam::{aws.account}:policy/hatchway/{policy}"
        assert tag_dict(iam.list_policy_tags(PolicyArn=arn)["Tags"])[COST] == "genomics-42"
    ce = aws.batch.describe_compute_environments(computeEnvironments=["hatchway-alice-ce"])["computeEnvironments"][0]
    queue = aws.batch.describe_job_queues(jobQueues=["hatchway-alice-queue"])["jobQueues"][0]
    assert ce["tags"][COST] == "genomics-42" and queue["tags"][COST] == "genomics-42"
    secret = aws.secrets.describe_secret(SecretId="hatchway/workspaces/alice/aws-access-key")
    assert tag_dict(secret["Tags"])[COST] == "genomics-42"
    # Every EC2 resource of the network too (VPC, subnets, groups, tables, gateway, Squid).
    ec2_kinds = {"vpc", "subnet", "security_group", "route_table", "internet_gateway", "ec2_instance"}
    ec2 = [r for r in inventory(aws, "alice") if r.kind in ec2_kinds]
    assert {r.kind for r in ec2} == ec2_kinds
    for resource in ec2:
        tags = tag_dict(aws.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource.id]}])["Tags"])
        assert tags[COST] == "genomics-42", resource
    # moto accepts UpdateComputeEnvironment's computeResources but does not apply them:
    # the call itself, read at the server, is the outcome here.
    updates = _batch_requests(moto_server, "updatecomputeenvironment")
    assert [u["computeResources"] for u in updates] == [{"maxvCpus": 64}]
    assert updates[0]["computeEnvironment"] == ce["computeEnvironmentArn"]
    # One VPC, one queue: converged, not made again.
    assert [r.kind for r in inventory(aws, "alice")].count("vpc") == 1


def test_new_instance_types_fail_with_how_to_replace_the_environment(aws, airflow_db, set_config):
    assert run_dag("platform_bootstrap").state == "success"
    assert run_dag("workspace_provision", **ALICE).state == "success"
    set_config(instance_types=["c5.xlarge"])
    run = run_dag("workspace_provision", **ALICE)
    assert run.state == "failed" and task_states(run)["ensure_compute_environment"] == "failed"

    workspace = Workspace(aws, PlatformConfig(**{**TEST_CONFIG, "instance_types": ["c5.xlarge"]}),
                          WorkspaceRequest(**ALICE))
    network = workspace.ensure_network()
    with pytest.raises(WorkspaceError) as err:
        workspace.ensure_compute_environment(network)
    message = str(err.value)
    assert "instance types" in message and "c5.xlarge" in message and "m5.large" in message
    assert "hatchway-alice-queue" in message and "run workspace_provision again" in message


def test_replaced_environment_is_put_behind_the_queue(aws, airflow_db):
    """After the environment is replaced (the way the message above says), the queue follows it."""
    assert run_dag("platform_bootstrap").state == "success"
    assert run_dag("workspace_provision", **ALICE).state == "success"
    workspace = Workspace(aws, PlatformConfig(**TEST_CONFIG), WorkspaceRequest(**ALICE))
    other = aws.batch.describe_compute_environments(computeEnvironments=["hatchway-alice-ce"])[
        "computeEnvironments"][0]
    new = aws.batch.create_compute_environment(
        computeEnvironmentName="hatchway-alice-ce-2", type="MANAGED", state="ENABLED",
        serviceRole=other["serviceRole"], computeResources={
            k: other["computeResources"][k] for k in ("type", "minvCpus", "maxvCpus", "instanceTypes", "subnets",
                                                      "securityGroupIds", "instanceRole")})
    workspace.ensure_job_queue(new["computeEnvironmentArn"])
    queue = aws.batch.describe_job_queues(jobQueues=["hatchway-alice-queue"])["jobQueues"][0]
    assert [o["computeEnvironment"] for o in queue["computeEnvironmentOrder"]] == [new["computeEnvironmentArn"]]


def test_squid_boots_with_the_configured_allow_list(aws, airflow_db, set_config):
    import base64

    from hatchway.workspace.egress import squid_user_data

    set_config(proxy_allowed_domains=[".example.org", "ghcr.io"])
    assert run_dag("platform_bootstrap").state == "success"
    assert run_dag("workspace_provision", **ALICE).state == "success"
    squid = next(r for r in inventory(aws, "alice") if r.kind == "ec2_instance")
    raw = aws.ec2.describe_instance_attribute(InstanceId=squid.id, Attribute="userData")["UserData"]["Value"]
    user_data = base64.b64decode(raw).decode()
    assert user_data == squid_user_data([".example.org", "ghcr.io"], "192.168.0.0/16")
    assert "acl allowed_domains dstdomain .example.org ghcr.io" in user_data
