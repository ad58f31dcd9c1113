"""include/policies/hatchway-operator.json grants every AWS action the lifecycles really make."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from conftest import TEST_CONFIG
from hatchway.domain.workspace import PlatformConfig
from hatchway.workspace.provision import read_record, write_record
from support import REPO, recorded_calls, reset_recording, run_dag, task_states

CONFIG = PlatformConfig(**TEST_CONFIG)

POLICY = json.loads((REPO / "include/policies/hatchway-operator.json").read_text())
FREE = {"sts:GetCallerIdentity"}  # needs no permission


def _s3_action(action: str) -> str:
    """An IAM action for a recorded S3 REST call (``METHOD /bucket[/key][?query]``)."""
    method, target = action.split(" ", 1)
    path, _, query = target.partition("?")
    parts = path.strip("/").split("/", 1)
    if "lifecycle" in query:
        return {"GET": "s3:GetLifecycleConfiguration"}.get(method, "s3:PutLifecycleConfiguration")
    if "versioning" in query:
        return "s3:GetBucketVersioning" if method == "GET" else "s3:PutBucketVersioning"
    if "versions" in query:
        return "s3:ListBucketVersions"
    if "uploadId" in query:
        return "s3:AbortMultipartUpload" if method == "DELETE" else "s3:PutObject"
    if "uploads" in query and len(parts) == 1:
        return "s3:ListBucketMultipartUploads"
    if "publicAccessBlock" in query:
        return "s3:GetBucketPublicAccessBlock" if method == "GET" else "s3:PutBucketPublicAccessBlock"
    if "tagging" in query:
        return "s3:GetBucketTagging" if method == "GET" else "s3:PutBucketTagging"
    if len(parts) == 1:  # the bucket itself
        if method == "PUT":
            return "s3:CreateBucket"
        if method == "POST" and "delete" in query:
            return "s3:DeleteObject"  # DeleteObjects: s3:DeleteObjectVersion too when it names versions
        return "s3:ListBucket"
    return {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "PUT": "s3:PutObject",
            "DELETE": "s3:DeleteObject"}[method]


def test_operator_policy_covers_every_call_of_every_lifecycle(aws, airflow_db, moto_server):
    granted = {a.lower() for s in POLICY["Statement"] for a in s["Action"]}
    reset_recording(moto_server.url)
    runs = [run_dag("platform_bootstrap"),
            run_dag("workspace_provision", workspace="alice", owner="alice@example.org"),
            run_dag("cromwell_server_provision", workspace="alice"),
            run_dag("workspace_teardown", workspace="alice", purge=False),
            run_dag("workspace_provision", workspace="alice", owner="alice@example.org"),
            run_dag("cromwell_server_provision", workspace="alice"),
            run_dag("cromwell_server_teardown", workspace="alice", purge=False),
            run_dag("cromwell_server_provision", workspace="alice")]
    # Provisioned a week ago: the reaper looks at every sign of use (IAM, Batch) before calling it idle.
    record = read_record(aws, CONFIG, "alice")
    record.last_active_at -= timedelta(days=7)
    write_record(aws, CONFIG, record, {})
    runs += [run_dag("workspace_reaper", delete_orphans=True),
             run_dag("workspace_teardown", workspace="alice", purge=True)]
    assert all(r.state == "success" for r in runs), [task_states(r) for r in runs]
    used = set()
    for service, action, _ in recorded_calls(moto_server.recording):
        if service == "s3":
            used.add(_s3_action(action))
        else:
            used.add(f"{service}:{re.sub(r'[^A-Za-z]', '', action)}")
    missing = sorted(a for a in used if a.lower() not in granted and a not in FREE)
    assert missing == []
    assert len(used) > 40
    assert {"s3:putbucketpublicaccessblock", "s3:createbucket", "s3:getbucketversioning",
            "s3:listbucketmultipartuploads", "iam:getaccesskeylastused", "batch:listjobs",
            "ecs:registertaskdefinition", "ecs:createservice", "ecs:deleteservice", "ecs:deletecluster",
            "ecs:deregistertaskdefinition", "rds:createdbinstance", "rds:deletedbinstance"} <= {a.lower() for a in used}
    # Expiry is Hatchway's own markers, not the bucket's one shared lifecycle configuration.
    assert "s3:PutLifecycleConfiguration" not in used
