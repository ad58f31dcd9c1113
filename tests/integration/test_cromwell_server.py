"""A Cromwell server per workspace (``mode: per_workspace``) on ECS + RDS + Secrets Manager, against
moto over HTTP through the real DAGs.

moto registers ECS services and tasks but runs no container: these tests check what AWS is
asked to hold (definitions, configuration, tags, counts), never a live Cromwell answering on
its endpoint. There is no e2e test of a running server here for that reason.
"""

from __future__ import annotations

import json
import logging

import pytest

from conftest import TEST_CONFIG
from hatchway.domain.cromwell_server import CONFIG_ENV, PASSWORD_ENV
from hatchway.domain.workspace import TAG_OWNER, TAG_PLATFORM, TAG_WORKSPACE, PlatformConfig
from hatchway.workspace import cromwell_server
from hatchway.workspace.cromwell_server import CromwellServer, read_server
from hatchway.workspace.inventory import inventory
from support import all_log_text, all_xcom_text, recorded_calls, reset_recording, run_dag, task_states

ALICE = {"workspace": "alice", "owner": "alice@example.org", "cost_center": "genomics-lab"}
CONFIG = PlatformConfig(**TEST_CONFIG)
CLUSTER, SERVICE, FAMILY, DB = "hatchway-cromwell", "hatchway-alice-cromwell", "hatchway-alice-cromwell", \
    "hatchway-alice-cromwell"
SECRET = "hatchway/workspaces/alice/cromwell-db"
STEPS = list(CromwellServer.STEPS)
LOCK = "/.hatchway/locks/"


def ok(dag_id: str, **conf):
    run = run_dag(dag_id, **conf)
    assert run.state == "success", (dag_id, task_states(run))
    return run


@pytest.fixture
def workspace(aws, airflow_db):
    ok("platform_bootstrap")
    ok("workspace_provision", **ALICE)
    return aws


def _tags(pairs, key="Key", value="Value") -> dict[str, str]:
    return {t[key]: t[value] for t in pairs or []}


def _service(aws, cluster=CLUSTER, name=SERVICE):
    try:
        found = aws.ecs.describe_services(cluster=cluster, services=[name], include=["TAGS"])["services"]
    except aws.ecs.exceptions.ClusterNotFoundException:
        return None
    return next((s for s in found if s["status"] == "ACTIVE"), None)


def _instances(aws) -> list[str]:
    return [i["DBInstanceIdentifier"] for i in aws.rds.describe_db_instances()["DBInstances"]
            if i["DBInstanceStatus"] != "deleting"]


def _server_left(aws, family=FAMILY) -> dict[str, object]:
    """Every resource of a server that is still there (empty when none is)."""
    left: dict[str, object] = {}
    if _service(aws):
        left["service"] = SERVICE
    defs = aws.ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
    if defs:
        left["task_definitions"] = defs
    if DB in _instances(aws):
        left["db"] = DB
    secrets = [s["Name"] for s in aws.secrets.list_secrets()["SecretList"] if s["Name"] == SECRET]
    if secrets:
        left["secret"] = secrets
    if any(c["status"] == "ACTIVE" for c in aws.ecs.describe_clusters(clusters=[CLUSTER])["clusters"]):
        left["cluster"] = CLUSTER
    if aws.s3.list_objects_v2(Bucket=CONFIG.bucket, Prefix=".hatchway/cromwell-servers/").get("KeyCount", 0):
        left["record"] = True
    return left


def test_every_provision_task_is_covered(airflow_db):
    from support import _dagbag

    assert sorted(_dagbag().get_dag("cromwell_server_provision").task_ids) == sorted(
        STEPS + ["acquire_lock", "release_lock"])


