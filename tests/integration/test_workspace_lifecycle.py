"""The workspace lifecycle against a moto server over HTTP, through the real DAGs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from conftest import TEST_CONFIG
from hatchway.domain.workspace import TAG_OWNER, TAG_WORKSPACE, PlatformConfig, utcnow
from hatchway.workspace import expiry
from hatchway.workspace.inventory import inventory
from support import run_dag, task_states

ALICE = {"workspace": "alice", "owner": "alice@example.org"}
CONFIG = PlatformConfig(**TEST_CONFIG)
KINDS = {"secret", "iam_user", "iam_role", "iam_policy", "job_queue", "compute_environment", "launch_template",
         "ec2_instance", "vpc_endpoint", "route_table", "security_group", "subnet", "internet_gateway", "vpc"}


@pytest.fixture
def bootstrapped(aws, airflow_db):
    run = run_dag("platform_bootstrap")
    assert run.state == "success", task_states(run)
    return aws


def provision(**conf):
    run = run_dag("workspace_provision", **conf)
    assert run.state == "success", task_states(run)
    return run


def test_provision_makes_every_resource_tagged(bootstrapped):
    aws = bootstrapped
    provision(**ALICE, cost_center="genomics-lab")
    found = inventory(aws, "alice")
    assert {r.kind for r in found} == KINDS
    assert all(r.owner == "alice@example.org" for r in found)
    user_tags = {t["Key"]: t["Value"] for t in aws.iam.list_user_tags(UserName="hatchway-alice-user")["Tags"]}
    assert user_tags[TAG_WORKSPACE] == "alice" and user_tags[TAG_OWNER] == "alice@example.org"
    assert user_tags["hatchway:cost-center"] == "genomics-lab"
    ce = aws.batch.describe_compute_environments(computeEnvironments=["hatchway-alice-ce"])["computeEnvironments"][0]
    assert ce["status"] == "VALID" and ce["tags"]["hatchway:cost-center"] == "genomics-lab"
    assert aws.s3.head_object(Bucket="hatchway-test-data", Key="alice/")
    secret = json.loads(aws.secrets.get_secret_value(SecretId="hatchway/workspaces/alice/aws-access-key")["SecretString"])
    keys = aws.iam.list_access_keys(UserName="hatchway-alice-user")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [secret["aws_access_key_id"]]


def test_user_policy_grants_only_own_prefix_queue_and_role(bootstrapped):
    aws = bootstrapped
    provision(**ALICE)
    arn = f"arn:aws:iam::{aws.account}:policy/hatchway/hatchway-alice-user"
    version = aws.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    doc = aws.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["ReadWriteOwnPrefix"]["Resource"] == "arn:aws:s3:::hatchway-test-data/alice/*"
    assert by_sid["ListOwnPrefix"]["Condition"]["StringLike"]["s3:prefix"] == ["alice/", "alice/*"]
    queue = aws.batch.describe_job_queues(jobQueues=["hatchway-alice-queue"])["jobQueues"][0]["jobQueueArn"]
    assert queue in by_sid["SubmitToOwnQueue"]["Resource"]
    assert all("*" not in r or r.endswith("job-definition/hatchway-alice-*")
               for r in by_sid["SubmitToOwnQueue"]["Resource"])
    assert by_sid["PassOwnJobRole"]["Resource"].endswith("role/hatchway/hatchway-alice-jobs")
    every_resource = json.dumps([s["Resource"] for s in doc["Statement"] if s["Sid"] != "DescribeBatch"])
    assert "bob" not in every_resource and '"*"' not in every_resource


def test_teardown_revokes_keys_stops_squid_and_keeps_data_with_expiry(bootstrapped):
    aws = bootstrapped
    provision(**ALICE)
    aws.s3.put_object(Bucket="hatchway-test-data", Key="alice/results.txt", Body=b"keep me")
    run = run_dag("workspace_teardown", workspace="alice", purge=False)
    assert run.state == "success", task_states(run)
    assert aws.iam.list_access_keys(UserName="hatchway-alice-user")["AccessKeyMetadata"] == []
    assert not any(r.kind == "secret" for r in inventory(aws, "alice"))
    squid = [r for r in inventory(aws, "alice") if r.kind == "ec2_instance"]
    assert [r.state for r in squid] in (["stopped"], ["stopping"])
    assert aws.s3.get_object(Bucket="hatchway-test-data", Key="alice/results.txt")["Body"].read() == b"keep me"
    [marked] = expiry.pending(aws, CONFIG)
    assert (marked.workspace, marked.prefix) == ("alice", "alice/")
    assert timedelta(days=29, hours=23) < marked.expires_at - utcnow() <= timedelta(days=30)
    assert task_states(run)["purge_resources"] == "skipped"


def test_purge_leaves_nothing_behind(bootstrapped):
    aws = bootstrapped
    provision(**ALICE)
    provision(workspace="bob", owner="bob@example.org")
    aws.s3.put_object(Bucket="hatchway-test-data", Key="alice/data.bin", Body=b"x")
    run = run_dag("workspace_teardown", workspace="alice", purge=True)
    assert run.state == "success", task_states(run)
    assert inventory(aws, "alice") == []
    assert aws.s3.list_objects_v2(Bucket="hatchway-test-data", Prefix="alice/").get("KeyCount") == 0
    # bob's workspace is untouched
    assert {r.kind for r in inventory(aws, "bob")} == KINDS


def test_reprovision_after_teardown_restores_access_and_lifts_expiry(bootstrapped):
    aws = bootstrapped
    provision(**ALICE)
    assert run_dag("workspace_teardown", workspace="alice", purge=False).state == "success"
    provision(**ALICE)
    assert len(aws.iam.list_access_keys(UserName="hatchway-alice-user")["AccessKeyMetadata"]) == 1
    queue = aws.batch.describe_job_queues(jobQueues=["hatchway-alice-queue"])["jobQueues"][0]
    assert queue["state"] == "ENABLED"
    assert expiry.pending(aws, CONFIG) == []


def test_provision_for_another_owner_is_refused(bootstrapped):
    provision(**ALICE)
    run = run_dag("workspace_provision", workspace="alice", owner="mallory@example.org")
    assert run.state == "failed"
    assert task_states(run)["plan"] == "failed"


def test_provision_without_bootstrap_fails_fast_and_makes_nothing(aws, airflow_db):
    run = run_dag("workspace_provision", **ALICE)
    assert run.state == "failed" and task_states(run)["plan"] == "failed"
    assert inventory(aws) == []
