"""Name rules and request validation: plain Python, no Airflow, no cloud."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hatchway.domain import names
from hatchway.domain.names import NetworkNames, PlatformNames, WorkspaceNames
from hatchway.domain.workspace import PlatformConfig, TeardownRequest, WorkspaceRequest


@pytest.mark.parametrize(("bad", "rule"), [
    ("Alice", "must be lowercase"),
    ("a..b", "may not contain '.'"),
    ("a" * 200, "must be 3-32 characters long (got 200)"),
    ("ab", "must be 3-32 characters long (got 2)"),
    ("a;rm -rf /", "only lowercase letters, digits and '-'"),
    ("$(reboot)", "only lowercase letters, digits and '-'"),
    ("a`id`b", "only lowercase letters, digits and '-'"),
    ("9lives", "must start with a letter"),
    ("alice-", "must end with a letter or digit"),
    ("al--ice", "may not contain '--'"),
])
def test_bad_workspace_names_are_rejected_naming_the_rule(bad, rule):
    with pytest.raises(ValidationError) as err:
        WorkspaceRequest(workspace=bad, owner="alice")
    assert rule in str(err.value)
    with pytest.raises(ValidationError):
        TeardownRequest(workspace=bad)


@pytest.mark.parametrize(("bad", "rule"), [
    ("Alice@Example.org", "must be lowercase"),
    ("alice;id", "only lowercase letters, digits and . _ @ + -"),
    ("a" * 129, "1-128 characters"),
])
def test_bad_owners_are_rejected_naming_the_rule(bad, rule):
    with pytest.raises(ValidationError) as err:
        WorkspaceRequest(workspace="alice", owner=bad)
    assert rule in str(err.value)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        WorkspaceRequest(workspace="alice", owner="alice", queue="someone-elses")


def test_longest_names_stay_legal_everywhere():
    longest = WorkspaceNames(prefix="p" * names.PREFIX_MAX, workspace="w" * names.WORKSPACE_MAX)
    for iam_name in (longest.job_role, longest.job_policy, longest.user, longest.user_policy):
        assert len(iam_name) <= 64
        names.check_iam_name(iam_name)
    names.check_batch_name(longest.compute_environment)
    names.check_batch_name(longest.job_queue)
    names.check_dns1123_label(longest.namespace)
    platform = PlatformNames("p" * names.PREFIX_MAX)
    for iam_name in (platform.batch_service_role, platform.instance_role):
        names.check_iam_name(iam_name)
    net = NetworkNames(longest.base)
    assert len(net.squid_security_group) <= 255


def test_share_identifiers_are_alphanumeric_and_distinct():
    a, b = WorkspaceNames("hw", "ab-c"), WorkspaceNames("hw", "abc")
    assert a.share_identifier.isalnum() and b.share_identifier.isalnum()
    assert a.share_identifier != b.share_identifier


@pytest.mark.parametrize(("bucket", "ok"), [
    ("hatchway-data", True), ("my.bucket.name", True), ("ab", False), ("Upper", False),
    ("a..b", False), ("192.168.1.1", False), ("-start", False), ("a" * 64, False)])
def test_bucket_rule(bucket, ok):
    if ok:
        assert names.check_s3_bucket(bucket) == bucket
    else:
        with pytest.raises(ValueError, match="S3 rules"):
            names.check_s3_bucket(bucket)


def test_config_rejects_inverted_vcpus_and_bad_bucket():
    with pytest.raises(ValidationError, match="min_vcpus"):
        PlatformConfig(bucket="hatchway-data", min_vcpus=8, max_vcpus=4)
    with pytest.raises(ValidationError, match="S3 rules"):
        PlatformConfig(bucket="Bad_Bucket")
    with pytest.raises(ValidationError, match="Extra inputs"):
        PlatformConfig(bucket="hatchway-data", instance_type="m5.large")