def test_provision_makes_every_resource_tagged_and_records_the_endpoint(workspace, airflow_db, caplog, capfd):
    aws = workspace
    caplog.set_level(logging.INFO)
    ok("cromwell_server_provision", workspace="alice")

    wanted = {TAG_WORKSPACE: "alice", TAG_OWNER: "alice@example.org", "hatchway:cost-center": "genomics-lab",
              TAG_PLATFORM: "hatchway"}
    secret = aws.secrets.describe_secret(SecretId=SECRET)
    assert _tags(secret["Tags"]) == wanted
    [instance] = aws.rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"]
    assert _tags(instance["TagList"]) == wanted
    assert instance["DBInstanceClass"] == "db.t3.micro" and instance["Engine"] == "mysql"
    assert instance["PubliclyAccessible"] is False and instance["AllocatedStorage"] == 20
    found = aws.ecs.describe_task_definition(taskDefinition=FAMILY, include=["TAGS"])
    assert _tags(found["tags"], "key", "value") == wanted
    service = _service(aws)
    assert _tags(service["tags"], "key", "value") == wanted
    assert service["desiredCount"] == 1 and service["launchType"] == "FARGATE"
    [cluster] = aws.ecs.describe_clusters(clusters=[CLUSTER], include=["TAGS"])["clusters"]
    cluster_tags = _tags(cluster["tags"], "key", "value")
    assert cluster_tags[TAG_PLATFORM] == "hatchway" and TAG_WORKSPACE not in cluster_tags

    # The server runs in the workspace's own private subnets, behind its Batch security group.
    subnets = {s["SubnetId"] for s in aws.ec2.describe_subnets(Filters=[
        {"Name": "tag:Name", "Values": ["hatchway-alice-private-0", "hatchway-alice-private-1"]}])["Subnets"]}
    vpc = service["networkConfiguration"]["awsvpcConfiguration"]
    assert set(vpc["subnets"]) == subnets and len(subnets) == 2

    # The configuration names the workspace's queue, job role, S3 root and database.
    [container] = found["taskDefinition"]["containerDefinitions"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    hocon = env[CONFIG_ENV]
    queue = aws.batch.describe_job_queues(jobQueues=["hatchway-alice-queue"])["jobQueues"][0]["jobQueueArn"]
    role = aws.iam.get_role(RoleName="hatchway-alice-jobs")["Role"]["Arn"]
    assert f'queueArn = "{queue}"' in hocon
    assert f'jobRoleArn = "{role}"' in hocon
    assert 'root = "s3://hatchway-test-data/alice/cromwell-execution"' in hocon
    assert instance["Endpoint"]["Address"] in hocon and "hog-safety" in hocon
    assert container["image"] == "broadinstitute/cromwell:87"
    assert container["secrets"] == [{"name": PASSWORD_ENV, "valueFrom": f"{secret['ARN']}:password::"}]

    record = read_server(aws, CONFIG, "alice")
    assert record.endpoint == "http://hatchway-alice-cromwell.hatchway.cromwell.internal:8000"
    assert (record.service, record.cluster, record.db_identifier, record.secret_arn) == (SERVICE, CLUSTER, DB,
                                                                                         secret["ARN"])
    assert record.task_definition_arn == found["taskDefinition"]["taskDefinitionArn"]

    password = json.loads(aws.secrets.get_secret_value(SecretId=SECRET)["SecretString"])["password"]
    assert len(password) >= 24
    assert all_xcom_text(), "no XCom rows were read: the check would pass vacuously"
    out, err = capfd.readouterr()
    assert "ensure_secret" in out + err + caplog.text, "task output was not captured"
    for text in (all_xcom_text(), out, err, caplog.text, all_log_text(airflow_db), json.dumps(found, default=str)):
        assert password not in text


def test_repeat_provision_makes_no_mutating_call(workspace, moto_server):
    ok("cromwell_server_provision", workspace="alice")
    reset_recording(moto_server.url)
    ok("cromwell_server_provision", workspace="alice")
    calls = recorded_calls(moto_server.recording)
    assert any(s == "ecs" for s, _, _ in calls), "the repeat made no ECS call: is recording on?"
    assert [(s, a) for s, a, m in calls if m and LOCK not in a] == []
    assert len(workspace.ecs.list_task_definitions(familyPrefix=FAMILY)["taskDefinitionArns"]) == 1


def test_a_changed_image_registers_one_revision_and_rolls_the_service(workspace, monkeypatch):
    ok("cromwell_server_provision", workspace="alice")
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG",
                       json.dumps({"mode": "per_workspace", "server": {"image": "broadinstitute/cromwell:88"}}))
    ok("cromwell_server_provision", workspace="alice")
    defs = workspace.ecs.list_task_definitions(familyPrefix=FAMILY)["taskDefinitionArns"]
    assert len(defs) == 2
    assert _service(workspace)["taskDefinition"] == defs[-1] == read_server(workspace, CONFIG,
                                                                            "alice").task_definition_arn


