"""The reaper: idle workspaces go to teardown; orphans are listed, and removed when asked."""

from __future__ import annotations

import json
from datetime import timedelta

from hatchway.domain.workspace import TAG_WORKSPACE, PlatformConfig, QueueMode, WorkspaceRequest, utcnow, workspace_tags
from hatchway.workspace.clients import tag_list
from hatchway.workspace.inventory import inventory
from hatchway.workspace.provision import read_record, write_record
from support import recorded_calls, reset_recording, run_dag, task_states, xcom_values
from conftest import TEST_CONFIG

CONFIG = PlatformConfig(**TEST_CONFIG)


def _provision(*who):
    assert run_dag("platform_bootstrap").state == "success"
    for w in who:
        run = run_dag("workspace_provision", workspace=w, owner=f"{w}@example.org")
        assert run.state == "success", task_states(run)


def _age(aws, workspace: str, hours: int) -> None:
    record = read_record(aws, CONFIG, workspace)
    record.last_active_at -= timedelta(hours=hours)
    write_record(aws, CONFIG, record, {})


def _teardown_runs():
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: r.conf for r in session.query(DagRun).filter(DagRun.dag_id == "workspace_teardown")}


def test_idle_workspace_is_handed_to_teardown_and_active_one_is_not(aws, airflow_db):
    _provision("alice", "bob")
    _age(aws, "alice", CONFIG.idle_ttl_hours + 1)
    before = set(_teardown_runs())
    run = run_dag("workspace_reaper")
    assert run.state == "success", task_states(run)
    assert xcom_values(run)["find_idle:return_value"] == [{"workspace": "alice", "purge": False}]
    new = {k: v for k, v in _teardown_runs().items() if k not in before}
    assert list(new.values()) == [{"workspace": "alice", "purge": False}]
    assert xcom_values(run)["queue_quota:return_value"]["job_queues"] == 2


WEEK = 7 * 24


def _use_key(aws, workspace: str, moto_server) -> None:
    """The researcher works with the workspace's key (read from where provision stored it)."""
    import boto3

    key = json.loads(aws.secrets.get_secret_value(
        SecretId=f"hatchway/workspaces/{workspace}/aws-access-key")["SecretString"])
    s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1",
                      aws_access_key_id=key["aws_access_key_id"], aws_secret_access_key=key["aws_secret_access_key"])
    s3.put_object(Bucket=CONFIG.bucket, Key=f"{workspace}/notes.txt", Body=b"in use")


