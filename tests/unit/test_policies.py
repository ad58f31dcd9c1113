"""Policy documents: narrow where AWS allows it, and only from validated names."""

from __future__ import annotations

from hatchway.domain import policies
from hatchway.domain.names import WorkspaceNames
from hatchway.domain.workspace import PlatformConfig, QueueMode

QUEUE = "arn:aws:batch:us-east-1:111122223333:job-queue/hw-alice-queue"
ROLE = "arn:aws:iam::111122223333:role/hatchway/hw-alice-jobs"


def _statements(doc):
    return {s["Sid"]: s for s in doc["Statement"]}


def test_shared_mode_pins_submissions_to_the_workspace_share():
    config = PlatformConfig(bucket="data-bucket", prefix="hw", queue_mode=QueueMode.SHARED)
    names = WorkspaceNames("hw", "alice")
    submit = _statements(policies.user_policy(config, names, "111122223333", QUEUE, ROLE))["SubmitToOwnQueue"]
    assert submit["Condition"]["StringEquals"]["batch:ShareIdentifier"] == names.share_identifier
    assert submit["Resource"][1] == "arn:aws:batch:us-east-1:111122223333:job-definition/hw-alice-*"


def test_per_user_mode_has_no_share_condition_and_images_are_allow_listed():
    config = PlatformConfig(bucket="data-bucket", prefix="hw", allowed_images=["quay.io/biocontainers/*"])
    doc = policies.user_policy(config, WorkspaceNames("hw", "alice"), "111122223333", QUEUE, ROLE)
    stmts = _statements(doc)
    assert "batch:ShareIdentifier" not in stmts["SubmitToOwnQueue"]["Condition"]["StringEquals"]
    assert stmts["RegisterOwnJobDefinitions"]["Condition"] == {
        "StringLike": {"batch:Image": ["quay.io/biocontainers/*"]}}
    assert stmts["StopOwnJobs"]["Condition"]["StringEquals"] == {"aws:ResourceTag/hatchway:workspace": "alice"}


def test_job_policy_reads_allowed_buckets_but_writes_only_own_prefix():
    config = PlatformConfig(bucket="data-bucket", allowed_buckets=["1000genomes"])
    stmts = _statements(policies.job_policy(config, WorkspaceNames("hatchway", "alice")))
    assert stmts["ReadWriteOwnPrefix"]["Resource"] == "arn:aws:s3:::data-bucket/alice/*"
    assert "s3:PutObject" not in stmts["ReadAllowedBuckets"]["Action"]
    assert "arn:aws:s3:::1000genomes/*" in stmts["ReadAllowedBuckets"]["Resource"]