@pytest.mark.parametrize("step", STEPS)
def test_a_fault_after_each_step_leaves_nothing_after_purge(step, workspace, fail_after):
    with fail_after(CromwellServer, step):
        failed = run_dag("cromwell_server_provision", workspace="alice")
    assert failed.state == "failed" and task_states(failed)[step] == "failed"
    if step not in ("plan",):
        assert _server_left(workspace), f"the fault after {step} should strike after something was made"
    ok("cromwell_server_teardown", workspace="alice", purge=True)
    assert _server_left(workspace) == {}


def test_workspace_teardown_stops_the_server_and_purge_removes_it(workspace):
    aws = workspace
    ok("cromwell_server_provision", workspace="alice")
    run = ok("workspace_teardown", workspace="alice", purge=False)
    assert _service(aws) is None
    left = _server_left(aws)
    assert {"db", "secret", "task_definitions"} <= set(left)  # teardown stops; data stays
    assert read_server(aws, CONFIG, "alice").state == "stopped"
    assert task_states(run)["stop_compute"] == "success"

    ok("workspace_teardown", workspace="alice", purge=True)
    assert _server_left(aws) == {}
    assert inventory(aws, "alice") == []


def test_purge_leaves_the_other_deployment_and_other_workspaces_alone(aws, airflow_db, set_config):
    other = {"bucket": "other-deployment-data", "prefix": "other"}
    set_config(**other)
    ok("platform_bootstrap")
    ok("workspace_provision", workspace="alice", owner="alice@example.org")
    ok("cromwell_server_provision", workspace="alice")
    set_config()
    ok("platform_bootstrap")
    for name in ("alice", "bob"):
        ok("workspace_provision", workspace=name, owner=f"{name}@example.org")
        ok("cromwell_server_provision", workspace=name)

    ok("workspace_teardown", workspace="alice", purge=True)
    assert _service(aws) is None and DB not in _instances(aws)
    # bob's server keeps this deployment's cluster; the other deployment keeps everything.
    assert _service(aws, name="hatchway-bob-cromwell")
    assert "hatchway-bob-cromwell" in _instances(aws)
    assert _service(aws, cluster="other-cromwell", name="other-alice-cromwell")
    assert "other-alice-cromwell" in _instances(aws)
    assert aws.ecs.list_task_definitions(familyPrefix="other-alice-cromwell")["taskDefinitionArns"]
    aws.secrets.describe_secret(SecretId="other/workspaces/alice/cromwell-db")
    assert read_server(aws, PlatformConfig(**{**TEST_CONFIG, **other}), "alice").state == "running"

    ok("workspace_teardown", workspace="bob", purge=True)
    assert not any(c["status"] == "ACTIVE" for c in aws.ecs.describe_clusters(clusters=[CLUSTER])["clusters"])
    assert any(c["status"] == "ACTIVE" for c in aws.ecs.describe_clusters(clusters=["other-cromwell"])["clusters"])


def test_shared_db_instance_gets_a_database_of_the_workspace_not_an_instance(workspace, monkeypatch):
    aws = workspace
    aws.rds.create_db_instance(DBInstanceIdentifier="shared-mysql", DBInstanceClass="db.t3.medium", Engine="mysql",
                               AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="adminpassword1")
    asked = []
    monkeypatch.setattr(cromwell_server, "create_database", lambda clients, request: asked.append(request))
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CROMWELL_CONFIG", json.dumps(
        {"mode": "per_workspace", "server": {"shared_db_instance": "shared-mysql",
                                             "shared_db_admin_secret_arn": "arn:aws:secretsmanager:admin"}}))
    ok("cromwell_server_provision", workspace="alice")
    assert [(r.database, r.user) for r in asked] == [("cromwell_hatchway__alice", asked[0].user)]
    assert asked[0].secret_arn == aws.secrets.describe_secret(SecretId=SECRET)["ARN"]
    assert _instances(aws) == ["shared-mysql"]
    record = read_server(aws, CONFIG, "alice")
    assert record.shared_db and record.db_identifier == "shared-mysql"
    ok("cromwell_server_provision", workspace="alice")
    assert len(asked) == 1  # the record says the database is there
    ok("cromwell_server_teardown", workspace="alice", purge=True)
    assert _instances(aws) == ["shared-mysql"]  # the shared instance is not the workspace's