def _submit_job(aws, queue: str, workspace: str) -> str:
    definition = aws.batch.register_job_definition(
        jobDefinitionName=f"hatchway-{workspace}-hello", type="container",
        containerProperties={"image": "busybox", "command": ["true"],
                             "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                      {"type": "MEMORY", "value": "128"}]})
    return aws.batch.submit_job(jobName="hello", jobQueue=queue, jobDefinition=definition["jobDefinitionArn"],
                                tags={TAG_WORKSPACE: workspace})["jobId"]


def test_a_workspace_used_recently_is_not_reaped_however_old_and_an_unused_one_is(aws, airflow_db, moto_server):
    from hatchway.workspace import activity

    _provision("alice", "bob", "carol", "dave")
    for name in ("alice", "bob", "carol", "dave"):
        _age(aws, name, WEEK)  # all provisioned a week ago
    _use_key(aws, "alice", moto_server)                 # alice used her key
    _submit_job(aws, "hatchway-carol-queue", "carol")   # carol has a Batch job in her queue
    activity.touch(aws, CONFIG, "dave", by="wes_run r-1")  # a WES run executes in dave's workspace
    run = run_dag("workspace_reaper")
    assert run.state == "success", task_states(run)
    assert xcom_values(run)["find_idle:return_value"] == [{"workspace": "bob", "purge": False}]

    # An hour on, each use is an hour old: still within the TTL.
    from hatchway.workspace.reaper import find_idle

    assert find_idle(aws, CONFIG, now=utcnow() + timedelta(hours=1)) == ["bob"]
    # Past the TTL from now, every one of them is idle again.
    later = utcnow() + timedelta(hours=CONFIG.idle_ttl_hours + 1)
    assert find_idle(aws, CONFIG, now=later) == ["alice", "bob", "carol", "dave"]


def test_a_job_in_the_shared_queue_keeps_its_workspace_alive(aws, airflow_db, set_config, moto_server):
    from hatchway.workspace.reaper import find_idle

    set_config(queue_mode="shared")
    config = CONFIG.model_copy(update={"queue_mode": QueueMode.SHARED})
    _provision("alice", "bob", "carol")
    for name in ("alice", "bob", "carol"):
        _age(aws, name, WEEK)
    _submit_job(aws, "hatchway-shared-queue", "alice")
    reset_recording(moto_server.url)
    assert find_idle(aws, config) == ["bob", "carol"]
    # The shared queue is read once for the pass, not once per workspace that looks idle.
    listings = [a for s, a, _ in recorded_calls(moto_server.recording) if s == "batch" and a == "listjobs"]
    assert len(listings) == 3  # jobs created within the TTL (every state), running, runnable


def test_orphans_are_reported_then_deleted_only_when_asked(aws, airflow_db, set_config):
    set_config(orphan_grace_hours=0)  # the ghost's resources are made just now
    _provision("alice")
    ghost = workspace_tags(CONFIG, WorkspaceRequest(workspace="ghost", owner="gone@example.org"))
    aws.iam.create_user(UserName="hatchway-ghost-user", Path="/hatchway/", Tags=tag_list(ghost))
    aws.ec2.create_vpc(CidrBlock="10.7.0.0/16",
                       TagSpecifications=[{"ResourceType": "vpc", "Tags": tag_list({**ghost, "Name": "ghost"})}])

    report = run_dag("workspace_reaper")
    assert report.state == "success", task_states(report)
    listed = xcom_values(report)["sweep_orphans:return_value"]
    assert sorted(o["kind"] for o in listed["orphans"]) == ["iam_user", "vpc"]
    assert listed["deleted"] == 0 and len(inventory(aws, "ghost")) == 2

    sweep = run_dag("workspace_reaper", delete_orphans=True)
    assert sweep.state == "success", task_states(sweep)
    assert xcom_values(sweep)["sweep_orphans:return_value"]["deleted"] == 2
    assert inventory(aws, "ghost") == []
    assert {r.kind for r in inventory(aws, "alice")} >= {"iam_user", "vpc", "job_queue"}


def _ghost(aws, name: str = "ghost") -> None:
    """Tagged resources of a workspace with no record, as a provision leaves them before ``record``."""
    tags = workspace_tags(CONFIG, WorkspaceRequest(workspace=name, owner="gone@example.org"))
    aws.iam.create_user(UserName=f"hatchway-{name}-user", Path="/hatchway/", Tags=tag_list(tags))
    aws.ec2.create_vpc(CidrBlock="10.7.0.0/16",
                       TagSpecifications=[{"ResourceType": "vpc", "Tags": tag_list({**tags, "Name": name})}])


def test_a_provision_in_flight_is_never_swept(aws, airflow_db, set_config):
    from hatchway.workspace.lock import WorkspaceLock
    from hatchway.workspace.reaper import sweep_orphans

    _provision()
    _ghost(aws)
    # Younger than the grace period: not an orphan, even when deleting.
    young = sweep_orphans(aws, CONFIG, delete=True)
    assert young["in_flight"] == ["ghost"] and young["deleted"] == 0 and len(inventory(aws, "ghost")) == 2

    # Past the grace period, but a lifecycle run of the workspace holds its lock.
    no_grace = CONFIG.model_copy(update={"orphan_grace_hours": 0})
    assert WorkspaceLock(aws, no_grace, "ghost").acquire("workspace_provision/run-1")["acquired"]
    locked = sweep_orphans(aws, no_grace, delete=True)
    assert locked["in_flight"] == ["ghost"] and len(inventory(aws, "ghost")) == 2

    # The run is over (lock released) and the grace period has passed: swept.
    WorkspaceLock(aws, no_grace, "ghost").release("workspace_provision/run-1")
    swept = sweep_orphans(aws, no_grace, delete=True)
    assert swept["in_flight"] == [] and swept["deleted"] == 2 and inventory(aws, "ghost") == []
