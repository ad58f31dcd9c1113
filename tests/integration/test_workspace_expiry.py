"""Data expiry after teardown: one marker per workspace, swept by the reaper, never lost in a race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from unittest import mock

import pytest

from conftest import TEST_CONFIG
from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest, utcnow
from hatchway.workspace import expiry
from hatchway.workspace.clients import AwsClients
from hatchway.workspace.platform import Platform
from hatchway.workspace.provision import Workspace
from support import run_dag, task_states, xcom_values

CONFIG = PlatformConfig(**TEST_CONFIG)
BUCKET = CONFIG.bucket


def _workspace(clients: AwsClients, name: str, config: PlatformConfig = CONFIG) -> Workspace:
    return Workspace(clients, config, WorkspaceRequest(workspace=name, owner=f"{name}@example.org"))


def _keys(aws, prefix: str) -> list[str]:
    pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _put_many(aws, prefix: str, count: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: aws.s3.put_object(Bucket=BUCKET, Key=f"{prefix}part-{i:05d}", Body=b"x"),
                      range(count)))


@pytest.fixture
def bucket(aws):
    Platform(aws, CONFIG).ensure_bucket()
    return aws


def test_concurrent_teardowns_and_reprovisions_end_with_exactly_their_expiries(bucket, moto_server):
    torn_down = [f"tear-{i:02d}" for i in range(10)]
    came_back = [f"back-{i:02d}" for i in range(10)]
    for name in came_back:  # torn down before: each has an expiry to lift
        _workspace(bucket, name).ensure_storage()
        _workspace(bucket, name).expire_data()

    def act(name: str) -> None:
        # Clients of its own per thread, as separate Airflow workers would have.
        ws = _workspace(AwsClients.from_endpoint(moto_server.url), name)
        ws.expire_data() if name in torn_down else ws.ensure_storage()

    before = utcnow()
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(act, torn_down + came_back))

    found = expiry.pending(bucket, CONFIG)
    assert sorted(e.workspace for e in found) == sorted(torn_down)
    for e in found:
        assert e.prefix == f"{e.workspace}/"
        assert before + timedelta(days=CONFIG.expiry_days) <= e.expires_at <= utcnow() + timedelta(days=30)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):  # nothing is kept in the bucket's one shared configuration
        bucket.s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)


def test_repeated_teardown_keeps_the_first_expiry(bucket):
    ws = _workspace(bucket, "alice")
    first = ws.expire_data()["expires_at"]
    assert ws.expire_data()["expires_at"] == first
    assert [e.expires_at.isoformat() for e in expiry.pending(bucket, CONFIG)] == [first]


def test_sweep_deletes_only_expired_prefixes_and_spares_a_reprovisioned_workspace(bucket):
    for name in ("big", "small", "back", "later", "live", "big-two"):
        _workspace(bucket, name).ensure_storage()
        bucket.s3.put_object(Bucket=BUCKET, Key=f"{name}/results.txt", Body=b"data")
    _put_many(bucket, "big/", 2500)  # more than one page and one delete batch
    for name in ("big", "small", "back"):
        _workspace(bucket, name).expire_data()
    _workspace(bucket, "later", CONFIG.model_copy(update={"expiry_days": 90})).expire_data()
    _workspace(bucket, "back").ensure_storage()  # re-provisioned: its expiry is lifted

    report = expiry.sweep(bucket, CONFIG, holder="test/sweep", now=utcnow() + timedelta(days=31))

    assert sorted((e["workspace"], e["deleted_objects"]) for e in report["expired"]) == [
        ("big", 2502), ("small", 2)]
    assert [p["workspace"] for p in report["pending"]] == ["later"]
    assert _keys(bucket, "big/") == [] and _keys(bucket, "small/") == []
    assert _keys(bucket, "big-two/") == ["big-two/", "big-two/results.txt"]  # a name that starts alike
    for name in ("back", "later", "live"):
        assert _keys(bucket, f"{name}/") == [f"{name}/", f"{name}/results.txt"]
    assert [e.workspace for e in expiry.pending(bucket, CONFIG)] == ["later"]
    # a second sweep finds nothing more to do
    again = expiry.sweep(bucket, CONFIG, holder="test/sweep", now=utcnow() + timedelta(days=31))
    assert again["expired"] == []


def test_sweep_deletes_every_version_in_a_versioned_bucket(bucket):
    bucket.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    ws = _workspace(bucket, "alice")
    ws.ensure_storage()
    for _ in range(2):
        _put_many(bucket, "alice/", 600)  # two versions of each: 1,200 versions
    bucket.s3.delete_object(Bucket=BUCKET, Key="alice/part-00000")  # and a delete marker
    ws.expire_data()

    report = expiry.sweep(bucket, CONFIG, holder="test/sweep", now=utcnow() + timedelta(days=31))

    assert report["expired"][0]["deleted_objects"] == 1 + 1200 + 1
    listed = bucket.s3.list_object_versions(Bucket=BUCKET, Prefix="alice/")
    assert listed.get("Versions", []) == [] and listed.get("DeleteMarkers", []) == []


def test_sweep_skips_a_workspace_whose_lifecycle_lock_is_held(bucket):
    from hatchway.workspace.lock import WorkspaceLock

    _workspace(bucket, "alice").ensure_storage()
    _workspace(bucket, "alice").expire_data()
    assert WorkspaceLock(bucket, CONFIG, "alice").acquire("workspace_provision/manual")["acquired"]

    report = expiry.sweep(bucket, CONFIG, holder="workspace_reaper/run", now=utcnow() + timedelta(days=31))

    assert report["expired"] == [] and report["busy"] == [
        {"workspace": "alice", "holder": "workspace_provision/manual"}]
    assert _keys(bucket, "alice/") == ["alice/"]


def test_reaper_run_deletes_expired_data_and_reports_it(aws, airflow_db):
    assert run_dag("platform_bootstrap").state == "success"
    aws.s3.put_object(Bucket=BUCKET, Key="alice/results.txt", Body=b"old")
    _workspace(aws, "alice").expire_data()
    assert run_dag("workspace_reaper").state == "success"
    assert _keys(aws, "alice/") == ["alice/results.txt"]  # not yet due

    later = utcnow() + timedelta(days=CONFIG.expiry_days, hours=1)
    with mock.patch("hatchway.workspace.expiry.utcnow", return_value=later):
        run = run_dag("workspace_reaper")
    assert run.state == "success", task_states(run)
    report = xcom_values(run)["sweep_expired:return_value"]
    assert report["expired"] == [{"workspace": "alice", "prefix": "alice/", "deleted_objects": 1}]
    assert _keys(aws, "alice/") == []
